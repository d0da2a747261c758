"""The fast paths give the results of the straightforward formulas.

Fused normalizations against the textbook definitions written out here, the
whole generator (outputs and gradients) against the same generator run with
those definitions, and the low-precision inference mode against fp32.
"""

from __future__ import annotations

import pytest
import torch

import gitaug.generator as generator_module
from gitaug import ClassThresholdSampler, GITAugment, MUNITConfig, MUNITGenerator
from gitaug.augment import default_inference_dtype
from gitaug.generator import InstanceNorm2d, LayerNorm2d


def reference_layer_norm(x, weight, bias, eps=1e-5):
    """MUNIT's LayerNorm: unbiased std over (C, H, W), eps added to the std."""
    flat = x.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1).view(-1, 1, 1, 1)
    return (x - mean) / (std + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def reference_adain(x, scale, shift, eps=1e-5):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * scale[:, :, None, None] + shift[:, :, None, None]


def reference_instance_norm(x, eps=1e-5):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _inputs(*shape, seed=0, scale=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64).float() * scale + offset).requires_grad_(True)


@pytest.mark.parametrize("std", [1.0, 0.1])
def test_layer_norm_matches_munit_formula_with_gradients(std):
    x = _inputs(4, 6, 5, 5, scale=std, offset=0.3)
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 6))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 6))
    out = norm(x)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = norm.weight.detach().clone().requires_grad_(True)
    b_ref = norm.bias.detach().clone().requires_grad_(True)
    ref = reference_layer_norm(x_ref, w_ref, b_ref)
    # The stated tolerance: a relative eps / std (1e-4 at std 0.1) plus fp32 rounding.
    tol = 1e-5 / std + 1e-5
    assert torch.allclose(out, ref, rtol=tol, atol=tol * 2)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, rtol=10 * tol, atol=10 * tol / std)
    assert torch.allclose(norm.weight.grad, w_ref.grad, rtol=10 * tol, atol=10 * tol)
    assert torch.allclose(norm.bias.grad, b_ref.grad, rtol=1e-5, atol=1e-5)


def test_adain_matches_formula_with_gradients():
    x = _inputs(3, 8, 7, 7, offset=0.5)
    scale = _inputs(3, 8, seed=2, offset=1.0)
    shift = _inputs(3, 8, seed=3)
    out = generator_module._adain(x, scale, shift)
    refs = [t.detach().clone().requires_grad_(True) for t in (x, scale, shift)]
    ref = reference_adain(*refs)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(4))
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    for fused, plain in zip((x, scale, shift), refs):
        assert torch.allclose(fused.grad, plain.grad, atol=1e-4, rtol=1e-4)


def test_norms_take_bf16_statistics_in_fp32():
    x = _inputs(2, 4, 6, 6, offset=3.0).detach()  # a large mean: bf16 statistics would lose it
    x16 = x.bfloat16()
    out = InstanceNorm2d(4)(x16)
    assert out.dtype == torch.bfloat16
    ref = reference_instance_norm(x16.float())
    assert (out.float() - ref).abs().max() < 0.02  # bf16 rounding of the output only
    scale, shift = torch.ones(2, 4), torch.zeros(2, 4)
    out = generator_module._adain(x16, scale.bfloat16(), shift.bfloat16())
    assert out.dtype == torch.bfloat16 and (out.float() - ref).abs().max() < 0.02
    norm = LayerNorm2d(4)
    out = norm(x16)
    ref = reference_layer_norm(x16.float(), norm.weight.detach(), norm.bias.detach())
    assert out.dtype == torch.bfloat16 and (out.float() - ref).abs().max() < 0.02


def _reference_layer_norm_forward(self, x):
    return reference_layer_norm(x, self.weight, self.bias, self.eps)


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_generator_with_fused_norms_matches_reference_norms(preset, monkeypatch):
    torch.manual_seed(0)
    config = MUNITConfig.preset(preset, in_channels=1, image_size=16, **({"dim": 16} if preset == "paper" else {}))
    fused = MUNITGenerator(config)
    reference = MUNITGenerator(config)
    # Old weights load unchanged: the fused model has the same state-dict keys and shapes.
    reference.load_state_dict(fused.state_dict())
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    style = torch.randn(4, config.style_dim, generator=torch.Generator().manual_seed(2))

    def fitting_like_loss(model):
        content, own_style = model.encode_content(x), model.encode_style(x)
        recon = model.decode(content, own_style, warp=False)
        fake = model.decode(content, style)
        return (recon - x).abs().mean() + (model.encode_style(fake) - style).abs().mean() + fake.square().mean(), fake

    loss, fake = fitting_like_loss(fused)
    loss.backward()
    with monkeypatch.context() as patch:
        patch.setattr(generator_module, "_adain", reference_adain)
        patch.setattr(LayerNorm2d, "forward", _reference_layer_norm_forward)
        ref_loss, ref_fake = fitting_like_loss(reference)
        ref_loss.backward()
    assert torch.allclose(fake, ref_fake, atol=1e-4)
    assert torch.allclose(loss, ref_loss, rtol=1e-4)
    for (name, p), q in zip(fused.named_parameters(), reference.parameters()):
        scale = q.grad.abs().max().item() + 1e-6
        assert (p.grad - q.grad).abs().max().item() <= 1e-3 * scale + 1e-6, name


# --------------------------------------------------------------------------- GITAugment's precision and paths


def _small_generator(seed=0):
    torch.manual_seed(seed)
    return MUNITGenerator(MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1)).eval()


def test_bf16_output_keeps_input_dtype_and_stays_close_to_fp32():
    generator = _small_generator()
    images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    fp32 = GITAugment(generator, dtype=torch.float32)(images, generator=torch.Generator().manual_seed(1))
    bf16 = GITAugment(generator, dtype=torch.bfloat16)(images, generator=torch.Generator().manual_seed(1))
    other_draw = GITAugment(generator, dtype=torch.float32)(images, generator=torch.Generator().manual_seed(2))
    assert bf16.dtype == torch.float32 and bf16.shape == images.shape
    difference = (bf16 - fp32).abs().mean()
    spread = (other_draw - fp32).abs().mean()
    assert difference < 0.02
    assert difference < spread / 5
    as_uint8 = GITAugment(generator, dtype=torch.bfloat16)((images * 255).round().to(torch.uint8))
    assert as_uint8.dtype == torch.uint8


def test_weights_are_cast_once_and_recast_when_they_change():
    generator = _small_generator()
    aug = GITAugment(generator, dtype=torch.bfloat16)
    images = torch.rand(4, 1, 16, 16)
    aug(images)
    cached = aug._weights_in(torch.bfloat16)
    aug(images)
    assert aug._weights_in(torch.bfloat16) is cached  # no per-call re-cast
    assert all(t.dtype == torch.bfloat16 for name, t in cached.items())
    assert next(generator.parameters()).dtype == torch.float32  # the model's own weights stay fp32
    before = aug(images, generator=torch.Generator().manual_seed(0))
    generator.load_state_dict(_small_generator(seed=1).state_dict())
    after = aug(images, generator=torch.Generator().manual_seed(0))
    assert aug._weights_in(torch.bfloat16) is not cached
    assert not torch.equal(before, after)


def test_default_dtype_and_bad_dtype():
    assert default_inference_dtype("cpu") in (torch.float32, torch.bfloat16)
    assert default_inference_dtype("meta") == torch.float32
    aug = GITAugment(_small_generator())
    assert aug.inference_dtype() == default_inference_dtype("cpu")
    with pytest.raises(ValueError, match="dtype"):
        GITAugment(_small_generator(), dtype=torch.int8)
    with pytest.raises(TypeError, match="compile"):
        GITAugment(_small_generator(), compile="yes")


def test_bucketed_selection_matches_the_unpadded_one(monkeypatch):
    # compile=True pads the selected samples to a bucket; with torch.compile replaced by the
    # identity the padding is all that differs, and the kept outputs must be the same draws.
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    generator = _small_generator()
    sampler = ClassThresholdSampler([500, 5], threshold=100, p=0.5)
    images = torch.rand(20, 1, 16, 16)
    labels = torch.tensor([0, 1] * 10)
    seen = []
    generator.content_encoder.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    plain = GITAugment(generator, sampler, dtype=torch.float32)
    bucketed = GITAugment(generator, sampler, dtype=torch.float32, compile=True)
    out_plain, _ = plain(images, labels, generator=torch.Generator().manual_seed(3))
    out_bucketed, _ = bucketed(images, labels, generator=torch.Generator().manual_seed(3))
    changed = (out_plain != images).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 8 and seen == [int(changed.sum()), 8]
    assert torch.equal(changed, (out_bucketed != images).flatten(1).any(1))
    assert torch.equal(out_plain[~changed], images[~changed])
    # The first `count` style draws are the same whatever the padding, so the kept images agree.
    assert torch.allclose(out_plain, out_bucketed, atol=1e-5)


def test_thread_defaults_and_oversubscription_warning(monkeypatch):
    from gitaug import _threads

    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert _threads.default_threads() == 2
    monkeypatch.setattr(_threads, "_warned", False)
    with pytest.warns(RuntimeWarning, match="8 threads but only 2 core"):
        assert _threads.warn_if_cpu_oversubscribed()
    assert not _threads.warn_if_cpu_oversubscribed()  # once per process
    monkeypatch.setattr(_threads, "_warned", False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    with pytest.warns(RuntimeWarning, match="load average"):
        assert _threads.warn_if_cpu_oversubscribed()
    monkeypatch.setattr(_threads, "_warned", False)
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert not _threads.warn_if_cpu_oversubscribed()
