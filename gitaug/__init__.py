"""gitaug: Generative Invariance Transfer for long-tailed image classification.

A class-agnostic generator fitted on the whole training set learns the data's
nuisance transformations from the large classes; :class:`GITAugment` uses it
to re-draw inputs of the small classes during classifier training.

Example::

    from gitaug import GITAugment, ClassThresholdSampler

    sampler = ClassThresholdSampler.from_labels(train_labels, threshold=25, p=0.5)
    aug = GITAugment.from_pretrained("runs/digits-bg-lt", sampler=sampler)
    for images, labels in loader:
        images, labels = aug(images, labels)
"""

from .augment import GITAugment
from .generator import PRESETS, MUNITConfig, MUNITGenerator
from .sampler import ClassThresholdSampler

__version__ = "0.1.0"

__all__ = [
    "GITAugment",
    "ClassThresholdSampler",
    "MUNITGenerator",
    "MUNITConfig",
    "PRESETS",
    "__version__",
]
