"""Types shared across gitaug's modules."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Transform"]


@runtime_checkable
class Transform(Protocol):
    """Anything that maps an image tensor to an image tensor of the same shape.

    Nuisances (:class:`gitaug.datasets.RandomRotation`, ...), a
    :class:`gitaug.GITAugment` and plain functions all qualify. Random
    transforms may take a keyword ``generator`` (a ``torch.Generator``) for
    reproducible draws.
    """

    def __call__(self, images: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor: ...
