"""GITDataset: per-sample GIT with labels, in DataLoader workers (fork and spawn)."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from gitaug import ClassThresholdSampler, GITAugment, GITDataset

from helpers import tiny_generator

HEAD, TAIL = 0, 1


class IdenticalTail(Dataset):
    """Head images all different; every tail image the same picture, so workers' draws can be compared."""

    def __init__(self, n_head: int = 40, n_tail: int = 160) -> None:
        rng = torch.Generator().manual_seed(1)
        self.head = torch.rand(n_head, 1, 16, 16, generator=rng)
        self.tail = torch.rand(1, 16, 16, generator=rng)
        self.labels = torch.tensor([HEAD] * n_head + [TAIL] * n_tail)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        label = int(self.labels[index])
        image = self.head[index] if label == HEAD else self.tail
        return image.clone(), label


def make_aug(p: float = 0.5) -> GITAugment:
    # Head (40 images) is above the threshold and never re-drawn; the tail (160) is re-drawn with p.
    counts = [40, 5]  # what the sampler is told: class 1 is the tail
    return GITAugment(tiny_generator(seed=0), ClassThresholdSampler(counts, threshold=10, p=p))


def collect(dataset: GITDataset, num_workers: int, context: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(
        dataset, batch_size=8, shuffle=False, num_workers=num_workers,
        multiprocessing_context=context if num_workers else None,
    )
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


def check_head_kept_tail_redrawn(base: IdenticalTail, images: torch.Tensor, labels: torch.Tensor, p: float) -> torch.Tensor:
    assert torch.equal(labels, base.labels)  # labels come back unchanged
    head = labels == HEAD
    assert torch.equal(images[head], base.head)  # bit-identical, every one of them
    changed = (images[~head] != base.tail).flatten(1).any(1)
    n = changed.numel()
    # Binomial(160, p): 4.5 standard deviations either side.
    tolerance = 4.5 * (n * p * (1 - p)) ** 0.5
    assert abs(changed.sum().item() - n * p) < tolerance, (changed.sum().item(), n * p)
    return changed


# spawn starts fresh interpreters that import torch: about half a minute on 2 cores.
@pytest.mark.parametrize("draws", ["live", 8])
@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_workers_keep_head_and_redraw_about_p_of_tail(context, draws):
    if context not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{context} is not available here")
    torch.manual_seed(0)
    base = IdenticalTail()
    dataset = GITDataset(base, make_aug(p=0.5), draws=draws)
    dataset.build_bank()  # the bank (draws=8) is drawn here, once, before the workers start
    images, labels = collect(dataset, num_workers=2, context=context)
    changed = check_head_kept_tail_redrawn(base, images, labels, p=0.5)

    # Batches alternate between the two workers (8 items each). Had both workers the same random
    # stream, worker 1's batches would repeat worker 0's selection (and, drawing live, its images:
    # the tail inputs are identical).
    tail_images = images[labels == TAIL]
    tail_changed = changed.view(-1, 8)
    tail_start = int((labels == HEAD).sum())  # 40: a multiple of 8, so tail batches stay aligned
    assert tail_start % 16 == 8  # the first tail batch is worker 1's, the next one worker 0's
    pairs = [(tail_images[i : i + 8], tail_images[i + 8 : i + 16]) for i in range(0, len(tail_images) - 8, 16)]
    assert not all(torch.equal(a, b) for a, b in pairs)
    assert not all(torch.equal(tail_changed[i], tail_changed[i + 1]) for i in range(0, len(tail_changed) - 1, 2))
    assert 0 < changed.sum() < changed.numel()


def test_seeded_draws_do_not_depend_on_the_number_of_workers():
    base = IdenticalTail(n_head=16, n_tail=48)
    dataset = GITDataset(base, make_aug(p=0.5), seed=3)
    in_process, _ = collect(dataset, num_workers=0)
    in_workers, _ = collect(dataset, num_workers=2, context="fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    assert torch.equal(in_process, in_workers)
    dataset.set_epoch(1)
    next_epoch, _ = collect(dataset, num_workers=0)
    assert not torch.equal(next_epoch, in_process)  # a new epoch, new draws
    assert torch.equal(next_epoch[:16], in_process[:16])  # the head stays as it is


def test_p_zero_or_no_tail_is_the_identity_and_p_one_redraws_every_tail_image():
    base = IdenticalTail(n_head=8, n_tail=16)
    kept = GITDataset(base, make_aug(p=0.0), seed=0)
    images, _ = collect(kept, num_workers=0)
    assert torch.equal(images[8:], base.tail.expand(16, -1, -1, -1))
    every = GITDataset(base, make_aug(p=1.0), seed=0)
    images, _ = collect(every, num_workers=0)
    assert (images[8:] != base.tail).flatten(1).any(1).all()
    assert torch.equal(images[:8], base.head)


def test_transform_runs_after_git_and_tensor_labels_are_returned_unchanged():
    images = torch.rand(4, 1, 16, 16)
    labels = torch.tensor([0, 0, 0, 1])
    aug = GITAugment(tiny_generator(), ClassThresholdSampler([3, 1], threshold=2, p=1.0))
    dataset = GITDataset(TensorDataset(images, labels), aug, transform=lambda x: x * 2 - 1,
                         target_transform=lambda y: y + 10, seed=0)
    image, label = dataset[0]
    assert torch.equal(image, images[0] * 2 - 1)
    assert label == 10
    tail_image, tail_label = dataset[3]
    assert tail_label == 11
    assert tail_image.min() >= -1 and tail_image.max() <= 1  # GIT's output in [0, 1], then the transform
    assert not torch.equal(tail_image, images[3] * 2 - 1)


def test_pil_images_come_back_as_pil_images_of_the_same_mode():
    rng = torch.Generator().manual_seed(0)
    pictures = [Image.fromarray(torch.randint(0, 256, (16, 16), generator=rng, dtype=torch.uint8).numpy(), "L")
                for _ in range(3)]
    rgb = [picture.convert("RGB") for picture in pictures]  # a gray generator on RGB files: converted and back
    aug = GITAugment(tiny_generator(), ClassThresholdSampler([2, 1], threshold=2, p=1.0))
    dataset = GITDataset(list(zip(rgb, [0, 0, 1])), aug, seed=0)
    head, _ = dataset[0]
    assert head is rgb[0]
    tail, label = dataset[2]
    assert isinstance(tail, Image.Image) and tail.mode == "RGB" and tail.size == (16, 16) and label == 1
    assert not np.array_equal(np.asarray(tail), np.asarray(rgb[2]))


def test_bad_arguments_and_items_are_named():
    aug = GITAugment(tiny_generator(), ClassThresholdSampler([2, 1], threshold=2))
    with pytest.raises(TypeError, match="aug must be a GITAugment"):
        GITDataset([], object())
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        GITDataset([], aug, seed=-1)
    with pytest.raises(TypeError, match=r"dataset\[0\] must be an \(image, label\) pair"):
        GITDataset([torch.rand(1, 16, 16)], aug)[0]
    with pytest.raises(TypeError, match="label must be a class index"):
        GITDataset([(torch.rand(1, 16, 16), "cat")], aug)[0]
    with pytest.raises(TypeError, match="images must be .* tensors or PIL images, got str"):
        GITDataset([("picture.png", 0)], aug)[0]
