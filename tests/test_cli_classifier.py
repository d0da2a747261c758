"""``gitaug eval --classifier``: a classifier's eKLD under a generator's draws, and the checkpoint it reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gitaug import GITAugment
from gitaug.cli import main
from gitaug.evaluation.invariance import ekld, summarize_ekld
from gitaug.longtail.classifiers import ClassifierSpec, ScaledLogits, SmallResNet, load_classifier, save_classifier
from gitaug.longtail.heads import CosineHead, ETFHead, HAFrameHead


COUNTS = [30, 8, 2]  # the classifier's training counts: class 2 is the tail



def small_resnet(in_channels: int = 1, num_classes: int = 3, seed: int = 0) -> SmallResNet:
    torch.manual_seed(seed)
    model = SmallResNet(in_channels, num_classes, width=4)
    # Running statistics away from (0, 1), so that eval-mode batch norm is part of what a file must restore.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture
def classifier(tmp_path) -> Path:
    return save_classifier(small_resnet(), tmp_path / "clf.safetensors", logit_scale=3.0,
                           class_names=["zero", "one", "two"], class_counts=COUNTS)


# --------------------------------------------------------------------------- the checkpoint


@pytest.mark.parametrize("head", ["linear", "cosine", "etf", "haframe"])
def test_a_saved_classifier_predicts_the_same_after_loading(head, tmp_path):
    model = small_resnet(num_classes=4)
    if head == "cosine":
        model.head = CosineHead(model.feature_dim, 4)
    elif head == "etf":
        model.head = ETFHead(model.feature_dim, 4, seed=3)
    elif head == "haframe":
        distance = torch.tensor([[0, 2, 4, 4], [2, 0, 4, 4], [4, 4, 0, 2], [4, 4, 2, 0]], dtype=torch.float32)
        model.head = HAFrameHead(distance, model.feature_dim, seed=3)
    path = save_classifier(model, tmp_path / "model.safetensors", logit_scale=30.0, class_counts=torch.tensor([9, 5, 2, 1]))
    loaded, spec = load_classifier(path)
    assert spec == ClassifierSpec(in_channels=1, num_classes=4, width=4, head=head, logit_scale=30.0,
                                  class_names=None, class_counts=[9, 5, 2, 1])
    images = torch.rand(5, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert not loaded.training
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


def test_saving_refuses_what_it_cannot_rebuild(tmp_path):
    with pytest.raises(ValueError, match=r"path must end in \.safetensors, got '.*clf\.pt'"):
        save_classifier(small_resnet(), tmp_path / "clf.pt")
    with pytest.raises(TypeError, match="model must be a SmallResNet, got Sequential"):
        save_classifier(torch.nn.Sequential(torch.nn.Flatten()), tmp_path / "clf.safetensors")
    with pytest.raises(ValueError, match=r"class_counts: must be a list of 3"):
        save_classifier(small_resnet(), tmp_path / "clf.safetensors", class_counts=[1, 2])
    with pytest.raises(ValueError, match=r"logit_scale=0.0"):
        save_classifier(small_resnet(), tmp_path / "clf.safetensors", logit_scale=0.0)
    assert not list(tmp_path.iterdir())


def test_loading_names_the_file_and_what_is_wrong(tmp_path, generator_folder):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_classifier(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match=r"garbage\.safetensors.*cannot be read as a safetensors file"):
        load_classifier(garbage)
    with pytest.raises(ValueError, match=r"model\.safetensors.*not a gitaug classifier"):
        load_classifier(generator_folder / "model.safetensors")
    # A spec asking for an absurd network is refused before anything is built.
    weights = {name: t.contiguous() for name, t in small_resnet().state_dict().items()}
    spec = {"in_channels": 1, "num_classes": 3, "width": 10**9, "head": "linear", "logit_scale": 1.0,
            "class_names": None, "class_counts": None}
    huge = tmp_path / "huge.safetensors"
    save_file(weights, str(huge), metadata={"format": "gitaug-classifier", "version": "1", "spec": json.dumps(spec)})
    with pytest.raises(ValueError, match=r"huge\.safetensors.*width=1000000000"):
        load_classifier(huge)
    # Weights that do not fit the spec.
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(weights, str(mismatched), metadata={"format": "gitaug-classifier", "version": "1",
                                                   "spec": json.dumps({**spec, "width": 8})})
    with pytest.raises(ValueError, match=r"mismatched\.safetensors.*do not fit"):
        load_classifier(mismatched)


# --------------------------------------------------------------------------- gitaug eval --classifier


def test_eval_reports_the_classifiers_ekld_as_the_invariance_function_computes_it(
        generator_folder, npz, classifier, tmp_path, capsys):
    out = tmp_path / "report.json"
    status = main(["eval", "--generator", str(generator_folder), "--data", str(npz), "--classifier", str(classifier),
                   "--ekld-inputs", "5", "--ekld-draws", "3", "--json", str(out)])
    assert status in (0, 1)  # the generator's verdict decides the status, not the classifier
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())["classifier_ekld"]

    # The same measurement, made directly.
    data = np.load(npz)
    images = torch.from_numpy(data["images"]).unsqueeze(1)
    labels = torch.from_numpy(data["labels"]).long()
    model, spec = load_classifier(classifier)
    redraw = GITAugment(GITAugment.from_pretrained(generator_folder).generator)
    direct = ekld(ScaledLogits(model, spec.logit_scale), (images, labels),
                  lambda batch, generator=None: redraw(batch, generator=generator),
                  n_per_class=5, m_per_input=3, seed=0, class_sizes=COUNTS)
    summary = summarize_ekld(direct)

    assert saved["per_class"] == pytest.approx(direct.per_class.tolist(), rel=1e-5)
    assert all(value > 0 for value in saved["per_class"])  # the draws do move this classifier's predictions
    for name in ("spearman", "tail_mean", "head_mean", "mean"):
        assert saved[name] == pytest.approx(summary[name], rel=1e-5), name
    assert saved["class_sizes"] == COUNTS and saved["class_sizes_from"] == "the classifier's training counts"
    assert saved["inputs_per_class"] == [5, 5, 3] and saved["draws_per_input"] == 3
    assert saved["logit_scale"] == 3.0 and saved["classifier"] == str(classifier)
    # The text names the figures; the tail (class "2" of the npz, 2 training images) is listed first.
    assert "classifier eKLD under the generator's draws" in printed
    assert f"Spearman(class size, eKLD) {summary['spearman']:.4g}" in printed
    assert f"tail (1 smallest classes) {summary['tail_mean']:.4g}" in printed
    table = [line.split() for line in printed.splitlines()[-4:]]
    assert table[0] == ["class", "size", "eKLD"]
    assert table[1] == ["2", "2", f"{direct.per_class[2].item():.4g}"]


def test_eval_without_class_counts_in_the_classifier_uses_the_data_counts(generator_folder, npz, tmp_path):
    path = save_classifier(small_resnet(), tmp_path / "plain.safetensors")  # no counts, no names
    out = tmp_path / "report.json"
    main(["eval", "--generator", str(generator_folder), "--data", str(npz), "--classifier", str(path),
          "--ekld-inputs", "2", "--ekld-draws", "2", "--json", str(out)])
    saved = json.loads(out.read_text())["classifier_ekld"]
    # The npz's classes are "0", "1", "2", not the generator's "zero", "one", "two": the data's own counts.
    assert saved["class_sizes"] == [12, 6, 3] and saved["class_sizes_from"] == "the counts in --data"
    assert saved["logit_scale"] == 1.0


def test_eval_classifier_bad_inputs_are_named(generator_folder, npz, classifier, tmp_path, capsys):
    def error(*extra: str) -> str:
        argv = ["eval", "--generator", str(generator_folder), "--data", str(npz), *extra]
        assert main(argv) == 2, argv
        return capsys.readouterr().err

    missing = tmp_path / "nowhere.safetensors"
    message = error("--classifier", str(missing))
    assert message.startswith("gitaug eval: error: --classifier") and "nowhere.safetensors" in message
    assert "not a gitaug classifier" in error("--classifier", str(generator_folder / "model.safetensors"))

    five = save_classifier(small_resnet(num_classes=5), tmp_path / "five.safetensors")
    message = error("--classifier", str(five))
    assert "five.safetensors" in message and "predicts 5 classes" in message and "has 3" in message

    rgb = save_classifier(small_resnet(in_channels=3), tmp_path / "rgb.safetensors")
    message = error("--classifier", str(rgb))
    assert "rgb.safetensors" in message and "3-channel" in message and "1-channel" in message

    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, images=np.zeros((4, 16, 16), dtype=np.uint8))
    argv = ["eval", "--generator", str(generator_folder), "--data", str(unlabelled), "--classifier", str(classifier)]
    assert main(argv) == 2
    assert "needs labelled --data" in capsys.readouterr().err

    assert "--ekld-draws must be a positive integer, got 0" in error("--classifier", str(classifier), "--ekld-draws", "0")
    assert "--ekld-inputs must be a positive integer, got -1" in error("--classifier", str(classifier),
                                                                        "--ekld-inputs", "-1")
