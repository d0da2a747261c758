"""The default fit finds the data's own nuisance: the detection test, the range warp, the export."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from gitaug import GITAugment, MUNITConfig, MUNITGenerator
from gitaug.fit import FitConfig, fit
from gitaug.fit.nuisance_probe import (
    DETECTION_THRESHOLD,
    FAMILY_MAX,
    _inscribed_disc,
    _pair,
    _range_from_power,
    affine_matrix,
    apply_affine,
    probe_nuisance,
)
from gitaug.fit.nuisance_probe import MAX_BACKGROUNDS, data_backgrounds
from gitaug.generator import BACKGROUND_TOLERANCE, RangeWarp, _background, background_mask, recolor_background
from gitaug.diagnostics import APPEARANCE_STATISTICS
from gitaug.report import DRAW_CANDIDATES

from helpers import tiny_config

SIDE = 16


def glyphs(n: int, seed: int, *, rotated: bool, background: bool = False) -> torch.Tensor:
    """``n`` images in [-1, 1] of three asymmetric glyphs (an L, an F, a T), upright or turned at random.

    With ``background`` each image gets a random uniform gray behind the glyph.
    """
    g = torch.Generator().manual_seed(seed)
    shapes = torch.zeros(3, 1, SIDE, SIDE)
    shapes[0, 0, 3:13, 5:7] = 1
    shapes[0, 0, 11:13, 5:11] = 1  # L
    shapes[1, 0, 3:13, 5:7] = 1
    shapes[1, 0, 3:5, 5:12] = 1
    shapes[1, 0, 7:9, 5:10] = 1  # F
    shapes[2, 0, 3:5, 4:12] = 1
    shapes[2, 0, 3:13, 7:9] = 1  # T
    images = shapes[torch.randint(0, 3, (n,), generator=g)]
    if rotated:
        angle = (torch.rand(n, generator=g) * 2 - 1) * math.pi
        images = apply_affine(images, affine_matrix(angle, torch.zeros(n), torch.zeros(n, 2)))
    if background:
        gray = torch.rand(n, 1, 1, 1, generator=g) * 0.5
        images = torch.maximum(images, gray.expand_as(images))
    return images * 2 - 1


# --------------------------------------------------------------------------- the warp


def test_range_warp_draws_uniformly_within_its_ranges_and_zero_ranges_are_the_identity():
    styles = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))
    params = RangeWarp(rotation=90.0, scale=1.5, shift=0.1).parameters_from_style(styles)
    angle = torch.rad2deg(params["angle"])
    assert float(angle.abs().max()) <= 90.0
    assert float(angle.std()) == pytest.approx(90 / math.sqrt(3), rel=0.03)  # uniform in [-90, 90]
    assert float(params["scale"].min()) >= 1 / 1.5 - 1e-6 and float(params["scale"].max()) <= 1.5 + 1e-6
    assert float(params["shift"].abs().max()) <= 0.2 + 1e-6  # 10 % of the side is 0.2 in [-1, 1] units
    image = torch.rand(3, 1, 8, 8)
    assert RangeWarp().forward(image, torch.randn(3, 8)) is image
    # the same code gives the same transform
    assert torch.equal(RangeWarp(rotation=30.0)(image, styles[:3]), RangeWarp(rotation=30.0)(image, styles[:3]))


def test_affine_config_fields_are_checked_and_old_config_files_still_load():
    config = MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_rotation=45.0, warp_scale=1.2, warp_shift=0.05)
    assert isinstance(MUNITGenerator(config).warp, RangeWarp)
    assert MUNITConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in tiny_config().to_dict().items() if not k.startswith("warp")}
    assert MUNITConfig.from_dict(old).warp == "none" and MUNITGenerator(MUNITConfig.from_dict(old)).warp is None
    with pytest.raises(ValueError, match="warp_rotation must be a number in"):
        MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_rotation=200.0)
    with pytest.raises(ValueError, match="need warp='affine'"):
        MUNITConfig(in_channels=1, image_size=16, warp_rotation=10.0)
    with pytest.raises(ValueError, match=r"warp_scale=0.5: must be a number in \[1, 4\]"):
        FitConfig(dataset="digits-lt", warp_scale=0.5)
    with pytest.raises(ValueError, match="warp_shift=0.1: needs warp='auto' or 'affine'"):
        FitConfig(dataset="digits-lt", warp="none", warp_shift=0.1)
    with pytest.raises(ValueError, match=r"each of warp_backgrounds must be 1 number\(s\) in \[-1, 1\].*got \[1.5\]"):
        MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_backgrounds=[[1.5]])
    with pytest.raises(ValueError, match=r"must be 3 number\(s\).*got \[0.0\]"):
        MUNITConfig(in_channels=3, image_size=16, warp="affine", warp_backgrounds=[[0.0]])
    with pytest.raises(ValueError, match="need warp='affine'"):
        MUNITConfig(in_channels=1, image_size=16, warp_backgrounds=[[0.0]])
    with pytest.raises(ValueError, match="warp_background='grey': must be one of"):
        FitConfig(dataset="digits-lt", warp_background="grey")
    # a JSON round trip gives lists; the config holds tuples and compares equal
    swapping = MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_backgrounds=[[-1.0], [-0.5]])
    assert swapping.warp_backgrounds == ((-1.0,), (-0.5,))
    assert MUNITConfig.from_dict(json.loads(json.dumps(swapping.to_dict()))) == swapping


# --------------------------------------------------------------------------- the background


def test_recolor_background_sets_the_flat_background_only():
    x = -torch.ones(3, 1, 6, 6)
    x[:, :, 2:4, 2:4] = 0.6  # an object on black
    x[2] = 0.9  # the third image: background near white
    x[2, :, 2:4, 2:4] = -0.5
    out = recolor_background(x, torch.tensor([[-0.6], [0.2], [-1.0]]))
    object_ = torch.zeros(6, 6, dtype=torch.bool)
    object_[2:4, 2:4] = True
    assert torch.equal(out[:, :, object_], x[:, :, object_])  # the object is untouched
    assert torch.allclose(out[0, :, ~object_], torch.tensor(-0.6))
    assert torch.allclose(out[1, :, ~object_], torch.tensor(0.2))
    assert torch.allclose(out[2, :, ~object_], torch.tensor(-1.0))
    # an image without a flat background (noise: a few pixels match its border value by chance) is kept whole
    noise = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise[:, :, 5, 5:8] = _background(noise)[:, :, 0, 0].view(2, 1, 1)
    assert int(((noise - _background(noise)).abs() <= BACKGROUND_TOLERANCE).sum()) >= 6
    assert torch.equal(recolor_background(noise, torch.full((2, 1), 0.5)), noise)
    assert not background_mask(noise).any() and bool(background_mask(x).any(dim=(1, 2, 3)).all())
    assert BACKGROUND_TOLERANCE < 2 / 255  # less than one grey level of an 8-bit image
    with pytest.raises(ValueError, match=r"level must have shape \(3, 1\).*got \(2,\)"):
        recolor_background(x, torch.zeros(2))


def test_data_backgrounds_are_the_values_the_data_holds_and_none_for_one_value_or_photographs():
    greys = glyphs(300, 0, rotated=False, background=True)  # random greys in [0, 0.5) of the range
    values = torch.tensor(data_backgrounds(greys))
    assert values.shape == (MAX_BACKGROUNDS, 1)
    assert float(values.min()) < -0.9 and -0.1 < float(values.max()) < 0.0  # about 0 and 0.5 of the range
    assert bool((values[1:] >= values[:-1]).all())  # evenly spaced quantiles, in order
    assert data_backgrounds(glyphs(300, 0, rotated=False)) == []  # all black: nothing to swap
    assert data_backgrounds(torch.rand(64, 1, 16, 16) * 2 - 1) == []  # no flat backgrounds
    # Black backgrounds but for two white-bordered images: the outliers are not values the data holds.
    outliers = glyphs(300, 0, rotated=False)
    outliers[:2] = -outliers[:2]
    assert data_backgrounds(outliers) == []
    # A quarter of the images on white: a value the data holds, drawn for about a quarter of the draws.
    quarter = glyphs(300, 0, rotated=False)
    quarter[:75] = -quarter[:75]
    values = torch.tensor(data_backgrounds(quarter)).flatten()
    assert set(values.tolist()) == {-1.0, 1.0} and abs(float((values == 1).float().mean()) - 0.25) <= 1 / MAX_BACKGROUNDS


def test_range_warp_swaps_the_background_for_one_of_its_values_and_only_in_draws():
    images = glyphs(1, 0, rotated=False).repeat(400, 1, 1, 1)  # a glyph on black
    images = recolor_background(images, torch.full((400, 1), -0.4))  # ... on a grey of 0.3 of the range
    values = [[-1.0], [-0.8], [-0.6]]
    warp = RangeWarp(backgrounds=values)
    styles = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    drawn = warp.draw(images, styles, reference=images)
    corner = drawn[:, 0, 0, 0]
    counts = [int(torch.isclose(corner, torch.tensor(v[0])).sum()) for v in values]
    assert sum(counts) == 400 and min(counts) > 100  # each value about a third of the time
    glyph = images[0, 0] > 0.5
    assert torch.equal(drawn[:, 0][:, glyph], images[:, 0][:, glyph])
    # a fit's fakes go through the geometric part alone: a background swap is not a geometric transform
    assert warp(images, styles) is images
    # the sample grid shows the draws users get: its decoded columns swap the background too
    from gitaug.fit.grid import sample_grid

    small = MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1, warp="affine")
    with torch.no_grad():
        plain = MUNITGenerator(small)
        swapping = MUNITGenerator(dataclasses.replace(small, warp_backgrounds=values))
        swapping.load_state_dict(plain.state_dict())
        uint8 = ((images[:2] + 1) * 127.5).round().to(torch.uint8)
        grids = [sample_grid(g, uint8, variants=4, seed=0) for g in (plain, swapping)]
    assert torch.equal(grids[0][:, :16, :16], grids[1][:, :16, :16])  # the first row's real input
    assert float((grids[0] - grids[1]).abs().max()) > 0.05
    # a generator with background values swaps them in every draw, decoded or residual
    assert swapping.has_warp and not plain.has_warp
    with torch.no_grad():
        for residual in (True, False):
            a = swapping.eval().redraw(images[:8], styles[:8], residual=residual)
            b = swapping.redraw(images[:8], styles[8:16], residual=residual)
            assert float((a[:, 0, 0, 0] - b[:, 0, 0, 0]).abs().mean()) > 0.05


# --------------------------------------------------------------------------- the detection test


def test_the_test_finds_a_wide_rotation_range_on_turned_glyphs_and_a_narrow_one_on_upright_ones():
    turned = probe_nuisance(glyphs(600, 0, rotated=True), steps=150, families=("rotation",), seed=0)
    upright = probe_nuisance(glyphs(600, 0, rotated=False), steps=150, families=("rotation",), seed=0)
    wide, narrow = math.degrees(turned.ranges["rotation"]), math.degrees(upright.ranges["rotation"])
    assert wide > 120, turned.power
    assert narrow < 30, upright.power
    # untested families get no range
    assert turned.ranges["shift"] == 0.0 and turned.ranges["log_scale"] == 0.0 and turned.backgrounds == []
    assert len(turned.power["rotation"]) == 8 and all(0 <= p <= 1 for p in upright.power["rotation"])


def test_the_test_swaps_random_grey_backgrounds_and_leaves_black_ones_and_photographs_alone():
    grey = probe_nuisance(glyphs(600, 0, rotated=False, background=True), steps=150, families=("background",), seed=0)
    assert grey.power["background"][0] < DETECTION_THRESHOLD and len(grey.backgrounds) == MAX_BACKGROUNDS
    # backgrounds that follow the content: each glyph has its own grey, so a swap is plain to see
    shapes = glyphs(600, 2, rotated=False)
    # 0 for an L, 1 for an F (a top bar), 2 for a T (a top bar that starts a column further left)
    kind = (shapes[:, 0, 3, 9:12] > 0).any(1).long() + (shapes[:, 0, 3, 4] > 0).long()
    assert kind.unique().tolist() == [0, 1, 2]
    tied = recolor_background(shapes, (kind.float() * 0.4 - 0.9).view(-1, 1))
    seen = probe_nuisance(tied, steps=150, families=("background",), seed=0)
    assert seen.power["background"][0] >= DETECTION_THRESHOLD and seen.backgrounds == [], seen.power
    # one background value (black), or no flat backgrounds (noise): nothing to swap, nothing tested
    for images in (glyphs(200, 0, rotated=False), torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1):
        untested = probe_nuisance(images, steps=5, families=("background",), seed=0)
        assert untested.backgrounds == [] and untested.power["background"] == []


def test_rotation_is_judged_inside_the_inscribed_disc_and_the_other_families_on_the_whole_image():
    # Turning a square picture clips its corners; the clipped outline lines up with the frame again
    # only at multiples of 90 degrees, so a detector that sees the corners tells 45 degree turns of
    # a turned data set apart although the content's orientation is uniform (the real-data test in
    # test_fashion_mnist.py measures it). The detector sees no pixel outside the inscribed disc.
    images = torch.rand(6, 1, 12, 12) * 2 - 1
    g = torch.Generator().manual_seed(0)
    untouched, transformed = _pair(images, "rotation", torch.full((6,), 0.8), g)
    outside = _inscribed_disc(12, 12) == 0
    assert int(outside.sum()) == 32  # 8 of 36 pixels in each corner
    assert float(untouched[..., outside].abs().max()) == 0 and float(transformed[..., outside].abs().max()) == 0
    assert float(untouched[..., ~outside].abs().min()) > 0
    shifted, _ = _pair(images, "shift", torch.full((6,), 0.1), g)
    assert float(shifted[..., outside].abs().min()) > 0


def test_a_range_ends_where_the_detection_power_first_reaches_the_threshold():
    m = [1.0, 2.0, 3.0, 4.0]
    assert DETECTION_THRESHOLD == 0.2
    assert _range_from_power(m, [0.0, 0.1, 0.3, 0.9], 5.0) == pytest.approx(2.5)
    # a power already above the threshold at the first magnitude: interpolated from (0, 0)
    assert _range_from_power(m, [0.8, 1.0, 1.0, 1.0], 5.0) == pytest.approx(0.25)
    # a power that never reaches it: the whole tested range; a later dip does not extend a range
    assert _range_from_power(m, [0.05, 0.1, 0.0, 0.19], 5.0) == 5.0
    assert _range_from_power(m, [0.0, 0.4, 0.0, 0.0], 5.0) == pytest.approx(1.5)


def test_the_test_checks_its_arguments():
    with pytest.raises(ValueError, match="images must be"):
        probe_nuisance(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        probe_nuisance(torch.zeros(4, 1, 8, 8), steps=0)
    with pytest.raises(ValueError, match="families must be among"):
        probe_nuisance(torch.zeros(4, 1, 8, 8), families=("shear",))
    assert set(FAMILY_MAX) == {"rotation", "log_scale", "shift", "contrast"}


# --------------------------------------------------------------------------- the default fit


def _npz(path, images: torch.Tensor) -> str:
    uint8 = ((images[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.savez(path, images=uint8)
    return str(path)


def _small_fit(data: str, out, **changes) -> FitConfig:
    values = dict(
        data=data, out=str(out), dim=8, mlp_dim=16, n_res=1, disc_dim=8, disc_layers=2, disc_scales=1, batch_size=8,
        steps=3, log_every=1, checkpoint_every=0, sample_every=0, grid_variants=2, progress=False, probe_steps=20,
        report=False,
    )
    values.update(changes)
    return FitConfig(**values)


def test_default_fit_stores_and_reports_what_it_learned(tmp_path):
    data = _npz(tmp_path / "turned.npz", glyphs(64, 0, rotated=True))
    out = fit(_small_fit(data, tmp_path / "run", report=True))
    aug = GITAugment.from_pretrained(out)
    # The generator report runs at the end of the fit and travels with the export.
    assert {"draw_spread", "verdict", "warnings"} <= set(aug.metadata["report"])
    config = aug.generator.config
    assert config.warp == "affine"
    nuisance = aug.metadata["nuisance"]
    assert nuisance["rotation_degrees"] == config.warp_rotation and nuisance["scale"] == config.warp_scale
    assert nuisance["spread"] > 0
    assert set(nuisance["test"]) == {"rotation", "log_scale", "shift", "background", "contrast", "flip"}
    assert nuisance["flip"] is config.warp_flip
    assert nuisance["backgrounds"] == [] == list(config.warp_backgrounds)  # turned glyphs on black: one value
    assert nuisance["contrast"] == config.warp_contrast >= 1.0
    # what each draw changes in appearance, beside the data's own variation
    appearance = nuisance["appearance"]
    assert list(appearance) == [name for name, _ in DRAW_CANDIDATES]
    assert all(list(figures) == list(APPEARANCE_STATISTICS) for figures in appearance.values())
    assert appearance["the warp alone"]["ink"]["data"] == appearance["the decoded draws"]["ink"]["data"] > 0
    # the training images' style statistics travel with the export, so styles="data" works on it
    styles = aug.metadata["styles"]
    assert styles["images"] == 64 and len(styles["mean"]) == len(styles["std"]) == config.style_dim
    assert all(s > 0 for s in styles["std"])
    assert GITAugment.from_pretrained(out, styles="data").styles == "data"
    stored = json.loads((out / "config.json").read_text())["generator"]
    assert stored["warp_rotation"] == config.warp_rotation
    # a fixed range is taken as given and not tested
    fixed = GITAugment.from_pretrained(fit(_small_fit(data, tmp_path / "fixed", warp_rotation=0.0)))
    assert fixed.generator.config.warp_rotation == 0.0
    assert "rotation" not in fixed.metadata["nuisance"]["test"]


@pytest.mark.slow
def test_default_fit_turns_turned_glyphs_leaves_upright_ones_and_varies_a_random_background(tmp_path):
    turned = GITAugment.from_pretrained(fit(_small_fit(_npz(tmp_path / "t.npz", glyphs(600, 0, rotated=True)), tmp_path / "t", steps=2, probe_steps=150)))
    background_images = glyphs(600, 1, rotated=False, background=True)
    backdrop = fit(_small_fit(_npz(tmp_path / "b.npz", background_images), tmp_path / "b", steps=300, probe_steps=150, lr=1e-3))
    backdrop = GITAugment.from_pretrained(backdrop)
    assert turned.generator.config.warp_rotation > 120
    assert backdrop.generator.config.warp_rotation < 30
    # the draws of one upright glyph differ in their background (a corner patch), as the data's do
    x = ((background_images[:8] + 1) / 2).repeat_interleave(16, 0)
    with torch.no_grad():
        draws = backdrop(x, generator=torch.Generator().manual_seed(0))
    corner = draws[:, 0, :3, :3].mean((1, 2)).view(8, 16)
    assert float(corner.std(1).mean()) > 0.04, corner


def test_the_test_finds_a_scale_range_on_zoomed_glyphs_and_almost_none_on_glyphs_of_one_size():
    from gitaug.datasets import RandomScale

    upright = glyphs(600, 0, rotated=False)
    zoomed = RandomScale(0.6, 1.4)((upright + 1) / 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    wide = probe_nuisance(zoomed, steps=150, families=("log_scale",), seed=0)
    narrow = probe_nuisance(upright, steps=150, families=("log_scale",), seed=0)
    # Zoom is no group the data is closed under (rotation by any angle is): a further zoom by x1.1 moves
    # the data's sizes, x0.6..x1.4, by a tenth of their spread, which a detector already half sees. So the
    # range is a fraction of the data's spread, yet ten times that of glyphs that all have one size.
    assert math.exp(wide.ranges["log_scale"]) > 1.07, wide.power
    assert math.exp(narrow.ranges["log_scale"]) < 1.03, narrow.power
    assert wide.ranges["log_scale"] > 4 * narrow.ranges["log_scale"]
    assert wide.ranges["rotation"] == 0.0 and wide.ranges["shift"] == 0.0


def test_the_test_finds_a_shift_range_on_moved_glyphs_and_almost_none_on_centred_ones():
    from gitaug.datasets import RandomShift

    centred = glyphs(600, 0, rotated=False)
    moved = RandomShift(0.15)((centred + 1) / 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    wide = probe_nuisance(moved, steps=150, families=("shift",), seed=0)
    narrow = probe_nuisance(centred, steps=150, families=("shift",), seed=0)
    # As with zoom, a bounded range: the shift found is a fraction of the data's +-15 %, and several times
    # that of glyphs that all sit in the middle.
    assert wide.ranges["shift"] > 0.04, wide.power
    assert narrow.ranges["shift"] < 0.03, narrow.power
    assert wide.ranges["shift"] > 2.5 * narrow.ranges["shift"]


# --------------------------------------------------------------------------- contrast


def test_the_test_finds_a_contrast_range_on_faded_glyphs_and_almost_none_on_glyphs_of_one_contrast():
    from gitaug.datasets import RandomContrast

    sharp = glyphs(600, 0, rotated=False)
    faded = RandomContrast()((sharp + 1) / 2, generator=torch.Generator().manual_seed(1)) * 2 - 1  # ink x0.3..x1
    wide = probe_nuisance(faded, steps=150, families=("contrast",), seed=0)
    narrow = probe_nuisance(sharp, steps=150, families=("contrast",), seed=0)
    # Bounded, as zoom and shift are: a fraction of the data's spread, and far above one contrast's.
    assert math.exp(wide.ranges["contrast"]) > 1.15, wide.power
    assert math.exp(narrow.ranges["contrast"]) < 1.08, narrow.power
    assert wide.ranges["contrast"] > 3 * narrow.ranges["contrast"]
    assert wide.ranges["rotation"] == wide.ranges["shift"] == 0.0
    assert "contrast" in wide.summary() and "contrast" not in probe_nuisance(sharp, steps=5, families=("shift",)).summary()


def test_testing_contrast_and_the_mirror_image_too_leaves_the_other_families_figures_as_they_were():
    images = glyphs(200, 0, rotated=True)
    four = ("rotation", "log_scale", "shift", "background")
    before = probe_nuisance(images, steps=20, families=four, seed=3)
    with_contrast = probe_nuisance(images, steps=20, families=(*four, "contrast"), seed=3)
    after = probe_nuisance(images, steps=20, seed=3)  # the default tests contrast, then the mirror image, last
    assert after.ranges["contrast"] > 0 and "contrast" in after.power and "flip" in after.power
    assert {**after.ranges, "contrast": 0.0} == before.ranges
    assert {k: v for k, v in after.power.items() if k not in ("contrast", "flip")} == before.power
    assert {k: v for k, v in after.power.items() if k != "flip"} == with_contrast.power
    assert with_contrast.flip is False  # not tested: never mirrored


def test_the_mirror_test_lets_through_what_the_data_holds_mirrored_and_only_that():
    from gitaug.datasets import RandomFlip

    upright = glyphs(600, 0, rotated=False)  # an L and an F: their mirror images are not in the data
    mirrored = RandomFlip()((upright + 1) / 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    seen = probe_nuisance(upright, steps=150, families=("flip",), seed=0)
    unseen = probe_nuisance(mirrored, steps=150, families=("flip",), seed=0)
    assert seen.flip is False and seen.power["flip"][0] > 0.5, seen.power
    assert unseen.flip is True and unseen.power["flip"][0] < DETECTION_THRESHOLD, unseen.power
    assert "mirrored" in unseen.summary() and "mirrored" not in seen.summary()
    assert unseen.ranges == seen.ranges == {name: 0.0 for name in FAMILY_MAX}  # nothing else tested


def test_range_warp_mirrors_half_its_draws_exactly_in_draws_only():
    images = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1).repeat(4000, 1, 1, 1)
    styles = torch.randn(4000, 8, generator=torch.Generator().manual_seed(0))
    warp = RangeWarp(flip=True)
    assert not warp.is_identity and warp.is_geometric_identity and "flip=True" in repr(warp)
    out = warp.draw(images, styles, images)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((mirrored ^ (out == images).flatten(1).all(1)).all())  # exact: no resampling
    assert 0.46 < float(mirrored.float().mean()) < 0.54
    assert torch.equal(mirrored, warp.parameters_from_style(styles)["flip"])  # one style code, one draw
    # the fit's fakes (calling the module) are not mirrored, so a fit trains the same weights with it
    assert torch.equal(warp(images, styles), images)
    assert torch.equal(warp.draw(images, styles, images, extent=0.0), images)
    assert "flip" not in RangeWarp(rotation=10.0).parameters_from_style(styles)
    # with a turn as well: the turned draw, mirrored
    both = RangeWarp(rotation=30.0, flip=True)
    params = both.parameters_from_style(styles[:8])
    turned = RangeWarp(rotation=30.0)(images[:8], styles[:8])
    expected = torch.where(params["flip"].view(-1, 1, 1, 1), turned.flip(-1), turned)
    assert torch.allclose(both.draw(images[:8], styles[:8], images[:8]), expected)
    assert torch.equal(both(images[:8], styles[:8]), turned)


def test_config_warp_flip_is_checked_and_older_configs_load_without_it():
    config = MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_flip=True)
    assert MUNITConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert RangeWarp.from_config(config).flip is True
    older = {k: v for k, v in config.to_dict().items() if k != "warp_flip"}
    assert MUNITConfig.from_dict(older).warp_flip is False
    with pytest.raises(ValueError, match="warp_flip must be True or False, got 1"):
        MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_flip=1)
    with pytest.raises(ValueError, match="need warp='affine'.*warp_flip=True"):
        MUNITConfig(in_channels=1, image_size=16, warp="none", warp_flip=True)


def test_range_warp_scales_the_contrast_about_the_background_in_draws_only():
    images = recolor_background(glyphs(1, 0, rotated=False).repeat(2000, 1, 1, 1), torch.full((2000, 1), -0.6))
    warp = RangeWarp(contrast=1.5)
    styles = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0))
    factor = warp.parameters_from_style(styles)["contrast"]
    assert float(factor.min()) >= 1 / 1.5 - 1e-6 and float(factor.max()) <= 1.5 + 1e-6
    assert float(factor.log().std()) == pytest.approx(math.log(1.5) / math.sqrt(3), rel=0.05)  # log-uniform
    drawn = warp.draw(images, styles, reference=images)
    glyph = images[0, 0] > 0.5
    # the background stays, the ink moves towards it (faded) or away from it (clamped at white)
    assert torch.equal(drawn[:, 0][:, ~glyph], images[:, 0][:, ~glyph])
    ink = drawn[:, 0][:, glyph].mean(1)
    expected = (-0.6 + factor * 1.6).clamp(max=1.0)
    assert torch.allclose(ink, expected, atol=1e-5)
    assert warp(images, styles) is images  # a fit's fakes: the geometric part alone
    assert not warp.is_identity and RangeWarp(contrast=1.0).is_identity
    # extent widens it up to x2 at most
    assert math.exp(warp.contrast_range(2.5)) == pytest.approx(2.0)
    assert math.exp(RangeWarp(contrast=1.1).contrast_range(2.0)) == pytest.approx(1.21)


def test_the_contrast_setting_is_checked_and_generators_stored_before_it_load_with_none():
    config = MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_contrast=1.3)
    assert MUNITGenerator(config).warp.contrast == 1.3
    assert MUNITConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    stored = {k: v for k, v in config.to_dict().items() if k != "warp_contrast"}
    assert MUNITConfig.from_dict(stored).warp_contrast == 1.0
    with pytest.raises(ValueError, match=r"warp_contrast must be a number in \[1.0, 4.0\], got 0.5"):
        MUNITConfig(in_channels=1, image_size=16, warp="affine", warp_contrast=0.5)
    with pytest.raises(ValueError, match="need warp='affine'"):
        MUNITConfig(in_channels=1, image_size=16, warp_contrast=1.2)
    with pytest.raises(ValueError, match="warp_contrast='yes': must be one of"):
        FitConfig(dataset="digits-lt", warp_contrast="yes")
    # Tested by default, where the warp is tested; with given ranges there is no test to add it to.
    assert FitConfig(dataset="digits-lt").warp_contrast == "auto"
    assert FitConfig(dataset="digits-lt", warp="affine", warp_rotation=10.0).warp_contrast == "auto"


def test_a_fit_that_tests_contrast_trains_the_same_weights_and_stores_the_range(tmp_path):
    from gitaug.datasets import RandomContrast

    faded = RandomContrast()((glyphs(64, 0, rotated=False) + 1) / 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    data = _npz(tmp_path / "faded.npz", faded)
    kept = GITAugment.from_pretrained(fit(_small_fit(data, tmp_path / "keep", warp_contrast="keep")))
    tested = GITAugment.from_pretrained(fit(_small_fit(data, tmp_path / "auto")))  # the default tests it
    # Only draws scale the contrast: the fit itself is the one it was without the test.
    kept_state, tested_state = kept.generator.state_dict(), tested.generator.state_dict()
    assert all(torch.equal(kept_state[k], tested_state[k]) for k in kept_state)
    assert kept.generator.config.warp_contrast == 1.0 and kept.metadata["nuisance"]["contrast"] == 1.0
    contrast = tested.generator.config.warp_contrast
    assert contrast > 1 and tested.metadata["nuisance"]["contrast"] == contrast
    assert "contrast" in tested.metadata["nuisance"]["test"] and "contrast" not in kept.metadata["nuisance"]["test"]
    assert {k: v for k, v in tested.generator.config.to_dict().items() if k != "warp_contrast"} == \
        {k: v for k, v in kept.generator.config.to_dict().items() if k != "warp_contrast"}
