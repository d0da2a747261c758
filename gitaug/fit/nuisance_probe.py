"""Which transformations leave the data unchanged? A detection test run before a fit.

A transformation belongs to the data's nuisance when applying it to a real
image gives another image the data could have held: then no network can tell
a transformed real image from an untouched one. :func:`probe_nuisance`
measures exactly that for three geometric families -- rotation, scaling and
translation --, for contrast (intensities scaled about the image's background
value: faded or stronger ink) and for one swap, of an image's flat background
for another image's. For each family a small network is trained to detect whether a
real image was transformed by a random member of the family (magnitudes up to
the family's largest), then its detection power is read off on held-out
images, magnitude by magnitude. The learned range of a family is the
largest magnitude the detector cannot see: where its power,
``power(m) = max(0, 2 AUC(m) - 1)``, first reaches :data:`DETECTION_THRESHOLD`
(linearly interpolated between the measured magnitudes, from power 0 at
magnitude 0; the family's largest magnitude when it never does). Upright
digits give a rotation range of a few degrees (a 15 degree turn is already
visible); digits turned uniformly at random give the full 180 degrees.

The background swap is there because an AdaIN decoder cannot change a
background alone: its style statistics act on every pixel, so a fitted
decoder that re-colours the background changes the object with it (measured
on Fashion-MNIST-LT with random backgrounds: draws that varied the
background as much as the data did changed the garment as much, and the
classifier became less invariant to the background than without GIT).
A flat background is the pixels at the image's border value
(:func:`gitaug.generator.background_mask`). The swap gives an image the
background value of another training image with a flat background; when no
detector can tell swapped images from untouched ones, the background is a
nuisance independent of the content, and draws swap it for one of the
values the data holds (:func:`data_backgrounds`). Where the flat
backgrounds all have one value (black digits and clothing) there is nothing
to swap and nothing is tested; where fewer than :data:`MIN_FLAT_SHARE` of
the images have one (photographs), neither. The swap is tested on the
images with a flat background only: on the others it does nothing, and
counting them would dilute its power.

One more swap-like test: the mirror image. A detector trained to tell an
image mirrored left to right from an untouched one fails on data that holds
every image's mirror image as often as the image (most photographs; objects
with no handedness, drawn from either side); then draws mirror half of their
inputs. Digits and clothing, whose shoes all face one way, give it away
(power 0.77-0.95 on ``digits-lt`` and ``fmnist-lt``, against 0.00-0.02 on the
same images mirrored at random).

A threshold rather than an average of the undetectability: a detector
trained for a few hundred steps rarely reaches full power even on a
transform the data plainly does not contain (measured on Fashion-MNIST: a
x1.46 zoom detected with power 0.75), and averaging ``1 - power`` credited
such half-seen magnitudes with half a range (x1.2 zooms, 9 % shifts drawn on
centred clothing).

For the geometric families, both the untouched and the transformed images go through two resamplings
(an intermediate random transform of the family, then its inverse or the
tested transform composed with its inverse), so interpolation blur cannot
give the transform away; for contrast both get a jitter of half a grey level,
so grey levels between the data's 8-bit ones cannot either. For rotation the detector sees only the disc
inscribed in the image: a data set made by turning square images carries the
square's clipped corners, which line up with the frame again only at
multiples of 90 degrees; outside the disc a detector tells 45 degree turns of
such data apart (power 0.45 on Fashion-MNIST-LT with rotation, against 0.07
inside it) although the content's orientation is uniform.

The generator then draws its warp uniformly within the ranges
(:class:`gitaug.generator.RangeWarp`).

Example::

    >>> import torch
    >>> from gitaug.fit.nuisance_probe import probe_nuisance
    >>> images = torch.rand(64, 1, 16, 16) * 2 - 1
    >>> result = probe_nuisance(images, steps=2, eval_images=16, seed=0)
    >>> sorted(result.ranges)
    ['contrast', 'log_scale', 'rotation', 'shift']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..generator import RangeWarp, _background, background_mask, background_values, recolor_background, scale_contrast

__all__ = ["DETECTION_THRESHOLD", "DRAW_EXTENT", "FAMILY_MAX", "SWAPS", "MIN_FLAT_SHARE", "MAX_BACKGROUNDS", "data_backgrounds", "NuisanceProbe", "probe_nuisance", "affine_matrix", "run_probe", "warp_ranges", "learned_nuisance", "describe_nuisance", "drawn_ranges", "describe_drawn"]

#: The largest magnitude tested per family: rotation in radians (a full turn either way),
#: log-scale (x1.5 either way), shift as a fraction of the image side (a quarter either way) and
#: log-contrast (x2 either way).
FAMILY_MAX: dict[str, float] = {"rotation": math.pi, "log_scale": RangeWarp.max_log_scale, "shift": RangeWarp.max_shift,
                                "contrast": RangeWarp.max_log_contrast}

#: The tests of one swap each rather than a range of magnitudes: the background swap and the mirror image.
SWAPS = ("background", "flip")

#: The share of the images that must have a flat background for the background swap to be tested.
MIN_FLAT_SHARE = 0.1

#: At most this many background values are stored (evenly spaced quantiles of the data's).
MAX_BACKGROUNDS = 64

#: Detection power at which a magnitude counts as seen: the detector ranks a transformed image
#: above an untouched one 60 % of the time. Power measured on 256 held-out images of a transform
#: the data does contain stays below 0.08 (rotation on turned digits and clothing); 0.2 keeps
#: clear of that noise while a plainly visible transform (power 0.6-1.0) is never counted.
DETECTION_THRESHOLD = 0.2

#: The data's spread along a geometric family, as a multiple of the tested range: what ``warp_extent`` to draw
#: with to reach it (``GITAugment(warp_extent=DRAW_EXTENT)``; a fit recommends 1, see below). The test's range is
#: the largest move a detector cannot see, not the data's spread: on a
#: nuisance the data is closed under (any rotation of turned digits) the two agree, but on a bounded one (sizes
#: within x0.7..x1.3, positions within a few pixels) a further move m shifts a spread of half-width a by
#: m / (2 a) in total variation, which a detector sees at the threshold power once m reaches about
#: 2 * DETECTION_THRESHOLD * a. The spread's half-width is then the range / (2 * DETECTION_THRESHOLD): 2.5 times
#: it. Measured on glyphs zoomed uniformly within x0.9..x1.1 to x0.6..x1.4, the tested range was 0.24-0.5 of the
#: half-width (from the theory's 0.4), and on digits moved within 15 % of the side 0.55. Drawing that far
#: (benchmarks/warp_extent.py, seeds 0 and 1) raised GIT's share of the oracle's gain on zoomed digits from 89 % /
#: 60 % (accuracy / tail eKLD) to 119 % / 96 %, and on dilated digits from 67 % / 71 % to 85 % / 94 %, but not on
#: digits shifted within 15 % (seed 0: tail eKLD 0.054 against 0.039 within the tested ranges), cost 0.9 points on
#: rotated clothing, and lost the class on the background sets (class preservation 72 % and 79 % of the true
#: nuisance's, seed 0): the test's range on data with no spread along a family is the detector's resolution, which
#: the factor widens too. So a fit recommends the tested ranges (extent 1). Capped by :meth:`gitaug.generator.RangeWarp.ranges` (half a turn, x1.5, a quarter of the side).
DRAW_EXTENT = 1 / (2 * DETECTION_THRESHOLD)


@dataclass
class NuisanceProbe:
    """Result of :func:`probe_nuisance`.

    Attributes:
        ranges: per family, the learned range (rotation in radians, log-scale,
            shift as a fraction of the image side, log-contrast; 0 for a family not tested).
        magnitudes: per family, the magnitudes at which detection was measured.
        power: per family, the detector's power (0 = cannot tell, 1 = always
            tells) at each magnitude.
    """

    ranges: dict[str, float]
    magnitudes: dict[str, list[float]] = field(default_factory=dict)
    power: dict[str, list[float]] = field(default_factory=dict)
    #: The flat-background values draws give their inputs (one list per value, a number per channel, in
    #: [-1, 1]); empty when the swap was seen, not tested, or there is one value only.
    backgrounds: list[list[float]] = field(default_factory=list)
    #: Whether a mirror image goes unseen (draws mirror half their inputs); False when seen or not tested.
    flip: bool = False

    def summary(self) -> str:
        """One line: the ranges in readable units."""
        r = self.ranges
        contrast = f"contrast x{math.exp(-r['contrast']):.2f}..x{math.exp(r['contrast']):.2f}, " if r.get("contrast") else ""
        return (
            f"rotation +-{math.degrees(r['rotation']):.1f} deg, scale x{math.exp(-r['log_scale']):.2f}..x{math.exp(r['log_scale']):.2f}, "
            f"shift +-{100 * r['shift']:.1f} % of the side; {contrast}{describe_backgrounds(self.backgrounds)}"
            + ("; mirrored half the time" if self.flip else "")
        )


def affine_matrix(angle: torch.Tensor, log_scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """3x3 matrices (N, 3, 3) of ``x -> scale * R(angle) x + shift`` in ``affine_grid``'s [-1, 1] coordinates.

    ``shift`` (N, 2) is in those coordinates too (1.0 = half the side).
    """
    scale = torch.exp(log_scale)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack(
        [
            torch.stack([cos, -sin, shift[:, 0]], 1),
            torch.stack([sin, cos, shift[:, 1]], 1),
            torch.stack([zero, zero, one], 1),
        ],
        1,
    )


def apply_affine(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample ``images`` so that content at ``p`` moves to ``matrix @ p`` (bilinear, border pixels extended)."""
    # affine_grid maps output coordinates to input coordinates: the inverse map.
    theta = torch.linalg.inv(matrix)[:, :2, :]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _family_matrix(family: str, magnitude: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A transform of ``family`` with the given magnitudes and a random sign (rotation, scale) or direction (shift)."""
    n = magnitude.shape[0]
    zero = torch.zeros(n)
    if family == "rotation":
        sign = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
        return affine_matrix(sign * magnitude, zero, torch.zeros(n, 2))
    if family == "log_scale":
        sign = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
        return affine_matrix(zero, sign * magnitude, torch.zeros(n, 2))
    if family == "shift":
        direction = torch.rand(n, generator=generator) * 2 * math.pi
        # a fraction of the side is twice that in [-1, 1] coordinates
        offset = 2 * magnitude[:, None] * torch.stack([torch.cos(direction), torch.sin(direction)], 1)
        return affine_matrix(zero, zero, offset)
    raise ValueError(f"family must be one of {sorted(FAMILY_MAX)}, got {family!r}")


def _contrast_pair(images: torch.Tensor, magnitude: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_pair` for contrast: factors ``exp(+-magnitude)`` about each image's background value.

    No intermediate transform here: a contrast change that clips at white cannot be undone, so a round trip
    would fade the untouched images too. What it guards against in the geometric families, grey levels off
    the data's 8-bit ones, is hidden by a uniform jitter of half a grey level on both images instead.
    """
    n = images.shape[0]
    tested = (torch.randint(0, 2, (n,), generator=generator) * 2 - 1) * magnitude
    transformed = scale_contrast(images, _background(images), torch.exp(tested))
    return _jitter(images, generator), _jitter(transformed, generator)


def _jitter(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``images`` (in [-1, 1]) plus uniform noise of up to half a grey level each way, so that grey levels between
    the data's 8-bit ones cannot give a change away (put on both images of a pair)."""
    return (images + (torch.rand(images.shape, generator=generator) * 2 - 1) / 255).clamp(-1, 1)


def _held_out_split(images: torch.Tensor, eval_images: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(held_out, train)``: :func:`probe_nuisance`'s random split, ``eval_images`` held out (at most a quarter)."""
    order = torch.randperm(images.shape[0], generator=generator)
    n_eval = max(1, min(eval_images, images.shape[0] // 4))
    return images[order[:n_eval]], images[order[n_eval:]]


def _pair(images: torch.Tensor, family: str, magnitude: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(untouched, transformed) versions of ``images``, each transformed twice through a random intermediate transform.

    For rotation both are cut to the inscribed disc (see the module's docstring).
    """
    if family == "contrast":
        return _contrast_pair(images, magnitude, generator)
    n = images.shape[0]
    first = _family_matrix(family, torch.rand(n, generator=generator) * FAMILY_MAX[family], generator)
    tested = _family_matrix(family, magnitude, generator)
    inverse = torch.linalg.inv(first)
    middle = apply_affine(images, first)
    untouched = apply_affine(middle, inverse)
    transformed = apply_affine(middle, tested @ inverse)
    if family == "rotation":
        disc = _inscribed_disc(images.shape[-2], images.shape[-1])
        untouched, transformed = untouched * disc, transformed * disc
    return untouched, transformed


def _inscribed_disc(height: int, width: int) -> torch.Tensor:
    """1 on the pixels whose centres lie in the ellipse inscribed in the image, 0 outside."""
    y = (torch.arange(height) + 0.5) / height * 2 - 1
    x = (torch.arange(width) + 0.5) / width * 2 - 1
    return ((y[:, None] ** 2 + x[None, :] ** 2) <= 1).float()


class _Detector(nn.Module):
    """A small CNN that keeps the position information (no global pooling), so shifts are visible to it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def _auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


def describe_backgrounds(backgrounds: list[list[float]]) -> str:
    """``backgrounds`` in words: how many values, from which to which (as a share of the intensity range)."""
    if not backgrounds:
        return "background kept"
    means = [(sum(v) / len(v) + 1) / 2 for v in backgrounds]
    return f"background swapped for the data's own ({len(backgrounds)} values, {100 * min(means):.0f}-{100 * max(means):.0f} % grey)"


def data_backgrounds(images: torch.Tensor, max_values: int = MAX_BACKGROUNDS) -> list[list[float]]:
    """The flat-background values ``images`` (in [-1, 1]) hold: evenly spaced mid-quantiles (by mean over channels).

    Empty when fewer than :data:`MIN_FLAT_SHARE` of the images have a flat
    background, or when they all have one value (within a grey level).
    """
    return _summarize_backgrounds(background_values(images), images.shape[0], max_values)


def _summarize_backgrounds(values: torch.Tensor, num_images: int, max_values: int = MAX_BACKGROUNDS) -> list[list[float]]:
    """:func:`data_backgrounds` from the background values (M, C) of the flat-background images among ``num_images``.

    The values are mid-quantiles (ranks ``(i + 1/2) / L`` of the M values, L of them): each stands for an
    equal share of the images. A lone outlier -- one white-bordered garment among thousands on black -- is
    never picked, where the extremes would have given it one draw in L; and values that differ only by such
    outliers count as one value (nothing to swap).
    """
    if values.shape[0] < max(2, MIN_FLAT_SHARE * num_images):
        return []
    ordered = values[values.mean(1).argsort()]
    count = min(max_values, ordered.shape[0])
    pick = ((torch.arange(count, dtype=torch.float64) + 0.5) * ordered.shape[0] / count).long()
    chosen = ordered[pick.clamp(max=ordered.shape[0] - 1)]
    if float((chosen.amax(0) - chosen.amin(0)).max()) <= 2 / 255:
        return []
    return [[round(float(v), 5) for v in row] for row in chosen]


def _swap_pair(images: torch.Tensor, pool: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(untouched, swapped): each image's flat background set to a value drawn from ``pool`` (M, C)."""
    level = pool[torch.randint(0, pool.shape[0], (images.shape[0],), generator=generator)]
    return images, recolor_background(images, level)


def _test_background_swap(
    train: torch.Tensor, held_out: torch.Tensor, *, steps: int, batch_size: int, seed: int, generator: torch.Generator
) -> tuple[list[list[float]], list[float]]:
    """The values draws may give a flat background (empty if the swap is seen or untestable), and the swap's power."""
    pool = background_values(train)
    values = _summarize_backgrounds(pool, train.shape[0])
    flat_held_out = background_mask(held_out).flatten(1).any(1)
    if not values or not bool(flat_held_out.any()):
        return [], []
    train, held_out = train[background_mask(train).flatten(1).any(1)], held_out[flat_held_out]
    power = _swap_power(train, held_out, lambda batch: _swap_pair(batch, pool, generator), steps=steps,
                        batch_size=batch_size, seed=seed, generator=generator)
    return (values if power < DETECTION_THRESHOLD else []), [power]


def _swap_power(train: torch.Tensor, held_out: torch.Tensor,
                make_pair: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], *, steps: int, batch_size: int,
                seed: int, generator: torch.Generator) -> float:
    """The power of a detector trained on ``make_pair`` (one swap, no magnitudes), on the held-out pair."""
    detector = _train_detector(train, make_pair, steps=steps, batch_size=batch_size, seed=seed, generator=generator)
    detector.eval()
    with torch.no_grad():
        untouched, swapped = make_pair(held_out)
        return max(0.0, 2 * _auc(detector(swapped), detector(untouched)) - 1)


def _flip_pair(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(untouched, mirrored left to right): exact, so nothing but the content can give the mirror away."""
    return images, images.flip(-1)


def _test_flip(train: torch.Tensor, held_out: torch.Tensor, *, steps: int, batch_size: int, seed: int,
               generator: torch.Generator) -> tuple[bool, list[float]]:
    """Whether a mirror image goes unseen, and the detector's power on held-out images."""
    power = _swap_power(train, held_out, _flip_pair, steps=steps, batch_size=batch_size, seed=seed, generator=generator)
    return power < DETECTION_THRESHOLD, [power]


def _train_detector(
    train: torch.Tensor, make_pair: Any, *, steps: int, batch_size: int, seed: int, generator: torch.Generator
) -> _Detector:
    """A detector trained to tell the second of ``make_pair(batch)`` (transformed) from the first (untouched)."""
    # The detector's initial weights come from the seed, without touching the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        detector = _Detector(train.shape[1])
    optimizer = torch.optim.Adam(detector.parameters(), lr=1e-3)
    targets = torch.cat([torch.zeros(batch_size), torch.ones(batch_size)])
    for _ in range(steps):
        untouched, transformed = make_pair(train[torch.randint(0, train.shape[0], (batch_size,), generator=generator)])
        loss = F.binary_cross_entropy_with_logits(detector(torch.cat([untouched, transformed])), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return detector


def _range_from_power(magnitudes: list[float], power: list[float], largest: float, threshold: float = DETECTION_THRESHOLD) -> float:
    """The magnitude at which ``power`` first reaches ``threshold``: linear between measurements, from (0, 0)."""
    previous_m, previous_p = 0.0, 0.0
    for m, p in zip(magnitudes, power):
        if p >= threshold:
            return previous_m + (m - previous_m) * (threshold - previous_p) / (p - previous_p)
        previous_m, previous_p = m, p
    return largest


@torch.no_grad()
def _measure(detector: _Detector, images: torch.Tensor, family: str, levels: int, generator: torch.Generator) -> tuple[list[float], list[float]]:
    detector.eval()
    largest = FAMILY_MAX[family]
    magnitudes = [largest * (k + 0.5) / levels for k in range(levels)]
    power = []
    for m in magnitudes:
        untouched, transformed = _pair(images, family, torch.full((images.shape[0],), m), generator)
        auc = _auc(detector(transformed), detector(untouched))
        power.append(max(0.0, 2 * auc - 1))
    detector.train()
    return magnitudes, power


def probe_nuisance(
    images: torch.Tensor,
    *,
    steps: int = 200,
    batch_size: int = 64,
    eval_images: int = 256,
    levels: int = 8,
    max_side: int = 32,
    seed: int = 0,
    families: tuple[str, ...] = ("rotation", "log_scale", "shift", "background", "contrast", "flip"),
) -> NuisanceProbe:
    """Learn the ranges of rotation, scale, shift and contrast, and whether a background swap and a mirror image,
    that the images' distribution does not notice.

    Args:
        images: real images in [-1, 1], float (N, C, H, W); at least 2.
        steps: detector training steps per family.
        batch_size: images per step (each gives one untouched and one transformed input).
        eval_images: held-out images used to measure detection power (at most
            a quarter of ``images``; the detector never trains on them).
        levels: magnitudes at which power is measured, evenly spread over each family's range.
        max_side: images larger than this are downsampled to it first (the test
            is about geometry and grey levels, not fine detail, and stays cheap).
        seed: seeds the split, the transforms and the detectors.
        families: which of ``"rotation"``, ``"log_scale"``, ``"shift"``,
            ``"background"`` (the swap), ``"contrast"`` and ``"flip"`` (the
            mirror image) to test, in this order (the others get range 0, no
            background values, no flip). The families draw from one random
            stream in that order, so a family tested after the others
            (contrast, then flip) leaves their figures as they are without it.

    Example::

        probe = probe_nuisance(real_images)          # doctest: +SKIP
        print(probe.summary())                       # doctest: +SKIP
    """
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"images must be (N, C, H, W) with N >= 2, got shape {tuple(images.shape)}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_images", eval_images), ("levels", levels), ("max_side", max_side)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    unknown = [f for f in families if f not in (*FAMILY_MAX, *SWAPS)]
    if unknown:
        raise ValueError(f"families must be among {sorted([*FAMILY_MAX, *SWAPS])}, got {unknown}")
    images = images.detach().float().cpu()
    if images.shape[-1] > max_side:
        images = F.interpolate(images, size=(max_side, max_side), mode="area")
    generator = torch.Generator().manual_seed(seed)
    held_out, train = _held_out_split(images, eval_images, generator)

    ranges: dict[str, float] = {name: 0.0 for name in FAMILY_MAX}
    magnitudes: dict[str, list[float]] = {}
    power: dict[str, list[float]] = {}
    backgrounds: list[list[float]] = []
    flip = False
    for family in families:
        if family == "background":
            backgrounds, power[family] = _test_background_swap(train, held_out, steps=steps, batch_size=batch_size,
                                                               seed=seed, generator=generator)
            magnitudes[family] = [1.0] if power[family] else []  # one swap, not a range of magnitudes
            continue
        if family == "flip":
            flip, power[family] = _test_flip(train, held_out, steps=steps, batch_size=batch_size, seed=seed,
                                             generator=generator)
            magnitudes[family] = [1.0]
            continue

        def make_pair(batch: torch.Tensor, family: str = family) -> tuple[torch.Tensor, torch.Tensor]:
            magnitude = torch.rand(batch.shape[0], generator=generator) * FAMILY_MAX[family]
            return _pair(batch, family, magnitude, generator)

        detector = _train_detector(train, make_pair, steps=steps, batch_size=batch_size, seed=seed, generator=generator)
        magnitudes[family], power[family] = _measure(detector, held_out, family, levels, generator)
        ranges[family] = _range_from_power(magnitudes[family], power[family], FAMILY_MAX[family])
    return NuisanceProbe(ranges=ranges, magnitudes=magnitudes, power=power, backgrounds=backgrounds, flip=flip)


# --------------------------------------------------------------------------- use in a fit


def run_probe(config: Any, data: Any) -> NuisanceProbe:
    """The ``warp="auto"`` test of a ``gitaug-fit`` run on its training images (families fixed by the config are
    skipped; contrast only with ``warp_contrast="auto"``, the mirror image only with ``warp_flip="auto"``)."""
    from .._seeding import derive_seed
    from .data import to_model_range

    fixed = {"rotation": config.warp_rotation, "log_scale": config.warp_scale, "shift": config.warp_shift}
    families = tuple(name for name in fixed if fixed[name] is None)
    families += ("background",) if config.warp_background == "auto" else ()
    families += ("contrast",) if config.warp_contrast == "auto" else ()
    families += ("flip",) if config.warp_flip == "auto" else ()
    return probe_nuisance(
        to_model_range(data.images), steps=config.probe_steps, seed=derive_seed(config.seed, "probe"), families=families
    )


def warp_ranges(config: Any, probe: NuisanceProbe | None) -> dict[str, Any]:
    """The :class:`~gitaug.MUNITConfig` warp fields of a run: given ranges first, then tested ones (``{}`` for other warps)."""
    if config.warp not in ("auto", "affine"):
        return {}
    tested = probe.ranges if probe is not None else {}
    rotation = config.warp_rotation if config.warp_rotation is not None else math.degrees(tested.get("rotation", 0.0))
    scale = config.warp_scale if config.warp_scale is not None else math.exp(tested.get("log_scale", 0.0))
    shift = config.warp_shift if config.warp_shift is not None else tested.get("shift", 0.0)
    return {
        "warp": "affine",
        "warp_rotation": round(min(float(rotation), 180.0), 3),
        "warp_scale": round(min(float(scale), 4.0), 4),
        "warp_shift": round(min(float(shift), 0.5), 4),
        "warp_backgrounds": [list(v) for v in probe.backgrounds] if probe is not None else [],
        "warp_contrast": round(min(math.exp(tested.get("contrast", 0.0)), 4.0), 4),
        "warp_flip": bool(probe is not None and probe.flip),
    }


@torch.no_grad()
def learned_nuisance(generator: nn.Module, data: Any, probe: NuisanceProbe | None, *, seed: int, n: int = 256) -> dict[str, Any]:
    """What a fitted generator draws: its warp ranges, the spread between two draws, and the test behind the ranges.

    The spread is the mean absolute pixel difference (images in [0, 1]) between
    two draws of the same training image; 0 means every draw is the same.
    """
    from .data import to_model_range

    arch = generator.config
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(data), generator=rng)[:n]
    x = to_model_range(data.images[chosen].to(device))
    first, second = generator.sample(x, generator=rng), generator.sample(x, generator=rng)
    generator.train(was_training)
    result: dict[str, Any] = {
        "warp": arch.warp,
        "rotation_degrees": arch.warp_rotation if arch.warp == "affine" else None,
        # the standard deviation of a uniform angle in [-r, r] is r / sqrt(3); +-180 deg gives about 104
        "rotation_std_degrees": arch.warp_rotation / math.sqrt(3) if arch.warp == "affine" else None,
        "scale": arch.warp_scale if arch.warp == "affine" else None,
        "shift": arch.warp_shift if arch.warp == "affine" else None,
        "backgrounds": [list(v) for v in arch.warp_backgrounds] if arch.warp == "affine" else None,
        "contrast": arch.warp_contrast if arch.warp == "affine" else None,
        "flip": arch.warp_flip if arch.warp == "affine" else None,
        "spread": float((first.float() - second.float()).abs().mean() / 2),
    }
    if probe is not None:
        result["test"] = {
            name: {"magnitudes": probe.magnitudes[name], "detection_power": probe.power[name]} for name in probe.power
        }
    return result


def drawn_ranges(warp: nn.Module | None, extent: float) -> dict[str, float] | None:
    """The ranges draws with ``warp_extent=extent`` reach (``None`` unless ``warp`` is a
    :class:`~gitaug.generator.RangeWarp`): rotation in degrees (and the standard deviation of a uniform angle
    within it), the largest zoom, the shift as a fraction of the side, the largest contrast factor, whether half
    the draws are mirrored."""
    if not hasattr(warp, "ranges"):
        return None
    rotation, log_scale, shift = warp.ranges(extent)
    return {"extent": float(extent), "rotation_degrees": round(rotation, 3),
            "rotation_std_degrees": round(rotation / math.sqrt(3), 3), "scale": round(math.exp(log_scale), 4),
            "shift": round(shift, 4), "contrast": round(math.exp(warp.contrast_range(extent)), 4),
            "flip": bool(getattr(warp, "flip", False) and extent > 0)}


def _describe_ranges(ranges: dict[str, Any]) -> str:
    """``rotation +-A deg (std S), scale xL..xH, shift +-F % of the side[, contrast xL..xH]`` from
    :func:`learned_nuisance`'s or :func:`drawn_ranges`' keys (contrast only where it is drawn)."""
    contrast = ranges.get("contrast") or 1.0
    return (f"rotation +-{ranges['rotation_degrees']:.1f} deg (std {ranges['rotation_std_degrees']:.1f}), "
            f"scale x{1 / ranges['scale']:.2f}..x{ranges['scale']:.2f}, shift +-{100 * ranges['shift']:.1f} % of the side"
            + (f", contrast x{1 / contrast:.2f}..x{contrast:.2f}" if contrast != 1 else "")
            + (", mirrored half the time" if ranges.get("flip") else ""))


def describe_drawn(drawn: dict[str, float]) -> str:
    """One line for the log: what :func:`drawn_ranges` returned."""
    return f"draws reach {_describe_ranges(drawn)} (the tested ranges x{drawn['extent']:g})"


def describe_nuisance(nuisance: dict[str, Any]) -> str:
    """One line for the log: the warp ranges and the spread between draws."""
    spread = f"spread between two draws {nuisance['spread']:.3f}"
    if nuisance.get("warp") != "affine":
        return f"warp {nuisance.get('warp')}; {spread}"
    return f"{_describe_ranges(nuisance)}, {describe_backgrounds(nuisance.get('backgrounds') or [])}; {spread}"
