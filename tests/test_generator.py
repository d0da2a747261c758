import dataclasses
import json
import math

import pytest
import torch

from gitaug import PRESETS, MUNITConfig, MUNITGenerator

from helpers import tiny_config, tiny_generator


def test_paper_preset_matches_the_reference_configuration():
    config = MUNITConfig.preset("paper", in_channels=3, image_size=32)
    assert (config.dim, config.mlp_dim, config.style_dim, config.n_downsample, config.n_res) == (64, 256, 8, 2, 4)
    assert config.pad_type == "reflect"
    # The paper's generator has about 15 M parameters.
    assert 14.5e6 < MUNITGenerator(config).num_parameters() < 15.5e6


def test_small_preset_is_much_smaller():
    small = MUNITGenerator(MUNITConfig.preset("small", in_channels=1, image_size=28)).num_parameters()
    assert small < 1e6
    assert set(PRESETS) >= {"paper", "small"}


def test_config_json_round_trip():
    config = MUNITConfig.preset("small", in_channels=3, image_size=32, style_dim=4)
    again = MUNITConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=2, image_size=16), "in_channels must be 1 or 3, got 2"),
        (dict(in_channels=1, image_size=18), "divisible by 2 \\*\\* n_downsample = 4, got 18"),
        (dict(in_channels=1, image_size=8), "content map would be 2x2"),
        (dict(in_channels=1, image_size=16, dim=0), "dim must be a positive integer, got 0"),
        (dict(in_channels=1, image_size=16, style_dim=2.5), "style_dim must be a positive integer, got 2.5"),
        (dict(in_channels=1, image_size=16, n_res=-1), "n_res must be a non-negative integer, got -1"),
        (dict(in_channels=1, image_size=16, pad_type="circular"), "pad_type must be one of"),
        (dict(in_channels=1, image_size=16, activation="gelu"), "activation must be one of"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MUNITConfig(**kwargs)


def test_config_from_dict_errors():
    with pytest.raises(ValueError, match="unknown MUNITConfig field\\(s\\) \\['depth'\\]"):
        MUNITConfig.from_dict({"in_channels": 1, "image_size": 16, "depth": 3})
    with pytest.raises(ValueError, match="missing required field\\(s\\) \\['image_size'\\]"):
        MUNITConfig.from_dict({"in_channels": 1})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        MUNITConfig.preset("huge", in_channels=1, image_size=28)


@pytest.mark.parametrize("channels, size", [(1, 16), (3, 16), (1, 28)])
def test_shapes_and_output_range(channels, size):
    generator = tiny_generator(channels, size)
    x = torch.rand(5, channels, size, size) * 2 - 1
    content, style = generator.encode_content(x), generator.encode_style(x)
    assert content.shape == (5, 8 * 4, size // 4, size // 4)
    assert style.shape == (5, generator.config.style_dim)
    for out in (generator.decode(content, style), generator(x), generator.sample(x)):
        assert out.shape == x.shape
        assert out.min() >= -1 and out.max() <= 1


def test_sampling_is_seeded_and_random_otherwise():
    generator = tiny_generator()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        a = generator.sample(x, generator=torch.Generator().manual_seed(3))
        b = generator.sample(x, generator=torch.Generator().manual_seed(3))
        c = generator.sample(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_sampling_never_runs_the_style_encoder():
    generator = tiny_generator()

    def fail(*args):
        raise AssertionError("the style encoder ran during sampling")

    generator.style_encoder.register_forward_hook(fail)
    generator.sample(torch.rand(2, 1, 16, 16))  # does not raise
    with pytest.raises(AssertionError):
        generator.encode_style(torch.rand(2, 1, 16, 16))


def test_residual_redraw_keeps_the_input_where_the_style_does_not_change():
    generator = tiny_generator()
    x = torch.rand(4, 1, 16, 16) * 1.6 - 0.8  # inside [-1, 1], so the clamp leaves it alone
    with torch.no_grad():
        own = generator.encode_style(x)
        # With the input's own style the decoder's change is zero: the input comes back, whatever the
        # generator's reconstruction error.
        same = generator.redraw(x, own, residual=True)
        assert (generator(x) - x).abs().mean() > 0.05  # an untrained generator reconstructs badly...
        torch.testing.assert_close(same, x, atol=1e-5, rtol=0)  # ...and it does not matter
        # Another style adds exactly the decoder's change between the two styles.
        style = generator.random_style(4, generator=torch.Generator().manual_seed(0))
        content = generator.encode_content(x)
        change = generator.decode(content, style, warp=False) - generator.decode(content, own, warp=False)
        torch.testing.assert_close(generator.redraw(x, style, residual=True), (x + change).clamp(-1, 1), atol=1e-5, rtol=0)
        # sample() draws the same styles in both modes
        a = generator.sample(x, generator=torch.Generator().manual_seed(5), residual=True)
        b = generator.redraw(x, generator.random_style(4, generator=torch.Generator().manual_seed(5)), residual=True)
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"style must have shape \(4, 8\)"):
        generator.redraw(x, torch.zeros(3, 8), residual=True)


def test_residual_redraw_warps_the_kept_image():
    config = dataclasses.replace(tiny_config(), warp="affine", warp_rotation=90.0)
    torch.manual_seed(0)
    generator = MUNITGenerator(config).eval()
    x = torch.rand(2, 1, 16, 16) * 1.6 - 0.8
    with torch.no_grad():
        own = generator.encode_style(x)
        turned = generator.redraw(x, own, residual=True)
        # the style change is zero, so what is left is the warp of the input itself
        torch.testing.assert_close(turned, generator.warp(x, own), atol=1e-5, rtol=0)


def test_bad_inputs_are_clear_errors():
    generator = tiny_generator()
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 16, 16\), got \(2, 3, 16, 16\)"):
        generator.encode_content(torch.rand(2, 3, 16, 16))
    content = generator.encode_content(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"style must have shape \(N, 8\), got \(2, 5\)"):
        generator.decode(content, torch.randn(2, 5))
    with pytest.raises(ValueError, match="batch sizes differ: 2 vs 3"):
        generator.decode(content, torch.randn(3, 8))
    with pytest.raises(TypeError, match="config must be a MUNITConfig"):
        MUNITGenerator({"in_channels": 1})


def test_generator_trains():
    """A few optimizer steps on reconstruction lower the loss: the architecture is wired for learning."""
    torch.manual_seed(0)
    generator = MUNITGenerator(tiny_config())
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = (generator(x) - x).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# --------------------------------------------------------------------------- the geometric (warp) path


def _warp_generator(seed: int = 0) -> MUNITGenerator:
    torch.manual_seed(seed)
    config = MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1, warp="similarity")
    return MUNITGenerator(config).eval()


def test_warp_is_off_by_default_and_old_config_files_still_load():
    assert MUNITConfig(in_channels=1, image_size=16, warp="rotation").warp == "rotation"
    assert MUNITConfig(in_channels=1, image_size=16).warp == "none"
    assert MUNITGenerator(tiny_config()).warp is None
    # A config.json written before the warp existed has no "warp" key.
    old = {k: v for k, v in tiny_config().to_dict().items() if k != "warp"}
    assert MUNITConfig.from_dict(old).warp == "none"
    with pytest.raises(ValueError, match="warp must be one of .*got 'elastic'"):
        MUNITConfig(in_channels=1, image_size=16, warp="elastic")


def test_warp_starts_near_the_identity_and_reconstruction_skips_it():
    generator = _warp_generator()
    plain = MUNITGenerator(dataclasses.replace(generator.config, warp="none")).eval()
    plain.load_state_dict({k: v for k, v in generator.state_dict().items() if not k.startswith("warp.")})
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    style = torch.randn(3, 8)
    content = generator.encode_content(x)
    with torch.no_grad():
        unwarped = generator.decode(content, style, warp=False)
        warped = generator.decode(content, style)
        # The warp head starts small: a turn of about a degree, not exactly none (see StyleWarp).
        angles = generator.warp.parameters_from_style(style)["angle"]
    assert torch.equal(unwarped, plain.decode(content, style))
    assert 0 < float(angles.abs().max()) < 0.05
    assert float((warped - unwarped).abs().mean()) < 0.05
    # Reconstruction keeps the real image's geometry: no warp.
    assert torch.equal(generator(x), plain(x))


def test_warp_angle_rotates_the_image_and_round_trips_through_json():
    generator = _warp_generator()
    with torch.no_grad():
        generator.warp.model[-1].weight.zero_()
        generator.warp.model[-1].bias[0] = math.pi / 2  # a quarter turn for every style
    image = torch.full((1, 1, 16, 16), -1.0)
    image[0, 0, 2, 4:12] = 1.0  # a horizontal bar near the top
    turned = generator.warp(image, torch.zeros(1, 8))
    # A quarter turn (clockwise on screen, where rows grow downwards) makes it a vertical bar.
    expected = torch.rot90(image, k=-1, dims=(2, 3))
    assert torch.allclose(turned, expected, atol=1e-5)
    again = MUNITConfig.from_dict(json.loads(json.dumps(generator.config.to_dict())))
    assert again.warp == "similarity"


def test_warp_fills_from_outside_the_frame_with_the_background_and_does_not_smear_the_content():
    from gitaug.generator import RangeWarp

    warp = RangeWarp(rotation=180.0)
    # A style whose first component maps to u = erf(s / sqrt 2) = 0.25: a 45-degree turn.
    style = torch.zeros(2, 8)
    style[:, 0] = math.sqrt(2) * torch.erfinv(torch.tensor(0.25))
    gray = torch.full((1, 1, 16, 16), 0.3)
    bar = torch.full((1, 1, 16, 16), -1.0)
    bar[0, 0, :, 7:9] = 1.0  # a vertical bar from the top edge to the bottom edge, on black
    turned = warp(torch.cat([gray, bar]), style)
    assert torch.allclose(turned[0], gray[0], atol=1e-5)  # a uniform background stays uniform
    corners = torch.zeros(16, 16, dtype=torch.bool)
    for r in range(16):
        for c in range(16):
            corners[r, c] = min(r, 15 - r) + min(c, 15 - c) < 3
    # The corners come from outside the frame: black, the bar's ends not extended into them.
    assert float(turned[1, 0][corners].max()) < -0.99
    assert float(turned[1, 0].max()) > 0.9  # the bar itself is still there, turned


def test_warp_scale_and_shift_stay_within_their_bounds():
    generator = _warp_generator()
    with torch.no_grad():
        generator.warp.model[-1].weight.normal_(0, 100.0)  # drive every output far out
    with torch.no_grad():
        params = generator.warp.parameters_from_style(torch.randn(64, 8))
        turn = MUNITGenerator(dataclasses.replace(generator.config, warp="rotation")).warp
        turn.model[-1].weight.normal_(0, 100.0)
        turned = turn.parameters_from_style(torch.randn(64, 8))
    # "rotation" only turns: no scaling, no shift.
    assert torch.equal(turned["scale"], torch.ones(64)) and torch.equal(turned["shift"], torch.zeros(64, 2))
    assert float(turned["angle"].std()) > 1.0
    assert float(params["scale"].min()) >= 1 / 1.5 - 1e-6 and float(params["scale"].max()) <= 1.5 + 1e-6
    assert float(params["shift"].abs().max()) <= 0.5
    # Different style codes give different angles: the style code drives the geometry.
    assert float(params["angle"].std()) > 1.0


def test_warp_generator_trains_through_the_warp():
    generator = _warp_generator().train()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    out = generator.decode(generator.encode_content(x), torch.randn(4, 8))
    out.mean().backward()
    assert generator.warp.model[-1].weight.grad is not None
    assert float(generator.warp.model[-1].weight.grad.abs().sum()) > 0
