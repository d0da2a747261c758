"""Fashion-MNIST from its standard idx files, and long-tailed, nuisance-transformed sets built on it.

Fashion-MNIST (Xiao et al., 2017) holds 70,000 real 28x28 grey images of
clothing in 10 classes: 60,000 for training and 10,000 for testing, 6,000 and
1,000 per class. Nothing is downloaded here; the four standard files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or
``.gz``) are looked for, in this order, in

1. the folder passed as ``root=``;
2. the folder named by the environment variable ``GITAUG_FASHION_MNIST``;
3. ``data/FashionMNIST/raw`` under the working directory (where
   ``torchvision.datasets.FashionMNIST(root="data", download=True)`` puts them);
4. ``/usr/share/datasets/fashion-mnist`` (the Debian/Ubuntu package
   ``dataset-fashion-mnist``).

A folder given in 1 or 2 may hold the files itself or be a torchvision root
(with the files in ``FashionMNIST/raw``). A folder given explicitly that holds
no files is an error rather than a reason to look elsewhere.

Long-tailed sets, in the manner of the paper's K49-LT and of the built-in
digits (:mod:`gitaug.datasets.digits`):

* ``train``: from the official training split, minus the validation images,
  an exponential profile from 2,000 down to 10 images per class (imbalance
  200): 2000, 1110, 616, 341, 189, 105, 58, 32, 18, 10 (4,479 images),
  assigned to the classes in an order shuffled by the seed; every kept image
  gets its own nuisance draw.
* ``val``: ``val_per_class`` (default 100) official training images per class,
  chosen with the seed *before* the training profile is cut, so ``val`` and
  ``train`` never share a base image; 1,000 images, one draw each.
* ``test``: the official test split (1,000 per class, 10,000 images), each
  image with one nuisance draw (``draws=`` for more).

Names: ``fmnist-lt`` (no nuisance), ``fmnist-rot-lt`` (rotation),
``fmnist-bg-lt`` (background intensity), ``fmnist-dil-lt`` (dilation or
erosion), ``fmnist-scale-lt`` (zoom x0.7 to x1.3), ``fmnist-contrast-lt``
(ink faded by a factor 0.3 to 1), ``fmnist-shift-lt`` (moved by up to 15 % of the side),
``fmnist-flip-lt`` (mirrored left to right half the time); the same base images (``dataset.base_indices``: the index in the
official split) for every name at one seed, so ``fmnist-lt`` is the plain
version of the others. Rotation clips the corners of items that fill the
canvas, as it did for K49.

Example::

    >>> from gitaug.datasets import load
    >>> train = load("fmnist-rot-lt", split="train", seed=0)  # doctest: +SKIP
    >>> sorted(train.class_counts.tolist(), reverse=True)     # doctest: +SKIP
    [2000, 1110, 616, 341, 189, 105, 58, 32, 18, 10]
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from .._seeding import derive_seed
from .base import ImageDataset
from .nuisances import get_nuisance
from .profiles import exponential_profile, subsample_to_profile

__all__ = [
    "DEBIAN_FOLDER",
    "ENV_VAR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DATASETS",
    "find_fashion_mnist",
    "load_fashion_mnist",
    "load_fashion_mnist_lt",
    "read_idx",
]

FASHION_MNIST_DATASETS: dict[str, str | None] = {
    "fmnist-lt": None,
    "fmnist-rot-lt": "rot",
    "fmnist-bg-lt": "bg",
    "fmnist-dil-lt": "dil",
    "fmnist-scale-lt": "scale",
    "fmnist-contrast-lt": "contrast",
    "fmnist-shift-lt": "shift",
    "fmnist-flip-lt": "flip",
}
"""Built-in Fashion-MNIST-LT dataset names and the nuisance each applies."""

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
"""Class names in label order, as the original release lists them."""

ENV_VAR = "GITAUG_FASHION_MNIST"
"""Environment variable naming a folder with the idx files (or a torchvision root)."""

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs the files."""

_TORCHVISION_DEFAULT = Path("data") / "FashionMNIST" / "raw"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SPLITS = ("train", "val", "test")
_IMAGE_SIZE = 28
_NUM_CLASSES = 10
# Nuisance draws run over this many images at a time: vectorised, with bounded memory.
_NUISANCE_BATCH = 4096

# The idx type byte and the big-endian numpy type it stores.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_HOW_TO_GET = (
    "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, into "
    f"{DEBIAN_FOLDER}), or elsewhere run `torchvision.datasets.FashionMNIST(root='data', download=True)` "
    "once and pass root='data' (or set "
    f"{ENV_VAR}=data); any folder with the four files from the original release works too."
)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one idx file (the MNIST/Fashion-MNIST format), plain or gzip-compressed.

    The header is checked: two zero bytes, a known type byte, the number of
    dimensions, then one big-endian 32-bit size per dimension; the payload must
    hold exactly the product of the sizes.

    Args:
        path: the file; a name ending in ``.gz`` is decompressed.

    Returns:
        A numpy array of the stored shape, in native byte order.

    Example::

        >>> labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> labels.shape, labels.dtype                                                        # doctest: +SKIP
        ((10000,), dtype('uint8'))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file not found: {path}")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:  # a truncated or corrupt .gz
        raise ValueError(f"{path}: cannot read the file ({error})") from error
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an idx header (4 bytes at least)")
    zero_a, zero_b, type_code, ndim = raw[:4]
    if zero_a != 0 or zero_b != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{path}: not an idx file (magic bytes {raw[:4].hex()}; expected 0000 then a type byte "
            f"in {[hex(t) for t in _IDX_TYPES]} and a non-zero number of dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: the header announces {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} of {dtype.name} ({expected} bytes of data), "
            f"but the file holds {len(raw) - header}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _file_in(folder: Path, stem: str) -> Path | None:
    # Prefer the uncompressed file (torchvision keeps both; no need to inflate).
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _holds_files(folder: Path) -> bool:
    return all(_file_in(folder, stem) is not None for pair in _FILES.values() for stem in pair)


def _resolve(folder: Path) -> Path | None:
    """``folder`` itself, or its torchvision layout, if it holds all four files."""
    for candidate in (folder, folder / "FashionMNIST" / "raw", folder / "raw"):
        if _holds_files(candidate):
            return candidate
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the four Fashion-MNIST idx files (see the module docstring for the search order).

    Args:
        root: a folder to use instead of searching; it may hold the files or
            be a torchvision root (files in ``FashionMNIST/raw``).

    Raises:
        FileNotFoundError: naming every place looked at and how to get the files.

    Example::

        >>> find_fashion_mnist()   # doctest: +SKIP
        PosixPath('/usr/share/datasets/fashion-mnist')
    """
    wanted = ", ".join(f"{stem}[.gz]" for pair in _FILES.values() for stem in pair)
    for source, value in (("root", root), (ENV_VAR, os.environ.get(ENV_VAR) or None)):
        if value is None:
            continue
        folder = Path(value).expanduser()
        found = _resolve(folder)
        if found is None:
            raise FileNotFoundError(
                f"{source}={str(value)!r}: no Fashion-MNIST files there (looked for {wanted} in the folder, "
                f"in its FashionMNIST/raw and in its raw). {_HOW_TO_GET}"
            )
        return found
    for folder in (_TORCHVISION_DEFAULT, DEBIAN_FOLDER):
        if _holds_files(folder):
            return folder
    raise FileNotFoundError(
        f"Fashion-MNIST not found: no root given, {ENV_VAR} not set, and neither {_TORCHVISION_DEFAULT} "
        f"nor {DEBIAN_FOLDER} holds {wanted}. {_HOW_TO_GET}"
    )


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_stem, label_stem = _FILES[split]
    image_path, label_path = _file_in(folder, image_stem), _file_in(folder, label_stem)
    if image_path is None or label_path is None:
        raise FileNotFoundError(f"{folder} lacks {image_stem}[.gz] or {label_stem}[.gz]. {_HOW_TO_GET}")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ValueError(
            f"{image_path}: expected uint8 images of shape (N, {_IMAGE_SIZE}, {_IMAGE_SIZE}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{label_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= _NUM_CLASSES:
        raise ValueError(f"{label_path}: labels must lie in [0, {_NUM_CLASSES}), got maximum {int(labels.max())}")
    return images, labels


@functools.lru_cache(maxsize=4)
def _cached_split(folder: str, split: str, stamp: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    # ``stamp`` (the files' modification times) keys the cache, so replaced files are read again.
    images, labels = _read_split(Path(folder), split)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _official(root: str | os.PathLike | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = find_fashion_mnist(root)
    stamp = tuple(os.stat(path).st_mtime for path in (_file_in(folder, stem) for stem in _FILES[split]) if path)
    return _cached_split(str(folder.resolve()), split, stamp)


def load_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> ImageDataset:
    """The official Fashion-MNIST ``train`` (60,000) or ``test`` (10,000) split, uint8 (N, 1, 28, 28).

    Args:
        root: where the idx files are; ``None`` searches (see :func:`find_fashion_mnist`).
        split: ``"train"`` or ``"test"``.

    Example::

        >>> test = load_fashion_mnist(split="test")   # doctest: +SKIP
        >>> len(test), test.classes[0]                 # doctest: +SKIP
        (10000, 'T-shirt/top')
    """
    if split not in _FILES:
        raise ValueError(f"split must be one of {tuple(_FILES)}, got {split!r}")
    images, labels = _official(root, split)
    return ImageDataset(images.clone(), labels.clone(), FASHION_MNIST_CLASSES)


def _apply_nuisance(images: torch.Tensor, nuisance: str, generator: torch.Generator) -> torch.Tensor:
    transform = get_nuisance(nuisance)
    out = torch.empty_like(images)
    # One generator runs through the batches in order, so every image keeps its own draw.
    for start in range(0, images.shape[0], _NUISANCE_BATCH):
        chunk = images[start : start + _NUISANCE_BATCH].float().div_(255)
        moved = transform(chunk, generator=generator)
        out[start : start + _NUISANCE_BATCH] = moved.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return out


def _val_split(labels: torch.Tensor, seed: int, val_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Official-train indices held out for validation, and the rest (the training pool)."""
    rng = torch.Generator().manual_seed(derive_seed(seed, "fmnist-val"))
    held, pool = [], []
    for cls in range(_NUM_CLASSES):
        members = torch.nonzero(labels == cls).flatten()
        if members.numel() <= val_per_class:
            raise ValueError(
                f"val_per_class={val_per_class} leaves no training image for class {cls} "
                f"({FASHION_MNIST_CLASSES[cls]}), which has {members.numel()}"
            )
        members = members[torch.randperm(members.numel(), generator=rng)]
        held.append(members[:val_per_class])
        pool.append(members[val_per_class:])
    return torch.cat(held), torch.cat(pool)


def load_fashion_mnist_lt(
    nuisance: str | None = None,
    split: str = "train",
    seed: int = 0,
    *,
    root: str | os.PathLike | None = None,
    max_count: int = 2000,
    imbalance: float = 200.0,
    val_per_class: int = 100,
    draws: int | None = None,
) -> ImageDataset:
    """One split of a Fashion-MNIST-LT set (see the module docstring for the counts).

    Args:
        nuisance: ``None`` or a name of :data:`~gitaug.datasets.NUISANCES` (``"rot"``, ``"bg"``, ``"dil"``, ``"scale"``, ``"contrast"``, ``"shift"``, ``"flip"``).
        split: ``"train"`` (long-tailed), ``"val"`` or ``"test"`` (balanced).
        seed: seeds the validation hold-out, the class order, the training
            choice and the nuisance draws.
        root: where the idx files are; ``None`` searches (see :func:`find_fashion_mnist`).
        max_count: largest training class.
        imbalance: ratio of the largest to the smallest training class.
        val_per_class: official training images per class held out for ``val``.
        draws: copies of each image in ``val``/``test``, each with its own
            nuisance draw (default 1).

    Example::

        >>> val = load_fashion_mnist_lt("bg", split="val", seed=0)   # doctest: +SKIP
        >>> val.class_counts.tolist()[:3]                             # doctest: +SKIP
        [100, 100, 100]
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(val_per_class, bool) or not isinstance(val_per_class, int) or val_per_class < 1:
        raise ValueError(f"val_per_class must be a positive integer, got {val_per_class!r}")
    if nuisance is not None:
        get_nuisance(nuisance)  # fails early, naming the choices
    if draws is not None:
        if split == "train":
            raise ValueError(f"draws applies to the val and test splits, got draws={draws!r} for split='train'")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
    seed = int(seed)
    # The profile is checked before any file is read, so a bad argument is reported as such.
    counts = exponential_profile(_NUM_CLASSES, max_count, imbalance) if split == "train" else None

    if split == "test":
        base_images, base_labels = _official(root, "test")
        chosen = torch.arange(base_labels.numel()).repeat_interleave(draws or 1)
    else:
        base_images, base_labels = _official(root, "train")
        held, pool = _val_split(base_labels, seed, val_per_class)
        if split == "val":
            chosen = held.repeat_interleave(draws or 1)
        else:
            picks = subsample_to_profile(
                base_labels[pool], counts, seed=derive_seed(seed, "fmnist-train-profile"), allow_reuse=True
            )
            chosen = pool[picks]

    images = base_images[chosen]
    if nuisance is not None:
        rng = torch.Generator().manual_seed(derive_seed(seed, "fmnist", nuisance, split, "nuisance"))
        images = _apply_nuisance(images, nuisance, rng)
    return ImageDataset(images, base_labels[chosen], FASHION_MNIST_CLASSES, base_indices=chosen)
