"""Loaders for image files a user already has: CIFAR python batches and image folders.

Nothing is downloaded. CIFAR-10/100 are read from the standard "python
version" archives once extracted (``cifar-10-batches-py`` with
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; ``cifar-100-python``
with ``train`` and ``test``). The pickles are read with an unpickler that only
rebuilds plain containers and numpy arrays, so a tampered file cannot run code.

Example::

    train = load_cifar_lt("data/cifar-10-batches-py", imbalance=100)   # Cao et al.'s split
    train.class_counts.tolist()   # [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    folder = load_image_folder("data/my_images", image_size=32, channels=3)
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .base import ImageDataset
from .profiles import exponential_profile, subsample_to_profile

__all__ = ["load_cifar", "load_cifar_lt", "ldam_lt_indices", "CIFAR_LT_PROTOCOLS", "load_image_folder", "IMAGE_EXTENSIONS"]

CIFAR_LT_PROTOCOLS = ("ldam", "seeded")
"""How :func:`load_cifar_lt` cuts the training split: Cao et al.'s standard split, or gitaug's seeded subsample."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File endings :func:`load_image_folder` reads (case-insensitive), as torchvision's ImageFolder."""

# What a CIFAR pickle may reference: numpy's array rebuilding helpers (their
# module moved in numpy 2) and the codec Python 3 uses for old byte strings.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # the pickle hook that resolves globals
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")
        return super().find_class(module, name)


def _read_batch(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR batch file not found: {path}")
    with open(path, "rb") as file:
        data = _ArrayUnpickler(io.BytesIO(file.read()), encoding="bytes").load()
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CIFAR batch (expected a dict, got {type(data).__name__})")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in data.items()}


def _names(path: Path, key: str) -> list[str] | None:
    if not path.is_file():
        return None
    names = _read_batch(path).get(key)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else None


def _detect_num_classes(root: Path) -> int:
    if (root / "data_batch_1").is_file() or (root / "test_batch").is_file():
        return 10
    if (root / "train").is_file() or (root / "test").is_file():
        return 100
    raise FileNotFoundError(
        f"{root} holds neither CIFAR-10 batches (data_batch_1..5, test_batch) nor CIFAR-100 files (train, test)"
    )


def load_cifar(root: str | os.PathLike, num_classes: int | None = None, split: str = "train") -> ImageDataset:
    """The full (balanced) CIFAR-10 or CIFAR-100 split from the python pickle batches in ``root``.

    Args:
        root: folder holding ``data_batch_1..5``/``test_batch`` (CIFAR-10) or
            ``train``/``test`` (CIFAR-100, read with its ``fine_labels``).
        num_classes: 10 or 100; ``None`` tells them apart by the file names.
        split: ``"train"`` or ``"test"``.

    Returns:
        An :class:`ImageDataset` of uint8 (N, 3, 32, 32) images; class names
        come from ``batches.meta``/``meta`` when present.

    Example::

        test = load_cifar("data/cifar-10-batches-py", 10, split="test")
    """
    if num_classes not in (None, 10, 100):
        raise ValueError(f"num_classes must be 10, 100 or None, got {num_classes!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if num_classes is None:
        num_classes = _detect_num_classes(root)
    if num_classes == 10:
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key, meta, names_key = "labels", "batches.meta", "label_names"
    else:
        files = [split]
        label_key, meta, names_key = "fine_labels", "meta", "fine_label_names"
    rows, labels = [], []
    for name in files:
        batch = _read_batch(root / name)
        if "data" not in batch or label_key not in batch:
            raise ValueError(f"{root / name} lacks b'data' or b'{label_key}'; keys are {sorted(batch)}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{root / name}: b'data' must be uint8 rows of 3072, got shape {data.shape}")
        rows.append(data)
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    # A row stores the red plane, then green, then blue, each 32x32 row-major.
    images = torch.from_numpy(np.concatenate(rows).reshape(-1, 3, 32, 32).copy())
    classes = _names(root / meta, names_key) or [str(c) for c in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f"{root / meta} names {len(classes)} classes, expected {num_classes}")
    return ImageDataset(images, np.concatenate(labels), classes)


def ldam_lt_indices(
    targets: Sequence[int] | np.ndarray | torch.Tensor, imbalance: float = 100.0, seed: int = 0
) -> torch.Tensor:
    """Indices of the standard CIFAR-LT training split of Cao et al. (LDAM-DRW, NeurIPS 2019).

    The protocol of their ``IMBALANCECIFAR10``/``IMBALANCECIFAR100``, which
    nearly every published CIFAR-LT number uses: NumPy's legacy random generator
    seeded with ``seed`` (0 in their code), then, class by class in label
    order, that class's indices shuffled and the first
    ``int(n_max * (1 / imbalance) ** (c / (C - 1)))`` kept, where
    ``n_max = len(targets) / C``. A private ``np.random.RandomState`` replaces
    their global seeding (same numbers, no global state touched).

    Args:
        targets: the label of every training image, in file order.
        imbalance: ratio rho of the largest to the smallest class (100 in most papers).
        seed: the generator's seed; 0 gives the published split.

    Returns:
        A LongTensor of indices into ``targets``, class 0's first, each class's in its shuffled order.

    Example::

        >>> targets = np.tile(np.arange(10), 5000)        # CIFAR-10's sizes
        >>> len(ldam_lt_indices(targets, imbalance=100))
        12406
    """
    labels = np.asarray(targets, dtype=np.int64).reshape(-1)
    if labels.size == 0:
        raise ValueError("targets must hold at least one label, got none")
    if isinstance(imbalance, bool) or not isinstance(imbalance, (int, float, np.number)) or not imbalance >= 1:
        raise ValueError(f"imbalance must be a number >= 1, got {imbalance!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"targets must hold at least 2 classes for a profile, got {classes.tolist()}")
    rng = np.random.RandomState(int(seed))
    largest = len(labels) / len(classes)
    factor = 1.0 / imbalance
    chosen = []
    for rank, cls in enumerate(classes):
        # The published arithmetic exactly (float power, then int()), so the counts match theirs.
        keep = int(largest * factor ** (rank / (len(classes) - 1.0)))
        members = np.where(labels == cls)[0]
        rng.shuffle(members)
        chosen.append(members[:keep])
    return torch.from_numpy(np.concatenate(chosen))


def load_cifar_lt(
    root: str | os.PathLike,
    num_classes: int | None = None,
    split: str = "train",
    imbalance: float = 100.0,
    seed: int = 0,
    shuffle_class_order: bool = False,
    protocol: str = "ldam",
) -> ImageDataset:
    """CIFAR-10-LT / CIFAR-100-LT: the training split cut to an exponential profile.

    Class ``c`` keeps ``max * imbalance ** (-c / (C - 1))`` images (rounded
    down; class 0 is the largest). ``protocol`` decides which images:

    * ``"ldam"`` (default): the standard split of Cao et al. (see
      :func:`ldam_lt_indices`); ``seed=0`` gives exactly the images published
      CIFAR-LT results were trained on, so numbers are comparable. 12,406
      images for CIFAR-10-LT and 10,847 for CIFAR-100-LT at imbalance 100.
    * ``"seeded"``: gitaug's :func:`subsample_to_profile` with ``seed`` (same
      counts, other images), optionally with a shuffled class order
      (``shuffle_class_order``), for variance over splits.

    The ``test`` split is returned whole (balanced). ``num_classes=None`` tells
    CIFAR-10 from CIFAR-100 by the file names.

    Example::

        train = load_cifar_lt("data/cifar-100-python", imbalance=100)
        len(train)   # 10847
    """
    if protocol not in CIFAR_LT_PROTOCOLS:
        raise ValueError(f"protocol must be one of {CIFAR_LT_PROTOCOLS}, got {protocol!r}")
    if protocol == "ldam" and shuffle_class_order:
        raise ValueError("shuffle_class_order=True applies to protocol='seeded'; the 'ldam' split keeps class 0 largest")
    full = load_cifar(root, num_classes, split)
    if split == "test":
        return full
    max_count = int(full.class_counts.min())
    if max_count == 0:
        empty = int(torch.nonzero(full.class_counts == 0)[0])
        raise ValueError(f"class {empty} has no images in the CIFAR files under {root}")
    if protocol == "ldam":
        return full.subset(ldam_lt_indices(full.targets.numpy(), imbalance, seed))
    counts = exponential_profile(full.num_classes, max_count, imbalance)
    indices = subsample_to_profile(full.targets, counts, seed=seed, shuffle_class_order=shuffle_class_order)
    return full.subset(indices)


def load_image_folder(
    root: str | os.PathLike,
    image_size: int | tuple[int, int] = 32,
    channels: int = 3,
    classes: Sequence[str] | None = None,
) -> ImageDataset:
    """Images in class subfolders (``root/<class>/<image>``, as torchvision's ``ImageFolder``).

    Class indices follow the sorted subfolder names (or ``classes`` if
    given). Every image is converted to ``channels`` (1: grey, 3: RGB) and
    resized bilinearly to ``image_size`` (an int for a square, or (H, W)).

    Example::

        ds = load_image_folder("data/my_images", image_size=28, channels=1)
        ds.classes, ds.class_counts
    """
    try:
        from PIL import Image
    except ImportError as error:  # Pillow comes with torchvision
        raise ImportError("load_image_folder needs Pillow; install it with `pip install pillow`") from error
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    names = list(classes) if classes is not None else found
    missing = [name for name in names if not (root / name).is_dir()]
    if missing:
        raise ValueError(f"classes {missing} have no subfolder in {root}")
    if not names:
        raise ValueError(f"{root} has no class subfolders")
    mode = "L" if channels == 1 else "RGB"
    arrays, labels = [], []
    for index, name in enumerate(names):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        for file in files:
            with Image.open(file) as image:
                image = image.convert(mode)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
            arrays.append(array.reshape(height, width, channels))
            labels.append(index)
    if not arrays:
        raise ValueError(f"no images with endings {IMAGE_EXTENSIONS} under {root}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, labels, names)
