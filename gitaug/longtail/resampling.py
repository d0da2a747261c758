"""Class-balanced and deferred re-sampling for long-tailed training.

Both samplers are ordinary ``torch.utils.data.Sampler`` objects: pass one as
``DataLoader(dataset, sampler=...)``. Their draws depend only on ``seed`` and
the epoch number, so a run can be repeated exactly. ``set_epoch(epoch)`` sets
the epoch of the next pass; a pass started without a new ``set_epoch`` takes
the epoch after the previous pass's, so calling ``set_epoch`` each epoch is
optional (but needed to resume a run from a checkpoint). During a pass,
``sampler.epoch`` is that pass's epoch.

* :class:`ClassBalancedSampler` draws items with replacement, with weight
  ``1 / N_c`` for an item of class ``c``: every class is equally likely.
* :class:`DeferredResampler` (DRS) visits the items in a random order
  (instance sampling) before ``start_epoch`` and samples class-balanced from
  then on, as in the paper's CE+DRS baseline; GIT is switched on at the same
  epoch.

Distributed training (DDP): both samplers take ``num_replicas`` and ``rank``
(by default the world size and rank of ``torch.distributed`` when it is
initialised, else 1 and 0). Every process makes the *same* global draw for an
epoch (it depends only on ``seed`` and the epoch, so call ``set_epoch`` on every
rank alike) and keeps every ``num_replicas``-th position of it, starting at
``rank``: the shares are disjoint and together they are the single-process
draw of the same seed. When ``num_replicas`` does not divide the draw's length,
the draw is first padded with its own first positions up to the next multiple,
as ``torch.utils.data.DistributedSampler`` does (``drop_last=False``), so every
rank gets ``ceil(length / num_replicas)`` indices and a few items are seen twice
that epoch. ``len(sampler)`` is the per-rank length.

Example::

    >>> sampler = DeferredResampler([0] * 90 + [1] * 10, start_epoch=2, seed=0)
    >>> active = []
    >>> for epoch in range(3):
    ...     indices = list(sampler)          # one pass = one epoch
    ...     active.append(sampler.resampling_active)
    >>> active
    [False, False, True]
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from .._seeding import derive_seed

__all__ = ["ClassBalancedSampler", "DeferredResampler", "class_balanced_weights"]


def _as_labels(labels: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(labels))
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        raise ValueError("labels must be whole numbers (class indices)")
    tensor = tensor.long()
    if int(tensor.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices, got minimum {int(tensor.min())}")
    return tensor


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_epoch(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``, filling what is not given from an initialised ``torch.distributed``."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    num_replicas = _check_count("num_replicas", num_replicas)
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be an integer in [0, num_replicas={num_replicas}), got {rank!r}")
    return num_replicas, int(rank)


def _share(draw: torch.Tensor, num_replicas: int, rank: int) -> torch.Tensor:
    """This rank's positions of one global draw, padded as ``DistributedSampler`` pads (see the module docstring)."""
    if num_replicas == 1:
        return draw
    per_rank = -(-draw.numel() // num_replicas)  # ceil division
    padding = per_rank * num_replicas - draw.numel()
    if padding:
        repeats = -(-padding // draw.numel())  # a draw shorter than the padding repeats whole
        draw = torch.cat([draw, draw.repeat(repeats)[:padding]])
    return draw[rank::num_replicas]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # derive_seed mixes (seed, epoch) so that neighbouring seeds and epochs give unrelated draws.
    return torch.Generator().manual_seed(derive_seed(seed, epoch))


class _EpochMixin:
    """Epoch bookkeeping shared by the samplers (see the module docstring)."""

    epoch: int = 0
    _pass_started: bool = False

    def set_epoch(self, epoch: int) -> None:
        """Chooses the epoch of the next pass (and of ``epoch`` until then)."""
        self.epoch = _check_epoch("epoch", epoch)
        self._pass_started = False

    def _start_pass(self) -> int:
        if self._pass_started:
            self.epoch += 1
        self._pass_started = True
        return self.epoch


def class_balanced_weights(
    labels: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int | None = None
) -> torch.Tensor:
    """Per-item sampling weights ``1 / N_c`` (float64), which make every class equally likely.

    With ``num_classes`` given, a class without items raises a ``ValueError``,
    because balanced sampling could never reach it.

    Example::

        >>> class_balanced_weights([0, 0, 0, 1]).tolist()
        [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 1.0]
    """
    label_tensor = _as_labels(labels)
    if num_classes is not None:
        num_classes = _check_count("num_classes", num_classes)
        if int(label_tensor.max()) >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got maximum {int(label_tensor.max())}")
    counts = torch.bincount(label_tensor, minlength=num_classes or 0)
    if num_classes is not None and (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"classes {empty} have no items; class-balanced sampling cannot draw them")
    return 1.0 / counts[label_tensor].double()


class ClassBalancedSampler(_EpochMixin, Sampler[int]):
    """Draws item indices with replacement, each class with the same probability.

    Args:
        labels: class index of every item of the dataset.
        num_samples: indices per epoch (default ``len(labels)``).
        seed: seeds every epoch's draw.
        num_classes: if given, checks that labels lie below it and that no
            class is empty.
        num_replicas: processes sharing each epoch's draw (default: the
            ``torch.distributed`` world size when initialised, else 1);
            ``num_samples`` counts the whole draw, over all of them.
        rank: this process's share (default: its ``torch.distributed`` rank, else 0).

    Example::

        >>> sampler = ClassBalancedSampler([0] * 95 + [1] * 5, num_samples=1000, seed=0)
        >>> drawn = torch.tensor([0] * 95 + [1] * 5)[list(sampler)]
        >>> 0.4 < drawn.float().mean().item() < 0.6
        True
        >>> halves = [ClassBalancedSampler([0] * 95 + [1] * 5, num_samples=1000, seed=0, num_replicas=2, rank=r)
        ...           for r in (0, 1)]
        >>> len(halves[0]), list(halves[0])[:2] + list(halves[1])[:1] == list(sampler)[:3]
        (500, True)
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        num_samples: int | None = None,
        seed: int = 0,
        num_classes: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.labels = _as_labels(labels)
        self.weights = class_balanced_weights(self.labels, num_classes)
        self.num_samples = len(self.labels) if num_samples is None else _check_count("num_samples", num_samples)
        self.seed = _check_epoch("seed", seed)
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.num_samples // self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        generator = _epoch_generator(self.seed, self._start_pass())
        drawn = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        return iter(_share(drawn, self.num_replicas, self.rank).tolist())


class DeferredResampler(_EpochMixin, Sampler[int]):
    """Deferred re-sampling (DRS): instance sampling first, class-balanced from ``start_epoch``.

    Before ``start_epoch`` a pass is a random permutation of all items (each
    seen once); from ``start_epoch`` on it draws ``num_samples`` items with
    replacement and weights ``1 / N_c``.

    Args:
        labels: class index of every item.
        start_epoch: first epoch (counting from 0) with class-balanced
            sampling; 0 re-samples from the start.
        num_samples: indices per re-sampled epoch (default ``len(labels)``).
        seed: seeds every epoch's order or draw.
        num_classes: optional check, as for :class:`ClassBalancedSampler`.
        num_replicas, rank: share each epoch's order or draw among processes,
            as for :class:`ClassBalancedSampler` (default: from ``torch.distributed``).

    Example::

        sampler = DeferredResampler(train.targets, start_epoch=30, seed=0)
        loader = DataLoader(train, batch_size=128, sampler=sampler)
        for epoch in range(50):
            sampler.set_epoch(epoch)
            augment_tail = sampler.resampling_active   # delayed GIT starts with DRS
            for images, labels in loader:
                ...
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        start_epoch: int,
        num_samples: int | None = None,
        seed: int = 0,
        num_classes: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.labels = _as_labels(labels)
        self.start_epoch = _check_epoch("start_epoch", start_epoch)
        self.seed = _check_epoch("seed", seed)
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.balanced = ClassBalancedSampler(self.labels, num_samples, self.seed, num_classes, self.num_replicas, self.rank)
        self.epoch = 0

    @property
    def resampling_active(self) -> bool:
        """Whether the current epoch (see ``epoch``) samples class-balanced."""
        return self.epoch >= self.start_epoch

    def __len__(self) -> int:
        return len(self.balanced) if self.resampling_active else -(-len(self.labels) // self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        epoch = self._start_pass()
        if epoch >= self.start_epoch:
            self.balanced.set_epoch(epoch)
            return iter(self.balanced)
        order = torch.randperm(len(self.labels), generator=_epoch_generator(self.seed, epoch))
        return iter(_share(order, self.num_replicas, self.rank).tolist())
