"""Long-tailed profiles, nuisances, the built-in digits and the file loaders."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gitaug import datasets
from gitaug.datasets import (
    NUISANCES,
    ImageDataset,
    RandomBackground,
    RandomContrast,
    RandomDilationErosion,
    RandomRotation,
    RandomScale,
    RandomShift,
    RandomFlip,
    exponential_profile,
    get_nuisance,
    grey_dilation,
    grey_erosion,
    load,
    load_cifar,
    load_cifar_lt,
    load_image_folder,
    subsample_to_profile,
    zipf_profile,
)

pytest.importorskip("sklearn")

DIGITS_TRAIN_COUNTS = [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]


# ----------------------------------------------------------------------------- profiles


def test_exponential_profile_counts():
    assert exponential_profile(10, 500, 100) == DIGITS_TRAIN_COUNTS
    assert exponential_profile(10, 500, 100, rounding="nearest") == [500, 300, 180, 108, 65, 39, 23, 14, 8, 5]
    # The standard CIFAR-LT sizes at imbalance 100.
    cifar10 = exponential_profile(10, 5000, 100)
    assert cifar10 == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(cifar10) == 12406
    assert sum(exponential_profile(100, 500, 100)) == 10847
    assert exponential_profile(1, 7, 100) == [7]
    assert exponential_profile(4, 9, 1) == [9, 9, 9, 9]


def test_zipf_profile_counts():
    counts = zipf_profile(49, alpha=2.0, max_count=4800, min_count=5)
    assert counts[:6] == [4800, 1200, 533, 300, 192, 133]
    assert counts[-1] == 5 and min(counts) == 5
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert zipf_profile(3, alpha=0.0, max_count=10, min_count=1) == [10, 10, 10]
    assert zipf_profile(4, alpha=2.0, max_count=100, min_count=20) == [100, 25, 20, 20]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: exponential_profile(0, 10, 10), "num_classes"),
        (lambda: exponential_profile(3, 0, 10), "max_count"),
        (lambda: exponential_profile(3, 10, 0.5), "imbalance"),
        (lambda: exponential_profile(3, 10, float("nan")), "imbalance"),
        (lambda: exponential_profile(3, 10, 10, rounding="up"), "rounding"),
        (lambda: zipf_profile(3, alpha=-1.0), "alpha"),
        (lambda: zipf_profile(3, max_count=10, min_count=11), "min_count"),
        (lambda: zipf_profile(3, max_count=10, min_count=0), "min_count"),
        (lambda: zipf_profile(2.5), "num_classes"),
    ],
)
def test_profile_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- subsampling


def test_subsample_hits_profile_exactly_with_seeded_class_order():
    labels = torch.arange(5).repeat_interleave(40)
    counts = [40, 20, 10, 5, 2]
    orders = set()
    for seed in range(6):
        idx = subsample_to_profile(labels, counts, seed=seed)
        got = torch.bincount(labels[idx], minlength=5)
        assert sorted(got.tolist(), reverse=True) == counts
        assert idx.unique().numel() == idx.numel()  # no image twice without reuse
        orders.add(tuple(got.tolist()))
    assert len(orders) > 1  # the seed moves the counts between classes
    again = subsample_to_profile(labels, counts, seed=3)
    assert torch.equal(again, subsample_to_profile(labels, counts, seed=3))
    fixed = subsample_to_profile(labels, counts, seed=0, shuffle_class_order=False)
    assert torch.bincount(labels[fixed]).tolist() == counts


def test_subsample_reuse_spreads_copies_evenly():
    labels = torch.tensor([0] * 4 + [1] * 3)
    idx = subsample_to_profile(labels, [10, 3], seed=0, shuffle_class_order=False, allow_reuse=True)
    uses = torch.bincount(idx, minlength=7)
    assert torch.bincount(labels[idx]).tolist() == [10, 3]
    assert sorted(uses[:4].tolist()) == [2, 2, 3, 3]  # 10 copies over 4 images
    assert uses[4:].tolist() == [1, 1, 1]


def test_subsample_errors():
    labels = torch.tensor([0, 0, 1, 2])
    with pytest.raises(ValueError, match="labels must lie in \\[0, 2\\)"):
        subsample_to_profile(labels, [1, 1])
    with pytest.raises(ValueError, match="class 0 has 2 images but the profile asks for 3"):
        subsample_to_profile(labels, [3, 1, 1], shuffle_class_order=False)
    with pytest.raises(ValueError, match="class 1 has no images"):
        subsample_to_profile(torch.tensor([0, 0, 2]), [1, 1, 1], shuffle_class_order=False, allow_reuse=True)
    with pytest.raises(ValueError, match="non-negative"):
        subsample_to_profile(labels, [1, -1, 1])


# ----------------------------------------------------------------------------- nuisances


def _strokes(n: int = 6) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 8:20, 12:15] = 1.0
    images[:, :, 8:10, 9:19] = 0.6
    return images


@pytest.mark.parametrize("name", sorted(NUISANCES))
def test_nuisance_keeps_shape_range_and_reproduces(name):
    nuisance = get_nuisance(name)
    images = _strokes()
    out = nuisance(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, images)
    same = nuisance(images, generator=torch.Generator().manual_seed(0))
    other = nuisance(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, same)
    assert not torch.equal(out, other)
    # Every image gets its own draw: identical inputs come out different.
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1
    single = nuisance(images[0], generator=torch.Generator().manual_seed(0))
    assert single.shape == images[0].shape


def test_background_fills_only_zero_pixels_with_an_integer_level():
    images = _strokes(20)
    out = RandomBackground()(images, generator=torch.Generator().manual_seed(0))
    strokes = images > 0
    assert torch.equal(out[strokes], images[strokes])
    levels = []
    for before, after in zip(images, out):
        background = after[before == 0]
        assert background.unique().numel() == 1  # one level per image
        level = float(background[0]) * 255
        assert abs(level - round(level)) < 1e-4 and 0 <= round(level) < 100
        levels.append(round(level))
    assert len(set(levels)) > 5


def test_dilation_or_erosion_per_image_and_even_kernels_keep_size():
    images = _strokes(40)
    out = RandomDilationErosion()(images, generator=torch.Generator().manual_seed(0))
    grown = (out >= images).all(dim=(1, 2, 3)) & (out.sum(dim=(1, 2, 3)) > images.sum(dim=(1, 2, 3)))
    shrunk = (out <= images).all(dim=(1, 2, 3))
    assert bool((grown | shrunk).all())
    assert 10 < int(grown.sum()) < 38  # about 60 % dilated
    point = torch.zeros(1, 1, 5, 5)
    point[0, 0, 2, 2] = 1
    for size in (2, 3, 4):
        dilated = grey_dilation(point, size)
        assert dilated.shape == point.shape and int(dilated.sum()) == size * size
    assert torch.equal(grey_erosion(grey_dilation(point, 3), 3), point)
    block = torch.zeros(1, 1, 6, 6)
    block[0, 0, 1:5, 1:5] = 1
    assert int(grey_erosion(block, 2).sum()) == 9


def test_rotation_by_zero_is_identity_and_keeps_a_centred_digit():
    images = _strokes(4)
    unchanged = RandomRotation(degrees=0)(images, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(unchanged, images, atol=1e-5)
    rotated = RandomRotation()(images, generator=torch.Generator().manual_seed(0))
    ratio = rotated.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert bool(((ratio > 0.85) & (ratio < 1.15)).all())  # the strokes stay inside


def test_nuisance_argument_errors():
    with pytest.raises(ValueError, match="degrees"):
        RandomRotation(degrees=200)
    with pytest.raises(ValueError, match="interpolation"):
        RandomRotation(interpolation="nearest")
    with pytest.raises(ValueError, match="low=50, high=10"):
        RandomBackground(low=50, high=10)
    with pytest.raises(ValueError, match="p_dilate"):
        RandomDilationErosion(p_dilate=2.0)
    with pytest.raises(ValueError, match="dilation_sizes"):
        RandomDilationErosion(dilation_sizes=(3, 2))
    with pytest.raises(ValueError, match="'blur'"):
        get_nuisance("blur")
    with pytest.raises(ValueError, match="floating-point"):
        NUISANCES["rot"](torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        NUISANCES["bg"](torch.zeros(8, 8))


# ----------------------------------------------------------------------------- built-in digits


def test_digits_base_images_have_exact_black_background():
    images, labels = datasets.digits_base_images()
    assert images.shape == (1797, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).min() >= 174
    assert (images == 0).float().mean() > 0.5
    assert int(images.max()) >= 250
    assert (images[:, :, :4] == 0).all() and (images[:, :, :, -4:] == 0).all()  # the 4-pixel border


@pytest.mark.parametrize("name", ["digits-lt", "digits-rot-lt", "digits-bg-lt", "digits-dil-lt"])
def test_digits_splits_counts_disjoint_and_deterministic(name):
    start = time.perf_counter()
    train = load(name, split="train", seed=0)
    assert time.perf_counter() - start < 5.0
    val = load(name, split="val", seed=0)
    test = load(name, split="test", seed=0)
    nuisance = name != "digits-lt"
    assert sorted(train.class_counts.tolist(), reverse=True) == DIGITS_TRAIN_COUNTS
    assert val.class_counts.tolist() == [52 if nuisance else 26] * 10
    assert test.class_counts.tolist() == [208 if nuisance else 52] * 10
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    splits = [set(d.base_indices.tolist()) for d in (train, val, test)]
    assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])
    assert len(splits[1]) == 260 and len(splits[2]) == 520
    # the base labels agree with the items' labels
    _, base_labels = datasets.digits_base_images()
    assert torch.equal(base_labels[test.base_indices], test.targets)
    again = load(name, split="train", seed=0)
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)


def test_digits_reuse_gets_fresh_draws_and_seed_changes_order():
    train = load("digits-rot-lt", split="train", seed=0)
    largest = int(train.class_counts.argmax())
    members = torch.nonzero(train.targets == largest).flatten()
    bases = train.base_indices[members]
    assert bases.unique().numel() < members.numel()  # 500 items from about 100 base images
    repeated = int(bases[0])
    copies = train.images[members[bases == repeated]]
    assert copies.shape[0] >= 4 and not torch.equal(copies[0], copies[1])
    test = load("digits-rot-lt", split="test", seed=0)
    first = test.images[test.base_indices == test.base_indices[0]]
    assert first.shape[0] == 4 and len({tuple(x.flatten().tolist()) for x in first}) == 4
    orders = {tuple(load("digits-lt", split="train", seed=s).class_counts.tolist()) for s in range(3)}
    assert len(orders) == 3
    other = load("digits-rot-lt", split="test", seed=1)
    assert set(other.base_indices.tolist()) != set(test.base_indices.tolist())


def test_digits_background_and_draws_options():
    plain = load("digits-lt", split="test", seed=0)
    with_bg = load("digits-bg-lt", split="test", seed=0, draws=1)
    assert torch.equal(with_bg.base_indices, plain.base_indices)
    background = plain.images == 0
    assert bool((with_bg.images[background] < 100).all())
    assert bool((with_bg.images[~background] == plain.images[~background]).all())
    assert len(with_bg) == 520
    with pytest.raises(ValueError, match="draws"):
        load("digits-bg-lt", split="train", draws=2)
    with pytest.raises(ValueError, match="split"):
        load("digits-lt", split="dev")
    with pytest.raises(ValueError, match="seed"):
        load("digits-lt", seed=-1)


def test_scale_zooms_about_the_centre_within_its_factors():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    y = RandomScale(0.7, 1.3)(x, generator=torch.Generator().manual_seed(0))
    # the ink's area scales with the factor squared; the square stays centred
    area = y.sum(dim=(1, 2, 3)) / 64
    assert 0.7**2 - 0.05 <= float(area.min()) and float(area.max()) <= 1.3**2 + 0.05
    assert float(area.max() - area.min()) > 0.5  # the factors do vary
    assert torch.allclose(y, y.flip(-1), atol=1e-5) and torch.allclose(y, y.flip(-2), atol=1e-5)
    # factor 1: the image itself
    assert torch.allclose(RandomScale(1.0, 1.0)(x), x, atol=1e-6)
    for bad in ((0.0, 1.0), (1.2, 1.1), ("a", 1.0)):
        with pytest.raises(ValueError, match="need factors 0 < low <= high"):
            RandomScale(*bad)


def test_contrast_fades_the_ink_and_keeps_black_black():
    x = _strokes(200)
    y = RandomContrast(0.3, 1.0)(x, generator=torch.Generator().manual_seed(0))
    factor = y[:, 0, 10, 13] / x[:, 0, 10, 13]  # a pixel at 1.0 in every image
    assert float(factor.min()) >= 0.3 - 1e-6 and float(factor.max()) <= 1.0 + 1e-6
    assert float(factor.max() - factor.min()) > 0.5
    assert torch.allclose(y, x * factor.view(-1, 1, 1, 1)) and bool((y[x == 0] == 0).all())
    for bad in ((0.5, 0.4), (-0.1, 1.0), (0.2, 1.5)):
        with pytest.raises(ValueError, match="need factors 0 <= low <= high <= 1"):
            RandomContrast(*bad)


def test_shift_moves_the_ink_within_its_range_and_keeps_it_whole():
    x = torch.zeros(400, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0
    y = RandomShift(0.15)(x, generator=torch.Generator().manual_seed(0))
    # the square's centre of mass moves by up to 15 % of the side (4.2 pixels) along each axis, both ways
    grid = torch.arange(28, dtype=torch.float32)
    mass = y.sum(dim=(1, 2, 3))
    dy = (y.sum(dim=3)[:, 0] * grid).sum(1) / mass - 13.5
    dx = (y.sum(dim=2)[:, 0] * grid).sum(1) / mass - 13.5
    for d in (dx, dy):
        assert float(d.abs().max()) <= 0.15 * 28 + 1e-3
        assert float(d.min()) < -3 and float(d.max()) > 3  # the offsets span the range
    assert float(torch.corrcoef(torch.stack([dx, dy]))[0, 1].abs()) < 0.2  # the axes are drawn apart
    assert torch.allclose(mass, torch.full_like(mass, 16.0), atol=1e-3)  # nothing cut off, nothing added
    # offset 0: the image itself
    assert torch.allclose(RandomShift(0.0)(x[:4]), x[:4], atol=1e-6)
    for bad in (-0.1, 1.0, "a"):
        with pytest.raises(ValueError, match="need 0 <= largest < 1"):
            RandomShift(bad)


def test_flip_mirrors_about_half_the_images_exactly():
    x = torch.rand(2000, 1, 6, 6)
    y = RandomFlip()(x, generator=torch.Generator().manual_seed(0))
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert bool((mirrored ^ kept).all())  # each image is itself or its exact mirror image, never both (random pixels)
    assert 0.45 < float(mirrored.float().mean()) < 0.55
    assert torch.equal(RandomFlip(1.0)(x[:3]), x[:3].flip(-1)) and torch.equal(RandomFlip(0.0)(x[:3]), x[:3])
    assert RandomFlip(1.0)(x[0]).shape == x[0].shape  # one (C, H, W) image
    for bad in (-0.1, 1.5, "a", True):
        with pytest.raises(ValueError, match="need 0 <= p <= 1"):
            RandomFlip(bad)


def test_registry():
    names = datasets.available()
    assert {"digits-lt", "digits-rot-lt", "digits-bg-lt", "digits-dil-lt", "digits-scale-lt", "digits-contrast-lt",
            "cifar10-lt", "image-folder"} <= set(names)
    with pytest.raises(ValueError, match="'mnist-lt'"):
        load("mnist-lt")
    with pytest.raises(ValueError, match="root"):
        load("cifar10-lt")
    assert datasets.plain_version("digits-dil-lt") == "digits-lt"
    assert isinstance(datasets.nuisance_of("digits-rot-lt"), RandomRotation)
    assert isinstance(datasets.nuisance_of("digits-scale-lt"), RandomScale)
    assert isinstance(datasets.nuisance_of("fmnist-contrast-lt"), RandomContrast)
    assert datasets.plain_version("digits-contrast-lt") == "digits-lt"
    assert isinstance(datasets.nuisance_of("digits-shift-lt"), RandomShift)
    assert isinstance(datasets.nuisance_of("fmnist-shift-lt"), RandomShift)
    assert isinstance(datasets.nuisance_of("digits-flip-lt"), RandomFlip)
    assert isinstance(datasets.nuisance_of("fmnist-flip-lt"), RandomFlip)
    flipped, plain = load("digits-flip-lt", split="val", seed=0), load("digits-lt", split="val", seed=0, draws=2)
    same = (flipped.images == plain.images).flatten(1).all(1)
    mirror = (flipped.images == plain.images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirror).all()) and 0.3 < float((mirror & ~same).float().mean()) < 0.7
    assert datasets.nuisance_of("digits-lt") is None


# ----------------------------------------------------------------------------- the dataset class


def test_image_dataset_items_transform_and_loader():
    images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    ds = ImageDataset(images, [0, 1, 1, 2, 2, 2], classes=["a", "b", "c", "d"])
    assert ds.class_counts.tolist() == [1, 2, 3, 0] and ds.num_classes == 4
    image, label = ds[3]
    assert label == 2 and isinstance(label, int)
    assert torch.allclose(image, images[3].float() / 255)
    ds.transform = lambda x: 1 - x
    assert torch.allclose(ds[3][0], 1 - images[3].float() / 255)
    batch, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 3, 4, 4) and labels.tolist() == [0, 1, 1, 2]
    with pytest.raises(ValueError, match="targets must lie in \\[0, 2\\)"):
        ImageDataset(images, [0, 1, 1, 2, 2, 2], classes=["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), [0] * 6)


@pytest.mark.parametrize("channels", [1, 3])
def test_npz_round_trip(tmp_path, channels):
    images = torch.randint(0, 256, (5, channels, 6, 7), dtype=torch.uint8)
    ds = ImageDataset(images, [0, 1, 0, 1, 1], classes=["zero", "one"], base_indices=[9, 8, 7, 7, 6])
    path = ds.to_npz(tmp_path / "set.npz")
    assert os.listdir(tmp_path) == ["set.npz"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600
    with np.load(path) as raw:
        expected = (5, 6, 7) if channels == 1 else (5, 6, 7, 3)
        assert raw["images"].shape == expected and raw["images"].dtype == np.uint8
        assert raw["labels"].tolist() == [0, 1, 0, 1, 1]
    back = ImageDataset.from_npz(path)
    assert torch.equal(back.images, images) and back.classes == ["zero", "one"]
    assert back.base_indices.tolist() == [9, 8, 7, 7, 6]


# ----------------------------------------------------------------------------- CIFAR pickle batches


def _cifar_rows(labels: list[int], offset: int) -> np.ndarray:
    rows = np.zeros((len(labels), 3072), dtype=np.uint8)
    for i, label in enumerate(labels):
        rows[i, :1024] = label  # red plane: the class
        rows[i, 1024:2048] = (offset + i) % 256  # green plane: which row
        rows[i, 2048:] = 200  # blue plane: constant
    return rows


def _write(path: Path, obj: dict) -> None:
    with open(path, "wb") as file:
        pickle.dump(obj, file)


def test_cifar10_lt_from_pickle_batches(tmp_path):
    per_batch = [c for c in range(10) for _ in range(2)]  # 2 per class per batch, 10 per class in all
    for b in range(1, 6):
        _write(tmp_path / f"data_batch_{b}", {b"batch_label": b"x", b"labels": per_batch, b"data": _cifar_rows(per_batch, 20 * b)})
    test_labels = list(range(10)) * 3
    _write(tmp_path / "test_batch", {b"labels": test_labels, b"data": _cifar_rows(test_labels, 0)})
    names = [f"name{c}".encode() for c in range(10)]
    _write(tmp_path / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 20})

    full = load_cifar(tmp_path, split="train")
    assert full.images.shape == (100, 3, 32, 32) and full.class_counts.tolist() == [10] * 10
    assert full.classes[3] == "name3"
    # red plane holds the label, blue the constant: the channel layout is right
    assert torch.equal(full.images[:, 0, 0, 0].long(), full.targets)
    assert bool((full.images[:, 2] == 200).all())

    lt = load_cifar_lt(tmp_path, split="train", imbalance=10, seed=0)
    assert lt.class_counts.tolist() == exponential_profile(10, 10, 10) == [10, 7, 5, 4, 3, 2, 2, 1, 1, 1]
    assert torch.equal(lt.images[:, 0, 0, 0].long(), lt.targets)
    other = load_cifar_lt(tmp_path, split="train", imbalance=10, seed=1)
    assert not torch.equal(other.images, lt.images)  # the seed picks the images within a class
    test = load_cifar_lt(tmp_path, split="test", imbalance=10)
    assert test.class_counts.tolist() == [3] * 10
    via_registry = load("cifar10-lt", root=tmp_path, imbalance=10)
    assert torch.equal(via_registry.images, lt.images)


def test_cifar100_lt_uses_fine_labels(tmp_path):
    labels = [c for c in range(100) for _ in range(4)]
    coarse = [c // 5 for c in labels]
    _write(tmp_path / "train", {b"fine_labels": labels, b"coarse_labels": coarse, b"data": _cifar_rows(labels, 0)})
    _write(tmp_path / "test", {b"fine_labels": labels[::2], b"coarse_labels": coarse[::2], b"data": _cifar_rows(labels[::2], 0)})
    _write(tmp_path / "meta", {b"fine_label_names": [f"f{c}".encode() for c in range(100)]})
    lt = load_cifar_lt(tmp_path, split="train", imbalance=4)
    assert lt.num_classes == 100 and lt.classes[99] == "f99"
    assert lt.class_counts.tolist() == exponential_profile(100, 4, 4)
    assert lt.class_counts[0] == 4 and lt.class_counts[-1] == 1
    assert len(load_cifar(tmp_path, 100, split="test")) == 200


def test_cifar_loader_refuses_code_and_bad_files(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (os.getcwd, ())

    _write(tmp_path / "data_batch_1", {b"labels": [0], b"data": Sneaky()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar(tmp_path, 10)
    _write(tmp_path / "data_batch_1", {b"labels": [0], b"data": np.zeros((1, 100), dtype=np.uint8)})
    with pytest.raises(ValueError, match="3072"):
        load_cifar(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        load_cifar(tmp_path / "missing")
    with pytest.raises(ValueError, match="num_classes"):
        load_cifar(tmp_path, 20)


# ----------------------------------------------------------------------------- image folders


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in (("dog", 3), ("cat", 2)):
        (tmp_path / name).mkdir()
        for i in range(count):
            pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    grey = load_image_folder(tmp_path, image_size=8, channels=1)
    assert grey.classes == ["cat", "dog"] and grey.class_counts.tolist() == [2, 3]
    assert grey.images.shape == (5, 1, 8, 8) and grey.images.dtype == torch.uint8
    rgb = load("image-folder", root=tmp_path, image_size=(6, 5), channels=3)
    assert rgb.images.shape == (5, 3, 6, 5)
    unresized = load_image_folder(tmp_path, image_size=(10, 12), channels=3)
    first = np.array(Image.open(tmp_path / "cat" / "0.png"))
    assert torch.equal(unresized.images[0], torch.from_numpy(first).permute(2, 0, 1))
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(tmp_path, channels=2)
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no class subfolders"):
        load_image_folder(tmp_path / "cat")


# ----------------------------------------------------------------------------- the standard CIFAR-LT split (Cao et al.)


def _published_protocol(targets: np.ndarray, imb_factor: float, cls_num: int, rand_number: int = 0) -> np.ndarray:
    """Cao et al.'s IMBALANCECIFAR cut, restated independently: global legacy seeding, per class shuffle, keep first."""
    saved = np.random.get_state()
    try:
        np.random.seed(rand_number)
        img_max = len(targets) / cls_num
        kept = []
        for cls_idx, the_class in enumerate(np.unique(targets)):
            the_img_num = int(img_max * (imb_factor ** (cls_idx / (cls_num - 1.0))))
            idx = np.where(targets == the_class)[0]
            np.random.shuffle(idx)
            kept.append(idx[:the_img_num])
        return np.concatenate(kept)
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("num_classes, expected", [(10, 12406), (100, 10847)])
def test_ldam_split_has_the_published_sizes_and_indices(num_classes, expected):
    # CIFAR-shaped targets: 50,000 training labels, balanced, in a scrambled file order.
    targets = np.random.default_rng(num_classes).permutation(np.repeat(np.arange(num_classes), 50_000 // num_classes))
    indices = datasets.ldam_lt_indices(targets, imbalance=100)
    assert len(indices) == expected
    np.testing.assert_array_equal(indices.numpy(), _published_protocol(targets, 0.01, num_classes))
    counts = np.bincount(targets[indices.numpy()], minlength=num_classes)
    assert counts[0] == 50_000 // num_classes and counts.tolist() == sorted(counts.tolist(), reverse=True)
    assert len(set(indices.tolist())) == expected  # no image twice
    # Another seed keeps the sizes but picks other images; the global NumPy state is left alone.
    state = np.random.get_state()[1].copy()
    other = datasets.ldam_lt_indices(targets, imbalance=100, seed=1)
    assert len(other) == expected and not torch.equal(other, indices)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_load_cifar_lt_protocols_from_pickle_batches(tmp_path):
    per_batch = [c for c in range(10) for _ in range(4)]  # 20 per class in all
    for b in range(1, 6):
        _write(tmp_path / f"data_batch_{b}", {b"labels": per_batch, b"data": _cifar_rows(per_batch, 40 * b)})
    _write(tmp_path / "test_batch", {b"labels": list(range(10)), b"data": _cifar_rows(list(range(10)), 0)})
    full = load_cifar(tmp_path, split="train")

    ldam = load_cifar_lt(tmp_path, imbalance=20)  # the default protocol
    expected = _published_protocol(full.targets.numpy(), 1 / 20, 10)
    assert torch.equal(ldam.images, full.images[torch.from_numpy(expected)])
    assert torch.equal(ldam.targets, full.targets[torch.from_numpy(expected)])
    assert torch.equal(load("cifar10-lt", root=tmp_path, imbalance=20).images, ldam.images)

    seeded = load_cifar_lt(tmp_path, imbalance=20, protocol="seeded", seed=0)
    assert seeded.class_counts.tolist() == ldam.class_counts.tolist() == exponential_profile(10, 20, 20)
    assert not torch.equal(seeded.images, ldam.images)  # same counts, other images
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_cifar_lt(tmp_path, protocol="cao")
    with pytest.raises(ValueError, match="shuffle_class_order=True applies to protocol='seeded'"):
        load_cifar_lt(tmp_path, shuffle_class_order=True)
    with pytest.raises(ValueError, match="imbalance must be a number >= 1, got 0.5"):
        load_cifar_lt(tmp_path, imbalance=0.5)
