"""The training example runs as a user would run it, with and without GIT."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from gitaug import GITAugment, MUNITConfig, MUNITGenerator
from gitaug.bank import TailBank

pytest.importorskip("sklearn")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_longtail.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_longtail", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QUICK = ["--epochs", "2", "--drs-epoch", "1", "--ekld-inputs", "3", "--ekld-draws", "2", "--width", "4"]


def test_erm_reports_accuracy_and_ekld(tmp_path):
    from gitaug.datasets import load
    from gitaug.longtail.classifiers import load_classifier

    out, saved = tmp_path / "erm.json", tmp_path / "erm.safetensors"
    example = load_example()
    results = example.main(["--dataset", "digits-bg-lt", "--method", "erm", "--out", str(out),
                            "--save-classifier", str(saved), *QUICK])
    assert json.loads(out.read_text())["test_balanced_accuracy"] == results["test_balanced_accuracy"]
    assert 0 <= results["test_balanced_accuracy"] <= 1
    assert len(results["test_per_class_accuracy"]) == 10
    assert len(results["ekld_per_class"]) == 10 and all(v >= 0 for v in results["ekld_per_class"])
    assert set(results["ekld_summary"]) >= {"spearman", "tail_mean", "head_mean"}
    # The saved classifier is the trained one: it scores the test split exactly as the run did.
    model, spec = load_classifier(saved)
    assert spec.class_counts == results["class_counts"] and spec.logit_scale == 1.0 and len(spec.class_names) == 10
    test = load("digits-bg-lt", split="test", seed=0)
    accuracy = example.per_class_accuracy(model, test, torch.device("cpu"), 10)
    assert accuracy.tolist() == pytest.approx(results["test_per_class_accuracy"])


def test_save_classifier_needs_a_safetensors_name():
    with pytest.raises(SystemExit):
        load_example().parse_args(["--save-classifier", "model.pt"])


@pytest.mark.parametrize("draws", ["bank", "live"])
def test_git_loads_a_generator_and_switches_on_with_resampling(tmp_path, monkeypatch, draws):
    torch.manual_seed(0)
    generator = MUNITGenerator(MUNITConfig(in_channels=1, image_size=28, dim=4, mlp_dim=8, n_res=1))
    GITAugment(generator).save_pretrained(tmp_path / "gen")
    example = load_example()
    calls, generated = [], []
    # The default calls GITAugment per batch (live draws); --bank-draws 8 serves GIT from a TailBank of 8 per tail image.
    patched = TailBank if draws == "bank" else GITAugment
    original, original_generate = patched.__call__, GITAugment._generate

    def recording_call(self, images, labels=None, *args, **kwargs):
        calls.append(self.enabled)
        return original(self, images, labels, *args, **kwargs)

    def recording_generate(self, selected, *args, **kwargs):
        generated.append(selected.shape[0])
        return original_generate(self, selected, *args, **kwargs)

    monkeypatch.setattr(patched, "__call__", recording_call)
    monkeypatch.setattr(GITAugment, "_generate", recording_generate)
    flags = ["--bank-draws", "8"] if draws == "bank" else []
    results = example.main(["--dataset", "digits-dil-lt", "--method", "git", "--generator", str(tmp_path / "gen"),
                            "--threshold", "100", "--loss", "ldam", *flags, *QUICK])
    # Off in epoch 0 (instance sampling), on from --drs-epoch 1 (delayed GIT).
    assert calls and not calls[0] and calls[-1]
    assert results["method"] == "git" and 0 <= results["test_balanced_accuracy"] <= 1
    assert results["git_draws"] == draws
    tail_images = sum(n for n in results["class_counts"] if n < 100)
    if draws == "bank":
        assert results["bank_draws"] == 8 and results["bank_megabytes"] == tail_images * 8 * 28 * 28 * 4 / 1e6
        # The generator ran only to draw the bank: 8 versions of every tail image, once.
        assert sum(generated) == 8 * tail_images
    else:
        assert results["bank_draws"] is None and results["bank_megabytes"] is None
        assert len(generated) > 1  # a generator pass in every batch with a selected sample


def test_git_needs_a_generator():
    with pytest.raises(SystemExit):
        load_example().parse_args(["--method", "git"])


def test_oracle_redraws_the_nuisance_on_the_base_digit():
    # On digits-bg-lt a second background draw on an already filled image would change nothing;
    # the oracle draws on the plain base digit, so selected samples get a new background level.
    from gitaug import ClassThresholdSampler
    from gitaug.datasets import load, nuisance_of

    example = load_example()
    train = load("digits-bg-lt", split="train", seed=0)
    plain = load("digits-lt", split="train", seed=0)
    indices = torch.arange(0, len(train), 7)
    images = train.float_images()[indices]
    labels = train.targets[indices]
    oracle = example.OracleAugment(nuisance_of("digits-bg-lt"), ClassThresholdSampler(train.class_counts, p=1.0), plain.float_images())
    assert oracle(images, labels, indices)[0] is images  # off until enabled
    oracle.enabled = True
    out, out_labels = oracle(images, labels, indices, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out_labels, labels)
    changed = (out - images).abs().flatten(1).amax(1) > 0
    assert changed.float().mean() > 0.9
    # the digit is the base digit's: where the base digit has ink, the output has the same pixels
    ink = plain.float_images()[indices] > 0
    assert torch.equal(out[ink], plain.float_images()[indices][ink])


def test_ldam_gets_a_cosine_head_unless_another_is_named():
    example = load_example()
    assert example.parse_args(["--loss", "ldam"]).head == "cosine"
    assert example.parse_args(["--loss", "ce"]).head == "linear"
    assert example.parse_args(["--loss", "ldam", "--head", "etf"]).head == "etf"


def test_keep_class_undoes_the_draws_the_reference_sees_change_class():
    example = load_example()

    class Brighten:  # a stand-in for GIT: every selected image a little brighter
        enabled = True

        def __call__(self, images, labels, generator=None):
            return images + 0.1, labels

    class Threshold(torch.nn.Module):  # class 1 when the mean pixel is above 0.5
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            m = x.flatten(1).mean(1)
            return torch.stack([0.5 - m, m - 0.5], 1) * self.scale

    images = torch.tensor([0.1, 0.45, 0.3, 0.48]).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    labels = torch.tensor([0, 0, 1, 1])
    keep = example.KeepClass(Brighten(), Threshold(), num_classes=3)
    out, out_labels = keep(images, labels)
    assert out_labels is labels
    # 0.1 -> 0.2 and 0.3 -> 0.4 stay on their side of 0.5 and are kept; 0.45 and 0.48 cross it and keep their input.
    assert torch.allclose(out.flatten(1).mean(1), torch.tensor([0.2, 0.45, 0.4, 0.48]))
    assert keep.drawn.tolist() == [2, 2, 0] and keep.undone.tolist() == [1, 1, 0]
    keep.enabled = False
    assert keep.augment.enabled is False


def test_keep_class_needs_live_git_draws():
    with pytest.raises(SystemExit):
        load_example().parse_args(["--method", "drs", "--keep-class", "ref.safetensors"])
    with pytest.raises(SystemExit):
        load_example().parse_args(["--method", "git", "--generator", "g", "--bank-draws", "8", "--keep-class", "r.safetensors"])
