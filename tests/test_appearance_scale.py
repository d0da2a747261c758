"""appearance_scale: how much of the decoder's appearance change a residual draw applies."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gitaug import GITAugment, MUNITGenerator

from helpers import tiny_config, tiny_generator


def _everything(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.ones_like(labels, dtype=torch.bool)


def _warped_generator(rotation: float = 90.0) -> MUNITGenerator:
    torch.manual_seed(0)
    return MUNITGenerator(dataclasses.replace(tiny_config(), warp="affine", warp_rotation=rotation)).eval()


def test_the_change_scales_linearly_between_the_input_and_the_whole_residual_draw():
    g = tiny_generator()
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1)) - 0.5  # far from the clamp at +-1
    style = torch.randn(6, g.config.style_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = g.redraw(x, style, residual=True)
        half = g.redraw(x, style, residual=True, appearance_scale=0.5)
        none = g.redraw(x, style, residual=True, appearance_scale=0)
    assert float((whole - x).abs().mean()) > 1e-3  # the decoder does change something
    assert torch.allclose(half - x, 0.5 * (whole - x), atol=1e-5)
    assert torch.equal(none, x)


def test_the_appearance_change_is_what_a_residual_draw_adds_before_its_clamp():
    g = tiny_generator()
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1)) - 0.5
    style = torch.randn(6, g.config.style_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        change = g.appearance_change(x, style)
        assert change.abs().max() > 0  # the style changes the picture
        assert torch.equal(g.redraw(x, style, residual=True, appearance_scale=0.5), (x + 0.5 * change).clamp(-1, 1))
        assert torch.equal(g.appearance_change(x, g.style_encoder(x)), torch.zeros_like(x))  # its own style: none


def test_scale_zero_draws_only_the_warp_without_running_the_decoder():
    g = _warped_generator()
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    style = torch.randn(4, g.config.style_dim, generator=torch.Generator().manual_seed(2))
    calls = []
    g.decoder.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        drawn = g.redraw(x, style, residual=True, appearance_scale=0.0)
    assert not calls
    assert torch.allclose(drawn, g.warp(x, style), atol=1e-6)
    assert float((drawn - x).abs().mean()) > 1e-2  # turned, so not the input


def test_gitaugment_with_scale_zero_keeps_the_appearance_and_turns_the_selected_images():
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    labels = torch.zeros(8, dtype=torch.long)
    plain = GITAugment(tiny_generator(), _everything, residual=True, appearance_scale=0, dtype=torch.float32)
    out, _ = plain(x, labels, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-6)  # no warp, no appearance change: the identity
    turned = GITAugment(_warped_generator(), _everything, residual=True, appearance_scale=0, dtype=torch.float32)
    out, _ = turned(x, labels, generator=torch.Generator().manual_seed(0))
    assert float((out - x).abs().mean()) > 1e-2
    assert "appearance_scale=0.0" in repr(turned)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "1"])
def test_a_bad_scale_is_refused_naming_it(bad):
    g = tiny_generator()
    with pytest.raises(ValueError, match="appearance_scale must be a finite number >= 0"):
        GITAugment(g, residual=True, appearance_scale=bad)
    with pytest.raises(ValueError, match="appearance_scale must be a finite number >= 0"):
        g.redraw(torch.zeros(1, 1, 16, 16), torch.zeros(1, g.config.style_dim), residual=True, appearance_scale=bad)


def test_a_scale_other_than_one_needs_residual_draws():
    g = tiny_generator()
    with pytest.raises(ValueError, match=r"appearance_scale=0.5 needs residual draws"):
        GITAugment(g, appearance_scale=0.5)
    with pytest.raises(ValueError, match=r"appearance_scale=0 needs residual draws"):
        g.redraw(torch.zeros(1, 1, 16, 16), torch.zeros(1, g.config.style_dim), appearance_scale=0)
    GITAugment(g, appearance_scale=1.0)  # the whole change is every draw's default


def test_a_folder_s_recommended_draw_is_used_unless_the_caller_passes_their_own(tmp_path):
    g = tiny_generator()
    g.save_pretrained(tmp_path / "g", metadata={"draw": {"residual": True, "appearance_scale": 0.0, "chosen": "validation"}})
    aug = GITAugment.from_pretrained(tmp_path / "g")
    assert aug.residual is True and aug.appearance_scale == 0.0
    mine = GITAugment.from_pretrained(tmp_path / "g", residual=True, appearance_scale=0.5)
    assert mine.appearance_scale == 0.5
    plain = GITAugment.from_pretrained(tmp_path / "g", residual=False, appearance_scale=1.0)
    assert plain.residual is False
    tiny_generator().save_pretrained(tmp_path / "none")
    assert GITAugment.from_pretrained(tmp_path / "none").residual is False  # nothing stored: the constructor's defaults


def test_a_bad_recommended_draw_is_named():
    from gitaug.augment import recommended_draw

    with pytest.raises(ValueError, match=r"unknown keys \['dtype'\]"):
        recommended_draw({"draw": {"residual": True, "dtype": "bf16"}})
    with pytest.raises(ValueError, match="must be a mapping, got 'warp'"):
        recommended_draw({"draw": "warp"})
    assert recommended_draw({}) == {} and recommended_draw({"draw": {"styles": "data"}}) == {"styles": "data"}


def test_sample_grids_draw_as_the_transform_does():
    from gitaug.fit.grid import _PADDING, sample_grid

    images = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    g = tiny_generator()  # no warp: with the appearance kept, every drawn cell is its row's input

    def cells(grid: torch.Tensor, columns: int) -> torch.Tensor:
        side = (grid.shape[-1] - _PADDING) // columns - _PADDING
        return torch.stack([
            torch.stack([grid[:, _PADDING + r * (side + _PADDING):][:, :side, _PADDING + c * (side + _PADDING):][:, :, :side]
                         for c in range(columns)])
            for r in range(len(images))
        ])

    kept = cells(sample_grid(g, images, variants=3, residual=True, appearance_scale=0), 4)
    assert torch.allclose(kept[:, 1:], kept[:, :1].expand_as(kept[:, 1:]), atol=1e-6)
    decoded = cells(sample_grid(g, images, variants=3), 4)
    assert float((decoded[:, 1:] - decoded[:, :1]).abs().mean()) > 1e-2  # the generator's own picture
    with pytest.raises(ValueError, match="needs residual draws"):
        sample_grid(g, images, variants=2, appearance_scale=0.5)
    with pytest.raises(ValueError, match="styles must be 'prior' or 'data'"):
        sample_grid(g, images, variants=2, styles="mine")
