"""gitaug: Generative Invariance Transfer for long-tailed image classification.

A class-agnostic generator fitted on the whole training set learns the data's
nuisance transformations from the large classes; :class:`GITAugment` uses it
to re-draw inputs of the small classes during classifier training.

Example::

    from gitaug import GITAugment, ClassThresholdSampler

    sampler = ClassThresholdSampler.from_labels(train_labels, threshold=25, p=0.5)
    aug = GITAugment.from_pretrained("digits-rot-lt", sampler=sampler)
    for images, labels in loader:
        images, labels = aug(images, labels)

The public names are imported on first use, so that ``import gitaug`` (and
``gitaug --help``) does not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "GITAugment": ".augment",
    "ClassThresholdSampler": ".sampler",
    "GITDataset": ".per_sample",
    "MUNITGenerator": ".generator",
    "MUNITConfig": ".generator",
    "PRESETS": ".generator",
    "generator_report": ".report",
    "GeneratorReport": ".report",
    "list_pretrained": ".pretrained",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # static analysers and IDEs see the plain imports
    from .augment import GITAugment  # noqa: F401
    from .generator import PRESETS, MUNITConfig, MUNITGenerator  # noqa: F401
    from .per_sample import GITDataset  # noqa: F401
    from .pretrained import list_pretrained  # noqa: F401
    from .report import GeneratorReport, generator_report  # noqa: F401
    from .sampler import ClassThresholdSampler  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
