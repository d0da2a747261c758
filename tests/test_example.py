"""The training example runs as a user would run it, with and without GIT."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from gitaug import GITAugment, MUNITConfig, MUNITGenerator

pytest.importorskip("sklearn")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_longtail.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_longtail", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QUICK = ["--epochs", "2", "--drs-epoch", "1", "--ekld-inputs", "3", "--ekld-draws", "2", "--width", "4"]


def test_erm_reports_accuracy_and_ekld(tmp_path):
    out = tmp_path / "erm.json"
    results = load_example().main(["--dataset", "digits-bg-lt", "--method", "erm", "--out", str(out), *QUICK])
    assert json.loads(out.read_text())["test_balanced_accuracy"] == results["test_balanced_accuracy"]
    assert 0 <= results["test_balanced_accuracy"] <= 1
    assert len(results["test_per_class_accuracy"]) == 10
    assert len(results["ekld_per_class"]) == 10 and all(v >= 0 for v in results["ekld_per_class"])
    assert set(results["ekld_summary"]) >= {"spearman", "tail_mean", "head_mean"}


def test_git_loads_a_generator_and_switches_on_with_resampling(tmp_path, monkeypatch):
    torch.manual_seed(0)
    generator = MUNITGenerator(MUNITConfig(in_channels=1, image_size=28, dim=4, mlp_dim=8, n_res=1))
    GITAugment(generator).save_pretrained(tmp_path / "gen")
    example = load_example()
    calls = []
    original = GITAugment.forward

    def recording_forward(self, images, labels=None, **kwargs):
        calls.append(self.enabled)
        return original(self, images, labels, **kwargs)

    monkeypatch.setattr(GITAugment, "forward", recording_forward)
    results = example.main(["--dataset", "digits-dil-lt", "--method", "git", "--generator", str(tmp_path / "gen"),
                            "--threshold", "100", "--loss", "ldam", *QUICK])
    # Off in epoch 0 (instance sampling), on from --drs-epoch 1 (delayed GIT).
    assert calls and not calls[0] and calls[-1]
    assert results["method"] == "git" and 0 <= results["test_balanced_accuracy"] <= 1


def test_git_needs_a_generator():
    with pytest.raises(SystemExit):
        load_example().parse_args(["--method", "git"])
