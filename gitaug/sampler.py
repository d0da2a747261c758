"""Which samples of a batch GIT replaces: the selection rule of Algorithm 1."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["ClassThresholdSampler"]

_RULES = ("hard", "linear")


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
        counts = torch.as_tensor(class_counts)
        if counts.dim() != 1 or counts.numel() == 0:
            raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
        if counts.is_floating_point() and not torch.equal(counts, counts.round()):
            raise ValueError(f"class_counts must be whole numbers, got {counts.tolist()}")
        counts = counts.long()
        if (counts < 0).any():
            bad = int(torch.nonzero(counts < 0)[0])
            raise ValueError(f"class_counts must be non-negative, got {int(counts[bad])} at index {bad}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a number in [0, 1], got {p!r}")
        if rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0
        ):
            raise ValueError(f"threshold must be a positive number or None, got {threshold!r}")
        if rule == "linear" and threshold is None:
            raise ValueError("rule='linear' needs a threshold K (the class size where the probability reaches 0)")

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
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.numel() == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {tuple(labels.shape)}")
        if labels.is_floating_point():
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if (labels < 0).any():
            raise ValueError(f"labels must be non-negative, got {int(labels.min())}")
        largest = int(labels.max())
        if num_classes is None:
            num_classes = largest + 1
        elif largest >= num_classes:
            raise ValueError(f"label {largest} is out of range for num_classes={num_classes}")
        return cls(torch.bincount(labels.long(), minlength=num_classes), **kwargs)

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

        ``labels`` are integer class indices of shape (N,). With a
        ``generator`` the draws are reproducible (they are made on the
        generator's device and moved).
        """
        labels = torch.as_tensor(labels)
        if labels.dim() != 1:
            raise ValueError(f"labels must be 1-D class indices, got shape {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
            raise ValueError(f"label {bad} is out of range for {self.num_classes} classes")
        draw_device = generator.device if generator is not None else labels.device
        uniform = torch.rand(labels.shape[0], generator=generator, device=draw_device)
        probs = self.probabilities.to(draw_device)[labels.to(draw_device)]
        return (uniform < probs).to(labels.device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, threshold={self.threshold}, "
            f"p={self.p}, rule={self.rule!r})"
        )
