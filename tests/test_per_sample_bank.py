"""GITDataset's default bank: replaced tail images are bank draws, selected exactly as live draws select them."""

from __future__ import annotations

import dataclasses
import multiprocessing
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from gitaug import ClassThresholdSampler, GITAugment, GITDataset, MUNITGenerator

from helpers import tiny_config, tiny_generator

N_HEAD, N_TAIL = 24, 16


def make_data(n_head: int = N_HEAD, n_tail: int = N_TAIL) -> TensorDataset:
    """Class 0 is the head; classes 1 and 2 share the tail. Every image is different."""
    rng = torch.Generator().manual_seed(1)
    labels = torch.tensor([0] * n_head + [1, 2] * (n_tail // 2))
    return TensorDataset(torch.rand(labels.numel(), 1, 16, 16, generator=rng), labels)


def make_aug(p: float = 0.5, rule: str = "hard") -> GITAugment:
    # Counts as the sampler is told them: class 0 above K = 10, classes 1 and 2 below it.
    return GITAugment(tiny_generator(seed=0), ClassThresholdSampler([40, 3, 6], threshold=10, p=p, rule=rule))


def collect(dataset: Dataset, num_workers: int = 0, context: str | None = None) -> torch.Tensor:
    loader = DataLoader(dataset, batch_size=8, shuffle=False, num_workers=num_workers,
                        multiprocessing_context=context if num_workers else None)
    return torch.cat([images for images, _ in loader])


def replaced(images: torch.Tensor, base: TensorDataset) -> torch.Tensor:
    return (images != base.tensors[0]).flatten(1).any(1)


def refuse_generator_passes(module, inputs):
    raise AssertionError("the generator ran while serving items from the bank")


def check_bank_draws(dataset: GITDataset, images: torch.Tensor, base: TensorDataset, p: float) -> torch.Tensor:
    """Head bit-identical; every replaced tail image one of its own V bank draws; about p of the tail replaced."""
    source, labels = base.tensors
    head = labels == 0
    assert torch.equal(images[head], source[head])
    changed = replaced(images, base)
    assert not changed[head].any()
    for index in torch.nonzero(changed).flatten().tolist():
        versions = dataset.bank_versions(index)
        assert versions.shape == (8, 1, 16, 16)
        assert any(torch.equal(images[index], version) for version in versions), index
    n = int((~head).sum())
    assert abs(int(changed.sum()) - n * p) < 4.5 * (n * p * (1 - p)) ** 0.5 + 1, (int(changed.sum()), n * p)
    return changed


def test_default_serves_replaced_tail_images_from_their_own_bank_draws_without_a_generator_pass():
    torch.manual_seed(0)
    base = make_data()
    dataset = GITDataset(base, make_aug(p=0.5), draws=8)
    assert dataset.draws == 8 and dataset.uses_bank and dataset.bank_nbytes == 0  # drawn lazily
    dataset.build_bank()
    assert dataset.bank_nbytes == N_TAIL * 8 * 16 * 16 * 4  # float32, as the dataset's images
    with pytest.raises(ValueError, match=r"dataset\[0\] is not in the bank"):
        dataset.bank_versions(0)
    tail = N_HEAD + 3
    versions = dataset.bank_versions(tail)
    assert all(not torch.equal(versions[a], versions[b]) for a in range(8) for b in range(a))  # 8 different draws
    assert not torch.equal(versions, dataset.bank_versions(tail + 1))  # each image its own
    hook = dataset.aug.generator.register_forward_pre_hook(refuse_generator_passes)
    hook_content = dataset.aug.generator.content_encoder.register_forward_pre_hook(refuse_generator_passes)
    try:
        images = torch.cat([collect(dataset) for _ in range(4)])  # four epochs of global-RNG draws
    finally:
        hook.remove()
        hook_content.remove()
    for epoch in range(4):
        check_bank_draws(dataset, images[epoch * len(base) : (epoch + 1) * len(base)], base, p=0.5)
    # Over 4 x 16 tail draws, several of each image's V versions get served.
    versions_served = set()
    for position, image in enumerate(images):
        index = position % len(base)
        if index >= N_HEAD and not torch.equal(image, base.tensors[0][index]):
            versions_served |= {v for v, draw in enumerate(dataset.bank_versions(index)) if torch.equal(draw, image)}
    assert len(versions_served) >= 4


@pytest.mark.parametrize("rule", ["hard", "linear"])
def test_with_a_seed_the_bank_replaces_exactly_the_items_live_draws_replace(rule):
    base = make_data()
    bank = GITDataset(base, make_aug(p=0.6, rule=rule), seed=5, draws=8)
    live = GITDataset(base, make_aug(p=0.6, rule=rule), seed=5, draws="live")
    assert bank.uses_bank and not live.uses_bank
    for epoch in (0, 1):
        bank.set_epoch(epoch)
        live.set_epoch(epoch)
        from_bank, from_live = collect(bank), collect(live)
        chosen = replaced(from_bank, base)
        assert torch.equal(chosen, replaced(from_live, base))  # the same selection, item by item
        assert 0 < int(chosen.sum()) < N_TAIL
        check_bank_draws(bank, from_bank, base, p=0.6 if rule == "hard" else float(chosen[N_HEAD:].float().mean()))
        assert not torch.equal(from_bank[chosen], from_live[chosen])  # different generated images, same slots
    if rule == "linear":  # class 2 (6 images vs K = 10) is selected less often than class 1 (3 images)
        assert bank.aug.sampler.probabilities.tolist()[1:] == pytest.approx([0.6, 0.6 * 4 / 7])


def test_set_epoch_redraws_the_bank_every_refresh_every_epochs_and_not_otherwise():
    torch.manual_seed(0)
    base = make_data()
    kept = GITDataset(base, make_aug(p=1.0), draws=8)
    kept.set_epoch(0)  # draws the bank here, in the main process
    first = kept.bank_versions(N_HEAD)
    kept.set_epoch(5)
    assert torch.equal(kept.bank_versions(N_HEAD), first)  # refresh_every=None keeps the first draws

    refreshed = GITDataset(base, make_aug(p=1.0), seed=2, draws=8, refresh_every=2)
    refreshed.set_epoch(0)
    draws_0 = refreshed.bank_versions(N_HEAD)
    refreshed.set_epoch(1)
    assert torch.equal(refreshed.bank_versions(N_HEAD), draws_0)
    refreshed.set_epoch(2)
    draws_2 = refreshed.bank_versions(N_HEAD)
    assert not torch.equal(draws_2, draws_0)
    images = collect(refreshed)
    assert all(any(torch.equal(images[i], v) for v in refreshed.bank_versions(i)) for i in range(N_HEAD, len(base)))
    # With a seed, the bank of an epoch does not depend on when or where it was drawn.
    again = GITDataset(base, make_aug(p=1.0), seed=2, draws=8, refresh_every=2)
    again.set_epoch(3)
    assert torch.equal(again.bank_versions(N_HEAD), draws_2)


def test_live_draws_keep_the_generator_pass_per_item():
    torch.manual_seed(0)
    base = make_data()
    dataset = GITDataset(base, make_aug(p=0.5), draws="live")
    dataset.build_bank()  # nothing to draw
    assert not dataset.uses_bank and dataset.bank_nbytes == 0
    with pytest.raises(ValueError, match="draws live"):
        dataset.bank_versions(N_HEAD)
    calls = []
    dataset.aug.generator.content_encoder.register_forward_hook(lambda *args: calls.append(1))
    images = collect(dataset)
    changed = replaced(images, base)
    assert torch.equal(images[:N_HEAD], base.tensors[0][:N_HEAD]) and not changed[:N_HEAD].any()
    assert len(calls) == int(changed.sum()) > 0  # one generator pass per replaced image


def test_delayed_git_draws_no_bank_until_enabled():
    base = make_data()
    aug = make_aug(p=1.0)
    aug.enabled = False
    dataset = GITDataset(base, aug, seed=0, draws=8)
    dataset.set_epoch(0)
    assert dataset.bank_nbytes == 0
    assert torch.equal(collect(dataset), base.tensors[0])
    aug.enabled = True
    dataset.set_epoch(1)
    assert dataset.bank_nbytes > 0
    assert replaced(collect(dataset), base)[N_HEAD:].all()


def contexts():
    return [c if c == "fork" else pytest.param(c, marks=pytest.mark.slow)
            for c in ("fork", "spawn") if c in multiprocessing.get_all_start_methods()]


# spawn starts fresh interpreters that import torch: about half a minute on 2 cores.
@pytest.mark.parametrize("context", contexts())
def test_bank_drawn_in_the_main_process_serves_workers_without_generator_passes(context):
    torch.manual_seed(0)
    base = make_data(n_head=16, n_tail=64)
    dataset = GITDataset(base, make_aug(p=0.5), draws=8)
    dataset.build_bank()
    # A generator pass in a worker would fail the DataLoader (the hook travels with the pickled aug).
    dataset.aug.generator.content_encoder.register_forward_pre_hook(refuse_generator_passes)
    images = collect(dataset, num_workers=2, context=context)
    changed = check_bank_draws(dataset, images, base, p=0.5)
    # Batches of 8 alternate between the workers; identical random streams in both would give the
    # same selection pattern in each worker-1 batch and the worker-0 batch after it.
    tail = changed[16:].view(-1, 8)
    assert not all(torch.equal(tail[i], tail[i + 1]) for i in range(0, tail.shape[0], 2))


def test_a_bank_first_needed_in_workers_is_drawn_there_and_with_a_seed_matches_the_main_process():
    context = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    base = make_data()
    in_workers = collect(GITDataset(base, make_aug(p=0.5), seed=4, draws=8), num_workers=2, context=context)
    in_process = collect(GITDataset(base, make_aug(p=0.5), seed=4, draws=8))
    assert torch.equal(in_workers, in_process)
    assert replaced(in_process, base).any()


def test_custom_rules_and_ragged_tails_draw_live():
    base = make_data()
    odd = GITAugment(tiny_generator(seed=0), lambda labels, generator=None: labels % 2 == 1)
    custom = GITDataset(base, odd, seed=0, draws=8)
    assert not custom.uses_bank  # a custom rule does not say which images it can select
    assert replaced(collect(custom), base).tolist() == (base.tensors[1] % 2 == 1).tolist()

    ragged = [(torch.rand(1, 16, 16), 0), (torch.rand(1, 16, 16), 1), (torch.rand(1, 20, 20), 2)]
    dataset = GITDataset(ragged, make_aug(p=1.0), seed=0, draws=8)
    with pytest.warns(RuntimeWarning, match="differ in shape"):
        dataset.build_bank()
    assert not dataset.uses_bank
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = [dataset[i][0] for i in range(3)]
    assert not [w for w in caught if "GITDataset" in str(w.message)]  # warned once, at the draw
    assert torch.equal(out[0], ragged[0][0]) and out[2].shape == (1, 20, 20)
    assert not torch.equal(out[2], ragged[2][0])


@pytest.mark.parametrize("draws", [0, -3, True, 2.5, "bank", None])
def test_bad_draws_are_named(draws):
    with pytest.raises(ValueError, match=rf"draws must be a positive int .*, 'live' or 'auto', got {draws!r}"):
        GITDataset(make_data(), make_aug(), draws=draws)


@pytest.mark.parametrize("refresh_every", [0, -1, True, 1.5, "2"])
def test_bad_refresh_every_is_named(refresh_every):
    with pytest.raises(ValueError, match=rf"refresh_every must be a positive int \(epochs\) or None, got {refresh_every!r}"):
        GITDataset(make_data(), make_aug(), refresh_every=refresh_every)
    with pytest.raises(ValueError, match="refresh_every=3 re-draws the bank, but draws='live' has none"):
        GITDataset(make_data(), make_aug(), draws="live", refresh_every=3)


def test_a_label_out_of_the_samplers_range_is_named_when_the_bank_is_drawn():
    dataset = GITDataset([(torch.rand(1, 16, 16), 0), (torch.rand(1, 16, 16), 7)], make_aug(), draws=8)
    with pytest.raises(ValueError, match=r"dataset\[1\] has label 7, out of range for 3 classes"):
        dataset.build_bank()


class WithTargets(Dataset):
    """uint8 images with a ``targets`` attribute (as torchvision's datasets have) that is wrong about one item."""

    def __init__(self) -> None:
        rng = torch.Generator().manual_seed(3)
        self.images = torch.randint(0, 256, (20, 1, 16, 16), generator=rng, dtype=torch.uint8)
        self.labels = [0] * 12 + [1] * 8
        self.targets = list(self.labels)
        self.targets[19] = 0  # the attribute calls the last tail item a head item
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        self.reads.append(index)
        return self.images[index], self.labels[index]


def test_targets_attribute_limits_the_reads_and_an_item_it_misses_is_drawn_live():
    base = WithTargets()
    dataset = GITDataset(base, make_aug(p=1.0), seed=0, draws=8)
    dataset.build_bank()
    assert sorted(base.reads) == list(range(12, 19))  # the tail items the attribute names, nothing else
    assert dataset.bank_nbytes == 7 * 8 * 16 * 16  # uint8: one byte a value
    assert dataset.bank_versions(12).dtype == torch.uint8
    for index in range(12, 19):
        assert any(torch.equal(dataset[index][0], v) for v in dataset.bank_versions(index))
    with pytest.warns(RuntimeWarning, match=r"dataset\[19\] \(label 1\) is selected for GIT but has no bank draw"):
        image, label = dataset[19]
    assert label == 1 and image.dtype == torch.uint8 and not torch.equal(image, base.images[19])  # drawn live


@pytest.mark.parametrize("draw", [{"residual": True, "appearance_scale": 0.0}, {"residual": True}, {"residual": False}])
def test_every_draw_is_drawn_live_by_default_and_a_bank_only_when_asked(draw):
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(), warp="affine", warp_rotation=30.0)
    generator = MUNITGenerator(config).eval()
    sampler = ClassThresholdSampler([40, 3, 6], threshold=10, p=1.0)
    base = make_data()
    aug = GITAugment(generator, sampler, **draw)
    live = GITDataset(base, aug, seed=0)
    assert live.draws == "live" and not live.uses_bank
    # Live draws are new for every epoch: no tail image comes back the same twice.
    first, second = collect(live), (live.set_epoch(1), collect(live))[1]
    assert torch.equal(first[:N_HEAD], base.tensors[0][:N_HEAD])
    assert (first[N_HEAD:] != second[N_HEAD:]).flatten(1).any(1).all()
    # refresh_every has nothing to re-draw then, and is accepted as with a bank.
    assert GITDataset(base, aug, refresh_every=2).draws == "live"
    # A number asks for a bank whatever the draw.
    banked = GITDataset(base, aug, draws=4)
    assert banked.draws == 4 and banked.uses_bank
