"""The generator's names and size rules, importable without torch (so ``gitaug fit --help`` answers at once).

:mod:`gitaug.generator` builds the networks from these; :mod:`gitaug.fit.config`
validates a run's settings against them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "WARPS", "IMAGE_SIZE_MULTIPLE", "MIN_IMAGE_SIZE"]

#: Named architecture presets (everything but ``in_channels`` and ``image_size``).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"dim": 64, "mlp_dim": 256, "style_dim": 8, "n_downsample": 2, "n_res": 4},
    "small": {"dim": 16, "mlp_dim": 64, "style_dim": 8, "n_downsample": 2, "n_res": 2},
}

#: The warps a generator can have: none (the paper's), the style-driven StyleWarp ("rotation",
#: "similarity"), or RangeWarp ("affine": turns, scalings and shifts within fixed ranges).
WARPS = ("none", "rotation", "similarity", "affine")
#: With the presets' two stride-2 downsamplings, an image side must be a multiple of 4 and at
#: least 16, so that the content map is at least 4x4 (reflect padding needs it).
IMAGE_SIZE_MULTIPLE = 4
MIN_IMAGE_SIZE = 16
