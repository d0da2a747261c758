"""Long-tailed datasets: profiles, nuisances, built-in digits and loaders for local files.

``load(name, split, seed, **kwargs)`` builds a registered dataset;
``available()`` lists the names:

* ``digits-lt``, ``digits-rot-lt``, ``digits-bg-lt``, ``digits-dil-lt``,
  ``digits-scale-lt``, ``digits-contrast-lt``, ``digits-shift-lt``, ``digits-flip-lt`` --
  built from scikit-learn's digits (``pip install gitaug[digits]``); see
  :mod:`gitaug.datasets.digits` for the exact counts.
* ``fmnist-lt``, ``fmnist-rot-lt``, ``fmnist-bg-lt``, ``fmnist-dil-lt``,
  ``fmnist-scale-lt``, ``fmnist-contrast-lt``, ``fmnist-shift-lt``, ``fmnist-flip-lt`` --
  Fashion-MNIST-LT, built from the standard idx files found on this machine
  (keyword ``root=``, or see :mod:`gitaug.datasets.fashion_mnist`).
* ``cifar10-lt``, ``cifar100-lt`` -- need ``root=`` (the extracted python
  batches); keywords ``imbalance`` (default 100) and ``protocol``
  (default ``"ldam"``, the standard split of Cao et al.; or ``"seeded"``).
* ``image-folder`` -- needs ``root=``; keywords ``image_size``, ``channels``.

Every loader returns an :class:`ImageDataset`.

Example::

    >>> from gitaug.datasets import load
    >>> test = load("digits-dil-lt", split="test", seed=0)
    >>> len(test), test.num_classes
    (2080, 10)
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .base import ImageDataset
from .digits import DIGITS_DATASETS, digits_base_images, load_digits_lt
from .fashion_mnist import (
    FASHION_MNIST_DATASETS,
    find_fashion_mnist,
    load_fashion_mnist,
    load_fashion_mnist_lt,
    read_idx,
)
from .files import CIFAR_LT_PROTOCOLS, ldam_lt_indices, load_cifar, load_cifar_lt, load_image_folder
from .nuisances import (
    NUISANCES,
    RandomBackground,
    RandomDilationErosion,
    RandomScale,
    RandomShift,
    RandomFlip,
    RandomContrast,
    RandomRotation,
    get_nuisance,
    grey_dilation,
    grey_erosion,
)
from .profiles import exponential_profile, subsample_to_profile, zipf_profile

__all__ = [
    "ImageDataset",
    "load",
    "available",
    "nuisance_of",
    "plain_version",
    "exponential_profile",
    "zipf_profile",
    "subsample_to_profile",
    "NUISANCES",
    "get_nuisance",
    "RandomRotation",
    "RandomBackground",
    "RandomDilationErosion",
    "RandomScale",
    "RandomShift",
    "RandomFlip",
    "RandomContrast",
    "grey_dilation",
    "grey_erosion",
    "load_digits_lt",
    "digits_base_images",
    "load_fashion_mnist",
    "load_fashion_mnist_lt",
    "find_fashion_mnist",
    "read_idx",
    "load_cifar",
    "load_cifar_lt",
    "ldam_lt_indices",
    "CIFAR_LT_PROTOCOLS",
    "load_image_folder",
]


def _digits_loader(nuisance: str | None) -> Callable[..., ImageDataset]:
    def build(split: str, seed: int, **kwargs: Any) -> ImageDataset:
        return load_digits_lt(nuisance, split=split, seed=seed, **kwargs)

    return build


def _fashion_loader(nuisance: str | None) -> Callable[..., ImageDataset]:
    def build(split: str, seed: int, **kwargs: Any) -> ImageDataset:
        return load_fashion_mnist_lt(nuisance, split=split, seed=seed, **kwargs)

    return build


def _cifar_loader(num_classes: int) -> Callable[..., ImageDataset]:
    def build(split: str, seed: int, root: str | None = None, **kwargs: Any) -> ImageDataset:
        if root is None:
            raise ValueError(f"cifar{num_classes}-lt needs root=<folder with the CIFAR python batches>")
        return load_cifar_lt(root, num_classes=num_classes, split=split, seed=seed, **kwargs)

    return build


def _folder_loader(split: str, seed: int, root: str | None = None, **kwargs: Any) -> ImageDataset:
    if root is None:
        raise ValueError("image-folder needs root=<folder with one subfolder per class>")
    # An image folder is one split already; the seed has nothing to draw.
    return load_image_folder(root, **kwargs)


# Built-in sets with a known nuisance, and the plain set each is a version of.
_BUILTIN_NUISANCES: dict[str, str | None] = {**DIGITS_DATASETS, **FASHION_MNIST_DATASETS}
_PLAIN = {**{name: "digits-lt" for name in DIGITS_DATASETS}, **{name: "fmnist-lt" for name in FASHION_MNIST_DATASETS}}

_REGISTRY: dict[str, Callable[..., ImageDataset]] = {
    **{name: _digits_loader(nuisance) for name, nuisance in DIGITS_DATASETS.items()},
    **{name: _fashion_loader(nuisance) for name, nuisance in FASHION_MNIST_DATASETS.items()},
    "cifar10-lt": _cifar_loader(10),
    "cifar100-lt": _cifar_loader(100),
    "image-folder": _folder_loader,
}


def available() -> list[str]:
    """Names :func:`load` accepts, sorted.

    Example::

        >>> "digits-rot-lt" in available()
        True
    """
    return sorted(_REGISTRY)


def load(name: str, split: str = "train", seed: int = 0, **kwargs: Any) -> ImageDataset:
    """Builds the registered dataset ``name`` (see :func:`available`) for ``split`` and ``seed``.

    Extra keywords go to the dataset's loader (e.g. ``root=`` for CIFAR and
    image folders, ``imbalance=``, ``draws=``).

    Example::

        >>> train = load("digits-rot-lt", split="train", seed=1)
        >>> int(train.class_counts.max()), int(train.class_counts.min())
        (500, 5)
    """
    try:
        loader = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; available: {available()}") from None
    return loader(split=split, seed=seed, **kwargs)


def nuisance_of(name: str) -> Callable[..., torch.Tensor] | None:
    """The nuisance a registered dataset applies (``None`` for plain or real-image sets).

    Example::

        >>> nuisance_of("digits-bg-lt")
        RandomBackground(low=0, high=100)
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {available()}")
    nuisance = _BUILTIN_NUISANCES.get(name)
    return get_nuisance(nuisance) if nuisance is not None else None


def plain_version(name: str) -> str:
    """The name of the same built-in dataset without its nuisance (same base images per seed).

    Useful for eKLD, which starts from untransformed inputs.

    Example::

        >>> plain_version("digits-rot-lt"), plain_version("fmnist-bg-lt")
        ('digits-lt', 'fmnist-lt')
    """
    if name not in _PLAIN:
        raise ValueError(f"plain_version knows the built-in datasets {sorted(_PLAIN)}, got {name!r}")
    return _PLAIN[name]
