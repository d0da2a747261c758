"""Small shared pieces for the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gitaug import MUNITConfig, MUNITGenerator


def tiny_config(in_channels: int = 1, image_size: int = 16) -> MUNITConfig:
    """A generator small enough to run in milliseconds; same structure as the real presets."""
    return MUNITConfig(in_channels=in_channels, image_size=image_size, dim=8, mlp_dim=16, n_res=1)


def tiny_generator(in_channels: int = 1, image_size: int = 16, seed: int = 0) -> MUNITGenerator:
    torch.manual_seed(seed)
    return MUNITGenerator(tiny_config(in_channels, image_size)).eval()


# A long-tailed handful of real digits: class c keeps COUNTS[c] images.
COUNTS = [24, 14, 8, 5, 3, 2]


def digits_16(counts=COUNTS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real handwritten digits (scikit-learn), upsampled to 16x16 uint8, long-tailed by ``counts``."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    rng = np.random.default_rng(seed)
    picks = np.concatenate(
        [rng.choice(np.flatnonzero(bunch.target == c), size=n, replace=False) for c, n in enumerate(counts)]
    )
    small = torch.as_tensor(bunch.images[picks], dtype=torch.float32)[:, None] * (255 / 16)
    images = F.interpolate(small, size=(16, 16), mode="bilinear", align_corners=False)
    return images.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy(), bunch.target[picks].astype(np.int64)
