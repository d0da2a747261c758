"""The multi-scale LSGAN discriminator used while fitting the generator.

One patch discriminator per image scale (full size, half, quarter, ...),
each a stack of stride-2 4x4 convolutions with leaky ReLU and no
normalization, ending in a 1x1 convolution that scores every patch. The
losses are least-squares (real -> 1, fake -> 0), summed over scales.

Small images need care: at 28x28 four stride-2 layers leave a 1x1 map and a
second scale would vanish. Each scale therefore uses at most ``n_layers``
layers and fewer when needed to keep its score map at least 2x2; a scale
whose input would be smaller than 4x4 is an error. At 32x32 with 4 layers
and 3 scales the scales use 4, 3 and 2 layers.

The discriminator is only needed for training: it is kept in the run's
checkpoints, never in the exported generator folder.

Example::

    >>> import torch
    >>> disc = MultiScaleDiscriminator(in_channels=1, image_size=28, dim=16, n_layers=4, n_scales=2)
    >>> disc.layers_per_scale
    [3, 2]
    >>> [tuple(score.shape) for score in disc(torch.zeros(5, 1, 28, 28))]
    [(5, 1, 3, 3), (5, 1, 3, 3)]
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MultiScaleDiscriminator", "lsgan_loss"]


def _layers_for(size: int, n_layers: int) -> int:
    # After k stride-2 layers (kernel 4, padding 1) the side is floor(size / 2**k); keep it >= 2.
    return max(1, min(n_layers, int(math.floor(math.log2(size / 2)))))


class MultiScaleDiscriminator(nn.Module):
    """Patch discriminators at ``n_scales`` image scales.

    Args:
        in_channels: image channels.
        image_size: side of the (square) training images.
        dim: channels of each scale's first convolution (doubled per layer).
        n_layers: stride-2 convolutions per scale, at most.
        n_scales: how many scales; each one average-pools the previous by 2.
        pad_type: padding mode of the convolutions.

    ``forward`` returns one score map per scale.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        *,
        dim: int = 64,
        n_layers: int = 4,
        n_scales: int = 3,
        pad_type: str = "reflect",
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("dim", dim),
                            ("n_layers", n_layers), ("n_scales", n_scales)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        sizes = [image_size]
        for _ in range(n_scales - 1):
            sizes.append(math.ceil(sizes[-1] / 2))  # the pooling below keeps ceil(size / 2)
        if sizes[-1] < 4:
            usable = sum(1 for size in sizes if size >= 4)
            raise ValueError(
                f"n_scales={n_scales} is too many for {image_size}x{image_size} images: the last scale would be "
                f"{sizes[-1]}x{sizes[-1]}, at least 4x4 is needed (use at most "
                f"{usable} scales)"
            )
        self.layers_per_scale = [_layers_for(size, n_layers) for size in sizes]
        self.scales = nn.ModuleList(
            self._patch_discriminator(in_channels, dim, layers, pad_type) for layers in self.layers_per_scale
        )
        # Padding excluded from the average, so the border is not darkened at each scale.
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def _patch_discriminator(in_channels: int, dim: int, n_layers: int, pad_type: str) -> nn.Sequential:
        layers: list[nn.Module] = []
        width_in, width = in_channels, dim
        for _ in range(n_layers):
            layers += [
                nn.Conv2d(width_in, width, 4, stride=2, padding=1, padding_mode=pad_type),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width_in, width = width, width * 2
        layers.append(nn.Conv2d(width_in, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        scores = []
        for index, scale in enumerate(self.scales):
            if index:
                x = self.downsample(x)
            scores.append(scale(x))
        return scores


def lsgan_loss(scores: list[torch.Tensor], target: float) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of every patch score to ``target``, summed over scales.

    Computed in float32 so that mixed precision does not round the squares.

    Example::

        >>> lsgan_loss([torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 2, 2)], target=1.0).item()
        1.0
    """
    return sum(((score.float() - target) ** 2).mean() for score in scores)  # type: ignore[return-value]
