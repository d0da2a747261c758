"""Training images for ``gitaug-fit``: reading them and drawing batches.

The generator is fitted on every training image pooled together; labels, when
known, only steer the sampling (class-balanced by default, as in the paper)
and the statistics and sample grids of the run.

Images are read through :mod:`gitaug.datasets` (a built-in dataset's training
split, an image folder with or without class subfolders, or an ``.npz``), made
uniform (one square size, one channel count) and held in memory as an
:class:`~gitaug.datasets.ImageDataset`: the datasets GIT targets are small,
and batches become floats in [-1, 1] only when drawn.

Example::

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, images=np.zeros((6, 20, 20), np.uint8), labels=np.array([0, 0, 0, 0, 1, 2]))
    >>> data = read_training_data(data=path)
    >>> tuple(data.images.shape), data.class_counts.tolist()
    ((6, 1, 20, 20), [4, 1, 1])
    >>> stream = IndexStream(len(data), 4, labels=data.targets, mode="balanced", seed=0)
    >>> stream.next_batch().shape
    torch.Size([4])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._seeding import derive_seed
from ..datasets import ImageDataset, load
from ..datasets.files import conform_images, read_image_files, read_npz

__all__ = ["read_training_data", "to_model_range", "IndexStream"]


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] to floats in [-1, 1], the generator's range.

    Example::

        >>> to_model_range(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
        [-1.0, 1.0]
    """
    return images.float().div(127.5).sub(1.0)


def read_training_data(
    *,
    dataset: str | None = None,
    data: str | os.PathLike | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Read the training images from a built-in ``dataset`` name or a ``data`` path.

    Args:
        dataset: a name :func:`gitaug.datasets.load` knows (training split,
            built with ``seed``).
        data: an image folder (class subfolders), a flat folder of images, or an ``.npz``.
        image_size: the square side to resize to; ``None`` takes the most
            common size of the data, rounded to what the generator accepts
            (:func:`gitaug.datasets.files.choose_image_size`).
        channels: 1 or 3; ``None`` is 1 when every image is gray, else 3.
        seed: passed to the built-in dataset.

    Returns an :class:`~gitaug.datasets.ImageDataset` whose ``labelled`` is
    ``False`` for images without labels. Unreadable image files are skipped
    with a warning (``skipped`` counts them); a source with no usable image
    is an error.
    """
    if (dataset is None) == (data is None):
        raise ValueError(f"give exactly one of dataset and data, got dataset={dataset!r}, data={data!r}")
    skipped = 0
    if dataset is not None:
        try:
            train = load(dataset, split="train", seed=seed)
        except ValueError as err:
            raise ValueError(f"dataset={dataset!r}: {err}") from err
        images, labels, names = train.images, train.targets.clone(), list(train.classes)
        source = f"dataset:{dataset} (train split, seed {seed})"
    else:
        path = Path(data)  # type: ignore[arg-type]
        if path.is_file() and path.suffix.lower() == ".npz":
            images, labels, names, _ = _with_data_name(read_npz, path)
        elif path.is_dir():
            images, labels, names, skipped = _with_data_name(read_image_files, path)
        elif path.exists():
            raise ValueError(f"data={str(path)!r} is neither a folder of images nor an .npz file")
        else:
            raise FileNotFoundError(f"data={str(path)!r} does not exist")
        source = str(path)
    uniform = conform_images(images, image_size, channels, source)
    return ImageDataset(uniform, labels, names, source=source, skipped=skipped)


def _with_data_name(reader: Any, path: Path) -> Any:
    """Run a reader, naming the ``data`` argument in its errors."""
    try:
        return reader(path)
    except ValueError as err:
        message, named = str(err), repr(str(path))
        if named in message:
            raise ValueError(message.replace(named, f"data={named}", 1)) from err
        raise ValueError(f"data={named}: {message}") from err


# --------------------------------------------------------------------------- drawing batches


class IndexStream:
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

        >>> stream = IndexStream(10, 4, mode="instance", seed=0)
        >>> first = stream.next_batch(); state = stream.state_dict()
        >>> second = stream.next_batch(); stream.load_state_dict(state)
        >>> torch.equal(stream.next_batch(), second)
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
            raise ValueError(f"index stream state is for mode {state.get('mode')!r}, this stream is {self.mode!r}")
        self.rng.set_state(state["rng"])
        self._permutation = state["permutation"].clone()
        self._position = int(state["position"])
