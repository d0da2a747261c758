"""GITAugment(styles="data"): style codes drawn from the training images' own style distribution."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gitaug import GITAugment, MUNITGenerator

from helpers import tiny_config, tiny_generator


def _images(n: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_style_statistics_are_the_mean_and_spread_of_the_encoded_styles():
    g = tiny_generator()
    x = _images() * 2 - 1
    stats = g.style_statistics(x, batch_size=7)  # batches of 7 give the same figures as one pass
    codes = g.encode_style(x)
    assert stats["images"] == 40 and len(stats["mean"]) == len(stats["std"]) == g.config.style_dim
    assert torch.allclose(torch.tensor(stats["mean"]), codes.mean(0), atol=1e-5)
    assert torch.allclose(torch.tensor(stats["std"]), codes.std(0), atol=1e-5)
    with pytest.raises(ValueError, match="N >= 2"):
        g.style_statistics(x[:1])


def test_data_styles_follow_the_stored_normal_and_are_reproducible():
    g = tiny_generator()
    dim = g.config.style_dim
    g.training_metadata["styles"] = {"mean": [0.5] * dim, "std": [0.1] * dim}
    codes = g.data_style(20000, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (20000, dim)
    assert float(codes.mean()) == pytest.approx(0.5, abs=0.01) and float(codes.std()) == pytest.approx(0.1, rel=0.02)
    again = g.data_style(20000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(codes, again)


def test_with_data_styles_the_appearance_comes_from_the_data_and_the_warp_keeps_its_own_code():
    # A spread of zero: every draw gets the data's mean appearance, so without a warp the draws of
    # one input are all the same picture -- the decoder fed the mean code -- while prior draws differ.
    g = tiny_generator()
    dim = g.config.style_dim
    g.training_metadata["styles"] = {"mean": [0.3] * dim, "std": [0.0] * dim}
    x = _images(1).repeat(6, 1, 1, 1)
    labels = torch.zeros(6, dtype=torch.long)
    data = GITAugment(g, lambda y, generator=None: torch.ones_like(y, dtype=torch.bool), styles="data", dtype=torch.float32)
    prior = GITAugment(g, lambda y, generator=None: torch.ones_like(y, dtype=torch.bool), dtype=torch.float32)
    with torch.no_grad():
        drawn, _ = data(x, labels, generator=torch.Generator().manual_seed(0))
        expected = g.decode(g.encode_content(x * 2 - 1), torch.full((6, dim), 0.3))
        varied, _ = prior(x, labels, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(drawn, ((expected + 1) / 2).clamp(0, 1), atol=1e-5)
    assert float((drawn - drawn[:1]).abs().max()) < 1e-6
    assert float((varied - varied[:1]).abs().amax((1, 2, 3))[1:].min()) > 1e-3

    turning = MUNITGenerator(dataclasses.replace(tiny_config(), warp="affine", warp_rotation=180.0)).eval()
    turning.training_metadata["styles"] = {"mean": [0.0] * dim, "std": [0.0] * dim}
    turned = GITAugment(turning, lambda y, generator=None: torch.ones_like(y, dtype=torch.bool), styles="data", residual=True)
    with torch.no_grad():
        out, _ = turned(x, labels, generator=torch.Generator().manual_seed(0))
    assert float((out - out[:1]).abs().amax((1, 2, 3))[1:].min()) > 1e-3  # the turn differs from draw to draw


def test_a_generator_without_statistics_or_with_bad_ones_is_a_clear_error():
    g = tiny_generator()
    with pytest.raises(ValueError, match="stores no style statistics.*styles='prior'"):
        GITAugment(g, styles="data", dtype=torch.float32)
    with pytest.raises(ValueError, match="styles must be one of"):
        GITAugment(g, styles="dataset")
    dim = g.config.style_dim
    for bad in ({"mean": [0.0] * (dim - 1), "std": [1.0] * dim}, {"mean": [math.nan] * dim, "std": [1.0] * dim},
                {"mean": [0.0] * dim, "std": [-1.0] * dim}, {"mean": "zero", "std": [1.0] * dim}):
        g.training_metadata["styles"] = bad
        with pytest.raises(ValueError, match="style statistics"):
            GITAugment(g, styles="data", dtype=torch.float32)
