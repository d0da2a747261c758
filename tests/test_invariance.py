"""Per-class invariance (eKLD), its summary and its plot."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gitaug.datasets import ImageDataset, RandomBackground, RandomRotation
from gitaug.invariance import EKLDResult, ekld, plot_ekld, spearman_correlation, summarize_ekld


def identity(images, generator=None):
    return images


class Recorder:
    """A random transform (additive noise) that remembers what it was given and returned."""

    def __init__(self):
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, images, generator=None):
        noise = torch.randn(images.shape, generator=generator)
        out = (images + 0.2 * noise).clamp(0, 1)
        self.pairs.append((images.clone(), out.clone()))
        return out


class ConstantModel(nn.Module):
    """Ignores its input: the same logits for every image."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.logits = nn.Parameter(torch.randn(num_classes))

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def _linear_model(num_classes: int = 3, pixels: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, num_classes))


def _dataset(per_class=(6, 4, 2)) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    images = torch.randint(0, 256, (labels.numel(), 1, 8, 8), dtype=torch.uint8, generator=generator)
    images[:, :, :3] = 0  # some black background for the background nuisance
    return ImageDataset(images, labels)


def _kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    log_p, log_q = F.log_softmax(logits_p.double(), 1), F.log_softmax(logits_q.double(), 1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def test_identity_transform_and_constant_classifier_give_zero():
    data = _dataset()
    result = ekld(_linear_model(), data, identity, n_per_class=10, m_per_input=3)
    assert torch.allclose(result.per_class, torch.zeros(3, dtype=torch.float64), atol=1e-9)
    constant = ekld(ConstantModel(3), data, RandomBackground(), n_per_class=10, m_per_input=3)
    assert torch.equal(constant.per_class, torch.zeros(3, dtype=torch.float64))
    assert result.inputs_per_class.tolist() == [6, 4, 2] and result.draws_per_input == 3


def test_non_invariant_classifier_is_positive_and_seeded():
    data = _dataset()
    result = ekld(_linear_model(), data, RandomBackground(), n_per_class=3, m_per_input=5, seed=1)
    assert bool((result.per_class > 1e-4).all())
    assert result.inputs_per_class.tolist() == [3, 3, 2]
    assert result.class_sizes.tolist() == [6, 4, 2]  # from dataset.class_counts
    again = ekld(_linear_model(), data, RandomBackground(), n_per_class=3, m_per_input=5, seed=1)
    other = ekld(_linear_model(), data, RandomBackground(), n_per_class=3, m_per_input=5, seed=2)
    assert torch.equal(again.per_class, result.per_class)
    assert not torch.equal(other.per_class, result.per_class)


def test_matches_direct_computation_for_a_fixed_transform():
    data = _dataset()
    model = _linear_model()
    flip = lambda images, generator=None: images.flip(-1)  # noqa: E731
    result = ekld(model, data, flip, n_per_class=50, m_per_input=2, batch_size=5)
    x = data.float_images()
    with torch.no_grad():
        divergence = _kl(model(x), model(x.flip(-1)))
    expected = torch.stack([divergence[data.targets == c].mean() for c in range(3)])
    assert torch.allclose(result.per_class, expected, atol=1e-6)


def test_matches_direct_computation_for_a_random_transform():
    data = _dataset()
    model = _linear_model()
    recorder = Recorder()
    result = ekld(model, data, recorder, n_per_class=4, m_per_input=3, batch_size=7)
    x = data.float_images().flatten(1)
    sums, draws = torch.zeros(3, dtype=torch.float64), torch.zeros(3)
    with torch.no_grad():
        for originals, moved in recorder.pairs:
            # find each original's class from the (distinct) dataset images
            match = (originals.flatten(1)[:, None] == x[None]).all(-1).float().argmax(1)
            classes = data.targets[match]
            divergence = _kl(model(originals), model(moved))
            sums.index_add_(0, classes, divergence)
            draws.index_add_(0, classes, torch.ones(len(classes)))
    assert draws.tolist() == [12, 12, 6]  # (4, 4, 2) inputs x 3 draws
    assert torch.allclose(result.per_class, sums / draws.double(), atol=1e-6)


def test_model_modes_are_restored_and_eval_is_used():
    seen_training = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _linear_model()
            self.dropout = nn.Dropout(0.5)

        def forward(self, x):
            seen_training.append(self.training)
            return self.dropout(self.body(x))

    model = Spy()
    model.train()
    model.dropout.eval()  # a submodule the caller froze on purpose
    result = ekld(model, _dataset(), identity, n_per_class=2, m_per_input=2)
    assert seen_training and not any(seen_training)
    assert torch.allclose(result.per_class, torch.zeros(3, dtype=torch.float64), atol=1e-9)  # no dropout noise
    assert model.training and model.body.training and not model.dropout.training


def test_pairs_class_sizes_and_empty_classes():
    data = _dataset()
    images, labels = data.float_images(), data.targets
    result = ekld(_linear_model(4), (images, labels), RandomBackground(), n_per_class=2, m_per_input=2,
                  class_sizes=[500, 50, 5, 1])
    assert result.class_sizes.tolist() == [500, 50, 5, 1]
    assert result.inputs_per_class.tolist() == [2, 2, 2, 0]
    assert math.isnan(float(result.per_class[3])) and bool((result.per_class[:3] > 0).all())
    assert not math.isnan(result.mean)


def test_on_rotated_digits():
    pytest.importorskip("sklearn")
    from gitaug.datasets import load

    test = load("digits-lt", split="test", seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 12 * 12, 10))
    train_counts = load("digits-rot-lt", split="train", seed=0).class_counts
    result = ekld(model, test, RandomRotation(), n_per_class=4, m_per_input=4, class_sizes=train_counts)
    assert result.per_class.shape == (10,) and bool(torch.isfinite(result.per_class).all())
    assert bool((result.per_class > 0).all())
    assert torch.equal(result.class_sizes, train_counts)


def test_ekld_errors():
    data = _dataset()
    model = _linear_model()
    with pytest.raises(ValueError, match="keep the image shape"):
        ekld(model, data, lambda x, generator=None: x[..., :-1], n_per_class=2, m_per_input=1)
    with pytest.raises(ValueError, match=r"\(N, num_classes\) = \(\d+, 3\), got \(\d+, 5\)"):
        ekld(_linear_model(5), data, identity, n_per_class=2, m_per_input=1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ekld(model, (data.images, data.targets), identity, class_sizes=[3, 3])
    with pytest.raises(ValueError, match="class_sizes must have 3 entries"):
        ekld(model, data, identity, class_sizes=[1, 2])
    with pytest.raises(ValueError, match="n_per_class must be a positive integer, got 0"):
        ekld(model, data, identity, n_per_class=0)
    with pytest.raises(ValueError, match="m_per_input"):
        ekld(model, data, identity, m_per_input=-1)
    with pytest.raises(ValueError, match="images and .targets"):
        ekld(model, [1, 2, 3], identity)


def test_spearman_and_summary():
    # ties in size get average ranks: x ranks (3.5, 3.5, 2, 1), y ranks (1, 3, 2, 4)
    assert spearman_correlation([10, 10, 5, 1], [0.1, 0.3, 0.2, 0.4]) == pytest.approx(-3 / math.sqrt(22.5))
    assert spearman_correlation([1, 2, 3], [2, 4, 8]) == pytest.approx(1.0)
    assert math.isnan(spearman_correlation([1, 1, 1], [1, 2, 3]))
    result = EKLDResult(
        per_class=torch.tensor([0.05, 0.1, 0.2, 0.3, 0.5, 0.9, float("nan")], dtype=torch.float64),
        class_sizes=torch.tensor([600, 300, 100, 50, 10, 5, 1]),
        inputs_per_class=torch.tensor([40] * 6 + [0]),
        draws_per_input=100,
    )
    summary = summarize_ekld(result)
    assert summary["spearman"] == pytest.approx(-1.0)
    assert summary["tail_mean"] == pytest.approx(0.7) and summary["head_mean"] == pytest.approx(0.075)
    assert summary["mean"] == pytest.approx(2.05 / 6)
    assert summarize_ekld(result, fraction=0.5)["tail_mean"] == pytest.approx(1.7 / 3)
    with pytest.raises(ValueError, match="fraction must lie in \\(0, 1\\], got 0"):
        summarize_ekld(result, fraction=0)


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    sizes = torch.tensor([500, 100, 20, 5])
    results = {
        "ERM": EKLDResult(torch.tensor([0.1, 0.2, 0.4, 0.8], dtype=torch.float64), sizes, torch.full((4,), 40), 100),
        "GIT": EKLDResult(torch.tensor([0.1, 0.1, 0.15, 0.2], dtype=torch.float64), sizes, torch.full((4,), 40), 100),
    }
    path = plot_ekld(results, tmp_path / "figs" / "ekld.png", title="toy")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="at least one"):
        plot_ekld({}, tmp_path / "empty.png")
