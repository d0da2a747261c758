"""Class-agnostic nuisance transformations on image tensors, as in K49-LT.

Each nuisance is a small callable dataclass following the package's transform
protocol: ``nuisance(images, generator=None)`` takes a float batch
(N, C, H, W) in [0, 1] (or a single (C, H, W) image) and returns the same
shape, still in [0, 1]. Every image gets its own fresh parameter draw; the
optional ``torch.Generator`` makes the draws reproducible. Draws happen on the
generator's device (CPU when none is given) and the pixels are transformed on
the images' device, so a CPU generator also works for CUDA images.

* ``"rot"`` -- :class:`RandomRotation`: angle uniform in [-180, 180] degrees,
  bicubic interpolation, zero fill outside the image.
* ``"bg"`` -- :class:`RandomBackground`: pixels that are exactly zero become
  an integer intensity in [0, 100) on the 0..255 scale.
* ``"dil"`` -- :class:`RandomDilationErosion`: with probability 0.6 a grey
  dilation with a k x k square, k in {2, 3, 4}; otherwise an erosion with
  k in {1, 2} (k = 1 leaves the image as it is).

Three more, beyond the paper's, for checking a method on nuisances it was not
tuned on:

* ``"scale"`` -- :class:`RandomScale`: a zoom about the image centre by a
  factor uniform in [0.7, 1.3], bilinear, zero fill.
* ``"contrast"`` -- :class:`RandomContrast`: every intensity multiplied by a
  factor uniform in [0.3, 1] (faded to full ink; black stays black).
* ``"shift"`` -- :class:`RandomShift`: a translation by up to 15 % of the side
  along each axis (each uniform), bilinear, zero fill.
* ``"flip"`` -- :class:`RandomFlip`: a mirror image, left to right, half the
  time (the commonest nuisance of photographs, whose objects face either way).

Example::

    >>> import torch
    >>> x = torch.zeros(4, 1, 28, 28); x[:, :, 10:18, 12:16] = 1.0
    >>> g = torch.Generator().manual_seed(0)
    >>> NUISANCES["rot"](x, generator=g).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from .._typing import Transform

__all__ = [
    "RandomRotation",
    "RandomBackground",
    "RandomDilationErosion",
    "RandomScale",
    "RandomContrast",
    "RandomShift",
    "RandomFlip",
    "NUISANCES",
    "get_nuisance",
    "grey_dilation",
    "grey_erosion",
    "dilate_or_erode",
]



def _as_batch(images: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError(
            f"images must be a floating-point tensor in [0, 1], got {type(images).__name__}"
            + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else "")
        )
    if images.dim() == 3:
        return images.unsqueeze(0), True
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W) or (C, H, W), got {tuple(images.shape)}")
    return images, False


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` float64 draws uniform in ``[low, high]``, on the generator's device."""
    u = torch.rand(n, generator=generator, device=_draw_device(generator), dtype=torch.float64)
    return low + (high - low) * u


def _resample(batch: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    """``batch`` resampled through the (N, 2, 3) affine maps ``theta`` (output to input coordinates in [-1, 1],
    aligned to pixel centres) with zero fill, clamped to [0, 1] (bicubic can overshoot)."""
    grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.clamp_(0.0, 1.0)


def _same_padding(kernel_size: int) -> tuple[int, int, int, int]:
    # Even kernels cannot be centred: put the extra row/column before the
    # pixel (anchor at k // 2, the usual convention), so the output keeps its size.
    before = kernel_size // 2
    after = kernel_size - 1 - before
    return (before, after, before, after)


def grey_dilation(images: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Grey-scale dilation with a ``kernel_size`` square: each pixel becomes its window's maximum.

    Works on (N, C, H, W) and keeps the size for odd and even kernels.

    Example::

        >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1
        >>> int(grey_dilation(x, 3).sum())
        9
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if kernel_size == 1:
        return images.clone()
    # -inf padding is neutral for a maximum, so borders are not darkened or brightened.
    padded = F.pad(images, _same_padding(kernel_size), value=-math.inf)
    return F.max_pool2d(padded, kernel_size, stride=1)


def grey_erosion(images: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Grey-scale erosion with a ``kernel_size`` square: each pixel becomes its window's minimum.

    Computed as ``-dilation(-x)``; keeps the size for odd and even kernels.

    Example::

        >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 1:4, 1:4] = 1
        >>> int(grey_erosion(x, 3).sum())
        1
    """
    return -grey_dilation(-images, kernel_size)


def dilate_or_erode(images: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
    """Each image of ``images`` (N, C, H, W) dilated with a ``k`` square where ``signed`` (N,) holds ``+k``, eroded
    where it holds ``-k``, left as it is where it holds 0; each distinct size runs as one sub-batch."""
    signed = signed.cpu()
    out = images.clone()
    for size in signed.unique().tolist():
        if size:
            rows = torch.nonzero(signed == size).flatten().to(images.device)
            out[rows] = (grey_dilation if size > 0 else grey_erosion)(images[rows], abs(size))
    return out


@dataclass(frozen=True)
class RandomRotation:
    """Rotates each image by its own angle drawn uniformly in ``[-degrees, degrees]``.

    Args:
        degrees: largest absolute angle, in degrees (default 180: any rotation).
        interpolation: ``"bicubic"`` (default, as the paper's cubic rotation)
            or ``"bilinear"``. Bicubic can overshoot, so results are clamped
            to [0, 1].

    Example::

        >>> rotate = RandomRotation()
        >>> x = torch.rand(2, 1, 28, 28)
        >>> rotate(x, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([2, 1, 28, 28])
    """

    degrees: float = 180.0
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if not (isinstance(self.degrees, (int, float)) and 0 <= self.degrees <= 180):
            raise ValueError(f"degrees must lie in [0, 180], got {self.degrees!r}")
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {self.interpolation!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        n = batch.shape[0]
        u = torch.rand(n, generator=generator, device=_draw_device(generator), dtype=torch.float64)
        angles = ((2 * u - 1) * math.radians(self.degrees)).to(batch.device)
        cos, sin = torch.cos(angles), torch.sin(angles)
        zeros = torch.zeros_like(cos)
        # affine_grid maps output coordinates to input coordinates in [-1, 1]
        # (aligned to pixel centres), a rotation about the image centre.
        theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
        out = _resample(batch, theta, self.interpolation)
        return out[0] if single else out


@dataclass(frozen=True)
class RandomBackground:
    """Fills each image's zero pixels with its own grey level ``k / 255``, ``k`` in ``[low, high)``.

    A pixel counts as background when all its channels are exactly 0, so the
    images should have a pure black background (as the built-in digits do).

    Args:
        low: smallest intensity on the 0..255 scale (default 0).
        high: one past the largest intensity (default 100).

    Example::

        >>> x = torch.zeros(1, 1, 4, 4); x[0, 0, 1, 1] = 1.0
        >>> y = RandomBackground()(x, generator=torch.Generator().manual_seed(0))
        >>> bool((y[0, 0, 1, 1] == 1.0).item()), bool((y[0, 0, 0, 0] < 100 / 255).item())
        (True, True)
    """

    low: int = 0
    high: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and 0 <= self.low < self.high <= 256):
            raise ValueError(f"need integers 0 <= low < high <= 256, got low={self.low!r}, high={self.high!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        n = batch.shape[0]
        levels = torch.randint(self.low, self.high, (n,), generator=generator, device=_draw_device(generator))
        fill = (levels.to(batch.device, batch.dtype) / 255).view(n, 1, 1, 1)
        background = (batch == 0).all(dim=1, keepdim=True)
        out = torch.where(background, fill.expand_as(batch), batch)
        return out[0] if single else out


@dataclass(frozen=True)
class RandomDilationErosion:
    """Thickens (dilation) or thins (erosion) each image's strokes with a random square kernel.

    Per image: with probability ``p_dilate`` a dilation with a kernel size
    drawn uniformly from ``dilation_sizes``, otherwise an erosion with a size
    from ``erosion_sizes`` (both ranges inclusive). Pure max/min pooling, so
    values stay in the input's range.

    Args:
        p_dilate: probability of dilating (default 0.6).
        dilation_sizes: inclusive (smallest, largest) dilation kernel (default (2, 4)).
        erosion_sizes: inclusive (smallest, largest) erosion kernel (default (1, 2)).

    Example::

        >>> x = torch.zeros(3, 1, 28, 28); x[:, :, 8:20, 13:15] = 1.0
        >>> RandomDilationErosion()(x, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 1, 28, 28])
    """

    p_dilate: float = 0.6
    dilation_sizes: tuple[int, int] = (2, 4)
    erosion_sizes: tuple[int, int] = (1, 2)

    def __post_init__(self) -> None:
        if not (isinstance(self.p_dilate, (int, float)) and 0 <= self.p_dilate <= 1):
            raise ValueError(f"p_dilate must lie in [0, 1], got {self.p_dilate!r}")
        for name in ("dilation_sizes", "erosion_sizes"):
            sizes = getattr(self, name)
            if len(sizes) != 2 or not all(isinstance(s, int) for s in sizes) or not 1 <= sizes[0] <= sizes[1]:
                raise ValueError(f"{name} must be integers (low, high) with 1 <= low <= high, got {sizes!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        n = batch.shape[0]
        device = _draw_device(generator)
        dilate = torch.rand(n, generator=generator, device=device) < self.p_dilate
        dil_size = torch.randint(self.dilation_sizes[0], self.dilation_sizes[1] + 1, (n,), generator=generator, device=device)
        ero_size = torch.randint(self.erosion_sizes[0], self.erosion_sizes[1] + 1, (n,), generator=generator, device=device)
        # Encode the choice as a signed kernel size (+k dilate, -k erode) and
        # process each distinct choice as one sub-batch.
        out = dilate_or_erode(batch, torch.where(dilate, dil_size, -ero_size))
        return out[0] if single else out


@dataclass(frozen=True)
class RandomScale:
    """Zooms each image about its centre by its own factor drawn uniformly in ``[low, high]``.

    Below 1 the content shrinks and the uncovered border is filled with 0;
    above 1 it grows and whatever leaves the canvas is cut off.

    Args:
        low: smallest factor (default 0.7).
        high: largest factor (default 1.3).

    Example::

        >>> x = torch.zeros(1, 1, 28, 28); x[0, 0, 10:18, 10:18] = 1.0
        >>> y = RandomScale(0.5, 0.5)(x)
        >>> round(float(y.sum()) / float(x.sum()), 2)   # half the side, a quarter of the area
        0.25
    """

    low: float = 0.7
    high: float = 1.3

    def __post_init__(self) -> None:
        if not (isinstance(self.low, (int, float)) and isinstance(self.high, (int, float)) and 0 < self.low <= self.high):
            raise ValueError(f"need factors 0 < low <= high, got low={self.low!r}, high={self.high!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        factor = _uniform(batch.shape[0], self.low, self.high, generator).to(batch.device)
        # the grid maps output coordinates to input ones: a zoom by f reads the input at 1/f of the distance
        inverse = 1 / factor
        zeros = torch.zeros_like(inverse)
        theta = torch.stack([torch.stack([inverse, zeros, zeros], 1), torch.stack([zeros, inverse, zeros], 1)], 1)
        out = _resample(batch, theta, "bilinear")
        return out[0] if single else out


@dataclass(frozen=True)
class RandomContrast:
    """Multiplies each image by its own factor drawn uniformly in ``[low, high]``: faded or full ink.

    On images with a black background (the built-in digits and clothing) it
    changes the contrast between the object and the background, and its
    brightness, and leaves the background black.

    Args:
        low: smallest factor (default 0.3).
        high: largest factor (default 1.0).

    Example::

        >>> x = torch.full((1, 1, 4, 4), 0.8)
        >>> y = RandomContrast(0.5, 0.5)(x)
        >>> round(float(y.max()), 2)
        0.4
    """

    low: float = 0.3
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.low, (int, float)) and isinstance(self.high, (int, float))
                and 0 <= self.low <= self.high <= 1):
            raise ValueError(f"need factors 0 <= low <= high <= 1, got low={self.low!r}, high={self.high!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        n = batch.shape[0]
        factor = _uniform(n, self.low, self.high, generator).to(batch.device, batch.dtype).view(n, 1, 1, 1)
        out = batch * factor
        return out[0] if single else out


@dataclass(frozen=True)
class RandomShift:
    """Moves each image by its own offset: along each axis uniform in ``[-largest, largest]`` of the side.

    Whatever leaves the canvas is cut off and the uncovered border is filled with 0.

    Args:
        largest: the largest offset along an axis, as a fraction of the side (default 0.15).

    Example::

        >>> x = torch.zeros(1, 1, 20, 20); x[0, 0, 8:12, 8:12] = 1.0
        >>> y = RandomShift(0.1)(x, generator=torch.Generator().manual_seed(0))
        >>> round(float(y.sum()), 2)   # moved, not cut: the square stays inside the canvas
        16.0
    """

    largest: float = 0.15

    def __post_init__(self) -> None:
        if not (isinstance(self.largest, (int, float)) and 0 <= self.largest < 1):
            raise ValueError(f"need 0 <= largest < 1 (a fraction of the side), got largest={self.largest!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        n = batch.shape[0]
        offset = _uniform(2 * n, -self.largest, self.largest, generator).to(batch.device).view(n, 2)
        # the grid maps output coordinates to input ones, in units of half the side: content moving by +f of
        # the side is read from -2 f
        ones, zeros = torch.ones(n, dtype=offset.dtype, device=batch.device), torch.zeros(n, dtype=offset.dtype, device=batch.device)
        theta = torch.stack([torch.stack([ones, zeros, -2 * offset[:, 0]], 1),
                             torch.stack([zeros, ones, -2 * offset[:, 1]], 1)], 1)
        out = _resample(batch, theta, "bilinear")
        return out[0] if single else out


@dataclass(frozen=True)
class RandomFlip:
    """Mirrors each image left to right with probability ``p`` (exact: no resampling).

    Args:
        p: the chance that an image is mirrored (default 0.5: each image and its mirror image equally likely).

    Example::

        >>> x = torch.zeros(1, 1, 4, 4); x[0, 0, :, 0] = 1.0
        >>> RandomFlip(1.0)(x)[0, 0, 0].tolist()
        [0.0, 0.0, 0.0, 1.0]
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.p, (int, float)) and not isinstance(self.p, bool) and 0 <= self.p <= 1):
            raise ValueError(f"need 0 <= p <= 1 (the chance of a mirror image), got p={self.p!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(images)
        n = batch.shape[0]
        mirror = (_uniform(n, 0.0, 1.0, generator) < self.p).to(batch.device).view(n, 1, 1, 1)
        out = torch.where(mirror, batch.flip(-1), batch)
        return out[0] if single else out


NUISANCES: dict[str, Transform] = {
    "rot": RandomRotation(),
    "bg": RandomBackground(),
    "dil": RandomDilationErosion(),
    "scale": RandomScale(),
    "contrast": RandomContrast(),
    "shift": RandomShift(),
    "flip": RandomFlip(),
}
"""The nuisances by short name: the K49-LT ones with the paper's settings, then four held-out ones."""


def get_nuisance(name: str) -> Transform:
    """The nuisance registered under ``name`` (``"rot"``, ``"bg"``, ``"dil"``, ``"scale"``, ``"contrast"``, ``"shift"``
    or ``"flip"``).

    Example::

        >>> get_nuisance("bg")
        RandomBackground(low=0, high=100)
    """
    try:
        return NUISANCES[name]
    except KeyError:
        raise ValueError(f"unknown nuisance {name!r}; choose one of {sorted(NUISANCES)}") from None
