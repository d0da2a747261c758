"""Small classifiers for long-tail experiments on 28-32 px images.

:class:`SmallResNet` is the classifier of the training example and the
benchmarks: a ResNet-8 (three stages of one basic block) that trains in about a
minute on a CPU, with a replaceable head (e.g. a fixed ETF or HAFrame head from
:mod:`gitaug.longtail.heads`) and a ``features`` method for feature losses.

:func:`save_classifier` writes a trained one to a single ``.safetensors`` file:
the weights, and in the file's metadata what rebuilds the network (input
channels, classes, width, head) together with the scale its loss put on the
logits and, optionally, the class names and training counts.
:func:`load_classifier` reads it back without unpickling anything; this is the
checkpoint ``gitaug eval --classifier`` takes and ``examples/train_longtail.py
--save-classifier`` writes.

Example::

    >>> import torch
    >>> model = SmallResNet(in_channels=1, num_classes=10)
    >>> model(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "SmallResNet", "ScaledLogits", "ClassifierSpec", "save_classifier", "load_classifier"]

#: The safetensors metadata key that marks a gitaug classifier file and holds its :class:`ClassifierSpec`.
CLASSIFIER_FORMAT = "gitaug-classifier"
CLASSIFIER_VERSION = 1
HEADS = ("linear", "cosine", "etf", "haframe")
# Bounds on what a file may ask to build: a typo or a hostile file fails before any allocation.
_MAX_WIDTH = 1024
_MAX_CLASSES = 100_000


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (a 1x1 convolution when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8 (three stages of one block): small enough to train in a minute on a CPU."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, head: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 4 * width, 2))
        self.feature_dim = 4 * width
        self.head = head if head is not None else nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ScaledLogits(nn.Module):
    """A classifier whose logits are multiplied by a constant: the logits a scaled loss (LDAM's) trained.

    Example::

        >>> import torch
        >>> model = ScaledLogits(torch.nn.Identity(), scale=30.0)
        >>> model(torch.tensor([[0.5, -0.5]]))
        tensor([[ 15., -15.]])
    """

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.model(x)


@dataclass(frozen=True)
class ClassifierSpec:
    """What rebuilds a saved :class:`SmallResNet`, and what it was trained on.

    Attributes:
        in_channels: image channels the network takes (1 gray, 3 RGB).
        num_classes: classes it predicts.
        width: channels of its first stage.
        head: ``"linear"``, ``"cosine"``, ``"etf"`` or ``"haframe"`` (see :mod:`gitaug.longtail.heads`).
        logit_scale: the factor its loss applied to the logits (LDAM's scale; 1 for cross-entropy).
            Predicted distributions, and so eKLD, are those of the scaled logits.
        class_names: names of its classes, or ``None``.
        class_counts: training images per class, or ``None``; eKLD is usually related to these.
    """

    in_channels: int
    num_classes: int
    width: int
    head: str = "linear"
    logit_scale: float = 1.0
    class_names: list[str] | None = None
    class_counts: list[int] | None = None

    def __post_init__(self) -> None:
        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        problems = []
        if not is_int(self.in_channels) or self.in_channels not in (1, 3):
            problems.append(f"in_channels={self.in_channels!r}: must be 1 or 3")
        if not is_int(self.num_classes) or not 2 <= self.num_classes <= _MAX_CLASSES:
            problems.append(f"num_classes={self.num_classes!r}: must be an integer in [2, {_MAX_CLASSES}]")
        if not is_int(self.width) or not 1 <= self.width <= _MAX_WIDTH:
            problems.append(f"width={self.width!r}: must be an integer in [1, {_MAX_WIDTH}]")
        if self.head not in HEADS:
            problems.append(f"head={self.head!r}: must be one of {HEADS}")
        scale = self.logit_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            problems.append(f"logit_scale={scale!r}: must be a positive, finite number")
        if self.class_names is not None and (
            not isinstance(self.class_names, list) or len(self.class_names) != self.num_classes
            or not all(isinstance(name, str) for name in self.class_names)
        ):
            problems.append(f"class_names: must be a list of {self.num_classes} strings or None")
        if self.class_counts is not None and (
            not isinstance(self.class_counts, list) or len(self.class_counts) != self.num_classes
            or not all(is_int(count) and count >= 0 for count in self.class_counts)
        ):
            problems.append(f"class_counts: must be a list of {self.num_classes} non-negative integers or None")
        if problems:
            raise ValueError("invalid ClassifierSpec: " + "; ".join(problems))

    def build(self) -> SmallResNet:
        """An untrained network of this architecture (its head's fixed frame is replaced by the saved one on loading)."""
        from . import heads

        model = SmallResNet(self.in_channels, self.num_classes, self.width)
        feature_dim = model.feature_dim
        if self.head == "cosine":
            model.head = heads.CosineHead(feature_dim, self.num_classes)
        elif self.head == "etf":
            model.head = heads.ETFHead(feature_dim, self.num_classes)
        elif self.head == "haframe":
            # A flat hierarchy gives the frame's shapes; the saved buffers replace its values.
            flat = 1.0 - torch.eye(self.num_classes)
            model.head = heads.HAFrameHead(flat, feature_dim)
        return model


def _head_kind(head: nn.Module) -> str:
    from . import heads

    for kind, cls in (("cosine", heads.CosineHead), ("etf", heads.ETFHead), ("haframe", heads.HAFrameHead),
                      ("linear", nn.Linear)):
        if isinstance(head, cls):
            return kind
    raise TypeError(
        f"the model's head is a {type(head).__name__}; save_classifier knows nn.Linear, CosineHead, ETFHead and HAFrameHead"
    )


def save_classifier(
    model: SmallResNet,
    path: str | os.PathLike,
    *,
    logit_scale: float = 1.0,
    class_names: Sequence[str] | None = None,
    class_counts: Sequence[int] | torch.Tensor | None = None,
) -> Path:
    """Write a trained :class:`SmallResNet` to one ``.safetensors`` file that :func:`load_classifier` reads.

    The weights are stored as safetensors (never pickle); the architecture, the
    logit scale and the optional class names and training counts go into the
    file's metadata as JSON. The write is atomic.

    Args:
        model: the trained network (any of the heads of :mod:`gitaug.longtail.heads`, or the default linear one).
        path: the file to write; must end in ``.safetensors``.
        logit_scale: the factor the loss applied to the logits (e.g. ``LDAMLoss.scale``); 1 for cross-entropy.
        class_names: the class names, one per class.
        class_counts: training images per class (what eKLD is related to).

    Example::

        >>> import tempfile, torch
        >>> model = SmallResNet(in_channels=1, num_classes=3, width=4)
        >>> path = save_classifier(model, tempfile.mkdtemp() + "/clf.safetensors", class_counts=[50, 5, 1])
        >>> loaded, spec = load_classifier(path)
        >>> spec.class_counts, bool(torch.equal(loaded.eval()(torch.ones(1, 1, 8, 8)), model.eval()(torch.ones(1, 1, 8, 8))))
        ([50, 5, 1], True)
    """
    from safetensors.torch import save_file

    from .._files import atomic_write

    if not isinstance(model, SmallResNet):
        raise TypeError(f"model must be a SmallResNet, got {type(model).__name__}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    stem = model.stem[0]
    head = _head_kind(model.head)
    num_classes = model.head.out_features if head == "linear" else model.head.num_classes
    counts = None
    if class_counts is not None:
        counts = [int(count) for count in torch.as_tensor(class_counts).flatten().tolist()]
    spec = ClassifierSpec(
        in_channels=stem.in_channels, num_classes=num_classes, width=stem.out_channels, head=head,
        logit_scale=float(logit_scale), class_names=list(map(str, class_names)) if class_names is not None else None,
        class_counts=counts,
    )
    # safetensors refuses shared or non-contiguous storage: store detached contiguous copies.
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in model.state_dict().items()}
    metadata = {"format": CLASSIFIER_FORMAT, "version": str(CLASSIFIER_VERSION), "spec": json.dumps(asdict(spec))}
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda temporary: save_file(tensors, temporary, metadata=metadata))


def load_classifier(path: str | os.PathLike) -> tuple[SmallResNet, ClassifierSpec]:
    """Read a file written by :func:`save_classifier`: the network (in eval mode) and its :class:`ClassifierSpec`.

    Nothing is unpickled: the weights are safetensors and the architecture is
    rebuilt from the spec in the file's metadata, checked field by field.
    Wrap the network in :class:`ScaledLogits` with ``spec.logit_scale`` to get
    the logits its loss trained.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not a gitaug classifier, or its weights do not fit its spec (the message names the file).

    Example::

        model, spec = load_classifier("runs/drs-classifier.safetensors")
        logits = ScaledLogits(model, spec.logit_scale)(images)
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != CLASSIFIER_FORMAT:
                raise ValueError(
                    f"{str(path)!r} is a safetensors file but not a gitaug classifier (its metadata has no "
                    f"format={CLASSIFIER_FORMAT!r}); write one with gitaug.longtail.classifiers.save_classifier "
                    "or examples/train_longtail.py --save-classifier"
                )
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except ValueError:
        raise
    except Exception as err:  # safetensors reports a malformed file with its own error types
        raise ValueError(
            f"{str(path)!r} cannot be read as a safetensors file ({type(err).__name__}: {err}); a gitaug classifier "
            "is written by gitaug.longtail.classifiers.save_classifier"
        ) from err
    if metadata.get("version") != str(CLASSIFIER_VERSION):
        raise ValueError(f"{str(path)!r} has classifier format version {metadata.get('version')!r}; "
                         f"this gitaug reads version {CLASSIFIER_VERSION}")
    try:
        values = json.loads(metadata.get("spec", ""))
        if not isinstance(values, dict):
            raise ValueError("the spec is not a JSON object")
        spec = ClassifierSpec(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{str(path)!r} has an invalid classifier spec: {err}") from err
    model = spec.build()
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r}: the weights do not fit the architecture its spec describes ({err})") from err
    return model.eval(), spec
