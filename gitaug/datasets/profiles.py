"""Long-tailed class-size profiles and subsampling a labelled set to one.

A *profile* is a list of per-class image counts ordered from the largest class
to the smallest. :func:`subsample_to_profile` then picks image indices so that
every class gets exactly its count, assigning the counts to classes in an order
shuffled by a seed (the paper draws a new class order for every K49-LT
instance; CIFAR-LT keeps class 0 as the largest).

Rounding: both profiles round *down* (``floor``) by default, after adding a
tiny tolerance so that values such as ``5000 * 0.01 = 49.999...`` still give
50. Flooring reproduces the CIFAR-10-LT counts used throughout the literature
(5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50; 12,406 images for
imbalance 100). ``rounding="nearest"`` rounds halves up instead.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

__all__ = ["exponential_profile", "zipf_profile", "subsample_to_profile"]

_ROUNDINGS = ("floor", "nearest")
# Guards floor() against products like 49.99999999 that mean 50.
_FLOOR_TOLERANCE = 1e-9


def _check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _round(value: float, rounding: str) -> int:
    if rounding == "floor":
        return int(math.floor(value + _FLOOR_TOLERANCE))
    return int(math.floor(value + 0.5))


def _check_rounding(rounding: str) -> None:
    if rounding not in _ROUNDINGS:
        raise ValueError(f"rounding must be one of {_ROUNDINGS}, got {rounding!r}")


def exponential_profile(
    num_classes: int, max_count: int, imbalance: float, rounding: str = "floor"
) -> list[int]:
    """Per-class counts ``n_c = max_count * imbalance ** (-c / (num_classes - 1))``.

    This is the CIFAR-LT profile: class 0 holds ``max_count`` images and the
    last class ``max_count / imbalance``. Counts are rounded down (see the
    module docstring) and never fall below 1.

    Args:
        num_classes: number of classes ``C`` (>= 1).
        max_count: size of the largest class (>= 1).
        imbalance: ratio ``rho`` of the largest to the smallest class (>= 1).
        rounding: ``"floor"`` (default) or ``"nearest"``.

    Example::

        >>> exponential_profile(10, 500, 100)
        [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    """
    num_classes = _check_positive_int("num_classes", num_classes)
    max_count = _check_positive_int("max_count", max_count)
    if isinstance(imbalance, bool) or not isinstance(imbalance, (int, float)) or not math.isfinite(imbalance) or imbalance < 1:
        raise ValueError(f"imbalance must be a finite number >= 1, got {imbalance!r}")
    _check_rounding(rounding)
    if num_classes == 1:
        return [max_count]
    return [
        max(1, _round(max_count * imbalance ** (-c / (num_classes - 1)), rounding))
        for c in range(num_classes)
    ]


def zipf_profile(
    num_classes: int,
    alpha: float = 2.0,
    max_count: int = 4800,
    min_count: int = 5,
    rounding: str = "floor",
) -> list[int]:
    """Per-class counts ``n_k = max(min_count, max_count / (k + 1) ** alpha)``.

    This is the K49-LT profile (Zipf's law with ``alpha = 2``, largest class
    4800, smallest class floored at 5). Counts are rounded down (see the module
    docstring) before the floor ``min_count`` is applied.

    Args:
        num_classes: number of classes (>= 1).
        alpha: Zipf exponent (>= 0; 0 gives a balanced profile).
        max_count: size of the largest class (>= 1).
        min_count: smallest allowed class size (1 <= min_count <= max_count).
        rounding: ``"floor"`` (default) or ``"nearest"``.

    Example::

        >>> zipf_profile(6, alpha=2.0, max_count=4800, min_count=5)
        [4800, 1200, 533, 300, 192, 133]
    """
    num_classes = _check_positive_int("num_classes", num_classes)
    max_count = _check_positive_int("max_count", max_count)
    min_count = _check_positive_int("min_count", min_count)
    if min_count > max_count:
        raise ValueError(f"min_count must not exceed max_count={max_count}, got {min_count}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    _check_rounding(rounding)
    return [max(min_count, _round(max_count / (k + 1) ** alpha, rounding)) for k in range(num_classes)]


def subsample_to_profile(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    counts: Sequence[int],
    seed: int = 0,
    shuffle_class_order: bool = True,
    allow_reuse: bool = False,
) -> torch.Tensor:
    """Indices into ``labels`` giving exactly ``counts`` images per class.

    ``counts`` lists sizes from the largest class to the smallest (as the
    profile functions return them). With ``shuffle_class_order`` the seed draws
    which class receives which size; otherwise class ``c`` receives
    ``counts[c]``. Within a class the images are a seeded random choice.

    When a class needs more images than it has, ``allow_reuse=True`` takes
    every image once, then again, in fresh random orders, until the count is
    reached (so each image appears ``floor`` or ``ceil`` of ``count / have``
    times); pair this with a fresh nuisance draw per copy, as K49-LT did.

    Args:
        labels: class index per image, values in ``[0, len(counts))``.
        counts: images wanted per class rank, non-negative integers.
        seed: seeds the class order and the choice within each class.
        shuffle_class_order: randomise which class gets which count.
        allow_reuse: let a class repeat images instead of raising.

    Returns:
        A LongTensor of indices, grouped by class in class-index order.

    Example::

        >>> labels = torch.arange(10).repeat_interleave(20)
        >>> idx = subsample_to_profile(labels, [20, 10, 5, 5, 5, 5, 5, 5, 5, 5], seed=0)
        >>> sorted(torch.bincount(labels[idx]).tolist(), reverse=True)[:3]
        [20, 10, 5]
    """
    label_tensor = torch.as_tensor(np.asarray(labels)).long().flatten()
    counts_list = [int(c) for c in counts]
    num_classes = len(counts_list)
    if num_classes == 0:
        raise ValueError("counts must list at least one class, got an empty sequence")
    if any(c < 0 for c in counts_list):
        raise ValueError(f"counts must be non-negative, got {counts_list}")
    if label_tensor.numel() and (label_tensor.min() < 0 or label_tensor.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}) to match len(counts)={num_classes}, "
            f"got values in [{int(label_tensor.min())}, {int(label_tensor.max())}]"
        )
    rng = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(num_classes, generator=rng).tolist() if shuffle_class_order else list(range(num_classes))
    wanted = [0] * num_classes
    for rank, cls in enumerate(order):
        wanted[cls] = counts_list[rank]

    chosen: list[torch.Tensor] = []
    for cls in range(num_classes):
        members = torch.nonzero(label_tensor == cls).flatten()
        need = wanted[cls]
        if need == 0:
            continue
        if members.numel() == 0:
            raise ValueError(f"class {cls} has no images but the profile asks for {need}")
        if need > members.numel() and not allow_reuse:
            raise ValueError(
                f"class {cls} has {members.numel()} images but the profile asks for {need}; "
                "pass allow_reuse=True to repeat images"
            )
        rounds = -(-need // members.numel())  # ceil division
        picks = torch.cat([members[torch.randperm(members.numel(), generator=rng)] for _ in range(rounds)])
        chosen.append(picks[:need])
    return torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)
