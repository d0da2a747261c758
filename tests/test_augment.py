import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from gitaug import ClassThresholdSampler, GITAugment

from helpers import tiny_generator

LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])


_DEFAULT_SAMPLER = object()


def make_aug(channels: int = 1, sampler=_DEFAULT_SAMPLER, **kwargs) -> GITAugment:
    """A transform with the tests' sampler; ``sampler=None`` re-draws every image (calls without labels)."""
    if sampler is _DEFAULT_SAMPLER:
        sampler = ClassThresholdSampler([500, 50, 5], threshold=100, p=1.0)
    return GITAugment(tiny_generator(channels), sampler, **kwargs)


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).flatten(1).any(1)


def test_only_selected_samples_change_and_labels_come_back_unchanged():
    aug = make_aug()
    images = torch.rand(10, 1, 16, 16)
    before = images.clone()
    out, labels = aug(images, LABELS, generator=torch.Generator().manual_seed(0))
    assert labels is LABELS
    assert torch.equal(images, before)  # never modified in place
    # p = 1: classes 1 and 2 (below the threshold) all change, class 0 stays bit-identical
    assert changed(out, images).tolist() == [False] * 4 + [True] * 6
    assert torch.equal(out[:4], images[:4])


def test_p_controls_the_fraction_replaced():
    aug = GITAugment(tiny_generator(), ClassThresholdSampler([500, 5], threshold=100, p=0.5))
    labels = torch.tensor([1] * 400)
    images = torch.rand(400, 1, 16, 16)
    out, _ = aug(images, labels, generator=torch.Generator().manual_seed(0))
    fraction = changed(out, images).float().mean().item()
    assert 0.42 < fraction < 0.58


def test_with_a_sampler_but_no_labels_every_image_is_transformed_with_a_warning():
    aug = make_aug()
    with pytest.warns(UserWarning, match=r"called without labels.*gitaug.GITDataset"):
        aug(torch.rand(3, 1, 16, 16))


def test_without_labels_every_image_is_transformed():
    aug = make_aug(sampler=None)
    images = torch.rand(6, 1, 16, 16)
    out = aug(images)
    assert isinstance(out, torch.Tensor)
    assert changed(out, images).all()


def test_float_images_keep_dtype_range_and_shape():
    aug = make_aug(sampler=None)
    for dtype in (torch.float32, torch.float64, torch.float16):
        images = torch.rand(4, 1, 16, 16).to(dtype)
        out = aug(images)
        assert out.dtype == dtype and out.shape == images.shape
        assert out.min() >= 0 and out.max() <= 1


def test_uint8_images_stay_uint8_and_use_the_full_range():
    aug = make_aug(sampler=None)
    images = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    out = aug(images)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert changed(out, images).all()


def test_normalized_images_come_back_normalized():
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    aug = make_aug(channels=3, sampler=None, mean=mean, std=std)
    raw = torch.rand(4, 3, 16, 16)
    normalized = v2.Normalize(mean, std)(raw)
    out = aug(normalized, generator=torch.Generator().manual_seed(0))
    # Undo the normalization: the generated images must lie in [0, 1] and equal the un-normalized run's.
    restored = out * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert restored.min() >= -1e-5 and restored.max() <= 1 + 1e-5
    plain = GITAugment(aug.generator, aug.sampler)(raw, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(restored, plain, atol=1e-5)


def test_single_image_and_int_label():
    aug = make_aug()
    image = torch.rand(1, 16, 16)
    out = make_aug(sampler=None)(image)
    assert out.shape == (1, 16, 16) and not torch.equal(out, image)
    kept, label = aug(image, 0)  # class 0 is above the threshold
    assert label == 0 and torch.equal(kept, image)
    replaced, label = aug(image, 2)
    assert label == 2 and not torch.equal(replaced, image)


def test_other_image_sizes_are_resized_to_the_generator_and_back():
    aug = make_aug(sampler=None)
    images = torch.rand(3, 1, 40, 24)
    out = aug(images)
    assert out.shape == (3, 1, 40, 24)
    assert changed(out, images).all()


def test_only_selected_samples_go_through_the_generator():
    aug = make_aug()
    seen = []
    aug.generator.content_encoder.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    aug(torch.rand(10, 1, 16, 16), LABELS)
    assert seen == [6]
    seen.clear()
    aug(torch.rand(4, 1, 16, 16), torch.zeros(4, dtype=torch.long))  # nothing selected
    assert seen == []


def test_seeded_calls_are_reproducible():
    aug = GITAugment(tiny_generator(), ClassThresholdSampler([500, 5], threshold=100, p=0.5))
    images, labels = torch.rand(32, 1, 16, 16), torch.ones(32, dtype=torch.long)
    a, _ = aug(images, labels, generator=torch.Generator().manual_seed(7))
    b, _ = aug(images, labels, generator=torch.Generator().manual_seed(7))
    c, _ = aug(images, labels, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_no_gradients_and_generator_stays_in_eval_mode():
    aug = make_aug(sampler=None)
    images = torch.rand(2, 1, 16, 16, requires_grad=True)
    out = aug(images)
    assert not out.requires_grad
    aug.train()
    assert aug.training and not aug.generator.training
    assert not any(p.requires_grad for p in aug.parameters())


def test_disabled_is_the_identity():
    aug = make_aug(enabled=False)
    images = torch.rand(10, 1, 16, 16)
    out, labels = aug(images, LABELS)
    assert torch.equal(out, images) and labels is LABELS
    aug.enabled = True
    assert not torch.equal(aug(images, LABELS)[0], images)


def test_one_hot_labels_select_by_their_main_class():
    aug = make_aug()
    one_hot = torch.nn.functional.one_hot(LABELS, 3).float()
    images = torch.rand(10, 1, 16, 16)
    out, labels = aug(images, one_hot)
    assert labels is one_hot
    assert changed(out, images).tolist() == [False] * 4 + [True] * 6


def test_inside_a_v2_compose():
    aug = make_aug(sampler=None)
    pipeline = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize(16), aug])
    image = torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8)
    out = pipeline(image)
    assert out.shape == (1, 16, 16) and out.dtype == torch.float32
    out, label = pipeline(tv_tensors.Image(image), 2)
    assert isinstance(out, tv_tensors.Image) and label == 2


def test_works_after_a_dataloader():
    dataset = torch.utils.data.TensorDataset(torch.rand(10, 1, 16, 16), LABELS)
    aug = make_aug()
    for images, labels in torch.utils.data.DataLoader(dataset, batch_size=5):
        out, same = aug(images, labels)
        assert out.shape == images.shape and same is labels


@pytest.mark.parametrize(
    "images, labels, error, match",
    [
        (torch.rand(2, 3, 16, 16), None, ValueError, "takes 1-channel images, got 3 channels"),
        (torch.rand(16, 16), None, ValueError, "must be \\(N, C, H, W\\) or \\(C, H, W\\), got shape \\(16, 16\\)"),
        (torch.ones(2, 1, 16, 16, dtype=torch.int32), None, TypeError, "float or uint8, got dtype torch.int32"),
        ([[0.0]], None, TypeError, "images must be a torch.Tensor, got list"),
        (torch.rand(3, 1, 16, 16), torch.tensor([0, 1]), ValueError, "got 2 labels for 3 images"),
        (torch.rand(2, 1, 16, 16), torch.tensor([0, 7]), ValueError, "label 7 is out of range"),
        (torch.rand(2, 1, 16, 16), "cat", TypeError, "labels must be an int or a tensor, got str"),
    ],
)
def test_bad_inputs(images, labels, error, match):
    aug = make_aug()
    with pytest.raises(error, match=match):
        aug(images, labels) if labels is not None else aug(images)


def test_constructor_errors():
    generator = tiny_generator()
    with pytest.raises(TypeError, match="generator must be a MUNITGenerator, got Linear"):
        GITAugment(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="sampler must be a ClassThresholdSampler or None, got list"):
        GITAugment(generator, [1, 2])
    with pytest.raises(ValueError, match="give both mean and std or neither"):
        GITAugment(generator, mean=[0.5])
    with pytest.raises(ValueError, match="std must be positive, got \\[0.0\\]"):
        GITAugment(generator, mean=0.5, std=0.0)
    with pytest.raises(ValueError, match="mean must have 1 or 3 values \\(one per channel\\), got 2"):
        GITAugment(tiny_generator(3), mean=[0.5, 0.5], std=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="normalized images must be float"):
        GITAugment(generator, mean=0.5, std=0.2)(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


def test_residual_draws_keep_the_input_plus_the_generators_change():
    images = torch.rand(10, 1, 16, 16) * 0.8 + 0.1
    plain, residual = make_aug(dtype=torch.float32), make_aug(dtype=torch.float32, residual=True)
    out, _ = residual(images, LABELS, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:4], images[:4])  # head samples stay bit-identical
    assert changed(out[4:], images[4:]).all()
    # Without a sampler the first draw of the seeded stream is the style: the residual draw is the input plus
    # the decoder's change between the input's own style and the drawn one.
    every = make_aug(sampler=None, dtype=torch.float32, residual=True)
    generator = every.generator
    x = images[4:] * 2 - 1
    with torch.no_grad():
        style = generator.random_style(6, generator=torch.Generator().manual_seed(0))
        expected = ((generator.redraw(x, style, residual=True) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(every(images[4:], generator=torch.Generator().manual_seed(0)), expected, atol=1e-5, rtol=0)
    plain_out, _ = plain(images, LABELS, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain_out[4:], out[4:])
    assert "residual=True" in repr(residual)
    with pytest.raises(TypeError, match="residual must be True or False, got 'yes'"):
        make_aug(residual="yes")
