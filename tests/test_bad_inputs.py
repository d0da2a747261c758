"""Bad and unusual inputs to GITAugment and ClassThresholdSampler: each is a correct result or a clear error.

Every probe here once gave a silent wrong result or a raw torch error. A probe either asserts the
correct outcome (which samples changed, value ranges, autograd state) or an error of the right type
whose message names the argument and the value seen.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gitaug import ClassThresholdSampler, GITAugment
from gitaug.sampler import SelectionRule

from helpers import tiny_generator

COUNTS = [500, 50, 5]  # class 0 is above the threshold, classes 1 and 2 below
LABELS = [0, 0, 1, 2, 2, 0]
HEAD = [True, True, False, False, False, True]  # which samples of LABELS must stay unchanged (p = 1)

INTEGER_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64] + [
    getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name)
]


@pytest.fixture(scope="module")
def generator():
    return tiny_generator()


def make_aug(generator, **kwargs) -> GITAugment:
    return GITAugment(generator, ClassThresholdSampler(COUNTS, threshold=100, p=1.0), **kwargs)


def unchanged(out: torch.Tensor, images: torch.Tensor) -> list[bool]:
    return (out == images).flatten(1).all(1).tolist()


def images_for(labels) -> torch.Tensor:
    return torch.rand(len(labels), 1, 16, 16, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- label forms


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=str)
def test_every_integer_dtype_is_class_indices(generator, dtype):
    labels = torch.tensor(LABELS, dtype=dtype)
    assert ClassThresholdSampler(COUNTS, threshold=100, p=1.0)(labels).tolist() == [not h for h in HEAD]
    images = images_for(LABELS)
    out, same = make_aug(generator)(images, labels)
    assert same is labels
    assert unchanged(out, images) == HEAD


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.float32, torch.float16], ids=str)
def test_one_hot_labels_of_any_dtype(generator, dtype):
    one_hot = F.one_hot(torch.tensor(LABELS), 3).to(dtype)
    images = images_for(LABELS)
    out, same = make_aug(generator)(images, one_hot)
    assert same is one_hot
    assert unchanged(out, images) == HEAD


def test_soft_labels_select_by_their_main_class(generator):
    # mixup-like rows: 0.7 of class 0 keeps the sample; 0.6 of class 2 replaces it
    soft = torch.tensor([[0.7, 0.0, 0.3], [0.2, 0.2, 0.6], [0.9, 0.1, 0.0], [0.1, 0.0, 0.9]])
    images = torch.rand(4, 1, 16, 16)
    out, _ = make_aug(generator)(images, soft)
    assert unchanged(out, images) == [True, False, True, False]


def test_single_image_with_one_hot_or_index_label(generator):
    aug = make_aug(generator)
    image = torch.rand(1, 16, 16)
    for label in (0, np.int64(0), torch.tensor(0), torch.tensor([1, 0, 0]), torch.tensor([0.8, 0.2, 0.0])):
        out, _ = aug(image, label)
        assert torch.equal(out, image), label
    for label in (2, np.uint8(2), torch.tensor(2, dtype=torch.uint8), torch.tensor([0, 0, 1]), torch.tensor([[0.1, 0.0, 0.9]])):
        out, _ = aug(image, label)
        assert out.shape == image.shape and not torch.equal(out, image), label


def test_column_of_integer_labels(generator):
    images = images_for(LABELS)
    out, _ = make_aug(generator)(images, torch.tensor(LABELS).view(-1, 1))
    assert unchanged(out, images) == HEAD


def nan_rows():
    soft = F.one_hot(torch.tensor(LABELS), 3).float()
    soft[1] = float("nan")
    return soft


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (torch.tensor(LABELS).bool(), ValueError, "got dtype torch.bool"),
        (torch.tensor(LABELS, dtype=torch.float32), ValueError, "integer class indices, got dtype torch.float32"),
        (torch.full((6, 3), float("nan")), ValueError, r"soft labels hold NaN or inf in 6 row\(s\): \[0, 1, 2, 3, 4, 5\]"),
        (nan_rows(), ValueError, r"NaN or inf in 1 row\(s\): \[1\]"),
        (torch.full((6, 3), float("inf")), ValueError, "NaN or inf in 6 row"),
        (-F.one_hot(torch.tensor(LABELS), 3), ValueError, "must be non-negative"),
        (torch.zeros(6, 3), ValueError, r"no class in row\(s\) \[0, 1, 2, 3, 4, 5\] \(all zeros\)"),
        (torch.zeros(6, 1), ValueError, r"float labels of shape \(6, 1\) are ambiguous"),
        (F.one_hot(torch.tensor(LABELS), 12), ValueError, "have 12 columns, but the sampler knows 3 classes"),
        (F.one_hot(torch.tensor([0, 1, 2, 0]), 3), ValueError, r"labels of shape \(4, 3\) do not fit a batch of 6"),
        (torch.tensor([0, 1, 2]), ValueError, r"got 3 labels for 6 images"),
        (torch.zeros(6, 3, 2, dtype=torch.long), ValueError, r"labels of shape \(6, 3, 2\) do not fit"),
        (torch.zeros(6, dtype=torch.complex64), ValueError, "got dtype torch.complex64"),
        (torch.tensor([0, 0, 1, 2, 2, 200], dtype=torch.uint8), ValueError, "label 200 is out of range for 3 classes"),
        (torch.tensor([0, 0, 1, 2, 2, -1], dtype=torch.int8), ValueError, "label -1 is out of range"),
        (torch.tensor(LABELS, device="meta"), ValueError, "labels are on the meta device"),
        (np.array(LABELS), TypeError, "labels must be an int or a tensor, got ndarray"),
        (True, TypeError, "labels must be an int or a tensor, got bool"),
        (np.bool_(True), TypeError, "labels must be an int or a tensor, got bool"),
        (10**30, ValueError, "label 1000000000000000000000000000000 is out of range"),
        ([0, 0, 1, 2, 2, 0], TypeError, "labels must be an int or a tensor, got list"),
        (3.0, TypeError, "labels must be an int or a tensor, got float"),
    ],
    ids=lambda v: None,
)
def test_bad_labels_are_clear_errors(generator, labels, error, match):
    with pytest.raises(error, match=match):
        make_aug(generator)(images_for(LABELS), labels)


def test_one_hot_labels_are_accepted_without_a_sampler(generator):
    aug = GITAugment(generator)
    images = images_for(LABELS)
    out, _ = aug(images, F.one_hot(torch.tensor(LABELS), 12))  # any number of classes: nothing to check against
    assert not any(unchanged(out, images))


# --------------------------------------------------------------------------- pixel values


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", [3, 0], ids=["tail-sample", "head-sample"])
def test_non_finite_pixels_are_an_error_naming_the_samples(generator, bad, where):
    images = images_for(LABELS)
    images[where, 0, 5, 7] = bad
    images[4, 0, 0, 0] = bad
    first, second = sorted([where, 4])
    # a head sample is never re-drawn, but the whole batch is checked: the outcome never depends on the draw
    with pytest.raises(ValueError, match=rf"NaN or inf in 2 of 6 sample\(s\), at batch index\(es\) \[{first}, {second}\]"):
        make_aug(generator)(images, torch.tensor(LABELS))
    with pytest.raises(ValueError, match="NaN or inf"):
        make_aug(generator)(images)  # without labels too


def test_non_finite_check_does_not_depend_on_the_draw(generator):
    never = GITAugment(generator, ClassThresholdSampler(COUNTS, threshold=100, p=0.0))
    images = images_for(LABELS)
    images[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"at batch index\(es\) \[2\]"):
        never(images, torch.tensor(LABELS))


def test_a_disabled_transform_is_the_identity_even_on_bad_values(generator):
    aug = make_aug(generator, enabled=False)
    images = images_for(LABELS) * 255
    images[0, 0, 0, 0] = float("nan")
    out, _ = aug(images, torch.tensor(LABELS))
    assert out is images


@pytest.mark.parametrize(
    "scale, shift, seen",
    [
        (255.0, 0.0, r"got values in \[0, 25\d"),  # 0-255 floats
        (2.0, -1.0, r"got values in \[-1, 1\]"),  # [-1, 1]
        (1.0, 0.05, r"got values in \[0.05, 1.05\]"),  # beyond the rounding tolerance
        (1.0, -0.05, r"got values in \[-0.05, 0.95\]"),
    ],
)
def test_float_images_outside_0_1_are_refused(generator, scale, shift, seen):
    images = torch.linspace(0, 1, 6 * 16 * 16).view(6, 1, 16, 16) * scale + shift
    with pytest.raises(ValueError, match=seen) as raised:
        make_aug(generator)(images, torch.tensor(LABELS))
    assert "pass uint8 images for [0, 255]" in str(raised.value) and "give mean/std" in str(raised.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_rounding_overshoot_is_tolerated_and_outputs_stay_in_range(generator, dtype):
    images = (torch.linspace(-0.01, 1.01, 6 * 16 * 16).view(6, 1, 16, 16)).to(dtype)
    out, _ = make_aug(generator)(images, torch.tensor(LABELS))
    assert out.dtype == dtype
    assert unchanged(out, images) == HEAD
    replaced = out[[not h for h in HEAD]]
    assert replaced.min() >= 0 and replaced.max() <= 1


def test_normalized_images_are_checked_after_un_normalizing(generator):
    mean, std = 0.5, 0.25
    aug = make_aug(generator, mean=mean, std=std)
    raw = torch.linspace(0, 1, 6 * 16 * 16).view(6, 1, 16, 16)
    out, _ = aug((raw - mean) / std, torch.tensor(LABELS))  # the right statistics: accepted
    assert unchanged(out, (raw - mean) / std) == HEAD
    with pytest.raises(ValueError, match=r"un-normalized with mean=\[0.5\], std=\[0.25\], the images lie in \[-0.9, 1.1\], not in \[0, 1\]"):
        aug((raw - 0.7) / 0.125, torch.tensor(LABELS))  # normalized with other statistics
    with pytest.raises(ValueError, match=r"got values in \[-2"):
        make_aug(generator)((raw - mean) / std, torch.tensor(LABELS))  # normalized but not declared


def test_uint8_images_need_no_range_check(generator):
    images = torch.full((6, 1, 16, 16), 255, dtype=torch.uint8)
    out, _ = make_aug(generator)(images, torch.tensor(LABELS))
    assert out.dtype == torch.uint8 and unchanged(out, images) == HEAD


# --------------------------------------------------------------------------- shapes and devices


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(6, 1, 0, 0), r"non-zero height and width, got shape \(6, 1, 0, 0\)"),
        (torch.rand(6, 1, 16, 0), r"non-zero height and width, got shape \(6, 1, 16, 0\)"),
        (torch.rand(1, 0, 16), r"non-zero height and width, got shape \(1, 0, 16\)"),
        (torch.rand(6, 0, 16, 16), "takes 1-channel images, got 0 channels"),
        (torch.rand(6, 1, 16, 16, device="meta"), "images are on the meta device"),
        (torch.rand(6, 1, 1, 16, 16), r"must be \(N, C, H, W\) or \(C, H, W\), got shape \(6, 1, 1, 16, 16\)"),
    ],
    ids=lambda v: None,
)
def test_bad_image_shapes_and_devices(generator, images, match):
    with pytest.raises(ValueError, match=match):
        make_aug(generator)(images, torch.tensor(LABELS))


def test_an_empty_batch_comes_back_empty(generator):
    images = torch.rand(0, 1, 16, 16)
    out, labels = make_aug(generator)(images, torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 1, 16, 16) and labels.shape == (0,)


def test_a_bad_random_generator_argument(generator):
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        make_aug(generator)(images_for(LABELS), torch.tensor(LABELS), generator=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_labels_on_another_device_than_the_images(generator):
    images = images_for(LABELS)
    for image_device, label_device in (("cpu", "cuda"), ("cuda", "cpu")):
        aug = make_aug(generator)
        batch = images.to(image_device)
        out, _ = aug(batch, torch.tensor(LABELS, device=label_device))
        assert out.device == batch.device
        assert unchanged(out.cpu(), images) == HEAD


# --------------------------------------------------------------------------- autograd


@pytest.mark.parametrize("p", [0.0, 1.0], ids=["nothing-drawn", "all-tail-drawn"])
@pytest.mark.parametrize("with_labels", [True, False])
def test_the_output_never_requires_grad_whatever_the_draw(generator, p, with_labels):
    aug = GITAugment(generator, ClassThresholdSampler(COUNTS, threshold=100, p=p) if with_labels else None)
    images = images_for(LABELS).requires_grad_(True)
    out = aug(images, torch.tensor(LABELS))[0] if with_labels else aug(images)
    assert not out.requires_grad and out.grad_fn is None
    assert out is not images
    assert torch.equal(out[0], images[0].detach()) or not with_labels  # head samples are kept


# --------------------------------------------------------------------------- no labels, custom rules


def test_a_sampler_without_labels_warns_once_and_names_the_wrapper(generator):
    aug = make_aug(generator)
    images = images_for(LABELS)
    with pytest.warns(UserWarning, match=r"called without labels.*gitaug\.GITDataset\(dataset, aug\)") as caught:
        out = aug(images)
    assert caught[0].filename == __file__  # points at the caller's line
    assert not any(unchanged(out, images))  # documented: everything is re-drawn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aug(images)  # once per transform
        GITAugment(generator)(images)  # no sampler: re-drawing every image is what was asked


def test_any_callable_selection_rule(generator):
    seen = []

    def odd_classes(labels, generator=None):
        seen.append(labels.dtype)
        return labels % 2 == 1

    assert isinstance(odd_classes, SelectionRule)
    aug = GITAugment(generator, odd_classes)
    images = images_for(LABELS)
    out, _ = aug(images, torch.tensor(LABELS, dtype=torch.uint8))
    assert unchanged(out, images) == [label % 2 == 0 for label in LABELS]
    assert seen == [torch.int64]


@pytest.mark.parametrize(
    "rule, match",
    [
        (lambda labels, generator=None: (labels > 0).long(), r"boolean tensor of shape \(6,\), got dtype torch.int64"),
        (lambda labels, generator=None: torch.ones(2, dtype=torch.bool), r"got dtype torch.bool, shape \(2,\)"),
        (lambda labels, generator=None: [True] * 6, "got list"),
    ],
)
def test_a_selection_rule_that_returns_no_mask(generator, rule, match):
    with pytest.raises(TypeError, match=match):
        GITAugment(generator, rule)(images_for(LABELS), torch.tensor(LABELS))


def test_a_sampler_that_is_not_callable(generator):
    with pytest.raises(TypeError, match="sampler must be a ClassThresholdSampler or None, got int; a custom selection rule"):
        GITAugment(generator, 3)


# --------------------------------------------------------------------------- the sampler


@pytest.mark.parametrize(
    "labels, match",
    [
        (torch.tensor([0, 1]).bool(), "got dtype torch.bool"),
        (torch.tensor([0.0, 1.0]), "got dtype torch.float32"),
        (torch.tensor([0, 1], device="meta"), "labels are on the meta device"),
        (torch.tensor([0, 3], dtype=torch.uint8), "label 3 is out of range for 3 classes"),
        (torch.tensor([0, 255], dtype=torch.uint8), "label 255 is out of range for 3 classes"),
        (torch.zeros(2, 3, dtype=torch.long), "1-D class indices"),
    ]
    + ([(torch.tensor([2**63 + 5], dtype=torch.uint64), f"class index {2**63 + 5}")] if hasattr(torch, "uint64") else []),
    ids=lambda v: None,
)
def test_sampler_call_errors(labels, match):
    with pytest.raises(ValueError, match=match):
        ClassThresholdSampler(COUNTS, threshold=100, p=1.0)(labels)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(class_counts=[float("inf"), 5]), ValueError, "class_counts must be finite, got inf at index 0"),
        (dict(class_counts=[5, float("nan")]), ValueError, "class_counts must be finite, got nan at index 1"),
        (dict(class_counts=[5, -3]), ValueError, "non-negative, got -3 at index 1"),
        (dict(class_counts=torch.tensor([5, -3], dtype=torch.int8)), ValueError, "non-negative, got -3 at index 1"),
        (dict(class_counts=[5, 2.5]), ValueError, "whole numbers, got 2.5 at index 1"),
        (dict(class_counts=[5, 1e30]), ValueError, "must be image counts, got 1e\\+30 at index 1"),
        (dict(class_counts=[10**30]), TypeError, "class_counts must be a sequence of whole numbers"),
        (dict(class_counts=[True, False]), TypeError, "whole numbers, got dtype torch.bool"),
        (dict(class_counts=["a", "b"]), TypeError, "class_counts must be a sequence of whole numbers, got \\['a', 'b'\\]"),
        (dict(class_counts=torch.tensor([5, 3], device="meta")), ValueError, "class_counts are on the meta device"),
        (dict(class_counts=[5, 3], threshold=float("inf"), rule="linear"), ValueError, "threshold must be finite with rule='linear', got inf"),
        (dict(class_counts=[5, 3], threshold=float("nan")), ValueError, "threshold must be a positive number or None, got nan"),
        (dict(class_counts=[5, 3], threshold=True), ValueError, "threshold must be a positive number or None, got True"),
        (dict(class_counts=[5, 3], threshold="10"), ValueError, "threshold must be a positive number or None, got '10'"),
        (dict(class_counts=[5, 3], threshold=10**400), ValueError, "threshold is too large"),
        (dict(class_counts=[5, 3], p=float("nan")), ValueError, "p must be a number in \\[0, 1\\], got nan"),
        (dict(class_counts=[5, 3], p=True), ValueError, "p must be a number in \\[0, 1\\], got True"),
        (dict(class_counts=[5, 3], p="0.5"), ValueError, "p must be a number in \\[0, 1\\], got '0.5'"),
        (dict(class_counts=[5, 3], rule=None), ValueError, "rule must be one of \\('hard', 'linear'\\), got None"),
        (dict(class_counts=[5, 3], rule=["hard"]), ValueError, "got \\['hard'\\]"),
    ],
    ids=lambda v: None,
)
def test_sampler_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ClassThresholdSampler(**kwargs)


def test_sampler_accepts_other_number_types():
    sampler = ClassThresholdSampler(torch.tensor([500, 50, 5], dtype=torch.int16), threshold=np.float32(100), p=np.float64(0.5))
    assert sampler.probabilities.tolist() == [0.0, 0.5, 0.5]
    assert ClassThresholdSampler([500.0, 5.0], threshold=100).class_counts.tolist() == [500, 5]
    assert ClassThresholdSampler(torch.tensor([200, 5], dtype=torch.uint8), threshold=100).class_counts.tolist() == [200, 5]
    # an infinite threshold with the hard rule selects every class, as threshold=None does
    assert ClassThresholdSampler([500, 5], threshold=float("inf")).probabilities.tolist() == [0.5, 0.5]


def test_from_labels_with_every_integer_dtype_and_bad_forms():
    for dtype in INTEGER_DTYPES:
        sampler = ClassThresholdSampler.from_labels(torch.tensor([0, 0, 1, 2], dtype=dtype), threshold=2)
        assert sampler.class_counts.tolist() == [2, 1, 1], dtype
    with pytest.raises(ValueError, match="got dtype torch.bool"):
        ClassThresholdSampler.from_labels(torch.tensor([True, False]))
    with pytest.raises(ValueError, match="num_classes must be a positive integer or None, got True"):
        ClassThresholdSampler.from_labels([0, 0], num_classes=True)
    with pytest.raises(TypeError, match=r"labels must be a tensor or a sequence of class indices, got \['a', 'b'\]"):
        ClassThresholdSampler.from_labels(["a", "b"])
    with pytest.raises(TypeError, match=r"labels must be a tensor or a sequence of class indices, got \[10000"):
        ClassThresholdSampler([3, 1])([10**30])
    assert ClassThresholdSampler([3, 1], p=1.0)([1, 0]).tolist() == [True, True]  # a plain list of indices
