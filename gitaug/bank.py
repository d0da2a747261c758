"""A bank of precomputed GIT draws for the tail classes, so GIT in the training loop costs a copy.

Tail classes are small by definition (CIFAR-10-LT with K = 500 has 891 tail
images), so ``V`` generated versions of every tail image fit in memory
(891 x 8 x 3x32x32 uint8 = 22 MB). :class:`TailBank` draws them once with a
:class:`~gitaug.GITAugment`, then replaces the samples its sampler selects
by one of their ``V`` versions, picked at random: a gather instead of a
generator pass. The bank can be re-drawn every few epochs.

Example::

    >>> import torch
    >>> from gitaug import ClassThresholdSampler, GITAugment, MUNITConfig, MUNITGenerator
    >>> from gitaug.bank import TailBank
    >>> generator = MUNITGenerator(MUNITConfig.preset("small", in_channels=1, image_size=28))
    >>> images, labels = torch.rand(30, 1, 28, 28), torch.tensor([0] * 25 + [1] * 5)
    >>> sampler = ClassThresholdSampler.from_labels(labels, threshold=10, p=0.5)
    >>> bank = TailBank(GITAugment(generator, sampler), images, labels, draws=4)
    >>> batch, batch_labels, indices = images[20:], labels[20:], torch.arange(20, 30)
    >>> out, same = bank(batch, batch_labels, indices, generator=torch.Generator().manual_seed(0))
    >>> torch.equal(out[:5], batch[:5])     # class 0 is above the threshold: never replaced
    True
    >>> bank.nbytes                         # 5 tail images x 4 draws x 28 x 28 floats
    62720
"""

from __future__ import annotations

from typing import Any

import torch

from .augment import GITAugment

__all__ = ["TailBank"]


class TailBank:
    """``V`` precomputed generator draws of every tail-class training image, served by index.

    The images eligible for GIT are those of classes the augment's
    :class:`~gitaug.ClassThresholdSampler` can select (probability > 0);
    without a sampler, every image. Each gets ``draws`` versions, made with
    the augment's generator (its ``dtype`` and device) in batches of
    ``batch_size``; the bank keeps them in the images' own dtype (uint8
    images make a compact bank) on ``storage_device``.

    Calling ``bank(images, labels, indices)`` does what
    ``augment(images, labels)`` does, with the dataset ``indices`` of the
    batch's samples: the sampler picks the samples to replace (the same
    rule and probabilities), and each is replaced by one of its bank
    versions, chosen uniformly. Other samples come back bit-identical; the
    labels come back unchanged. The bank is drawn on the first call (so a
    bank for delayed GIT costs nothing before GIT starts) or by
    :meth:`refresh`.

    Args:
        augment: a :class:`~gitaug.GITAugment`; its generator, sampler and
            input format (value range, ``mean``/``std``) are used.
        images: the whole training set as the loop sees it, ``(N, C, H, W)``
            float or uint8, in the format ``augment`` takes.
        labels: class indices ``(N,)``.
        draws: versions per tail image (``V``).
        refresh_every: re-draw the bank every this many epochs (see
            :meth:`set_epoch`); ``None`` keeps the first draws.
        batch_size: images per generator call while drawing.
        storage_device: where the bank lives (default: the images' device).
        enabled: when ``False`` the bank is the identity (switch it on for
            delayed GIT, as with ``GITAugment.enabled``).

    Memory: ``nbytes`` = tail images x ``draws`` x C x H x W x bytes per value.
    """

    def __init__(
        self,
        augment: GITAugment,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        draws: int = 8,
        refresh_every: int | None = None,
        batch_size: int = 256,
        storage_device: torch.device | str | None = None,
        enabled: bool = True,
    ) -> None:
        if not isinstance(augment, GITAugment):
            raise TypeError(f"augment must be a GITAugment, got {type(augment).__name__}")
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.numel() != images.shape[0]:
            raise ValueError(f"labels must be (N,) with N = {images.shape[0]} images, got shape {tuple(labels.shape)}")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        if refresh_every is not None and (
            isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1
        ):
            raise ValueError(f"refresh_every must be a positive integer or None, got {refresh_every!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.augment = augment
        self.draws = draws
        self.refresh_every = refresh_every
        self.batch_size = batch_size
        self.enabled = bool(enabled)
        self.storage_device = torch.device(storage_device) if storage_device is not None else images.device

        sampler = augment.sampler
        labels = labels.long().cpu()
        if sampler is None:
            eligible = torch.ones_like(labels, dtype=torch.bool)
        else:
            if int(labels.min()) < 0 or int(labels.max()) >= sampler.num_classes:
                raise ValueError(f"labels must lie in [0, {sampler.num_classes}), got {int(labels.min())}..{int(labels.max())}")
            eligible = sampler.probabilities[labels] > 0
        #: Dataset indices of the images in the bank, in bank-row order.
        self.indices = eligible.nonzero().flatten()
        # Dataset index -> bank row (-1: never replaced).
        self._row_of = torch.full((labels.numel(),), -1, dtype=torch.long)
        self._row_of[self.indices] = torch.arange(self.indices.numel())
        self._sources = images[self.indices.to(images.device)]
        self.bank: torch.Tensor | None = None
        self._drawn_at_epoch = 0
        self._epoch = 0

    @property
    def nbytes(self) -> int:
        """Bytes the bank takes once drawn: rows x draws x C x H x W x element size."""
        return self.indices.numel() * self.draws * self._sources[0].numel() * self._sources.element_size()

    @torch.no_grad()
    def refresh(self, generator: torch.Generator | None = None) -> None:
        """Draw (or re-draw) all ``draws`` versions of every bank image."""
        rows, draws = self.indices.numel(), self.draws
        bank = torch.empty((rows, draws, *self._sources.shape[1:]), dtype=self._sources.dtype, device=self.storage_device)
        for start in range(0, rows, self.batch_size):
            chunk = self._sources[start : start + self.batch_size]
            for version in range(draws):
                bank[start : start + chunk.shape[0], version] = self.augment._generate(chunk, generator).to(self.storage_device)
        self.bank = bank
        self._drawn_at_epoch = self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Tell the bank the epoch; it re-draws when ``refresh_every`` epochs have passed since its draws."""
        self._epoch = int(epoch)
        if self.bank is not None and self.refresh_every is not None and epoch - self._drawn_at_epoch >= self.refresh_every:
            self.refresh()

    def __call__(
        self,
        images: torch.Tensor,
        labels: Any,
        indices: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Replace the selected samples of a batch by bank versions; returns ``(images, labels)``.

        Args:
            images: the batch, ``(B, C, H, W)``, in the format of the bank's images.
            labels: class indices ``(B,)``, returned unchanged.
            indices: each sample's index in the training set the bank was built from, ``(B,)``.
            generator: seeds the selection and the choice of version.
        """
        if not self.enabled:
            return images, labels
        indices = torch.as_tensor(indices).long().cpu()
        label_indices = torch.as_tensor(labels).long().cpu()
        if images.dim() != 4 or indices.shape != (images.shape[0],) or label_indices.shape != (images.shape[0],):
            raise ValueError(
                f"images must be (B, C, H, W) with (B,) labels and indices, got {tuple(images.shape)}, "
                f"{tuple(label_indices.shape)} and {tuple(indices.shape)}"
            )
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self._row_of.numel()):
            raise ValueError(f"indices must lie in [0, {self._row_of.numel()}), got {int(indices.min())}..{int(indices.max())}")
        if self.bank is None:
            self.refresh()
        if self.augment.sampler is None:
            mask = torch.ones(images.shape[0], dtype=torch.bool)
        else:
            mask = self.augment.sampler(label_indices, generator=generator).cpu()
        rows = self._row_of[indices]
        mask &= rows >= 0  # a sample outside the bank (its class is never selected) stays as it is
        selected = mask.nonzero().flatten()
        if selected.numel() == 0:
            return images, labels
        draw_device = generator.device if generator is not None else torch.device("cpu")
        version = torch.randint(self.draws, (selected.numel(),), generator=generator, device=draw_device).cpu()
        rows_here, version = rows[selected].to(self.storage_device), version.to(self.storage_device)
        replacement = self.bank[rows_here, version].to(device=images.device, dtype=images.dtype, non_blocking=True)
        out = images.clone()
        out.index_copy_(0, selected.to(images.device, non_blocking=True), replacement)
        return out, labels

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(images={self.indices.numel()}, draws={self.draws}, "
            f"refresh_every={self.refresh_every}, nbytes={self.nbytes}, drawn={self.bank is not None})"
        )
