"""Training images for ``gitaug-fit``: reading them, making them uniform, drawing batches.

The generator is fitted on every training image pooled together; labels, when
known, only steer the sampling (class-balanced by default, as in the paper)
and the statistics and sample grids of the run.

Sources:

* a built-in dataset of :mod:`gitaug.datasets` (its training split);
* an image folder with one subfolder per class (``root/<class>/<image>``);
* a flat folder of images (no labels);
* an ``.npz`` file with ``images`` (N, H, W) or (N, H, W, C) uint8 and
  optional ``labels`` (N,) integers (and optional ``classes`` names).

Every image is brought to one square size and one channel count and held in
memory as a single uint8 tensor (N, C, H, W): the datasets GIT targets are
small, and batches are converted to floats in [-1, 1] only when drawn.

Example::

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, images=np.zeros((6, 20, 20), np.uint8), labels=np.array([0, 0, 0, 0, 1, 2]))
    >>> data = read_training_data(data=path)
    >>> tuple(data.images.shape), data.class_counts.tolist()
    ((6, 1, 20, 20), [4, 1, 1])
    >>> sampler = BatchSampler(len(data), 4, labels=data.labels, mode="balanced", seed=0)
    >>> sampler.next_batch().shape
    torch.Size([4])
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGE_EXTENSIONS",
    "TrainingData",
    "read_training_data",
    "to_model_range",
    "BatchSampler",
    "derive_seed",
]

#: File endings read from folders (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")

# Gray images that PIL can turn into 8-bit luminance without a colour round trip.
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")

# The smallest square side the generator accepts (two downsamplings leave a 4x4 content map).
_MIN_SIZE = 16


def derive_seed(seed: int, tag: str) -> int:
    """An independent 63-bit seed for one purpose of a run (batches, style draws, grids, ...).

    Example::

        >>> derive_seed(0, "batches") != derive_seed(0, "styles")
        True
    """
    entropy = [int(seed)] + [ord(char) for char in tag]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@dataclass
class TrainingData:
    """The training images of a run, uniform and in memory.

    Attributes:
        images: uint8 tensor (N, C, S, S).
        labels: LongTensor (N,) of class indices, or ``None`` when unknown.
        class_names: one name per class index, or ``None`` without labels.
        source: where the images came from (for the run's metadata).
        skipped: image files that could not be read.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: list[str] | None
    source: str
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def class_counts(self) -> torch.Tensor | None:
        """Images per class (LongTensor), or ``None`` without labels."""
        if self.labels is None:
            return None
        size = len(self.class_names) if self.class_names else 0
        return torch.bincount(self.labels, minlength=size)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] to floats in [-1, 1], the generator's range.

    Example::

        >>> to_model_range(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
        [-1.0, 1.0]
    """
    return images.float().div(127.5).sub(1.0)


# --------------------------------------------------------------------------- reading


def read_training_data(
    *,
    dataset: str | None = None,
    data: str | os.PathLike | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    seed: int = 0,
) -> TrainingData:
    """Read the training images from a built-in ``dataset`` name or a ``data`` path.

    Args:
        dataset: a name :func:`gitaug.datasets.load` knows (training split,
            built with ``seed``).
        data: an image folder (class subfolders), a flat folder of images, or an ``.npz``.
        image_size: the square side to resize to; ``None`` takes the most
            common size of the data, rounded to a multiple of 4 (at least 16).
        channels: 1 or 3; ``None`` is 1 when every image is gray, else 3.
        seed: passed to the built-in dataset.

    Unreadable image files are skipped with a warning (``skipped`` counts
    them); a source with no usable image is an error.
    """
    if (dataset is None) == (data is None):
        raise ValueError(f"give exactly one of dataset and data, got dataset={dataset!r}, data={data!r}")
    if dataset is not None:
        images, labels, names, source = _read_builtin(dataset, seed)
        skipped = 0
    else:
        path = Path(data)  # type: ignore[arg-type]
        if path.is_file() and path.suffix.lower() == ".npz":
            images, labels, names = _read_npz(path)
            skipped = 0
        elif path.is_dir():
            images, labels, names, skipped = _read_folder(path)
        elif path.exists():
            raise ValueError(f"data={str(path)!r} is neither a folder of images nor an .npz file")
        else:
            raise FileNotFoundError(f"data={str(path)!r} does not exist")
        source = str(path)
    tensor = _conform(images, image_size, channels, source)
    return TrainingData(tensor, labels, names, source, skipped)


def _read_builtin(name: str, seed: int) -> tuple[list[np.ndarray] | torch.Tensor, torch.Tensor, list[str], str]:
    try:
        from gitaug import datasets
    except ImportError as err:  # pragma: no cover - the package ships it
        raise ImportError(f"dataset={name!r} needs gitaug.datasets, which could not be imported: {err}") from err
    try:
        train = datasets.load(name, split="train", seed=seed)
    except ValueError as err:
        raise ValueError(f"dataset={name!r}: {err}") from err
    return train.images, train.targets.clone(), list(train.classes), f"dataset:{name} (train split, seed {seed})"


def _read_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"data={str(path)!r} is not a readable .npz file: {err}") from err
    with archive:
        if "images" not in archive.files:
            raise ValueError(f"data={str(path)!r} has no 'images' array; it holds {sorted(archive.files)}")
        images = archive["images"]
        labels = archive["labels"] if "labels" in archive.files else None
        classes = archive["classes"] if "classes" in archive.files else None
    if images.dtype != np.uint8:
        raise ValueError(f"data={str(path)!r}: 'images' must be uint8 in [0, 255], got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"data={str(path)!r}: 'images' must have shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4, "
            f"got {images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"data={str(path)!r}: 'images' holds no image")
    tensor = torch.from_numpy(np.ascontiguousarray(images[..., :3])).permute(0, 3, 1, 2).contiguous()
    if labels is None:
        return tensor, None, None
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"data={str(path)!r}: 'labels' must have one entry per image ({images.shape[0]}), got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"data={str(path)!r}: 'labels' must be integers, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"data={str(path)!r}: 'labels' must be non-negative, got {int(labels.min())}")
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    num_classes = int(label_tensor.max()) + 1
    names = [str(index) for index in range(num_classes)]
    if classes is not None and classes.ndim == 1 and classes.shape[0] >= num_classes:
        names = [str(name) for name in classes.tolist()]
    return tensor, label_tensor, names


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in pattern
        if path.is_file()
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _read_folder(root: Path) -> tuple[list[np.ndarray], torch.Tensor | None, list[str] | None, int]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    class_files = {d.name: _image_files(d, recursive=True) for d in class_dirs}
    class_files = {name: files for name, files in class_files.items() if files}
    loose = _image_files(root, recursive=False)
    if class_files:
        if loose:
            warnings.warn(
                f"data={str(root)!r} has class subfolders and also {len(loose)} image file(s) at its top level; "
                "the top-level files are ignored",
                stacklevel=3,
            )
        names = sorted(class_files)
        files = [file for name in names for file in class_files[name]]
        file_labels = [index for index, name in enumerate(names) for _ in class_files[name]]
    elif loose:
        names, files, file_labels = None, loose, None
    else:
        raise ValueError(
            f"data={str(root)!r} holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)} at its top level "
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
        raise ValueError(f"none of the {len(files)} image file(s) in data={str(root)!r} could be read")
    labels = torch.tensor(kept_labels, dtype=torch.long) if names is not None else None
    return arrays, labels, names, len(bad)


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


def _resize(batch: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) to (N, C, size, size), bilinear with antialiasing when shrinking."""
    if tuple(batch.shape[-2:]) == (size, size):
        return batch
    resized = F.interpolate(batch.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8)


def _choose_size(sizes: Sequence[tuple[int, int]], source: str) -> int:
    (height, width), _ = Counter(sizes).most_common(1)[0]
    side = min(height, width)
    chosen = max(_MIN_SIZE, int(round(side / 4)) * 4)
    if chosen != side:
        warnings.warn(
            f"images from {source!r} are mostly {height}x{width}; they are resized to {chosen}x{chosen} "
            f"(the generator needs a side divisible by 4 and at least {_MIN_SIZE}); pass image_size "
            "(--image-size) to choose another size",
            stacklevel=4,
        )
    return chosen


def _conform(
    images: torch.Tensor | list[np.ndarray],
    image_size: int | None,
    channels: int | None,
    source: str,
) -> torch.Tensor:
    """One uint8 tensor (N, channels, S, S) from a tensor or a list of (H, W, C) arrays."""
    if isinstance(images, torch.Tensor):
        sizes = [tuple(images.shape[-2:])] * len(images)
        gray = _is_gray(images)
    else:
        sizes = [array.shape[:2] for array in images]
        gray = all(_is_gray(array) for array in images)
    if channels is None:
        channels = 1 if gray else 3
    if image_size is None:
        image_size = _choose_size(sizes, source)
    non_square = sum(1 for height, width in sizes if height != width)
    if non_square:
        warnings.warn(
            f"{non_square} image(s) from {source!r} are not square; they are stretched to {image_size}x{image_size}",
            stacklevel=3,
        )
    if isinstance(images, torch.Tensor):
        return _resize(_convert_channels(images, channels), image_size)
    out = torch.empty(len(images), channels, image_size, image_size, dtype=torch.uint8)
    # Images of the same size are converted together; mixed sizes one group at a time.
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, array in enumerate(images):
        groups.setdefault(array.shape, []).append(index)
    for shape, indices in groups.items():
        batch = torch.from_numpy(np.stack([images[i] for i in indices])).permute(0, 3, 1, 2)
        out[indices] = _resize(_convert_channels(batch, channels), image_size)
    return out


# --------------------------------------------------------------------------- drawing batches


class BatchSampler:
    """Draws the indices of each global batch, reproducibly and resumably.

    Args:
        num_images: images in the training set.
        batch_size: indices per batch.
        labels: class index per image (needed for ``"balanced"``).
        mode: ``"balanced"`` draws a class uniformly among the classes that
            have images, then an image of it uniformly (with replacement),
            so a tail class is seen as often as a head class;
            ``"instance"`` walks through random permutations of all images
            (every image once per epoch).
        seed: seeds the draws.

    ``state_dict()`` captures the position exactly, so a resumed run draws
    the batches an uninterrupted one would have drawn.

    Example::

        >>> sampler = BatchSampler(10, 4, mode="instance", seed=0)
        >>> first = sampler.next_batch(); state = sampler.state_dict()
        >>> second = sampler.next_batch(); sampler.load_state_dict(state)
        >>> torch.equal(sampler.next_batch(), second)
        True
    """

    def __init__(
        self,
        num_images: int,
        batch_size: int,
        *,
        labels: torch.Tensor | None = None,
        mode: str = "instance",
        seed: int = 0,
    ) -> None:
        if mode not in ("balanced", "instance"):
            raise ValueError(f"mode must be 'balanced' or 'instance', got {mode!r}")
        if num_images < 1:
            raise ValueError(f"num_images must be positive, got {num_images}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if mode == "balanced" and labels is None:
            raise ValueError("mode='balanced' needs labels; this data has none (use mode='instance')")
        if labels is not None and labels.numel() != num_images:
            raise ValueError(f"labels must have one entry per image ({num_images}), got {labels.numel()}")
        self.num_images = num_images
        self.batch_size = batch_size
        self.mode = mode
        self.rng = torch.Generator().manual_seed(derive_seed(seed, "batches"))
        if mode == "balanced":
            assert labels is not None
            counts = torch.bincount(labels.long().cpu())
            self._order = torch.argsort(labels.long().cpu(), stable=True)  # image indices grouped by class
            starts = torch.cumsum(counts, 0) - counts
            present = torch.nonzero(counts).flatten()
            self._counts = counts[present]
            self._starts = starts[present]
        self._permutation = torch.empty(0, dtype=torch.long)
        self._position = 0

    def next_batch(self) -> torch.Tensor:
        """The next ``batch_size`` image indices (a LongTensor on the CPU)."""
        if self.mode == "balanced":
            classes = torch.randint(len(self._counts), (self.batch_size,), generator=self.rng)
            counts = self._counts[classes]
            offsets = (torch.rand(self.batch_size, generator=self.rng, dtype=torch.float64) * counts).long()
            offsets = torch.minimum(offsets, counts - 1)
            return self._order[self._starts[classes] + offsets]
        chunks = []
        needed = self.batch_size
        while needed:
            if self._position >= len(self._permutation):
                self._permutation = torch.randperm(self.num_images, generator=self.rng)
                self._position = 0
            take = min(needed, len(self._permutation) - self._position)
            chunks.append(self._permutation[self._position : self._position + take])
            self._position += take
            needed -= take
        return torch.cat(chunks)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.get_state(),
            "permutation": self._permutation.clone(),
            "position": self._position,
            "mode": self.mode,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode") != self.mode:
            raise ValueError(f"sampler state is for mode {state.get('mode')!r}, this sampler is {self.mode!r}")
        self.rng.set_state(state["rng"])
        self._permutation = state["permutation"].clone()
        self._position = int(state["position"])
