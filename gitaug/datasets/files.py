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
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import ImageDataset
from .profiles import exponential_profile, subsample_to_profile

__all__ = [
    "load_cifar",
    "load_cifar_lt",
    "ldam_lt_indices",
    "CIFAR_LT_PROTOCOLS",
    "load_image_folder",
    "read_image_files",
    "read_npz",
    "conform_images",
    "choose_image_size",
    "IMAGE_EXTENSIONS",
]

CIFAR_LT_PROTOCOLS = ("ldam", "seeded")
"""How :func:`load_cifar_lt` cuts the training split: Cao et al.'s standard split, or gitaug's seeded subsample."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
"""File endings read from image folders (case-insensitive)."""

# Gray images that PIL can turn into 8-bit luminance without a colour round trip.
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")

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
    Unreadable image files are skipped with a warning and counted in the
    dataset's ``skipped``.

    Example::

        ds = load_image_folder("data/my_images", image_size=28, channels=1)
        ds.classes, ds.class_counts
    """
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    names = list(classes) if classes is not None else found
    missing = [name for name in names if not (root / name).is_dir()]
    if missing:
        raise ValueError(f"classes {missing} have no subfolder in {root}")
    if not names:
        raise ValueError(f"{root} has no class subfolders")
    arrays, labels, _, skipped = read_image_files(root, classes=names)
    if labels is None:
        raise ValueError(f"no images with endings {IMAGE_EXTENSIONS} in the class subfolders of {root}")
    images = conform_images(arrays, (height, width), channels, str(root))
    return ImageDataset(images, labels, names, source=str(root), skipped=skipped)


# --------------------------------------------------------------------------- reading files


def read_image_files(
    root: str | os.PathLike, classes: Sequence[str] | None = None
) -> tuple[list[np.ndarray], torch.Tensor | None, list[str] | None, int]:
    """Every readable image under ``root``: ``(arrays, labels, class_names, skipped)``.

    ``root`` holds class subfolders (labels from the sorted names, or from
    ``classes``) or, without any, a flat set of images (labels and names are
    ``None``). Arrays are uint8 (H, W, 1) or (H, W, 3). Hidden files and
    folders are ignored; unreadable or corrupt files are skipped with one
    warning and counted.
    """
    root = Path(root)
    class_dirs = [root / name for name in classes] if classes is not None else sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    class_files = {d.name: _image_files(d, recursive=True) for d in class_dirs}
    if classes is None:
        class_files = {name: files for name, files in class_files.items() if files}
    loose = _image_files(root, recursive=False)
    if any(class_files.values()):
        if loose:
            warnings.warn(
                f"{str(root)!r} has class subfolders and also {len(loose)} image file(s) at its top level; "
                "the top-level files are ignored",
                stacklevel=3,
            )
        names = list(class_files)
        files = [file for name in names for file in class_files[name]]
        file_labels = [index for index, name in enumerate(names) for _ in class_files[name]]
    elif loose:
        names, files, file_labels = None, loose, None
    else:
        raise ValueError(
            f"{str(root)!r} holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)} at its top level "
            "and in class subfolders)"
        )

    from PIL import Image, UnidentifiedImageError

    arrays: list[np.ndarray] = []
    kept_labels: list[int] = []
    bad: list[str] = []
    for position, file in enumerate(files):
        try:
            with Image.open(file) as image:
                image.load()
                arrays.append(_pil_to_array(image))
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError):
            # PIL raises all of these for truncated or corrupt files.
            bad.append(str(file.relative_to(root)))
            continue
        if file_labels is not None:
            kept_labels.append(file_labels[position])
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        warnings.warn(f"skipped {len(bad)} unreadable image file(s) in {str(root)!r}: {shown}", stacklevel=3)
    if not arrays:
        raise ValueError(f"none of the {len(files)} image file(s) in {str(root)!r} could be read")
    labels = torch.tensor(kept_labels, dtype=torch.long) if names is not None else None
    return arrays, labels, names, len(bad)


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in pattern
        if path.is_file()
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _pil_to_array(image: Any) -> np.ndarray:
    """An (H, W, 1) or (H, W, 3) uint8 array; palette and alpha images become RGB (alpha dropped)."""
    if image.mode in _GRAY_MODES:
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # Wide gray images: scale their own range to 0..255 rather than clip it.
            values = np.asarray(image, dtype=np.float64)
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
            return np.round(scaled).astype(np.uint8)[..., None]
        return np.asarray(image.convert("L"), dtype=np.uint8)[..., None]
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_npz(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, torch.Tensor | None]:
    """``(images, labels, class_names, base_indices)`` from an ``.npz``: uint8 ``images`` (N, H, W[, C]) and
    optional integer ``labels`` (N,), ``classes`` names and ``base_indices``.

    Images come back as a uint8 tensor (N, C, H, W) (an alpha channel is
    dropped); labels, names and base indices are ``None`` when absent.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with archive:
            if "images" not in archive.files:
                raise ValueError(f"it has no 'images' array; it holds {sorted(archive.files)}")
            images = archive["images"]
            labels = archive["labels"] if "labels" in archive.files else None
            classes = archive["classes"] if "classes" in archive.files else None
            base = archive["base_indices"] if "base_indices" in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        # Empty, truncated or foreign files fail in numpy's or zipfile's own words; say what is wrong here.
        size = path.stat().st_size if path.is_file() else 0
        raise ValueError(f"{str(path)!r} is not a readable .npz file ({size:,} bytes): {err}") from err
    if images.dtype != np.uint8:
        raise ValueError(f"{str(path)!r}: 'images' must be uint8 in [0, 255], got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{str(path)!r}: 'images' must have shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4, "
            f"got {images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{str(path)!r}: 'images' holds no image")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise ValueError(f"{str(path)!r}: 'images' are {images.shape[1]}x{images.shape[2]} pixels; they need a size")
    tensor = torch.from_numpy(np.ascontiguousarray(images[..., :3])).permute(0, 3, 1, 2).contiguous()
    base_tensor = torch.from_numpy(base.astype(np.int64)) if base is not None and base.ndim == 1 else None
    if labels is None:
        return tensor, None, None, base_tensor
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{str(path)!r}: 'labels' must have one entry per image ({images.shape[0]}), got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{str(path)!r}: 'labels' must be integers, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"{str(path)!r}: 'labels' must be non-negative, got {int(labels.min())}")
    # Compared as Python ints: a uint64 label beyond int64 must not wrap around.
    largest = int(labels.max())
    named = int(classes.shape[0]) if classes is not None and classes.ndim == 1 else 0
    # A class index is bounded by the classes there can be: one per image, or one per name given.
    if largest >= max(images.shape[0], named):
        raise ValueError(
            f"{str(path)!r}: label {largest} is larger than {images.shape[0]} images (and {named} class names) can "
            "hold; labels must be class indices 0, 1, 2, ... (give a 'classes' array to name classes without images)"
        )
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    num_classes = largest + 1
    names = [str(index) for index in range(num_classes)]
    if named >= num_classes:
        names = [str(name) for name in classes.tolist()]
    return tensor, label_tensor, names, base_tensor


# --------------------------------------------------------------------------- making images uniform


def _is_gray(image: torch.Tensor | np.ndarray) -> bool:
    if image.shape[-1 if isinstance(image, np.ndarray) else -3] == 1:
        return True
    if isinstance(image, np.ndarray):
        return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
    return bool((image[..., 0, :, :] == image[..., 1, :, :]).all() and (image[..., 1, :, :] == image[..., 2, :, :]).all())


def _convert_channels(batch: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) to ``channels``; RGB to gray by ITU-R 601 luma, as PIL's "L" mode."""
    if batch.shape[1] == channels:
        return batch
    if channels == 3:
        return batch.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (batch.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def _resize(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) to (N, C, *size), bilinear with antialiasing when shrinking."""
    if tuple(batch.shape[-2:]) == tuple(size):
        return batch
    resized = F.interpolate(batch.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8)


#: The largest square side :func:`choose_image_size` picks on its own; larger needs an explicit choice.
MAX_AUTO_IMAGE_SIZE = 256


def choose_image_size(sizes: Sequence[tuple[int, int]], source: str) -> int:
    """The square side to fit a generator at: the most common size, rounded to what the generator accepts.

    Says which size it chose and why (a warning) whenever it is not the data's own.
    """
    from .._architecture import IMAGE_SIZE_MULTIPLE, MIN_IMAGE_SIZE

    (height, width), count = Counter(sizes).most_common(1)[0]
    side = min(height, width)
    if side <= 0:
        raise ValueError(f"images from {source!r} are mostly {height}x{width} pixels; they need a size")
    chosen = max(MIN_IMAGE_SIZE, int(round(side / IMAGE_SIZE_MULTIPLE)) * IMAGE_SIZE_MULTIPLE)
    if chosen > MAX_AUTO_IMAGE_SIZE:
        # A generator's activations grow with the square of the side: at 2048 px a batch of 32 needs
        # hundreds of GB. Large images are a choice to make, not a default.
        raise ValueError(
            f"images from {source!r} are mostly {height}x{width}; fitting a generator at {chosen}x{chosen} would need "
            f"far more memory than a GIT generator is meant for. Choose a side with image_size (--image-size), "
            f"e.g. 32, 64 or 128 (at most {MAX_AUTO_IMAGE_SIZE} is chosen automatically)"
        )
    if chosen != side:
        warnings.warn(
            f"images from {source!r} are mostly {height}x{width} ({count} of {len(sizes)}); they are resized to "
            f"{chosen}x{chosen} (the generator needs a side divisible by {IMAGE_SIZE_MULTIPLE} and at least "
            f"{MIN_IMAGE_SIZE}); pass image_size (--image-size) to choose another size",
            stacklevel=4,
        )
    return chosen


def conform_images(
    images: torch.Tensor | list[np.ndarray],
    image_size: int | tuple[int, int] | None,
    channels: int | None,
    source: str,
) -> torch.Tensor:
    """One uint8 tensor (N, channels, H, W) from a tensor or a list of (H, W, C) arrays.

    ``image_size`` is a square side, ``(H, W)``, or ``None`` for
    :func:`choose_image_size`; ``channels`` is 1, 3 or ``None`` (1 when every
    image is gray). RGB becomes gray by ITU-R 601 luma, as PIL's "L" mode.
    """
    if isinstance(images, torch.Tensor):
        sizes = [tuple(images.shape[-2:])] * len(images)
        gray = _is_gray(images)
    else:
        sizes = [array.shape[:2] for array in images]
        gray = all(_is_gray(array) for array in images)
    if channels is None:
        channels = 1 if gray else 3
    if image_size is None:
        image_size = choose_image_size(sizes, source)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if size[0] == size[1]:
        non_square = sum(1 for height, width in sizes if height != width)
        if non_square:
            warnings.warn(
                f"{non_square} image(s) from {source!r} are not square; they are stretched to {size[0]}x{size[1]}",
                stacklevel=3,
            )
    if isinstance(images, torch.Tensor):
        return _resize(_convert_channels(images, channels), size)
    out = torch.empty(len(images), channels, *size, dtype=torch.uint8)
    # Images of the same size are converted together; mixed sizes one group at a time.
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, array in enumerate(images):
        groups.setdefault(array.shape, []).append(index)
    for indices in groups.values():
        batch = torch.from_numpy(np.stack([images[i] for i in indices])).permute(0, 3, 1, 2)
        out[indices] = _resize(_convert_channels(batch, channels), size)
    return out
