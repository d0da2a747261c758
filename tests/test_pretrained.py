"""The pretrained generators that ship with gitaug: listed, loaded offline by name, never mixed up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import gitaug.pretrained as pretrained
from gitaug import GITAugment, list_pretrained
from gitaug.pretrained import pretrained_info, pretrained_path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["digits-bg-lt", "digits-dil-lt", "digits-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt", "fmnist-rot-lt"]


def test_the_digits_and_fashion_mnist_generators_are_listed():
    assert list_pretrained() == NAMES
    for name in NAMES:
        info = pretrained_info(name)
        assert info.dataset == name and info.description
        assert pretrained_path(name).is_dir()


@pytest.mark.parametrize("name", NAMES)
def test_a_name_loads_the_packaged_folder_offline(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    aug = GITAugment.from_pretrained(name)
    assert aug.metadata["pretrained_name"] == name
    assert aug.metadata["report"]["status"] == "ok"
    assert aug.generator.config.image_size == 28 and aug.generator.config.in_channels == 1
    # Stored in float16, loaded into float32 parameters.
    with safe_open(pretrained_path(name) / "model.safetensors", "pt") as weights:
        assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.float16}
    assert {p.dtype for p in aug.generator.parameters()} == {torch.float32}
    images = torch.rand(4, 1, 28, 28)
    out = aug(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and not torch.equal(out, images)
    card = (pretrained_path(name) / "README.md").read_text()
    assert f'from_pretrained("{name}"' in card
    # Every generator carries the draw its fit recommended, and loading by name uses it.
    draw = aug.metadata.get("draw")
    assert draw is not None and aug.residual is draw["residual"]
    assert aug.appearance_scale == draw.get("appearance_scale", 1.0) and aug.styles == draw.get("styles", "prior")


def test_a_local_folder_of_the_same_name_wins_with_a_warning(tmp_path, monkeypatch):
    from helpers import tiny_generator

    monkeypatch.chdir(tmp_path)
    GITAugment(tiny_generator()).save_pretrained("digits-rot-lt")
    with pytest.warns(UserWarning, match="loading the local folder 'digits-rot-lt', not the pretrained"):
        aug = GITAugment.from_pretrained("digits-rot-lt")
    assert aug.generator.config.image_size == 16  # the local one, not the packaged 28x28 one


def test_other_names_are_not_resolved_to_a_pretrained_generator(monkeypatch, tmp_path):
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE when it is imported, which an earlier test may have done: with the
    # variable alone, this test once spent 70 s of a full run on Hub requests.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    for name in ("digits-rot", "gitaug/digits-rot-lt", "Digits-Rot-LT"):
        assert pretrained.resolve_pretrained(name) == name
        with pytest.raises(FileNotFoundError, match=name):
            GITAugment.from_pretrained(name)


def test_a_registered_name_without_its_files_is_an_error_not_a_hub_download(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "_HERE", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert list_pretrained() == []
    with pytest.raises(FileNotFoundError, match="registered but its files are missing"):
        GITAugment.from_pretrained("digits-bg-lt")
    with pytest.raises(KeyError, match="not a pretrained generator"):
        pretrained_info("digits-xyz")


def test_torch_hub_loads_them_from_a_local_checkout():
    for name in NAMES:
        aug = torch.hub.load(str(ROOT), name.replace("-", "_"), source="local", trust_repo=True)
        assert isinstance(aug, GITAugment) and aug.metadata["pretrained_name"] == name
    aug = torch.hub.load(str(ROOT), "pretrained", "digits-rot-lt", source="local", trust_repo=True, enabled=False)
    assert aug.metadata["pretrained_name"] == "digits-rot-lt" and not aug.enabled
    with pytest.raises(ValueError, match="name must be one of"):
        torch.hub.load(str(ROOT), "pretrained", "digits-xyz", source="local", trust_repo=True)


@pytest.mark.slow
def test_the_wheel_ships_the_pretrained_files_and_the_gitaug_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    import zipfile

    (wheel,) = tmp_path.glob("gitaug-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in NAMES:
        for file in ("config.json", "model.safetensors", "README.md", "samples.png"):
            assert f"gitaug/pretrained/{name}/{file}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "gitaug = gitaug.cli:main" in text and "gitaug-fit = gitaug.fit.cli:main" in text
