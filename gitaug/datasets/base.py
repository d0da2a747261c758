"""The dataset class every loader in :mod:`gitaug.datasets` returns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._files import atomic_write
from .._typing import Transform

__all__ = ["ImageDataset"]



class ImageDataset(Dataset):
    """Labelled images held in memory as one uint8 tensor.

    Attributes:
        images: uint8 tensor (N, C, H, W).
        targets: LongTensor (N,) of class indices.
        classes: class names, ``num_classes`` of them.
        class_counts: LongTensor (num_classes,), images per class.
        num_classes: number of classes (including classes with no image).
        transform: optional callable applied by ``__getitem__`` to the float
            image with a batch axis added, ``transform(x[None])[0]``; both the
            package's transformations and torchvision v2 transforms fit.
        base_indices: optional LongTensor (N,), which source image each item
            was made from (several items share one when images are reused
            under different nuisance draws). Splits of the built-in datasets
            never share base images.
        labelled: ``False`` for images without labels (a flat folder, an
            ``.npz`` without ``labels``): ``targets`` is then all ``-1``
            (as torchvision's unlabelled splits), ``classes`` is empty and
            ``class_counts`` is ``None``.
        source: where the images came from (a path or a dataset name), for
            run metadata; ``""`` when unknown.
        skipped: image files that could not be read when the dataset was loaded.

    ``dataset[i]`` returns ``(image, label)``: a float (C, H, W) tensor in
    [0, 1] after ``transform``, and an ``int``.

    Example::

        >>> ds = ImageDataset(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1]))
        >>> ds.class_counts.tolist(), ds[0][0].shape
        ([1, 2], torch.Size([1, 8, 8]))
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        targets: torch.Tensor | np.ndarray | Sequence[int] | None,
        classes: Sequence[str] | None = None,
        transform: Transform | None = None,
        base_indices: torch.Tensor | np.ndarray | Sequence[int] | None = None,
        *,
        source: str = "",
        skipped: int = 0,
    ) -> None:
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} of shape {tuple(images.shape)}")
        self.labelled = targets is not None
        self.source, self.skipped = str(source), int(skipped)
        if targets is None:
            targets, classes = torch.full((images.shape[0],), -1, dtype=torch.long), []
        targets = torch.as_tensor(np.asarray(targets)).long().flatten()
        if targets.numel() != images.shape[0]:
            raise ValueError(f"targets must have one label per image ({images.shape[0]}), got {targets.numel()}")
        if classes is None:
            num_classes = int(targets.max()) + 1 if targets.numel() else 0
            classes = [str(c) for c in range(num_classes)]
        classes = [str(name) for name in classes]
        if self.labelled and targets.numel() and (targets.min() < 0 or targets.max() >= len(classes)):
            raise ValueError(
                f"targets must lie in [0, {len(classes)}) for {len(classes)} classes, "
                f"got values in [{int(targets.min())}, {int(targets.max())}]"
            )
        if base_indices is not None:
            base_indices = torch.as_tensor(np.asarray(base_indices)).long().flatten()
            if base_indices.numel() != images.shape[0]:
                raise ValueError(f"base_indices must have one entry per image ({images.shape[0]}), got {base_indices.numel()}")
        self.images = images
        self.targets = targets
        self.classes = classes
        self.transform = transform
        self.base_indices = base_indices
        self.class_counts = torch.bincount(targets, minlength=len(classes)) if self.labelled else None

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255)
        if self.transform is not None:
            image = self.transform(image.unsqueeze(0))[0]
        return image, int(self.targets[index])

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return f"{type(self).__name__}({len(self)} images of {c}x{h}x{w}, {self.num_classes} classes)"

    def float_images(self) -> torch.Tensor:
        """All images as one float tensor (N, C, H, W) in [0, 1], without ``transform``.

        Example::

            >>> ImageDataset(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), [0]).float_images().max().item()
            1.0
        """
        return self.images.float() / 255

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageDataset":
        """A new dataset with the items at ``indices`` (repeats allowed), same classes and transform.

        Example::

            >>> ds = ImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), [0, 0, 1, 1])
            >>> ds.subset([0, 2, 2]).class_counts.tolist()
            [1, 2]
        """
        index = torch.as_tensor(np.asarray(indices)).long().flatten()
        base = self.base_indices[index] if self.base_indices is not None else index
        targets = self.targets[index] if self.labelled else None
        return ImageDataset(
            self.images[index], targets, self.classes, self.transform, base, source=self.source, skipped=self.skipped
        )

    def to_npz(self, path: str | os.PathLike) -> Path:
        """Writes ``images`` (N, H, W) or (N, H, W, C) uint8, ``labels``, ``classes`` (and ``base_indices``).

        The file is written next to ``path`` under a temporary name and then
        renamed, so a reader never sees a half-written file. The path is used
        as given (no ``.npz`` is appended).

        Example::

            ds.to_npz("digits-bg-lt-train.npz")
            again = ImageDataset.from_npz("digits-bg-lt-train.npz")
        """
        path = Path(path)
        images = self.images.permute(0, 2, 3, 1).numpy()
        if images.shape[-1] == 1:
            images = images[..., 0]
        arrays = {
            "images": np.ascontiguousarray(images),
            "classes": np.array(self.classes, dtype=str),
        }
        if self.labelled:
            arrays["labels"] = self.targets.numpy().astype(np.int64)
        if self.base_indices is not None:
            arrays["base_indices"] = self.base_indices.numpy().astype(np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(temporary: str) -> None:
            # Through a file object: given a name, numpy would append ".npz" to the temporary file's.
            with open(temporary, "wb") as file:
                np.savez_compressed(file, **arrays)

        atomic_write(path, write)
        return path

    @classmethod
    def from_npz(cls, path: str | os.PathLike, transform: Transform | None = None) -> "ImageDataset":
        """Reads a file written by :meth:`to_npz` (or any npz with uint8 ``images`` and ``labels``).

        ``images`` may be (N, H, W) (grey) or (N, H, W, C); ``classes`` and
        ``base_indices`` are optional.

        Example::

            ds = ImageDataset.from_npz("digits-bg-lt-train.npz")
        """
        from .files import read_npz

        images, labels, classes, base = read_npz(path)
        if labels is None:
            raise ValueError(f"{str(path)!r} has no 'labels' array; an unlabelled .npz is read by gitaug-fit --data")
        return cls(images, labels, classes, transform, base, source=str(path))
