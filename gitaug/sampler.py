"""Which samples of a batch GIT replaces: the selection rule of Algorithm 1."""

from __future__ import annotations

import math
import numbers
from typing import Protocol, Sequence, runtime_checkable

import torch

__all__ = ["ClassThresholdSampler", "SelectionRule", "class_indices"]

_RULES = ("hard", "linear")
# Unsigned types beyond uint8 have few kernels (no min/max); they are widened to int64 first.
_WIDE_UNSIGNED = tuple(getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name))


@runtime_checkable
class SelectionRule(Protocol):
    """Anything :class:`~gitaug.GITAugment` accepts as its ``sampler``.

    A selection rule maps a batch's class indices, an int64 tensor of shape
    ``(N,)``, to a boolean tensor of shape ``(N,)`` that is ``True`` where the
    sample is to be re-drawn. ``generator`` seeds its random draws, if it makes
    any. :class:`ClassThresholdSampler` (Algorithm 1 of the GIT paper) is the
    default; a plain function works too.

    Example::

        >>> import torch
        >>> def odd_classes(labels, generator=None):
        ...     return labels % 2 == 1
        >>> isinstance(odd_classes, SelectionRule)
        True
        >>> odd_classes(torch.tensor([0, 1, 3])).tolist()
        [False, True, True]
    """

    def __call__(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


def class_indices(labels: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """``labels`` as int64 class indices, whatever their integer dtype; a clear error for anything else.

    Every integer dtype (``uint8`` included) holds class indices. Boolean
    tensors are refused: a mask is not a class label, and indexing a table
    with a ``uint8``/``bool`` tensor would select rows instead of looking
    classes up.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of class indices, got {type(labels).__name__}")
    if labels.device.type == "meta":
        raise ValueError(f"{name} are on the meta device and hold no values; move them to a real device first")
    if labels.dtype == torch.bool:
        raise ValueError(
            f"{name} must be integer class indices, got dtype torch.bool (a mask is not a class label; "
            "if the values are classes 0 and 1, convert them with .long())"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    if labels.dtype == torch.int64:
        return labels
    indices = labels.to(torch.int64)
    if labels.dtype in _WIDE_UNSIGNED and indices.numel() and bool((indices < 0).any()):
        # uint64 values of 2**63 and above wrap round to negative numbers in int64.
        wrapped = int(indices[indices < 0][0]) + 2**64
        raise ValueError(f"{name} hold class index {wrapped}, which is out of range")
    return indices


class ClassThresholdSampler:
    """Draws, per sample, whether GIT replaces it by a generated image.

    Each class ``c`` gets a probability from its training-set size ``N_c``:

    * ``rule="hard"`` (Algorithm 1 of the paper): ``p`` if ``N_c < threshold``,
      else 0. ``threshold=None`` selects every class with probability ``p``.
    * ``rule="linear"`` (the paper's reference code):
      ``p * max(0, (K - N_c) / (K - N_min))``, i.e. ``p`` for the smallest
      class, falling linearly to 0 at ``K = threshold``.

    Classes at or above the threshold are never selected.

    Args:
        class_counts: training images per class, a sequence or 1-D tensor.
        threshold: the class-size threshold ``K``; ``None`` (hard rule only)
            means no threshold.
        p: the proportion of an eligible class's samples to replace, in [0, 1].
        rule: ``"hard"`` or ``"linear"``.

    Example::

        >>> import torch
        >>> sampler = ClassThresholdSampler([500, 100, 20, 5], threshold=25, p=0.5)
        >>> sampler.probabilities
        tensor([0.0000, 0.0000, 0.5000, 0.5000])
        >>> labels = torch.tensor([0, 1, 2, 3, 3])
        >>> mask = sampler(labels, generator=torch.Generator().manual_seed(0))
        >>> mask[:2].any().item()   # head classes are never selected
        False
    """

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor,
        threshold: float | None = None,
        p: float = 0.5,
        rule: str = "hard",
    ) -> None:
        counts = _class_counts(class_counts)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a number in [0, 1], got {p!r}")
        if not isinstance(rule, str) or rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not threshold > 0
        ):
            raise ValueError(f"threshold must be a positive number or None, got {threshold!r}")
        if threshold is not None:
            try:
                float(threshold)
            except OverflowError:
                raise ValueError(f"threshold is too large to be a class size, got {threshold!r}") from None
        if rule == "linear" and threshold is None:
            raise ValueError("rule='linear' needs a threshold K (the class size where the probability reaches 0)")
        if rule == "linear" and math.isinf(float(threshold)):
            # The slope (K - N_c) / (K - N_min) is inf / inf: no probability can be computed.
            raise ValueError(
                f"threshold must be finite with rule='linear', got {threshold!r}; "
                "use rule='hard' with threshold=None to select every class"
            )

        self.class_counts = counts
        self.threshold = threshold
        self.p = float(p)
        self.rule = rule
        self.probabilities = self._class_probabilities()

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[int] | torch.Tensor,
        num_classes: int | None = None,
        **kwargs,
    ) -> "ClassThresholdSampler":
        """Count the classes in ``labels`` (the whole training set) and build a sampler.

        ``num_classes`` defaults to ``max(labels) + 1``; pass it when the
        largest classes may be absent. Other arguments as in the constructor.
        """
        labels = _as_tensor(labels)
        if labels.dim() != 1 or labels.numel() == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {tuple(labels.shape)}")
        labels = class_indices(labels)
        if (labels < 0).any():
            raise ValueError(f"labels must be non-negative, got {int(labels.min())}")
        largest = int(labels.max())
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive integer or None, got {num_classes!r}")
        if num_classes is None:
            num_classes = largest + 1
        elif largest >= num_classes:
            raise ValueError(f"label {largest} is out of range for num_classes={num_classes}")
        return cls(torch.bincount(labels.cpu(), minlength=num_classes), **kwargs)

    @property
    def num_classes(self) -> int:
        return self.class_counts.numel()

    def _class_probabilities(self) -> torch.Tensor:
        counts = self.class_counts.double()
        if self.threshold is None:
            return torch.full_like(counts, self.p, dtype=torch.float32)
        k = float(self.threshold)
        if self.rule == "hard":
            probs = torch.where(counts < k, self.p, 0.0)
        else:
            smallest = float(counts.min())
            if k <= smallest:  # every class is at or above K
                probs = torch.zeros_like(counts)
            else:
                probs = self.p * ((k - counts) / (k - smallest)).clamp(min=0.0)
        return probs.float()

    def __call__(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A boolean mask, on ``labels``' device: ``True`` where the sample is to be replaced.

        ``labels`` are class indices of shape (N,), of any integer dtype
        (``uint8`` included; ``bool`` and float labels are refused). With a
        ``generator`` the draws are reproducible (they are made on the
        generator's device and moved).
        """
        labels = _as_tensor(labels)
        if labels.dim() != 1:
            raise ValueError(f"labels must be 1-D class indices, got shape {tuple(labels.shape)}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        indices = class_indices(labels)
        if indices.numel():
            smallest, largest = (int(v) for v in torch.aminmax(indices))
            if smallest < 0 or largest >= self.num_classes:
                bad = smallest if smallest < 0 else largest
                raise ValueError(f"label {bad} is out of range for {self.num_classes} classes")
        draw_device = generator.device if generator is not None else labels.device
        uniform = torch.rand(indices.shape[0], generator=generator, device=draw_device)
        probs = self.probabilities.to(draw_device)[indices.to(draw_device)]
        return (uniform < probs).to(labels.device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, threshold={self.threshold}, "
            f"p={self.p}, rule={self.rule!r})"
        )


def _as_tensor(labels: Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        return labels
    try:
        return torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise TypeError(f"labels must be a tensor or a sequence of class indices, got {labels!r:.80} ({err})") from None


def _class_counts(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``class_counts`` as a 1-D int64 tensor, or a clear error naming the bad value."""
    try:
        counts = class_counts if isinstance(class_counts, torch.Tensor) else torch.as_tensor(class_counts)
        if counts.is_floating_point() and not isinstance(class_counts, torch.Tensor):
            counts = torch.as_tensor(class_counts, dtype=torch.float64)  # float32 cannot hold every count above 2**24
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise TypeError(f"class_counts must be a sequence of whole numbers, got {class_counts!r} ({err})") from None
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    if counts.device.type == "meta":
        raise ValueError("class_counts are on the meta device and hold no values")
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"class_counts must be whole numbers, got dtype {counts.dtype}")
    counts = counts.cpu()
    if counts.is_floating_point():
        finite = torch.isfinite(counts)
        if not finite.all():
            bad = int(torch.nonzero(~finite)[0])
            raise ValueError(f"class_counts must be finite, got {float(counts[bad])} at index {bad}")
        whole = counts == counts.round()
        if not whole.all():
            bad = int(torch.nonzero(~whole)[0])
            raise ValueError(f"class_counts must be whole numbers, got {float(counts[bad])} at index {bad}")
        too_large = counts.double().abs() >= 2.0**62
        if too_large.any():
            bad = int(torch.nonzero(too_large)[0])
            raise ValueError(f"class_counts must be image counts, got {float(counts[bad])} at index {bad}")
        counts = counts.double().long()
    else:
        counts = class_indices(counts, "class_counts")
    if (counts < 0).any():
        bad = int(torch.nonzero(counts < 0)[0])
        raise ValueError(f"class_counts must be non-negative, got {int(counts[bad])} at index {bad}")
    return counts
