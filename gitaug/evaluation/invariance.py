"""How invariant is a classifier, class by class? The expected KL divergence (eKLD).

For a transformation ``T`` (a known nuisance, or a fitted generator) and a
classifier with predictive distribution ``p(y | x) = softmax(model(x))``:

    eKLD_c = E_{x in class c} E_{x' ~ T(x)} KL( p(. | x) || p(. | x') )

Zero means the predictions do not move under ``T``; larger values mean less
invariance. GIT's motivating finding is that, on long-tailed data, eKLD rises
as classes get smaller even though the nuisance is the same for every class.

* :func:`ekld` measures it per class (the paper draws 40 inputs per class and
  100 transformed samples per input, the defaults here).
* :func:`summarize_ekld` condenses a result: the Spearman rank correlation
  between class size and eKLD, and the mean eKLD of the smallest and of the
  largest classes.
* :func:`plot_ekld` draws eKLD against class size for several methods (needs
  matplotlib: ``pip install gitaug[plot]`` or ``pip install matplotlib``).

Example::

    >>> import torch
    >>> from gitaug.datasets import ImageDataset, RandomBackground
    >>> images = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8)
    >>> data = ImageDataset(images, torch.arange(3).repeat(10))
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> result = ekld(model, data, RandomBackground(), n_per_class=5, m_per_input=4)
    >>> result.per_class.shape, bool((result.per_class >= 0).all())
    (torch.Size([3]), True)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from .._typing import Transform

__all__ = ["EKLDResult", "ekld", "summarize_ekld", "spearman_correlation", "plot_ekld"]



@dataclass
class EKLDResult:
    """Per-class eKLD from :func:`ekld`.

    Attributes:
        per_class: float64 (num_classes,), eKLD of each class (NaN for a class
            with no input to measure).
        class_sizes: LongTensor (num_classes,), the class sizes to relate
            eKLD to (usually training-set sizes).
        inputs_per_class: LongTensor (num_classes,), inputs drawn per class.
        draws_per_input: transformed samples per input.

    Example::

        result = ekld(model, test_set, transform, class_sizes=train_set.class_counts)
        result.per_class[result.class_sizes.argsort()]   # from the rarest class up
    """

    per_class: torch.Tensor
    class_sizes: torch.Tensor
    inputs_per_class: torch.Tensor
    draws_per_input: int

    @property
    def mean(self) -> float:
        """Mean eKLD over the classes that were measured (each class weighs the same)."""
        valid = ~torch.isnan(self.per_class)
        return float(self.per_class[valid].mean()) if valid.any() else float("nan")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _unpack(dataset: Any) -> tuple[torch.Tensor, torch.Tensor, int | None, torch.Tensor | None]:
    # Accept an ImageDataset (or anything with images/targets) or a plain
    # (images, labels) pair.
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = dataset
        return torch.as_tensor(images), torch.as_tensor(labels), None, None
    if hasattr(dataset, "images") and hasattr(dataset, "targets"):
        return (
            torch.as_tensor(dataset.images),
            torch.as_tensor(dataset.targets),
            getattr(dataset, "num_classes", None),
            getattr(dataset, "class_counts", None),
        )
    raise ValueError(
        "dataset must have .images and .targets (e.g. a gitaug.datasets.ImageDataset) or be an "
        f"(images, labels) pair, got {type(dataset).__name__}"
    )


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def ekld(
    model: nn.Module,
    dataset: Any,
    transform: Transform,
    n_per_class: int = 40,
    m_per_input: int = 100,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    seed: int = 0,
    class_sizes: Sequence[int] | torch.Tensor | None = None,
) -> EKLDResult:
    """Per-class expected KL divergence of ``model``'s predictions under ``transform``.

    For each class, up to ``n_per_class`` inputs are drawn at random (all of
    them if the class has fewer); each input ``x`` is transformed
    ``m_per_input`` times, ``x' = transform(x, generator=g)``, and
    ``KL(p(.|x) || p(.|x'))`` is averaged over inputs and draws. The model
    runs in eval mode under ``torch.no_grad`` (its modes are restored
    afterwards); the dataset's own ``transform`` is not applied.

    Args:
        model: classifier returning logits (N, num_classes) for float images in [0, 1].
        dataset: an :class:`~gitaug.datasets.ImageDataset` (uint8 or float
            ``images``, ``targets``) or an ``(images, labels)`` pair.
        transform: ``transform(images, generator=g)`` keeping the shape, e.g.
            a nuisance from :mod:`gitaug.datasets` or a ``GITAugment``.
        n_per_class: inputs per class.
        m_per_input: transformed samples per input.
        batch_size: images per forward pass.
        device: where the model and transform run (default: the model's device).
        seed: seeds the choice of inputs and the transform's draws (a CPU
            ``torch.Generator``).
        class_sizes: class sizes for the result (default
            ``dataset.class_counts``); pass the *training* counts when
            measuring on a test set.

    Example::

        from gitaug.datasets import load, get_nuisance
        train, test = load("digits-rot-lt", "train"), load("digits-rot-lt", "test")
        result = ekld(model, test, get_nuisance("rot"), class_sizes=train.class_counts)
    """
    n_per_class = _check_positive("n_per_class", n_per_class)
    m_per_input = _check_positive("m_per_input", m_per_input)
    batch_size = _check_positive("batch_size", batch_size)
    if not callable(transform):
        raise ValueError(f"transform must be callable as transform(images, generator=g), got {transform!r}")
    images, labels, num_classes, dataset_counts = _unpack(dataset)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    labels = labels.long().flatten()
    if labels.numel() != images.shape[0]:
        raise ValueError(f"need one label per image ({images.shape[0]}), got {labels.numel()}")
    if class_sizes is None:
        class_sizes = dataset_counts
    if class_sizes is not None:
        class_sizes = torch.as_tensor(class_sizes).long().flatten().cpu()
        if num_classes is not None and class_sizes.numel() != num_classes:
            raise ValueError(f"class_sizes must have {num_classes} entries (one per class), got {class_sizes.numel()}")
        num_classes = class_sizes.numel()
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.numel() else 0
    if num_classes < 1:
        raise ValueError("the dataset has no images and no classes to measure")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values in [{int(labels.min())}, {int(labels.max())}]"
        )
    if class_sizes is None:
        class_sizes = torch.bincount(labels.cpu(), minlength=num_classes)

    device = torch.device(device) if device is not None else _model_device(model)
    rng = torch.Generator().manual_seed(int(seed))

    # The inputs: a seeded random choice of up to n_per_class per class.
    chosen, chosen_class = [], []
    inputs_per_class = torch.zeros(num_classes, dtype=torch.long)
    labels_cpu = labels.cpu()
    for cls in range(num_classes):
        members = torch.nonzero(labels_cpu == cls).flatten()
        picked = members[torch.randperm(members.numel(), generator=rng)[:n_per_class]]
        inputs_per_class[cls] = picked.numel()
        chosen.append(picked)
        chosen_class.append(torch.full((picked.numel(),), cls, dtype=torch.long))
    chosen_index = torch.cat(chosen)
    input_class = torch.cat(chosen_class)

    def log_probs(batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch)
        if not isinstance(logits, torch.Tensor) or logits.shape != (batch.shape[0], num_classes):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"model output must have shape (N, num_classes) = ({batch.shape[0]}, {num_classes}), got {shape}")
        # log_softmax in float64 keeps KL of nearly equal distributions accurate.
        return F.log_softmax(logits.double(), dim=1)

    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    totals = torch.zeros(num_classes, dtype=torch.float64)
    try:
        clean_batches = [
            log_probs(_to_float(images[chosen_index[start : start + batch_size]]).to(device))
            for start in range(0, chosen_index.numel(), batch_size)
        ]
        clean = torch.cat(clean_batches) if clean_batches else torch.zeros(0, num_classes, dtype=torch.float64)
        # All (input, draw) pairs, taken batch_size at a time whatever the class.
        num_pairs = chosen_index.numel() * m_per_input
        for start in range(0, num_pairs, batch_size):
            which = torch.arange(start, min(start + batch_size, num_pairs)) // m_per_input
            originals = _to_float(images[chosen_index[which]]).to(device)
            moved = transform(originals, generator=rng)
            if not isinstance(moved, torch.Tensor) or moved.shape != originals.shape:
                shape = tuple(moved.shape) if isinstance(moved, torch.Tensor) else type(moved).__name__
                raise ValueError(f"transform must keep the image shape {tuple(originals.shape)}, got {shape}")
            log_p = clean[which.to(clean.device)]
            log_q = log_probs(moved.to(device))
            divergence = (log_p.exp() * (log_p - log_q)).sum(dim=1).clamp_(min=0.0)
            totals.index_add_(0, input_class[which], divergence.cpu())
    finally:
        for module, training in modes:
            module.train(training)

    draws = (inputs_per_class * m_per_input).double()
    per_class = torch.where(draws > 0, totals / draws.clamp(min=1), torch.tensor(float("nan"), dtype=torch.float64))
    return EKLDResult(per_class, class_sizes, inputs_per_class, m_per_input)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    # Ranks 1..n; tied values share the mean of the ranks they span.
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def spearman_correlation(x: Sequence[float] | np.ndarray | torch.Tensor, y: Sequence[float] | np.ndarray | torch.Tensor) -> float:
    """Spearman rank correlation of ``x`` and ``y`` (ties get average ranks); NaN if either is constant.

    Example::

        >>> spearman_correlation([1, 2, 3, 4], [10, 9, 9, 1])
        -0.9486832980505138
    """
    a = np.asarray(torch.as_tensor(x).double().cpu(), dtype=np.float64).ravel()
    b = np.asarray(torch.as_tensor(y).double().cpu(), dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.size} and {b.size}")
    if a.size < 2:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def summarize_ekld(result: EKLDResult, fraction: float = 1 / 3) -> dict[str, float]:
    """Condenses a result: how eKLD depends on class size.

    Returns a dict with

    * ``"spearman"``: rank correlation between class size and eKLD (negative
      when small classes are less invariant, the long-tail pattern),
    * ``"tail_mean"``: mean eKLD of the smallest ``fraction`` of classes,
    * ``"head_mean"``: mean eKLD of the largest ``fraction`` of classes,
    * ``"mean"``: mean eKLD over all measured classes.

    Classes without a measurement (NaN) are left out; the groups hold
    ``max(1, round(fraction * classes))`` classes, ties in size broken by
    class index.

    Example::

        >>> r = EKLDResult(torch.tensor([0.1, 0.2, 0.4]), torch.tensor([100, 10, 1]), torch.tensor([5, 5, 5]), 10)
        >>> summary = summarize_ekld(r)
        >>> summary["spearman"], round(summary["tail_mean"], 3), round(summary["head_mean"], 3)
        (-1.0, 0.4, 0.1)
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    values = torch.as_tensor(result.per_class).double().cpu()
    sizes = torch.as_tensor(result.class_sizes).double().cpu()
    if values.shape != sizes.shape:
        raise ValueError(f"per_class and class_sizes must match, got {tuple(values.shape)} and {tuple(sizes.shape)}")
    valid = ~torch.isnan(values)
    values, sizes = values[valid].numpy(), sizes[valid].numpy()
    if values.size == 0:
        nan = float("nan")
        return {"spearman": nan, "tail_mean": nan, "head_mean": nan, "mean": nan}
    group = max(1, int(round(fraction * values.size)))
    by_size = np.argsort(sizes, kind="stable")
    return {
        "spearman": spearman_correlation(sizes, values),
        "tail_mean": float(values[by_size[:group]].mean()),
        "head_mean": float(values[by_size[-group:]].mean()),
        "mean": float(values.mean()),
    }


def plot_ekld(results: Mapping[str, EKLDResult], path: str | os.PathLike, title: str | None = None) -> Path:
    """Saves a PNG of eKLD against class size (log x axis), one series per method.

    Each series is labelled with its name and its Spearman correlation.
    Classes of equal size (for instance the same profile measured over
    several seeds, pooled into one result) are drawn as one point at their
    mean with a bar of one standard deviation; every class also shows as a
    faint dot. Needs matplotlib (``pip install gitaug[plot]`` or ``pip install matplotlib``).

    Example::

        plot_ekld({"ERM": erm_result, "CE+DRS": drs_result, "CE+DRS+GIT": git_result},
                  "ekld.png", title="digits-rot-lt")
    """
    if not results:
        raise ValueError("results must name at least one EKLDResult, got an empty mapping")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plot_ekld needs matplotlib; install it with `pip install gitaug[plot]` (or `pip install matplotlib`)"
        ) from error

    # A bare Figure (no pyplot) leaves any interactive state of the caller alone.
    figure = Figure(figsize=(5.5, 4.0), dpi=150)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, result in results.items():
        values = torch.as_tensor(result.per_class).double().cpu()
        sizes = torch.as_tensor(result.class_sizes).double().cpu()
        keep = ~torch.isnan(values) & (sizes > 0)  # a log axis cannot show empty classes
        sizes, values = sizes[keep], values[keep]
        rho = summarize_ekld(result)["spearman"]
        unique = torch.unique(sizes)  # sorted
        groups = [values[sizes == size] for size in unique]
        means = torch.stack([group.mean() for group in groups])
        stds = torch.stack([group.std() if group.numel() > 1 else group.new_zeros(()) for group in groups])
        line = axes.errorbar(unique.numpy(), means.numpy(), yerr=stds.numpy(), marker="o", markersize=3, linewidth=1,
                             capsize=2, label=f"{name} (Spearman {rho:+.2f})")
        if len(unique) < len(sizes):
            axes.scatter(sizes.numpy(), values.numpy(), s=6, alpha=0.3, color=line.lines[0].get_color())
    axes.set_xscale("log")
    axes.set_xlabel("training images in class")
    axes.set_ylabel("eKLD (lower = more invariant)")
    if title:
        axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
