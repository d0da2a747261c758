"""warp_extent: a draw-time multiplier of a range warp's geometric ranges."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gitaug import GITAugment, MUNITGenerator
from gitaug.generator import RangeWarp

from helpers import tiny_config, tiny_generator


def _everything(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.ones_like(labels, dtype=torch.bool)


def _warped(rotation: float = 10.0, scale: float = 1.05, shift: float = 0.02) -> MUNITGenerator:
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(), warp="affine", warp_rotation=rotation, warp_scale=scale, warp_shift=shift)
    return MUNITGenerator(config).eval()


def test_the_ranges_widen_by_the_extent_up_to_the_largest_the_test_tries():
    warp = RangeWarp(rotation=10.0, scale=1.1, shift=0.04)
    rotation, log_scale, shift = warp.ranges(2.5)
    assert rotation == pytest.approx(25.0) and log_scale == pytest.approx(2.5 * math.log(1.1))
    assert shift == pytest.approx(0.1)
    assert warp.ranges(1.0) == pytest.approx((10.0, math.log(1.1), 0.04))
    assert warp.ranges(0.0) == (0.0, 0.0, 0.0)
    # capped: half a turn, x1.5, a quarter of the side
    assert warp.ranges(100.0) == pytest.approx((180.0, math.log(1.5), 0.25))
    # a fitted range already beyond the cap is kept as it is, never narrowed
    wide = RangeWarp(rotation=180.0, scale=2.0, shift=0.4)
    assert wide.ranges(1.0) == pytest.approx((180.0, math.log(2.0), 0.4))
    assert wide.ranges(3.0) == pytest.approx((180.0, math.log(2.0), 0.4))


def test_a_draw_turns_as_far_as_the_widened_range_and_the_same_code_gives_the_same_turn():
    warp = RangeWarp(rotation=10.0)
    style = torch.randn(4000, 8, generator=torch.Generator().manual_seed(0))
    angles = {e: torch.rad2deg(warp.parameters_from_style(style, e)["angle"]) for e in (1.0, 2.5)}
    assert 9.5 < float(angles[1.0].abs().max()) <= 10.0
    assert 24.0 < float(angles[2.5].abs().max()) <= 25.0
    assert torch.allclose(angles[2.5], 2.5 * angles[1.0], atol=1e-4)  # the code's position in the range is kept


def test_gitaugment_draws_with_the_extent_in_both_weight_paths():
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    labels = torch.zeros(8, dtype=torch.long)
    g = _warped()
    for dtype in (torch.float32, torch.bfloat16):  # the model's own weights, and a cast copy (functional call)
        draws = {}
        for extent in (0.0, 1.0, 3.0):
            aug = GITAugment(g, _everything, residual=True, appearance_scale=0, dtype=dtype, warp_extent=extent)
            draws[extent], _ = aug(x, labels, generator=torch.Generator().manual_seed(0))
        tolerance = 1e-5 if dtype == torch.float32 else 2e-2
        assert (draws[0.0] - x).abs().max() < tolerance  # no move at all: the warp alone is the identity
        moved = {e: float((draws[e] - x).abs().mean()) for e in (1.0, 3.0)}
        assert moved[3.0] > 1.5 * moved[1.0] > 0, moved
    assert "warp_extent=3.0" in repr(aug)


def test_the_extent_leaves_a_generator_without_a_range_warp_alone():
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    g = tiny_generator()
    style = torch.randn(4, g.config.style_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(g.redraw(x, style, residual=True, warp_extent=4.0), g.redraw(x, style, residual=True))


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, "2", True])
def test_a_bad_extent_is_refused_naming_it(bad):
    g = _warped()
    with pytest.raises(ValueError, match="warp_extent must be a finite number >= 0"):
        GITAugment(g, warp_extent=bad)
    with pytest.raises(ValueError, match="warp_extent must be a finite number >= 0"):
        g.redraw(torch.zeros(1, 1, 16, 16), torch.zeros(1, g.config.style_dim), warp_extent=bad)


def test_a_folder_s_stored_extent_is_used_unless_the_caller_passes_their_own(tmp_path):
    g = _warped()
    g.save_pretrained(tmp_path / "g", metadata={"draw": {"residual": True, "appearance_scale": 0.0, "warp_extent": 2.5}})
    assert GITAugment.from_pretrained(tmp_path / "g").warp_extent == 2.5
    assert GITAugment.from_pretrained(tmp_path / "g", warp_extent=1.0).warp_extent == 1.0
    tiny_generator().save_pretrained(tmp_path / "none")
    assert GITAugment.from_pretrained(tmp_path / "none").warp_extent == 1.0  # nothing stored: the fitted ranges
