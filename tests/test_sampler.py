import pytest
import torch

from gitaug import ClassThresholdSampler


def test_hard_rule_probabilities():
    sampler = ClassThresholdSampler([500, 100, 24, 25, 5], threshold=25, p=0.5)
    assert sampler.probabilities.tolist() == [0.0, 0.0, 0.5, 0.0, 0.5]


def test_no_threshold_selects_every_class():
    sampler = ClassThresholdSampler([500, 100, 5], p=0.3)
    assert torch.allclose(sampler.probabilities, torch.full((3,), 0.3))


def test_linear_rule_probabilities():
    # p * max(0, (K - N_c) / (K - N_min)) with K = 105, N_min = 5
    sampler = ClassThresholdSampler([5, 55, 105, 500], threshold=105, p=0.8, rule="linear")
    assert torch.allclose(sampler.probabilities, torch.tensor([0.8, 0.4, 0.0, 0.0]))


def test_linear_rule_with_threshold_below_every_class_selects_nothing():
    sampler = ClassThresholdSampler([50, 60], threshold=10, rule="linear")
    assert sampler.probabilities.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("rule", ["hard", "linear"])
def test_selection_rates_match_probabilities(rule):
    counts = [400, 120, 60, 30, 10, 5]
    sampler = ClassThresholdSampler(counts, threshold=100, p=0.6, rule=rule)
    labels = torch.arange(6).repeat_interleave(20_000)
    mask = sampler(labels, generator=torch.Generator().manual_seed(0))
    rates = torch.stack([mask[labels == c].float().mean() for c in range(6)])
    # 20k draws per class: binomial std <= 0.0035; 0.015 is over 4 standard deviations.
    assert torch.allclose(rates, sampler.probabilities, atol=0.015)
    assert mask[labels == 0].sum() == 0  # above the threshold: never


def test_mask_is_seeded_boolean_and_on_the_labels_device():
    sampler = ClassThresholdSampler([10, 5], p=0.5)
    labels = torch.tensor([0, 1] * 50)
    a = sampler(labels, generator=torch.Generator().manual_seed(1))
    b = sampler(labels, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.bool and a.shape == (100,) and a.device == labels.device
    assert torch.equal(a, b)
    assert 0 < a.sum() < 100


def test_from_labels_counts_classes():
    labels = torch.tensor([0, 0, 0, 2, 2, 1])
    sampler = ClassThresholdSampler.from_labels(labels, num_classes=4, threshold=3, p=1.0)
    assert sampler.class_counts.tolist() == [3, 1, 2, 0]
    assert sampler.probabilities.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert ClassThresholdSampler.from_labels([0, 1, 1]).num_classes == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(class_counts=[]), "non-empty 1-D"),
        (dict(class_counts=[[1, 2]]), "non-empty 1-D"),
        (dict(class_counts=[3, -1]), "non-negative, got -1 at index 1"),
        (dict(class_counts=[3.5, 1]), "whole numbers"),
        (dict(class_counts=[3, 1], p=1.5), "p must be a number in \\[0, 1\\], got 1.5"),
        (dict(class_counts=[3, 1], rule="soft"), "rule must be one of \\('hard', 'linear'\\), got 'soft'"),
        (dict(class_counts=[3, 1], threshold=0), "threshold must be a positive number or None, got 0"),
        (dict(class_counts=[3, 1], rule="linear"), "rule='linear' needs a threshold"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassThresholdSampler(**kwargs)


def test_call_and_from_labels_errors():
    sampler = ClassThresholdSampler([3, 1])
    with pytest.raises(ValueError, match="label 2 is out of range for 2 classes"):
        sampler(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="label -1 is out of range"):
        sampler(torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="integer class indices, got dtype torch.float32"):
        sampler(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D class indices"):
        sampler(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="label 3 is out of range for num_classes=2"):
        ClassThresholdSampler.from_labels([0, 3], num_classes=2)
