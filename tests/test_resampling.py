"""Class-balanced and deferred re-sampling."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from gitaug.resampling import ClassBalancedSampler, DeferredResampler, class_balanced_weights

LABELS = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)


def _frequencies(indices: list[int]) -> torch.Tensor:
    return torch.bincount(LABELS[indices], minlength=3).double() / len(indices)


def test_class_balanced_sampler_equalises_classes():
    sampler = ClassBalancedSampler(LABELS, num_samples=30_000, seed=0)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 30_000
    assert torch.allclose(_frequencies(indices), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.015)
    # items of the tiny class are all reached, with replacement
    assert set(i for i in indices if i >= 990) == set(range(990, 1000))
    assert len(ClassBalancedSampler(LABELS)) == 1000


def test_class_balanced_sampler_is_reproducible_per_epoch():
    first, second = ClassBalancedSampler(LABELS, seed=3), ClassBalancedSampler(LABELS, seed=3)
    epoch0, epoch1 = list(first), list(first)  # a new pass moves to the next epoch
    assert epoch0 != epoch1
    assert list(second) == epoch0
    second.set_epoch(1)
    assert second.epoch == 1 and list(second) == epoch1
    assert list(ClassBalancedSampler(LABELS, seed=4)) != epoch0


def test_class_balanced_weights():
    weights = class_balanced_weights([0, 0, 0, 0, 1])
    assert weights.tolist() == [0.25, 0.25, 0.25, 0.25, 1.0]
    # each class's weights sum to one
    per_class = torch.zeros(3, dtype=torch.float64).index_add_(0, LABELS, class_balanced_weights(LABELS))
    assert torch.allclose(per_class, torch.ones(3, dtype=torch.float64))


def test_deferred_resampler_switches_at_start_epoch():
    sampler = DeferredResampler(LABELS, start_epoch=2, seed=0)
    seen = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        seen.append((sampler.resampling_active, indices))
    for active, indices in seen[:2]:
        assert not active and sorted(indices) == list(range(1000))  # one pass over every item
    assert seen[0][1] != list(range(1000)) and seen[0][1] != seen[1][1]
    for active, indices in seen[2:]:
        assert active and len(indices) == 1000
        assert _frequencies(indices)[2] > 0.25  # the 1 % class now gets about a third
    # without set_epoch, passes count epochs themselves and give the same draws
    automatic = DeferredResampler(LABELS, start_epoch=2, seed=0)
    assert [list(automatic) for _ in range(4)] == [indices for _, indices in seen]


def test_deferred_resampler_in_a_dataloader():
    data = TensorDataset(torch.arange(1000), LABELS)
    sampler = DeferredResampler(LABELS, start_epoch=1, num_samples=600, seed=1)
    loader = DataLoader(data, batch_size=100, sampler=sampler)
    before = torch.cat([labels for _, labels in loader])
    assert before.numel() == 1000 and torch.bincount(before).tolist() == [900, 90, 10]
    after = torch.cat([labels for _, labels in loader])
    assert after.numel() == 600 and len(sampler) == 600
    counts = torch.bincount(after, minlength=3).double() / 600
    assert torch.allclose(counts, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.07)
    assert DeferredResampler(LABELS, start_epoch=0).resampling_active


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ClassBalancedSampler([]), "non-empty"),
        (lambda: ClassBalancedSampler([[0, 1]]), "1-D"),
        (lambda: ClassBalancedSampler([0, -1]), "non-negative"),
        (lambda: ClassBalancedSampler([0, 1.5]), "whole numbers"),
        (lambda: ClassBalancedSampler([0, 1], num_samples=0), "num_samples"),
        (lambda: ClassBalancedSampler([0, 1], seed=-2), "seed"),
        (lambda: ClassBalancedSampler([0, 2], num_classes=3), "classes \\[1\\] have no items"),
        (lambda: ClassBalancedSampler([0, 3], num_classes=3), "labels must lie in \\[0, 3\\)"),
        (lambda: DeferredResampler([0, 1], start_epoch=-1), "start_epoch"),
        (lambda: DeferredResampler([0, 1], start_epoch=1).set_epoch(-3), "epoch"),
    ],
)
def test_sampler_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
