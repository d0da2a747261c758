import pytest
import torch
from torch import nn

from gitaug.diagnostics import APPEARANCE_STATISTICS, appearance_spread, class_preservation, variant_spread


class Brightness(nn.Module):
    """Class 1 if the image is bright on average, else class 0: a classifier we can reason about."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(1)
        return torch.stack([0.5 - mean, mean - 0.5], dim=1) + 0 * self.dummy


def data():
    dark = torch.rand(20, 1, 8, 8) * 0.3
    bright = 0.7 + torch.rand(20, 1, 8, 8) * 0.3
    return torch.cat([dark, bright]), torch.tensor([0] * 20 + [1] * 20)


def test_identity_keeps_every_prediction():
    images, labels = data()
    result = class_preservation(lambda x, generator=None: x, Brightness(), images, labels, 2, m_per_input=3)
    assert result.per_class.tolist() == [1.0, 1.0]
    assert result.reference_accuracy.tolist() == [1.0, 1.0]
    assert result.inputs_per_class.tolist() == [20, 20] and result.mean == 1.0


def test_a_transform_that_changes_the_class_is_caught():
    images, labels = data()
    invert = lambda x, generator=None: 1 - x  # noqa: E731 - turns dark into bright: a change of class
    result = class_preservation(invert, Brightness(), images, labels, 2)
    assert result.per_class.tolist() == [0.0, 0.0]


def test_partial_changes_are_measured_per_class():
    images, labels = data()

    def darken_some(x, generator=None):
        # darken every other sample: bright ones flip, dark ones stay dark
        out = x.clone()
        out[::2] = 0
        return out

    result = class_preservation(darken_some, Brightness(), images, labels, 2, n_per_class=10, m_per_input=4, batch_size=8)
    assert result.per_class[0] == 1.0
    assert abs(result.per_class[1].item() - 0.5) < 0.05


def test_classes_without_inputs_are_nan_and_reference_mode_is_restored():
    images, labels = data()
    reference = Brightness().train()
    result = class_preservation(lambda x, generator=None: x, reference, images, labels, 3)
    assert torch.isnan(result.per_class[2]) and result.mean == 1.0
    assert reference.training


def test_errors():
    images, labels = data()
    identity = lambda x, generator=None: x  # noqa: E731
    with pytest.raises(ValueError, match="labels must lie in \\[0, 1\\), got values in \\[0, 1\\]"):
        class_preservation(identity, Brightness(), images, labels, 1)
    with pytest.raises(ValueError, match="n_per_class must be a positive integer, got 0"):
        class_preservation(identity, Brightness(), images, labels, 2, n_per_class=0)
    with pytest.raises(ValueError, match="changed the image shape"):
        class_preservation(lambda x, generator=None: x[:, :, :4], Brightness(), images, labels, 2)
    with pytest.raises(ValueError, match="images must be \\(N, C, H, W\\)"):
        class_preservation(identity, Brightness(), images[0], labels, 2)


def test_spread_is_zero_for_a_deterministic_transform_and_matches_noise_level():
    images, labels = data()
    identity = lambda x, generator=None: x  # noqa: E731
    assert variant_spread(identity, images, labels, 2).tolist() == [0.0, 0.0]

    def flip_a_coin(x, generator=None):
        # each image becomes all-0 or all-1: two draws differ by 1 with probability 1/2
        coin = torch.randint(0, 2, (x.shape[0], 1, 1, 1), generator=generator).float()
        return coin.expand_as(x).clone()

    spread = variant_spread(flip_a_coin, images, labels, 3, pairs_per_input=50, seed=1)
    assert torch.isnan(spread[2])
    assert spread[:2].sub(0.5).abs().max() < 0.1


def test_spread_errors():
    images, labels = data()
    identity = lambda x, generator=None: x  # noqa: E731
    with pytest.raises(ValueError, match="pairs_per_input must be a positive integer, got 0"):
        variant_spread(identity, images, labels, 2, pairs_per_input=0)
    with pytest.raises(ValueError, match="labels must lie in \\[0, 1\\)"):
        variant_spread(identity, images, labels, 1)
    with pytest.raises(ValueError, match="changed the image shape"):
        variant_spread(lambda x, generator=None: x[:, :, :4], images, labels, 2)


def _shapes_on_grounds(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes (squares, crosses) of varied size, bright (1.0) on a ground of a random grey level below 0.4."""
    rng = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for label in (0, 1):
        for _ in range(40):
            level = float(torch.rand(1, generator=rng)) * 0.4
            half = int(torch.randint(3, 8, (1,), generator=rng))
            image = torch.full((1, 28, 28), level)
            if label == 0:
                image[:, 14 - half : 14 + half, 14 - half : 14 + half] = 1.0
            else:
                image[:, 13:15, 14 - half : 14 + half] = 1.0
                image[:, 14 - half : 14 + half, 13:15] = 1.0
            images.append(image)
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def _new_ground(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The synthetic set's nuisance: the ground (every pixel below 1) re-drawn at a new random level."""
    level = torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 0.4
    return torch.where(x < 1.0, level.expand_as(x), x)


def _thicker_or_thinner(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Strokes thickened (max pooling) or left, at random; the ground stays."""
    thick = torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1)
    pick = torch.rand(x.shape[0], 1, 1, 1, generator=generator) < 0.5
    return torch.where(pick, thick, x)


def test_appearance_spread_finds_what_a_transform_varies_against_the_data():
    images, labels = _shapes_on_grounds()
    ground = appearance_spread(_new_ground, images, labels, 2, min_class_size=20, seed=0)
    assert set(ground) == set(APPEARANCE_STATISTICS)
    # Re-drawn grounds vary the border as much as the data's grounds do, and never the bright pixels.
    assert 0.75 < ground["border"]["draws"] / ground["border"]["data"] < 1.25
    assert ground["ink"]["draws"] == 0 and ground["ink"]["data"] > 0.02  # the shapes' sizes vary within a class
    strokes = appearance_spread(_thicker_or_thinner, images, labels, 2, seed=0)
    assert strokes["ink"]["draws"] > 0.02 and strokes["border"]["draws"] == 0
    still = appearance_spread(lambda x, generator=None: x, images, labels, 2, seed=0)
    assert all(figures["draws"] == 0 for figures in still.values())
    assert still["border"]["data"] == ground["border"]["data"]  # the data's figure does not depend on the transform


def test_appearance_spread_errors():
    images, labels = _shapes_on_grounds()
    with pytest.raises(ValueError, match="draws_per_input must be an integer of at least 2, got 1"):
        appearance_spread(_new_ground, images, labels, 2, draws_per_input=1)
    with pytest.raises(ValueError, match="no class has two images"):
        appearance_spread(_new_ground, images[:1], labels[:1], 2)
    with pytest.raises(ValueError, match="the transform changed the image shape"):
        appearance_spread(lambda x, generator=None: x[..., :20, :20], images, labels, 2)
    with pytest.raises(ValueError, match="min_class_size must be a positive integer"):
        appearance_spread(_new_ground, images, labels, 2, min_class_size=0)
