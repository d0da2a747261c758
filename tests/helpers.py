"""Small shared pieces for the tests."""

from __future__ import annotations

import torch

from gitaug import MUNITConfig, MUNITGenerator


def tiny_config(in_channels: int = 1, image_size: int = 16) -> MUNITConfig:
    """A generator small enough to run in milliseconds; same structure as the real presets."""
    return MUNITConfig(in_channels=in_channels, image_size=image_size, dim=8, mlp_dim=16, n_res=1)


def tiny_generator(in_channels: int = 1, image_size: int = 16, seed: int = 0) -> MUNITGenerator:
    torch.manual_seed(seed)
    return MUNITGenerator(tiny_config(in_channels, image_size)).eval()
