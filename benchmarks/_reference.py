"""Pieces of the paper's reference procedure that several speed benchmarks measure against."""

from __future__ import annotations

import contextlib

import torch

from gitaug import generator as generator_module


def _munit_layer_norm(self: generator_module.LayerNorm2d, x: torch.Tensor) -> torch.Tensor:
    # MUNIT's own LayerNorm: per-sample mean and unbiased std over (C, H, W), eps added to the std.
    flat = x.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1).view(-1, 1, 1, 1)
    return (x - mean) / (std + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


@contextlib.contextmanager
def munit_norms():
    """The generator with MUNIT's layer norm (its AdaIN is already a batch_norm over an (1, N*C) view)."""
    fused = generator_module.LayerNorm2d.forward
    generator_module.LayerNorm2d.forward = _munit_layer_norm
    try:
        yield
    finally:
        generator_module.LayerNorm2d.forward = fused
