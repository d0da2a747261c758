"""Long-tailed, nuisance-transformed digits built from scikit-learn's ``load_digits``.

scikit-learn ships 1,797 real handwritten digits (8x8, values 0..16, 10
classes, 174 to 183 images per class). These loaders turn them into small
analogues of the paper's K49-LT sets:

* Each digit is scaled to 0..255, upsampled bilinearly to 20x20 and centred
  on a 28x28 black canvas (a 4-pixel border, like MNIST). The border keeps a
  rotated digit inside the image, and the background stays exactly 0 so that
  the background nuisance can find it.
* The base images of every class are split disjointly *first*, with the seed:
  52 per class go to ``test``, 26 per class to ``val`` and the rest (96 to 105
  per class) to ``train``, so no split shares a base image with another
  (``dataset.base_indices`` holds the ``load_digits`` index of every item).
* ``train`` follows ``exponential_profile(10, 500, 100)``: 500, 299, 179, 107,
  64, 38, 23, 13, 8, 5 images (1,236 in all), assigned to the digits in an
  order shuffled by the seed. Classes asked for more images than they have
  reuse base images, each copy with its own nuisance draw (as K49-LT did).
* ``val`` and ``test`` are balanced: every base image appears ``draws`` times
  under independent nuisance draws, by default 2 for ``val`` (52 per class,
  520 in all) and 4 for ``test`` (208 per class, 2,080 in all), which makes
  small-data evaluation less noisy. Without a nuisance (``digits-lt``) copies
  would be identical, so the default there is 1 draw (26 and 52 per class,
  260 and 520 in all).

Names: ``digits-lt`` (no nuisance), ``digits-rot-lt`` (rotation),
``digits-bg-lt`` (background intensity), ``digits-dil-lt`` (dilation or
erosion), and four nuisances beyond the paper's, for checks on what a method
was not tuned on: ``digits-scale-lt`` (zoom x0.7 to x1.3),
``digits-contrast-lt`` (ink faded by a factor 0.3 to 1) and
``digits-shift-lt`` (moved by up to 15 % of the side along each axis) and
``digits-flip-lt`` (mirrored left to right half the time). A split is a
deterministic function of (name, split, seed) and builds in well under a
second on a CPU.

Example::

    >>> from gitaug.datasets import load
    >>> train = load("digits-bg-lt", split="train", seed=0)
    >>> sorted(train.class_counts.tolist(), reverse=True)
    [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .._seeding import derive_seed
from .base import ImageDataset
from .nuisances import get_nuisance
from .profiles import exponential_profile, subsample_to_profile

__all__ = ["DIGITS_DATASETS", "load_digits_lt", "digits_base_images"]

DIGITS_DATASETS: dict[str, str | None] = {
    "digits-lt": None,
    "digits-rot-lt": "rot",
    "digits-bg-lt": "bg",
    "digits-dil-lt": "dil",
    "digits-scale-lt": "scale",
    "digits-contrast-lt": "contrast",
    "digits-shift-lt": "shift",
    "digits-flip-lt": "flip",
}
"""Built-in digits dataset names and the nuisance each applies."""

_SPLITS = ("train", "val", "test")
_IMAGE_SIZE = 28
_DIGIT_SIZE = 20


@functools.lru_cache(maxsize=1)
def _cached_base() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "the built-in digits datasets need scikit-learn; install it with "
            "`pip install gitaug[digits]` (or `pip install scikit-learn`)"
        ) from error
    bunch = load_digits()
    small = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    big = F.interpolate(small, size=(_DIGIT_SIZE, _DIGIT_SIZE), mode="bilinear", align_corners=False)
    pad = (_IMAGE_SIZE - _DIGIT_SIZE) // 2
    canvas = F.pad(big, (pad, pad, pad, pad), value=0.0)
    images = canvas.round().clamp(0, 255).to(torch.uint8)
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


def digits_base_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 (1797, 1, 28, 28) on a black background, and their labels.

    Example::

        >>> images, labels = digits_base_images()
        >>> images.shape, int(labels.max())
        (torch.Size([1797, 1, 28, 28]), 9)
    """
    images, labels = _cached_base()
    return images.clone(), labels.clone()


def _split_base(labels: torch.Tensor, seed: int, val_per_class: int, test_per_class: int) -> dict[str, torch.Tensor]:
    rng = torch.Generator().manual_seed(derive_seed(seed, "base-split"))
    parts: dict[str, list[torch.Tensor]] = {split: [] for split in _SPLITS}
    for cls in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == cls).flatten()
        if members.numel() <= val_per_class + test_per_class:
            raise ValueError(
                f"val_per_class={val_per_class} plus test_per_class={test_per_class} leaves no training "
                f"image for digit {cls}, which has {members.numel()}"
            )
        members = members[torch.randperm(members.numel(), generator=rng)]
        parts["test"].append(members[:test_per_class])
        parts["val"].append(members[test_per_class : test_per_class + val_per_class])
        parts["train"].append(members[test_per_class + val_per_class :])
    return {split: torch.cat(chunks) for split, chunks in parts.items()}


def load_digits_lt(
    nuisance: str | None = None,
    split: str = "train",
    seed: int = 0,
    *,
    max_count: int = 500,
    imbalance: float = 100.0,
    val_per_class: int = 26,
    test_per_class: int = 52,
    draws: int | None = None,
) -> ImageDataset:
    """One split of a long-tailed digits dataset (see the module docstring for the counts).

    Args:
        nuisance: ``None`` or a name of :data:`~gitaug.datasets.NUISANCES` (``"rot"``, ``"bg"``, ``"dil"``, ``"scale"``, ``"contrast"``, ``"shift"``, ``"flip"``).
        split: ``"train"`` (long-tailed), ``"val"`` or ``"test"`` (balanced).
        seed: seeds the base split, the class order, the training choice and
            the nuisance draws; the same seed gives matching, disjoint splits.
        max_count: largest training class.
        imbalance: ratio of the largest to the smallest training class.
        val_per_class: base images per class held out for ``val``.
        test_per_class: base images per class held out for ``test``.
        draws: copies of each base image in ``val``/``test``, each with its own
            nuisance draw (default 2 for val, 4 for test, 1 without nuisance).

    Example::

        >>> test = load_digits_lt("rot", split="test", seed=0)
        >>> test.class_counts.tolist()[:3], test.base_indices.unique().numel()
        ([208, 208, 208], 520)
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, value in (("val_per_class", val_per_class), ("test_per_class", test_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    transform = get_nuisance(nuisance) if nuisance is not None else None
    if draws is not None:
        if split == "train":
            raise ValueError(f"draws applies to the val and test splits, got draws={draws!r} for split='train'")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")

    base_images, base_labels = _cached_base()
    pools = _split_base(base_labels, int(seed), val_per_class, test_per_class)
    pool = pools[split]
    if split == "train":
        counts = exponential_profile(10, max_count, imbalance)
        picks = subsample_to_profile(
            base_labels[pool], counts, seed=derive_seed(int(seed), "train-profile"), allow_reuse=True
        )
        chosen = pool[picks]
    else:
        if draws is None:
            draws = 1 if transform is None else (2 if split == "val" else 4)
        chosen = pool.repeat_interleave(draws)

    images = base_images[chosen]
    if transform is not None:
        # One call for the whole split: every item gets its own draw.
        rng = torch.Generator().manual_seed(derive_seed(int(seed), nuisance or "", split, "nuisance"))
        moved = transform(images.float() / 255, generator=rng)
        images = (moved * 255).round_().clamp_(0, 255).to(torch.uint8)
    return ImageDataset(images, base_labels[chosen], [str(d) for d in range(10)], base_indices=chosen)
