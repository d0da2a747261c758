"""Long-tail classification losses built from the training set's class counts.

* :class:`LogitAdjustedLoss`: cross-entropy on logits shifted by
  ``tau * log(prior)`` (training-time logit adjustment).
* :class:`LDAMLoss` with :class:`DRWSchedule`: label-distribution-aware margins
  and deferred re-weighting, the LDAM+DRW baseline of the GIT paper.
* :class:`BalancedBCELoss`: LiVT's Bal-BCE, binary cross-entropy on logits
  shifted by the log-odds of the class prior.

Every loss is an :class:`torch.nn.Module` called as ``loss(logits, labels)``
with ``logits`` of shape ``(N, C)`` and integer ``labels`` of shape ``(N,)``.
The plain functions underneath (:func:`class_prior`, :func:`ldam_margins`,
:func:`effective_number_weights`) hold the arithmetic.

Example::

    >>> import torch
    >>> loss_fn = LogitAdjustedLoss([500, 50, 5])
    >>> logits, labels = torch.zeros(4, 3), torch.tensor([0, 1, 2, 2])
    >>> loss_fn(logits, labels).shape
    torch.Size([])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import CountsLike, as_class_counts, check_logits_and_labels, check_number, check_reduction, reduce_loss

__all__ = [
    "class_prior",
    "ldam_margins",
    "effective_number_weights",
    "LogitAdjustedLoss",
    "LDAMLoss",
    "DRWSchedule",
    "BalancedBCELoss",
]


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------


def class_prior(class_counts: CountsLike) -> torch.Tensor:
    """The empirical class prior ``pi_c = N_c / sum_k N_k`` as a float64 tensor.

    Example::

        >>> class_prior([3, 1]).tolist()
        [0.75, 0.25]
    """
    counts = as_class_counts(class_counts)
    return counts / counts.sum()


def ldam_margins(class_counts: CountsLike, max_margin: float = 0.5) -> torch.Tensor:
    """LDAM margins ``m_c ∝ N_c^(-1/4)``, rescaled so the largest equals ``max_margin``.

    Example::

        >>> ldam_margins([16, 1], max_margin=0.5).tolist()
        [0.25, 0.5]
    """
    counts = as_class_counts(class_counts)
    max_margin = check_number(max_margin, "max_margin", low=0.0)
    raw = counts.pow(-0.25)
    return raw * (max_margin / raw.max())


def effective_number_weights(class_counts: CountsLike, beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights ``(1 - beta) / (1 - beta^N_c)``, normalized to sum to C.

    ``1 - beta^N_c`` is the "effective number" of samples of class ``c``
    (up to the factor ``1 / (1 - beta)``); ``beta = 0`` gives all ones.

    Example::

        >>> w = effective_number_weights([1000, 10], beta=0.999)
        >>> round(float(w.sum()), 6), bool(w[1] > w[0])
        (2.0, True)
    """
    counts = as_class_counts(class_counts)
    beta = check_number(beta, "beta", low=0.0, high=1.0, high_inclusive=False)
    if beta == 0.0:
        return torch.ones_like(counts)
    # -expm1(N log beta) = 1 - beta^N without cancellation when beta is near 1.
    effective = -torch.expm1(counts * math.log(beta))
    weights = (1.0 - beta) / effective
    return weights * (counts.numel() / weights.sum())


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


class LogitAdjustedLoss(nn.Module):
    """Cross-entropy on logits shifted by ``tau * log(pi)`` (logit adjustment).

    Adding the log prior during training makes the network's raw logits
    estimate the class-balanced posterior, so the plain ``argmax`` at test
    time is balanced. ``tau = 0`` (or a uniform prior) is plain cross-entropy.

    Args:
        class_counts: training samples per class, 1-D, all positive.
        tau: temperature of the adjustment, finite and >= 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example::

        >>> import torch
        >>> loss_fn = LogitAdjustedLoss([900, 90, 10], tau=1.0)
        >>> logits = torch.randn(8, 3)
        >>> labels = torch.randint(0, 3, (8,))
        >>> bool(loss_fn(logits, labels) > 0)
        True
    """

    log_prior: torch.Tensor

    def __init__(self, class_counts: CountsLike, tau: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        prior = class_prior(class_counts)
        self.tau = check_number(tau, "tau", low=0.0)
        self.reduction = check_reduction(reduction)
        self.num_classes = prior.numel()
        self.register_buffer("log_prior", prior.log().to(torch.get_default_dtype()))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_logits_and_labels(logits, labels, self.num_classes)
        shift = self.tau * self.log_prior.to(device=logits.device, dtype=logits.dtype)
        return F.cross_entropy(logits + shift, labels, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, tau={self.tau}, reduction={self.reduction!r}"


class LDAMLoss(nn.Module):
    """Label-distribution-aware margin loss (LDAM), optionally re-weighted.

    The true class's logit is lowered by a margin ``m_y ∝ N_y^(-1/4)`` (the
    largest margin is ``max_margin``, for the rarest class), the logits are
    multiplied by ``scale`` and fed to cross-entropy with optional per-class
    ``weight``. LDAM is meant for normalized (cosine) logits, which is why
    ``scale`` defaults to 30. With ``max_margin=0`` and ``scale=1`` it is
    plain cross-entropy.

    For deferred re-weighting (DRW) assign new class weights each epoch,
    ``loss.weight = schedule(epoch)`` with a :class:`DRWSchedule`. As in
    :func:`torch.nn.functional.cross_entropy`, ``reduction="mean"`` with
    weights is the weighted mean ``sum_i w_{y_i} l_i / sum_i w_{y_i}``.

    Args:
        class_counts: training samples per class, 1-D, all positive.
        max_margin: the largest margin, finite and >= 0.
        scale: multiplier of the margin-adjusted logits, finite and > 0.
        weight: optional per-class weights, shape ``(C,)``, finite and >= 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example::

        >>> import torch
        >>> counts = [500, 50, 5]
        >>> loss_fn = LDAMLoss(counts)
        >>> schedule = DRWSchedule(counts, start_epoch=160)
        >>> loss_fn.weight = schedule(160)          # DRW switched on
        >>> loss = loss_fn(torch.randn(4, 3), torch.tensor([0, 1, 2, 2]))
        >>> loss.dim()
        0
    """

    margins: torch.Tensor
    class_weight: torch.Tensor | None

    def __init__(
        self,
        class_counts: CountsLike,
        max_margin: float = 0.5,
        scale: float = 30.0,
        weight: torch.Tensor | Sequence[float] | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        margins = ldam_margins(class_counts, max_margin)
        self.max_margin = float(max_margin)
        self.scale = check_number(scale, "scale", low=0.0, low_inclusive=False)
        self.reduction = check_reduction(reduction)
        self.num_classes = margins.numel()
        self.register_buffer("margins", margins.to(torch.get_default_dtype()))
        self.register_buffer("class_weight", None)
        self.weight = weight

    @property
    def weight(self) -> torch.Tensor | None:
        """Per-class weights of the cross-entropy, or ``None`` for unweighted."""
        return self.class_weight

    @weight.setter
    def weight(self, value: torch.Tensor | Sequence[float] | None) -> None:
        if value is None:
            self.class_weight = None
            return
        weight = torch.as_tensor(value)
        if weight.dtype == torch.bool or weight.is_complex():
            raise TypeError(f"weight must hold real numbers, got dtype {weight.dtype}")
        if weight.shape != (self.num_classes,):
            raise ValueError(f"weight must have shape ({self.num_classes},), got {tuple(weight.shape)}")
        weight = weight.detach().to(dtype=torch.get_default_dtype())
        bad = ~torch.isfinite(weight) | (weight < 0)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0])
            raise ValueError(f"weight must be finite and >= 0, got {weight[index].item()} at index {index}")
        # Keep the weights on the device the margins already live on.
        self.class_weight = weight.to(self.margins.device)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_logits_and_labels(logits, labels, self.num_classes)
        margins = self.margins.to(device=logits.device, dtype=logits.dtype)
        # Subtract the margin from the true class's logit only.
        true_class = F.one_hot(labels, self.num_classes).to(logits.dtype)
        adjusted = logits - true_class * margins[labels].unsqueeze(1)
        weight = None
        if self.class_weight is not None:
            weight = self.class_weight.to(device=logits.device, dtype=logits.dtype)
        return F.cross_entropy(self.scale * adjusted, labels, weight=weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, max_margin={self.max_margin}, scale={self.scale}, "
            f"weighted={self.class_weight is not None}, reduction={self.reduction!r}"
        )


class DRWSchedule:
    """Deferred re-weighting: uniform class weights, then class-balanced ones.

    Before ``start_epoch`` every class weighs 1; from ``start_epoch`` on the
    weights are the effective-number weights ``(1 - beta) / (1 - beta^N_c)``
    normalized to sum to ``C`` (so their mean stays 1), as in LDAM-DRW.
    Calling the schedule (or :meth:`weights`) with an epoch returns a
    float tensor of shape ``(C,)`` to assign to ``LDAMLoss.weight`` (or to
    pass as ``weight=`` to :func:`torch.nn.functional.cross_entropy`).

    Args:
        class_counts: training samples per class, 1-D, all positive.
        start_epoch: first epoch (0-based) with re-weighting, an int >= 0.
        beta: effective-number hyper-parameter in ``[0, 1)``.

    Example::

        >>> schedule = DRWSchedule([1000, 10], start_epoch=2, beta=0.999)
        >>> schedule(0).tolist()
        [1.0, 1.0]
        >>> bool(schedule(2)[1] > schedule(2)[0])
        True
    """

    def __init__(self, class_counts: CountsLike, start_epoch: int, beta: float = 0.9999) -> None:
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int):
            raise TypeError(f"start_epoch must be an int, got {start_epoch!r}")
        if start_epoch < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        balanced = effective_number_weights(class_counts, beta)
        self.start_epoch = start_epoch
        self.beta = float(beta)
        self.balanced_weights = balanced.to(torch.get_default_dtype())

    def weights(self, epoch: int) -> torch.Tensor:
        """The per-class weights for ``epoch`` (a new tensor each call)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, got {epoch!r}")
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch < self.start_epoch:
            return torch.ones_like(self.balanced_weights)
        return self.balanced_weights.clone()

    __call__ = weights

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.balanced_weights.numel()}, "
            f"start_epoch={self.start_epoch}, beta={self.beta})"
        )


class BalancedBCELoss(nn.Module):
    """LiVT's Balanced BCE (Bal-BCE): sigmoid BCE on prior-shifted logits.

    Each logit ``z_c`` is shifted by the log-odds of the class prior,
    ``log(pi_c) - log(1 - pi_c)``, and scored with binary cross-entropy
    against the (optionally smoothed) one-hot target. Smoothing follows the
    timm/LiVT convention: off-target value ``s / C``, target value
    ``1 - s + s / C``.

    Scaling: the per-class terms are **summed over the C classes and averaged
    over the batch**. This equals ``C`` times PyTorch's element-wise mean
    ``binary_cross_entropy_with_logits(..., reduction="mean")``, which is how
    the LiVT reference code scales it (it multiplies the element-wise mean by
    the number of classes). With a uniform prior the shift is the constant
    ``-log(C - 1)``. Needs at least 2 classes (``pi_c < 1``).

    Args:
        class_counts: training samples per class, 1-D, all positive, C >= 2.
        label_smoothing: smoothing ``s`` in ``[0, 1)``.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"``
            (per-sample class sums).

    Example::

        >>> import torch
        >>> loss_fn = BalancedBCELoss([500, 50, 5], label_smoothing=0.1)
        >>> loss = loss_fn(torch.randn(4, 3), torch.tensor([0, 1, 2, 2]))
        >>> bool(loss > 0)
        True
    """

    logit_shift: torch.Tensor

    def __init__(self, class_counts: CountsLike, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        prior = class_prior(class_counts)
        if prior.numel() < 2:
            raise ValueError(f"class_counts must have at least 2 classes for Bal-BCE, got {prior.numel()}")
        self.label_smoothing = check_number(
            label_smoothing, "label_smoothing", low=0.0, high=1.0, high_inclusive=False
        )
        self.reduction = check_reduction(reduction)
        self.num_classes = prior.numel()
        shift = prior.log() - torch.log1p(-prior)
        self.register_buffer("logit_shift", shift.to(torch.get_default_dtype()))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_logits_and_labels(logits, labels, self.num_classes)
        targets = _smoothed_one_hot(labels, self.num_classes, self.label_smoothing, logits.dtype)
        shifted = logits + self.logit_shift.to(device=logits.device, dtype=logits.dtype)
        per_element = F.binary_cross_entropy_with_logits(shifted, targets, reduction="none")
        return reduce_loss(per_element.sum(dim=1), self.reduction)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, label_smoothing={self.label_smoothing}, "
            f"reduction={self.reduction!r}"
        )


def _smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float, dtype: torch.dtype) -> torch.Tensor:
    off_value = smoothing / num_classes
    on_value = 1.0 - smoothing + off_value
    targets = torch.full((labels.shape[0], num_classes), off_value, dtype=dtype, device=labels.device)
    return targets.scatter_(1, labels.unsqueeze(1), on_value)
