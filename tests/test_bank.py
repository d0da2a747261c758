"""TailBank: precomputed draws of the tail images, served by index."""

from __future__ import annotations

import pytest
import torch

from gitaug import ClassThresholdSampler, GITAugment, MUNITConfig, MUNITGenerator
from gitaug.bank import TailBank


def _setup(dtype=torch.float32):
    torch.manual_seed(0)
    generator = MUNITGenerator(MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1)).eval()
    labels = torch.tensor([0] * 20 + [1] * 6 + [2] * 3)
    images = torch.rand(labels.numel(), 1, 16, 16, generator=torch.Generator().manual_seed(1))
    if dtype == torch.uint8:
        images = (images * 255).round().to(torch.uint8)
    sampler = ClassThresholdSampler.from_labels(labels, threshold=10, p=1.0)
    return GITAugment(generator, sampler, dtype=torch.float32), images, labels


def test_only_tail_samples_are_replaced_by_one_of_their_bank_versions():
    aug, images, labels = _setup()
    bank = TailBank(aug, images, labels, draws=3)
    assert bank.indices.tolist() == list(range(20, 29))
    assert bank.nbytes == 9 * 3 * 16 * 16 * 4
    indices = torch.tensor([3, 21, 27, 5, 28])
    batch, batch_labels = images[indices], labels[indices]
    out, same = bank(batch, batch_labels, indices, generator=torch.Generator().manual_seed(0))
    assert same is batch_labels and out.shape == batch.shape
    assert torch.equal(out[[0, 3]], batch[[0, 3]])  # head class: untouched
    for position in (1, 2, 4):
        versions = bank.bank[int(indices[position]) - 20]
        assert not torch.equal(out[position], batch[position])
        assert any(torch.equal(out[position], v) for v in versions)
    # The V versions are different draws, each a generator output in [0, 1].
    assert not torch.equal(bank.bank[:, 0], bank.bank[:, 1])
    assert bank.bank.min() >= 0 and bank.bank.max() <= 1


def test_every_version_gets_served_and_the_generator_is_not_run_after_drawing():
    aug, images, labels = _setup()
    bank = TailBank(aug, images, labels, draws=4)
    bank.refresh()
    calls = []
    aug.generator.content_encoder.register_forward_hook(lambda *args: calls.append(1))
    index = torch.full((200,), 25)
    out, _ = bank(images[index], labels[index], index, generator=torch.Generator().manual_seed(0))
    served = {next(v for v in range(4) if torch.equal(row, bank.bank[5, v])) for row in out}
    assert served == {0, 1, 2, 3} and calls == []


def test_uint8_bank_and_refresh_schedule():
    aug, images, labels = _setup(torch.uint8)
    bank = TailBank(aug, images, labels, draws=2, refresh_every=2)
    assert bank.bank is None  # drawn lazily, on the first call
    out, _ = bank(images[20:], labels[20:], torch.arange(20, 29))
    assert bank.bank.dtype == torch.uint8 and out.dtype == torch.uint8
    first = bank.bank
    bank.set_epoch(1)
    assert bank.bank is first
    bank.set_epoch(2)
    assert bank.bank is not first and not torch.equal(bank.bank, first)


def test_disabled_bank_is_the_identity_and_errors_name_the_argument():
    aug, images, labels = _setup()
    bank = TailBank(aug, images, labels, draws=2, enabled=False)
    out, _ = bank(images[20:], labels[20:], torch.arange(20, 29))
    assert out is images[20:] or torch.equal(out, images[20:])
    with pytest.raises(ValueError, match="draws"):
        TailBank(aug, images, labels, draws=0)
    with pytest.raises(ValueError, match="refresh_every"):
        TailBank(aug, images, labels, refresh_every=0)
    with pytest.raises(ValueError, match="labels"):
        TailBank(aug, images, labels[:-1])
    with pytest.raises(TypeError, match="augment"):
        TailBank(aug.generator, images, labels)
    bank.enabled = True
    with pytest.raises(ValueError, match="indices"):
        bank(images[:2], labels[:2], torch.tensor([0, 99]))
