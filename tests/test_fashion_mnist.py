"""Fashion-MNIST: the idx reader, where the files are found, and the Fashion-MNIST-LT built-ins.

The unit tests write tiny idx files themselves; the tests marked ``real`` use the standard files
wherever :func:`find_fashion_mnist` finds them and skip, saying how to get them, when absent.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gitaug import datasets
from gitaug.datasets import (
    fashion_mnist,
    find_fashion_mnist,
    load,
    load_fashion_mnist,
    load_fashion_mnist_lt,
    read_idx,
)

NAMES = ("fmnist-lt", "fmnist-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt")
STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of ``array``, written here from the format's definition."""
    codes = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B,
             np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)
    return path


def tiny_split(count_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct 28x28 images on a black background (so the background nuisance finds it), labels 0..9."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), count_per_class)
    rng.shuffle(labels)
    images = np.zeros((labels.size, 28, 28), dtype=np.uint8)
    images[:, 6:22, 8:20] = rng.integers(1, 256, size=(labels.size, 16, 12), dtype=np.uint8)
    return images, labels


def write_tiny_set(folder: Path, gz: bool = True, train_per_class: int = 30, test_per_class: int = 4) -> dict:
    arrays = {"train": tiny_split(train_per_class, 0), "test": tiny_split(test_per_class, 1)}
    suffix = ".gz" if gz else ""
    for split, (images, labels) in arrays.items():
        write_idx(folder / (STEMS[split][0] + suffix), images)
        write_idx(folder / (STEMS[split][1] + suffix), labels)
    return arrays


@pytest.fixture
def tiny_root(tmp_path, monkeypatch):
    """A folder of tiny idx files; the default locations are pointed at empty places."""
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "no-debian-package")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "fashion"
    return root, write_tiny_set(root)


# ----------------------------------------------------------------------------- the idx reader


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
def test_read_idx_returns_the_stored_array(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == "uint8":
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) * 7
    path = write_idx(tmp_path / ("x.idx" + (".gz" if gz else "")), array)
    read = read_idx(path)
    assert read.shape == (2, 3, 5) and read.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 3) + b"abc", "not an idx file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc", "not an idx file"),
        (b"\x00\x00\x08\x00", "not an idx file"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 3), "announces 3 dimensions"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"abc", "holds 3"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"abc", "holds 3"),
    ],
)
def test_read_idx_rejects_bad_files_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_read_idx_reports_a_missing_or_corrupt_gz(tmp_path):
    with pytest.raises(FileNotFoundError, match="idx file not found"):
        read_idx(tmp_path / "missing.gz")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8)))[:40])
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(broken)


# ----------------------------------------------------------------------------- finding the files


def test_search_order_root_then_environment_then_torchvision_then_debian(tmp_path, monkeypatch):
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    given, env, debian = tmp_path / "given", tmp_path / "env", tmp_path / "debian"
    for folder in (given, env, debian):
        write_tiny_set(folder, train_per_class=1, test_per_class=1)
    write_tiny_set(tmp_path / "data" / "FashionMNIST" / "raw", gz=False, train_per_class=1, test_per_class=1)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", debian)

    assert find_fashion_mnist() == Path("data") / "FashionMNIST" / "raw"  # torchvision's layout under ./data
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(env))
    assert find_fashion_mnist() == env
    assert find_fashion_mnist(given) == given
    monkeypatch.delenv(fashion_mnist.ENV_VAR)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "data" / "FashionMNIST" / "raw" / name).unlink()
    assert find_fashion_mnist() == debian


def test_a_torchvision_root_is_accepted_and_plain_files_are_preferred(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    arrays = write_tiny_set(raw, gz=True, train_per_class=2, test_per_class=1)
    assert find_fashion_mnist(tmp_path) == raw
    # torchvision keeps the .gz and the extracted file side by side: both are read the same.
    write_tiny_set(raw, gz=False, train_per_class=2, test_per_class=1)
    test = load_fashion_mnist(tmp_path, split="test")
    np.testing.assert_array_equal(test.images[:, 0].numpy(), arrays["test"][0])


def test_missing_files_say_where_was_looked_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        find_fashion_mnist()
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "download=True" in message
    assert fashion_mnist.ENV_VAR in message and "nowhere" in message

    # A folder named explicitly that lacks the files is an error, not a reason to look elsewhere.
    write_tiny_set(tmp_path / "nowhere", train_per_class=1, test_per_class=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"root='.*empty'.*apt-get"):
        find_fashion_mnist(empty)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(empty))
    with pytest.raises(FileNotFoundError, match=fashion_mnist.ENV_VAR + r"='.*empty'"):
        load("fmnist-lt", split="test")


# ----------------------------------------------------------------------------- the official splits


@pytest.mark.parametrize("gz", [True, False])
def test_load_fashion_mnist_returns_the_files_images_and_labels(tmp_path, gz):
    arrays = write_tiny_set(tmp_path, gz=gz, train_per_class=3, test_per_class=2)
    for split in ("train", "test"):
        ds = load_fashion_mnist(tmp_path, split=split)
        assert ds.images.shape == (arrays[split][0].shape[0], 1, 28, 28) and ds.images.dtype == torch.uint8
        np.testing.assert_array_equal(ds.images[:, 0].numpy(), arrays[split][0])
        np.testing.assert_array_equal(ds.targets.numpy(), arrays[split][1])
        assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    with pytest.raises(ValueError, match="split must be one of"):
        load_fashion_mnist(tmp_path, split="val")


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "holds 3 images but .* 4 labels"),
        (np.zeros((3, 32, 32), np.uint8), np.zeros(3, np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((3, 28, 28), np.int32), np.zeros(3, np.uint8), "expected uint8 images"),
        (np.zeros((3, 28, 28), np.uint8), np.array([0, 1, 10], np.uint8), "labels must lie in"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "expected uint8 labels of shape"),
    ],
)
def test_inconsistent_files_are_rejected(tmp_path, images, labels, message):
    write_tiny_set(tmp_path, train_per_class=1, test_per_class=1)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=message):
        load_fashion_mnist(tmp_path, split="test")


# ----------------------------------------------------------------------------- the long-tailed built-ins


def test_builtins_are_registered_with_their_nuisance_and_plain_version():
    assert set(NAMES) <= set(datasets.available())
    assert datasets.nuisance_of("fmnist-lt") is None
    assert datasets.nuisance_of("fmnist-rot-lt") == datasets.get_nuisance("rot")
    assert datasets.nuisance_of("fmnist-bg-lt") == datasets.get_nuisance("bg")
    assert datasets.nuisance_of("fmnist-dil-lt") == datasets.get_nuisance("dil")
    assert {datasets.plain_version(name) for name in NAMES} == {"fmnist-lt"}


def test_tiny_lt_splits_follow_the_profile_and_never_share_base_images(tiny_root):
    root, arrays = tiny_root
    kwargs = {"root": root, "max_count": 20, "imbalance": 10, "val_per_class": 3}
    train = load("fmnist-dil-lt", split="train", seed=3, **kwargs)
    val = load("fmnist-dil-lt", split="val", seed=3, **kwargs)
    test = load("fmnist-dil-lt", split="test", seed=3, **kwargs)
    expected = datasets.exponential_profile(10, 20, 10)
    assert sorted(train.class_counts.tolist(), reverse=True) == expected
    assert val.class_counts.tolist() == [3] * 10 and test.class_counts.tolist() == [4] * 10
    assert not set(train.base_indices.tolist()) & set(val.base_indices.tolist())
    # The test split is the official one, every image once.
    assert sorted(test.base_indices.tolist()) == list(range(40))
    train_labels = arrays["train"][1]
    assert torch.equal(train.targets, torch.as_tensor(train_labels[train.base_indices.numpy()]).long())


@pytest.mark.parametrize("name, nuisance", [("fmnist-rot-lt", "rot"), ("fmnist-bg-lt", "bg"), ("fmnist-dil-lt", "dil")])
def test_nuisance_sets_share_base_images_with_the_plain_set_and_transform_them(tiny_root, name, nuisance):
    root, _ = tiny_root
    kwargs = {"root": root, "max_count": 20, "imbalance": 10, "val_per_class": 3}
    for split in ("train", "val", "test"):
        plain = load("fmnist-lt", split=split, seed=1, **kwargs)
        moved = load(name, split=split, seed=1, **kwargs)
        assert torch.equal(plain.base_indices, moved.base_indices) and torch.equal(plain.targets, moved.targets)
        changed = (plain.images != moved.images).flatten(1).any(1).float().mean().item()
        # Erosion by 1 leaves an image as it is (probability 0.4 * 0.5), so does background level 0
        # (probability 0.01); a rotation moves every image.
        assert changed > {"dil": 0.5, "bg": 0.9, "rot": 0.99}[nuisance], (split, changed)
    # Each copy of a reused image gets its own draw.
    train = load(name, split="train", seed=1, **kwargs)
    smallest = int(train.class_counts.argmax())
    rows = train.images[train.targets == smallest]
    assert torch.unique(rows.flatten(1), dim=0).shape[0] > 0.9 * rows.shape[0]


def test_splits_are_reproducible_and_the_seed_changes_the_class_order(tiny_root):
    root, _ = tiny_root
    kwargs = {"root": root, "max_count": 20, "imbalance": 10, "val_per_class": 3}
    a = load("fmnist-rot-lt", split="train", seed=0, **kwargs)
    b = load("fmnist-rot-lt", split="train", seed=0, **kwargs)
    assert torch.equal(a.images, b.images) and torch.equal(a.base_indices, b.base_indices)
    orders = {tuple(load("fmnist-lt", split="train", seed=s, **kwargs).class_counts.tolist()) for s in range(4)}
    assert len(orders) > 1
    test = load("fmnist-rot-lt", split="test", seed=0, draws=3, **kwargs)
    assert test.class_counts.tolist() == [12] * 10


def test_lt_arguments_are_checked(tiny_root):
    root, _ = tiny_root
    with pytest.raises(ValueError, match="split must be one of"):
        load_fashion_mnist_lt(None, split="dev", root=root)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        load_fashion_mnist_lt(None, seed=-1, root=root)
    with pytest.raises(ValueError, match="draws applies to the val and test splits"):
        load_fashion_mnist_lt("rot", split="train", draws=2, root=root)
    with pytest.raises(ValueError, match="unknown nuisance 'blur'"):
        load_fashion_mnist_lt("blur", root=root)
    with pytest.raises(ValueError, match="val_per_class=30 leaves no training image"):
        load_fashion_mnist_lt(None, split="val", val_per_class=30, root=root)


def test_gitaug_fit_accepts_a_fashion_mnist_name(tiny_root, monkeypatch):
    from gitaug.fit.cli import main

    root = tiny_root[0].parent / "bigger"
    write_tiny_set(root, train_per_class=105, test_per_class=1)  # the default split holds out 100 per class
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(root))  # the CLI has no root flag: the variable finds the files
    out = root.parent / "run"
    argv = ["--dataset", "fmnist-rot-lt", "--out", str(out), "--steps", "2", "--batch-size", "4", "--dim", "8",
            "--mlp-dim", "16", "--n-res", "1", "--disc-dim", "8", "--disc-layers", "2", "--disc-scales", "1",
            "--sample-every", "0", "--no-progress", "--device", "cpu"]
    try:
        assert main(argv) in (0, None)
    finally:
        import logging

        logging.captureWarnings(False)
    from gitaug import GITAugment

    aug = GITAugment.from_pretrained(out)
    assert aug(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


# ----------------------------------------------------------------------------- the real files


def real_folder() -> Path:
    try:
        return find_fashion_mnist()
    except FileNotFoundError as error:
        pytest.skip(f"the Fashion-MNIST idx files are not installed: {str(error).split('. ', 1)[-1]}")


def test_real_official_splits():
    folder = real_folder()
    train, test = load_fashion_mnist(folder, "train"), load_fashion_mnist(folder, "test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.class_counts.tolist() == [6000] * 10 and test.class_counts.tolist() == [1000] * 10


def test_real_lt_counts_match_the_readme():
    real_folder()
    train = load("fmnist-rot-lt", split="train", seed=0)
    val = load("fmnist-rot-lt", split="val", seed=0)
    test = load("fmnist-rot-lt", split="test", seed=0)
    assert sorted(train.class_counts.tolist(), reverse=True) == [2000, 1110, 616, 341, 189, 105, 58, 32, 18, 10]
    assert len(train) == 4479 and len(val) == 1000 and len(test) == 10_000
    assert test.class_counts.tolist() == [1000] * 10
    assert not set(train.base_indices.tolist()) & set(val.base_indices.tolist())
    assert len(set(train.base_indices.tolist())) == len(train)  # 5,900 per class: no image is reused


def test_real_turned_clothing_gets_the_full_rotation_range_and_upright_clothing_almost_none():
    # Turned clothing fills the frame, so the square's clipped corners would give 45 degree turns
    # away (power 0.45 when the detector saw them); the test judges rotation inside the disc.
    from gitaug.fit.data import to_model_range
    from gitaug.fit.nuisance_probe import probe_nuisance

    real_folder()
    turned = probe_nuisance(to_model_range(load("fmnist-rot-lt", split="train", seed=0).images), families=("rotation",), seed=0)
    upright = probe_nuisance(to_model_range(load("fmnist-lt", split="train", seed=0).images), families=("rotation",), seed=0)
    assert math.degrees(turned.ranges["rotation"]) > 150, turned.power
    assert math.degrees(upright.ranges["rotation"]) < 10, upright.power
