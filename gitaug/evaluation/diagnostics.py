"""Does a generator keep what an image is? A check with a reference classifier.

GIT relies on the generator changing only the nuisance. A generator that turns
a 3 into an 8 teaches the classifier wrong labels, and eKLD alone would not
show it. :func:`class_preservation` measures, per class, how often a
*reference* classifier keeps its prediction when an input is replaced by a
generated variant. The reference must be invariant to the true nuisance
(trained on balanced data carrying it), so that a change of prediction means
a change of class, not a nuisance it never saw.

The opposite failure, a generator that hardly changes anything (it keeps every
class because it only reproduces its input), shows in :func:`variant_spread`:
how far two independent draws of the same input lie apart, to compare with
the same figure for the true nuisance.

What the draws change, in terms a person reads, shows in
:func:`appearance_spread`: how much draws of one input vary in border level,
brightness, contrast and bright-pixel share, beside how much the data's own
images of one class vary in each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from .._typing import Transform

__all__ = ["ClassPreservation", "class_preservation", "variant_spread", "APPEARANCE_STATISTICS",
           "appearance_statistics", "appearance_spread"]



@dataclass
class ClassPreservation:
    """Result of :func:`class_preservation`.

    Attributes:
        per_class: for each class, the fraction of generated samples on which
            the reference keeps its prediction on the original (NaN for a
            class with no inputs).
        reference_accuracy: for each class, the reference's accuracy on the
            original inputs (how much to trust ``per_class``).
        inputs_per_class: inputs drawn per class.
    """

    per_class: torch.Tensor
    reference_accuracy: torch.Tensor
    inputs_per_class: torch.Tensor
    draws_per_input: int = field(default=1)

    @property
    def mean(self) -> float:
        """Mean of the per-class rates over the classes that had inputs."""
        valid = ~torch.isnan(self.per_class)
        return float(self.per_class[valid].mean()) if valid.any() else float("nan")


def _checked_inputs(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, **counts: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the shared arguments; returns float images in [0, 1] and long labels."""
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    labels = torch.as_tensor(labels).long()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{int(labels.min())}, {int(labels.max())}]")
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return images, labels


@torch.no_grad()
def class_preservation(
    transform: Transform,
    reference: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    n_per_class: int = 40,
    m_per_input: int = 10,
    batch_size: int = 512,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> ClassPreservation:
    """Per-class rate at which ``reference`` keeps its prediction on ``transform``'s outputs.

    Args:
        transform: ``transform(images, generator=g)`` on float images in
            [0, 1] of shape (N, C, H, W), e.g. a :class:`~gitaug.GITAugment`
            called without labels.
        reference: a classifier invariant to the true nuisance.
        images: float images in [0, 1] or uint8, (N, C, H, W).
        labels: class indices (N,).
        num_classes: number of classes.
        n_per_class: inputs drawn per class (all of a class if it has fewer).
        m_per_input: generated variants per input.
        seed: seeds the choice of inputs and the transform's draws.
        device: where the reference runs (default: its parameters' device).

    Example::

        rates = class_preservation(aug, reference, test.images, test.targets, 10)
        print(rates.per_class)   # near 1 for a generator that keeps the digits
    """
    images, labels = _checked_inputs(
        images, labels, num_classes, n_per_class=n_per_class, m_per_input=m_per_input, batch_size=batch_size
    )
    if device is None:
        device = next(reference.parameters()).device
    was_training = reference.training
    reference.eval()
    rng = torch.Generator().manual_seed(seed)

    kept = torch.zeros(num_classes)
    seen = torch.zeros(num_classes)
    correct = torch.zeros(num_classes)
    inputs = torch.zeros(num_classes, dtype=torch.long)
    try:
        for c in range(num_classes):
            members = torch.nonzero(labels == c).flatten()
            if members.numel() == 0:
                continue
            chosen = members[torch.randperm(members.numel(), generator=rng)[:n_per_class]]
            inputs[c] = chosen.numel()
            originals = images[chosen]
            predicted = reference(originals.to(device)).argmax(1).cpu()
            correct[c] = (predicted == c).float().sum()
            repeated = originals.repeat_interleave(m_per_input, dim=0)
            expected = predicted.repeat_interleave(m_per_input)
            for start in range(0, repeated.shape[0], batch_size):
                batch = transform(repeated[start : start + batch_size], generator=rng)
                if batch.shape != repeated[start : start + batch_size].shape:
                    raise ValueError(f"the transform changed the image shape to {tuple(batch.shape)}")
                again = reference(batch.to(device)).argmax(1).cpu()
                kept[c] += (again == expected[start : start + batch_size]).float().sum()
                seen[c] += batch.shape[0]
    finally:
        reference.train(was_training)
    per_class = torch.where(seen > 0, kept / seen.clamp(min=1), torch.tensor(float("nan")))
    accuracy = torch.where(inputs > 0, correct / inputs.clamp(min=1).float(), torch.tensor(float("nan")))
    return ClassPreservation(per_class, accuracy, inputs, m_per_input)


@torch.no_grad()
def variant_spread(
    transform: Transform,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    n_per_class: int = 40,
    pairs_per_input: int = 5,
    batch_size: int = 512,
    seed: int = 0,
) -> torch.Tensor:
    """Per-class mean absolute pixel difference between two independent draws of ``transform``.

    For each input x of a class, draws ``pairs_per_input`` pairs
    ``(T(x), T'(x))`` and averages ``|T(x) - T'(x)|`` over pixels, pairs and
    inputs (images in [0, 1]). 0 means the transform is deterministic: a
    generator whose style code has no effect. Compare with the true
    nuisance's spread on the same base images.

    Args:
        transform: ``transform(images, generator=g)`` on float images in [0, 1], (N, C, H, W).
        images: float images in [0, 1] or uint8, (N, C, H, W).
        labels: class indices (N,).
        num_classes: number of classes (a class without inputs gets NaN).
        n_per_class: inputs drawn per class (all of a class if it has fewer).
        pairs_per_input: independent pairs of draws per input.
        seed: seeds the choice of inputs and the transform's draws.

    Example::

        spread = variant_spread(aug, train.images, train.targets, 10)
        print(spread.mean())   # about 0 when the generator ignores its style code
    """
    images, labels = _checked_inputs(
        images, labels, num_classes, n_per_class=n_per_class, pairs_per_input=pairs_per_input, batch_size=batch_size
    )
    rng = torch.Generator().manual_seed(seed)
    spread = torch.full((num_classes,), float("nan"))
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        if members.numel() == 0:
            continue
        chosen = members[torch.randperm(members.numel(), generator=rng)[:n_per_class]]
        repeated = images[chosen].repeat_interleave(pairs_per_input, dim=0)
        total = 0.0
        for start in range(0, repeated.shape[0], batch_size):
            batch = repeated[start : start + batch_size]
            first, second = transform(batch, generator=rng), transform(batch, generator=rng)
            if first.shape != batch.shape:
                raise ValueError(f"the transform changed the image shape to {tuple(first.shape)}")
            total += (first.float() - second.float()).abs().flatten(1).mean(1).sum().item()
        spread[c] = total / repeated.shape[0]
    return spread


#: What :func:`appearance_statistics` measures, in its order.
APPEARANCE_STATISTICS = ("border", "brightness", "contrast", "ink")


def appearance_statistics(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Four appearance figures per image (channels averaged), each a tensor of shape (N,).

    * ``border``: mean level of the outer frame (1/14 of the side, at least a
      pixel): the background, where the object sits in the middle;
    * ``brightness``: mean level of the whole image;
    * ``contrast``: standard deviation of its levels;
    * ``ink``: share of its pixels above 0.5: stroke width or object size for
      bright objects on a dark ground (the built-in sets), their ground for
      dark objects on a light one.

    Args:
        images: float in [0, 1] or uint8, (N, C, H, W).

    Example::

        >>> x = torch.zeros(2, 1, 28, 28); x[1, :, 10:18, 10:18] = 1.0
        >>> [round(float(v), 3) for v in appearance_statistics(x)["ink"]]
        [0.0, 0.082]
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 255
    grey = images.float().mean(1)
    height, width = grey.shape[-2:]
    edge = max(1, min(height, width) // 14)
    frame = torch.ones(height, width, dtype=torch.bool)
    frame[edge : height - edge, edge : width - edge] = False
    flat = grey.flatten(1)
    return {
        "border": grey[:, frame].mean(1),
        "brightness": flat.mean(1),
        "contrast": flat.std(1) if flat.shape[1] > 1 else torch.zeros(len(flat)),
        "ink": (flat > 0.5).float().mean(1),
    }


@torch.no_grad()
def appearance_spread(
    transform: Transform,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    n_per_class: int = 40,
    draws_per_input: int = 4,
    min_class_size: int = 20,
    batch_size: int = 512,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """How much ``transform``'s draws vary each of :func:`appearance_statistics`, beside the data's own variation.

    For every figure: ``"draws"`` is its standard deviation between
    ``draws_per_input`` draws of one input, averaged over up to
    ``n_per_class`` inputs of every class; ``"data"`` is its standard
    deviation between the images of one class, averaged over the classes
    with at least ``min_class_size`` images (over every class with two or
    more when none has that many). The data's figure holds the nuisance and
    everything else that varies within a class, so it is an upper reference:
    draws far below it leave that property alone; draws far above it change
    it more than any class of the data does.

    On digits with random backgrounds, for example, the true background draws
    give a border spread equal to the data's and no ink spread; random
    stroke-width changes give the opposite.

    Args:
        transform: ``transform(images, generator=g)`` on float images in [0, 1], (N, C, H, W).
        images: float images in [0, 1] or uint8, (N, C, H, W).
        labels: class indices (N,).
        num_classes: number of classes.
        n_per_class: inputs drawn per class (all of a class if it has fewer).
        draws_per_input: draws of each input (at least 2).
        min_class_size: classes at least this large give the data's figure.
        seed: seeds the choice of inputs and the transform's draws.

    Returns:
        ``{figure: {"draws": float, "data": float}}`` for each of
        :data:`APPEARANCE_STATISTICS`.

    Example::

        spread = appearance_spread(aug, train.images, train.targets, 10)
        print(spread["border"])   # {'draws': 0.05, 'data': 0.11}: half the data's background range
    """
    images, labels = _checked_inputs(images, labels, num_classes, n_per_class=n_per_class,
                                     min_class_size=min_class_size, batch_size=batch_size)
    if isinstance(draws_per_input, bool) or not isinstance(draws_per_input, int) or draws_per_input < 2:
        raise ValueError(f"draws_per_input must be an integer of at least 2, got {draws_per_input!r}")
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.max()) < 2:
        raise ValueError("no class has two images: the data's own variation within a class cannot be measured")
    large = [c for c in range(num_classes) if counts[c] >= min_class_size] or [c for c in range(num_classes) if counts[c] >= 2]
    whole = appearance_statistics(images)
    data = {name: float(torch.stack([values[labels == c].std() for c in large]).mean()) for name, values in whole.items()}

    rng = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=rng)[:n_per_class]])
    inputs = images[torch.cat(chosen)]
    per_draw = []
    for _ in range(draws_per_input):
        parts = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            drawn = transform(batch, generator=rng)
            if drawn.shape != batch.shape:
                raise ValueError(f"the transform changed the image shape to {tuple(drawn.shape)}")
            parts.append(drawn.float().clamp(0, 1))
        per_draw.append(appearance_statistics(torch.cat(parts)))
    return {name: {"draws": float(torch.stack([d[name] for d in per_draw]).std(0).mean()), "data": data[name]}
            for name in APPEARANCE_STATISTICS}
