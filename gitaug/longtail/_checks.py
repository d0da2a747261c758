"""Argument checks shared by the long-tail losses, heads and hierarchy metrics.

Each check raises a ``TypeError`` or ``ValueError`` that names the argument and the
value received, so every public function in :mod:`gitaug.longtail` reports bad input
the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

CountsLike = Sequence[float] | torch.Tensor
REDUCTIONS = ("mean", "sum", "none")


def as_class_counts(class_counts: CountsLike, name: str = "class_counts") -> torch.Tensor:
    """Returns the counts as a float64 1-D tensor after checking them."""
    if isinstance(class_counts, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {type(class_counts).__name__}")
    try:
        counts = torch.as_tensor(class_counts)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {class_counts!r}") from error
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {counts.dtype}")
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    counts = counts.detach().to(device="cpu", dtype=torch.float64)
    finite = torch.isfinite(counts)
    if not finite.all():
        bad = int(torch.nonzero(~finite)[0])
        raise ValueError(f"{name} must be finite, got {counts[bad].item()} at index {bad}")
    positive = counts > 0
    if not positive.all():
        bad = int(torch.nonzero(~positive)[0])
        value = counts[bad].item()
        shown = int(value) if float(value).is_integer() else value
        raise ValueError(f"{name} must all be positive, got {shown} at index {bad}")
    return counts


def check_number(
    value: float,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Checks that ``value`` is a finite real number inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_labels(
    labels: torch.Tensor, num_classes: int, num_samples: int | None = None, name: str = "labels"
) -> None:
    """Checks that ``labels`` is a 1-D integer tensor with values in ``[0, num_classes)``."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,), got shape {tuple(labels.shape)}")
    if num_samples is not None and labels.shape[0] != num_samples:
        raise ValueError(f"{name} must have length N={num_samples} (one per batch row), got {labels.shape[0]}")
    if labels.numel() == 0:
        return
    # One reduction instead of two keeps the device round-trips to a minimum.
    outside = (labels < 0) | (labels >= num_classes)
    if bool(outside.any()):
        bad = int(torch.nonzero(outside)[0])
        raise ValueError(
            f"{name} must be in [0, {num_classes}), got {int(labels[bad])} at index {bad}"
        )


def check_logits(logits: torch.Tensor, num_classes: int, name: str = "logits") -> None:
    """Checks that ``logits`` is a floating-point ``(N, num_classes)`` tensor."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"{name} must have shape (N, {num_classes}), got {tuple(logits.shape)}")


def check_logits_and_labels(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    check_logits(logits, num_classes)
    check_labels(labels, num_classes, num_samples=logits.shape[0])


def reduce_loss(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
