"""Types shared across gitaug's modules."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Transform", "SelectionRule"]


@runtime_checkable
class Transform(Protocol):
    """Anything that maps an image tensor to an image tensor of the same shape.

    Nuisances (:class:`gitaug.datasets.RandomRotation`, ...), a
    :class:`gitaug.GITAugment` and plain functions all qualify. Random
    transforms may take a keyword ``generator`` (a ``torch.Generator``) for
    reproducible draws.
    """

    def __call__(self, images: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor: ...


@runtime_checkable
class SelectionRule(Protocol):
    """Maps the class indices of a batch ``(N,)`` to a boolean mask ``(N,)`` of samples to re-draw.

    :class:`gitaug.ClassThresholdSampler` is the paper's rule; any callable with
    this signature can take its place in :class:`gitaug.GITAugment`.
    """

    def __call__(self, labels: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor: ...
