"""The class-agnostic, input-conditioned generator G(x' | x).

A single-domain MUNIT: an image is split into a *content* code (a spatial
feature map that keeps what the image shows) and a *style* code (a small
vector that holds the nuisance: rotation, lighting, background, stroke width).
Decoding the content of ``x`` with a style drawn from N(0, I) gives a new
image of the same thing under a different nuisance, which is what GIT feeds
to the classifier in place of a tail-class input.

With ``MUNITConfig(warp="affine", warp_rotation=..., warp_scale=...,
warp_shift=...)`` each generated image is also turned, scaled and shifted
(:class:`RangeWarp`) by amounts drawn uniformly within explicit ranges: a
geometric nuisance that AdaIN statistics cannot express. ``gitaug-fit``
learns these ranges from the data (:mod:`gitaug.fit.nuisance_probe`). The
older ``warp="rotation"`` / ``"similarity"`` (:class:`StyleWarp`) learn an
unbounded transform from the style code instead.

The generator works on images in [-1, 1] (its decoder ends in ``tanh``);
:class:`gitaug.GITAugment` converts to and from the user's value range.

Example::

    >>> import torch
    >>> from gitaug import MUNITConfig, MUNITGenerator
    >>> config = MUNITConfig.preset("small", in_channels=1, image_size=28)
    >>> generator = MUNITGenerator(config)
    >>> x = torch.rand(4, 1, 28, 28) * 2 - 1
    >>> generator.sample(x).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._architecture import IMAGE_SIZE_MULTIPLE, MIN_IMAGE_SIZE, PRESETS, WARPS
from .hub import GeneratorHubMixin

__all__ = [
    "MUNITConfig",
    "MUNITGenerator",
    "PRESETS",
    "WARPS",
    "RangeWarp",
    "StyleWarp",
    "BACKGROUND_TOLERANCE",
    "MIN_BACKGROUND_SHARE",
    "background_mask",
    "background_values",
    "recolor_background",
    "scale_contrast",
    "MIN_IMAGE_SIZE",
    "IMAGE_SIZE_MULTIPLE",
]

_PAD_TYPES = ("reflect", "replicate", "zeros")
_ACTIVATIONS = ("relu", "lrelu", "prelu", "tanh", "none")


@dataclass(frozen=True)
class MUNITConfig:
    """Architecture of a :class:`MUNITGenerator`.

    The defaults are the configuration of the GIT paper's reference code.

    Args:
        in_channels: image channels, 1 (gray) or 3 (RGB).
        image_size: side of the square images the generator is fitted on;
            must be divisible by ``2 ** n_downsample``.
        dim: channels of the first convolution; doubled at every downsampling.
        mlp_dim: hidden width of the MLP mapping a style code to AdaIN
            parameters.
        style_dim: length of the style code.
        n_downsample: stride-2 convolutions in the content encoder (and
            upsampling stages in the decoder).
        n_res: residual blocks in the content encoder and in the decoder.
        style_n_downsample: stride-2 convolutions in the style encoder.
        n_mlp: linear layers of the style MLP.
        activation: ``"relu"``, ``"lrelu"``, ``"prelu"``, ``"tanh"`` or ``"none"``.
        pad_type: ``"reflect"``, ``"replicate"`` or ``"zeros"``.
        warp: ``"none"`` (the paper's generator), ``"rotation"`` (the style
            code also turns the decoded image) or ``"similarity"`` (it also
            turns, scales and shifts it); see :class:`StyleWarp`. AdaIN
            statistics cannot turn a digit round, a warp can; use one when
            the nuisance is geometric. ``"affine"``: rotation, scaling and
            shift drawn uniformly within ``warp_rotation``, ``warp_scale``
            and ``warp_shift`` (:class:`RangeWarp`); all three 0 is the
            identity.
        warp_rotation: with ``warp="affine"``, the largest turn in degrees
            (draws are uniform in [-warp_rotation, warp_rotation]); at most 180.
        warp_scale: with ``warp="affine"``, the largest scale factor (>= 1;
            draws are log-uniform in [1/warp_scale, warp_scale]).
        warp_shift: with ``warp="affine"``, the largest shift per axis as a
            fraction of the image side (draws uniform in [-warp_shift, warp_shift]).
        warp_backgrounds: with ``warp="affine"``, flat-background values
            (each one number per channel, in [-1, 1]) that draws give an
            input's flat background, one picked at random per draw (at most
            256; empty: draws keep the input's background). Only draws
            (:meth:`MUNITGenerator.redraw`) recolour the background; images
            without a flat background keep theirs (:func:`background_mask`).
        warp_contrast: with ``warp="affine"``, the largest contrast factor
            (>= 1, at most 4): draws scale each input's intensities about its
            background value by a factor log-uniform in [1/warp_contrast,
            warp_contrast] (faded or stronger ink on the same background;
            1: draws keep the contrast). Like the background swap, only draws
            apply it.
        warp_flip: with ``warp="affine"``, whether draws mirror the image
            left to right, half of them (a data set that holds every image's
            mirror image as likely as the image: most photographs, symmetric
            objects). Like the background swap and contrast, only draws apply it.

    Example::

        >>> MUNITConfig(in_channels=3, image_size=32).dim
        64
        >>> MUNITConfig.preset("small", in_channels=1, image_size=28).dim
        16
    """

    in_channels: int
    image_size: int
    dim: int = 64
    mlp_dim: int = 256
    style_dim: int = 8
    n_downsample: int = 2
    n_res: int = 4
    style_n_downsample: int = 4
    n_mlp: int = 3
    activation: str = "relu"
    pad_type: str = "reflect"
    warp: str = "none"
    warp_rotation: float = 0.0
    warp_scale: float = 1.0
    warp_shift: float = 0.0
    warp_backgrounds: tuple[tuple[float, ...], ...] = ()
    warp_contrast: float = 1.0
    warp_flip: bool = False

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        for name in ("image_size", "dim", "mlp_dim", "style_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("n_downsample", "n_res", "style_n_downsample"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.n_mlp, int) or self.n_mlp < 2:
            raise ValueError(f"n_mlp must be an integer >= 2, got {self.n_mlp!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if self.pad_type not in _PAD_TYPES:
            raise ValueError(f"pad_type must be one of {_PAD_TYPES}, got {self.pad_type!r}")
        if self.warp not in WARPS:
            raise ValueError(f"warp must be one of {WARPS}, got {self.warp!r}")
        for name, low, high in (("warp_rotation", 0.0, 180.0), ("warp_scale", 1.0, 4.0), ("warp_shift", 0.0, 0.5),
                                ("warp_contrast", 1.0, 4.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        if not isinstance(self.warp_flip, bool):
            raise ValueError(f"warp_flip must be True or False, got {self.warp_flip!r}")
        # JSON gives lists; the config keeps tuples, so that it compares equal after a round trip
        object.__setattr__(self, "warp_backgrounds", _checked_backgrounds(self.warp_backgrounds, self.in_channels))
        given = (self.warp_rotation, self.warp_scale, self.warp_shift, self.warp_contrast)
        if self.warp != "affine" and (given != (0.0, 1.0, 0.0, 1.0) or self.warp_backgrounds or self.warp_flip):
            raise ValueError(
                f"warp_rotation, warp_scale, warp_shift, warp_contrast, warp_backgrounds and warp_flip need "
                f"warp='affine', got warp={self.warp!r} with ({', '.join(repr(v) for v in given)}), "
                f"{len(self.warp_backgrounds)} background(s) and warp_flip={self.warp_flip}"
            )
        stride = 2**self.n_downsample
        if self.image_size % stride:
            raise ValueError(
                f"image_size must be divisible by 2 ** n_downsample = {stride}, got {self.image_size}"
            )
        if self.image_size // stride < 4 and self.pad_type == "reflect":
            # Reflect padding of the 3x3 residual convolutions needs a map of at least 2x2;
            # a content map smaller than 4x4 also has too little room for the nuisance.
            raise ValueError(
                f"image_size {self.image_size} is too small for n_downsample={self.n_downsample}: "
                f"the content map would be {self.image_size // stride}x{self.image_size // stride}, "
                "at least 4x4 is needed"
            )

    @classmethod
    def preset(cls, name: str, *, in_channels: int, image_size: int, **overrides: Any) -> "MUNITConfig":
        """A named configuration; see :data:`PRESETS`.

        ``"paper"`` is the reference configuration (about 15 M parameters);
        ``"small"`` is a narrow one meant for 28x28 grayscale data and CPUs.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
        fields = {**PRESETS[name], **overrides}
        return cls(in_channels=in_channels, image_size=image_size, **fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MUNITConfig":
        """Build from a mapping (as read from JSON); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MUNITConfig field(s) {unknown}; known fields: {sorted(known)}")
        missing = sorted(f for f in ("in_channels", "image_size") if f not in data)
        if missing:
            raise ValueError(f"MUNITConfig is missing required field(s) {missing}")
        return cls(**data)




def _checked_backgrounds(values: Any, channels: int) -> tuple[tuple[float, ...], ...]:
    """``warp_backgrounds`` as a tuple of per-channel tuples, checked."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or len(values) > 256:
        raise ValueError(f"warp_backgrounds must be a list of at most 256 background values, got {values!r}")
    out = []
    for value in values:
        if (
            not isinstance(value, (list, tuple)) or len(value) != channels
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and -1 <= v <= 1 for v in value)
        ):
            raise ValueError(f"each of warp_backgrounds must be {channels} number(s) in [-1, 1] (one per channel), got {value!r}")
        out.append(tuple(float(v) for v in value))
    return tuple(out)


# --------------------------------------------------------------------------- building blocks


def _activation(name: str) -> nn.Module:
    return {
        "relu": lambda: nn.ReLU(inplace=True),
        "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
        "prelu": nn.PReLU,
        "tanh": nn.Tanh,
        "none": nn.Identity,
    }[name]()


_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _as_fp32(x: torch.Tensor) -> torch.Tensor:
    # Normalization statistics are taken in fp32 whatever the activations' dtype: a bf16 mean
    # and variance over thousands of values lose digits the next layers would amplify.
    return x.float() if x.dtype in _LOW_PRECISION else x


class LayerNorm2d(nn.Module):
    """Layer norm over (C, H, W) per sample with a per-channel affine, as MUNIT's decoder uses.

    MUNIT defines it as ``(x - mean) / (std + eps)`` with the *unbiased*
    standard deviation and ``eps`` outside the square root. This runs as one
    fused ``F.group_norm(x, 1, ...)`` call instead (biased variance, ``eps``
    inside the root), folding the difference in where it can be folded
    exactly: the unbiased/biased factor ``c = sqrt(n / (n - 1))`` goes into
    the affine and ``eps`` enters as ``(eps / c) ** 2`` under the root. What
    is left differs from MUNIT's formula by a relative ``eps / std`` at most
    (1e-4 for a per-sample std of 0.1), far below what the generator's
    fitting noise or bf16 arithmetic changes; weights fitted either way load
    and run unchanged. Statistics are taken in fp32 for bf16/fp16 inputs.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x[0].numel()
        correction = math.sqrt(n / (n - 1)) if n > 1 else 1.0
        out = F.group_norm(
            _as_fp32(x), 1, self.weight.float() / correction, self.bias.float(), eps=(self.eps / correction) ** 2
        )
        return out.to(x.dtype)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (no affine) whose statistics are taken in fp32 for bf16/fp16 inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_as_fp32(x)).to(x.dtype)


class ConvBlock(nn.Module):
    """Padding, convolution, optional normalization, activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm: str = "none",
        activation: str = "relu",
        pad_type: str = "reflect",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            padding_mode=pad_type,
            bias=True,
        )
        if norm == "instance":
            self.norm: nn.Module = InstanceNorm2d(out_channels, affine=False)
        elif norm == "layer":
            self.norm = LayerNorm2d(out_channels)
        elif norm == "none":
            self.norm = nn.Identity()
        else:  # pragma: no cover - internal misuse
            raise ValueError(f"unknown norm {norm!r}")
        self.act = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and a skip connection."""

    def __init__(self, channels: int, activation: str, pad_type: str) -> None:
        super().__init__()
        self.conv1 = ConvBlock(channels, channels, 3, 1, 1, "instance", activation, pad_type)
        self.conv2 = ConvBlock(channels, channels, 3, 1, 1, "instance", "none", pad_type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


def _adain(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance norm: normalize each channel per sample, then apply a per-sample affine.

    Runs as one fused ``F.batch_norm`` over a ``(1, N * C, H, W)`` view, where
    each (sample, channel) pair is its own "channel" with its own affine; the
    same biased variance as instance norm, several times faster than separate
    mean/var/affine ops, and differentiable in ``x``, ``scale`` and ``shift``.
    Statistics are taken in fp32 for bf16/fp16 inputs.
    """
    n, c, h, w = x.shape
    out = F.batch_norm(
        _as_fp32(x).reshape(1, n * c, h, w),
        None,
        None,
        scale.float().reshape(n * c),
        shift.float().reshape(n * c),
        training=True,
        momentum=0.0,
        eps=eps,
    )
    return out.view(n, c, h, w).to(x.dtype)


class AdaINResBlock(nn.Module):
    """A residual block whose two normalizations take their affine from the style code."""

    def __init__(self, channels: int, activation: str, pad_type: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=pad_type)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=pad_type)
        self.act = _activation(activation)
        self.channels = channels

    def num_adain_params(self) -> int:
        """AdaIN parameters one block consumes: a (scale, shift) pair for each of its two norms."""
        return 4 * self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        # The style MLP's output is centred on 0, so scales are taken as 1 + output:
        # a zero style code then starts from the identity affine.
        scale1, shift1, scale2, shift2 = params.split(self.channels, dim=1)
        h = self.act(_adain(self.conv1(x), 1 + scale1, shift1))
        h = _adain(self.conv2(h), 1 + scale2, shift2)
        return x + h


class ContentEncoder(nn.Module):
    """7x7 conv, ``n_downsample`` stride-2 convs doubling the width, residual blocks."""

    def __init__(self, config: MUNITConfig) -> None:
        super().__init__()
        act, pad = config.activation, config.pad_type
        layers: list[nn.Module] = [ConvBlock(config.in_channels, config.dim, 7, 1, 3, "instance", act, pad)]
        width = config.dim
        for _ in range(config.n_downsample):
            layers.append(ConvBlock(width, 2 * width, 4, 2, 1, "instance", act, pad))
            width *= 2
        layers += [ResBlock(width, act, pad) for _ in range(config.n_res)]
        self.model = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class StyleEncoder(nn.Module):
    """Convolutions without normalization, global average pooling, 1x1 conv to the style code."""

    def __init__(self, config: MUNITConfig) -> None:
        super().__init__()
        act, pad = config.activation, config.pad_type
        layers: list[nn.Module] = [ConvBlock(config.in_channels, config.dim, 7, 1, 3, "none", act, pad)]
        width = config.dim
        for i in range(config.style_n_downsample):
            # The width doubles for the first two downsamplings only, as in MUNIT.
            out = width * 2 if i < 2 else width
            layers.append(ConvBlock(width, out, 4, 2, 1, "none", act, pad))
            width = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, config.style_dim, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).flatten(1)


class Decoder(nn.Module):
    """AdaIN residual blocks, then (upsample x2, 5x5 conv, layer norm) stages, then 7x7 conv and tanh."""

    def __init__(self, config: MUNITConfig, in_channels: int) -> None:
        super().__init__()
        act, pad = config.activation, config.pad_type
        self.res_blocks = nn.ModuleList(AdaINResBlock(in_channels, act, pad) for _ in range(config.n_res))
        width = in_channels
        up: list[nn.Module] = []
        for _ in range(config.n_downsample):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(width, width // 2, 5, 1, 2, "layer", act, pad)]
            width //= 2
        up.append(ConvBlock(width, config.in_channels, 7, 1, 3, "none", "tanh", pad))
        self.upsample = nn.Sequential(*up)

    def num_adain_params(self) -> int:
        return sum(block.num_adain_params() for block in self.res_blocks)

    def forward(self, content: torch.Tensor, adain_params: torch.Tensor) -> torch.Tensor:
        x = content
        offset = 0
        for block in self.res_blocks:
            n = block.num_adain_params()
            x = block(x, adain_params[:, offset : offset + n])
            offset += n
        return self.upsample(x)


class StyleMLP(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, n_layers: int, activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden), _activation(activation)]
        for _ in range(n_layers - 2):
            layers += [nn.Linear(hidden, hidden), _activation(activation)]
        layers.append(nn.Linear(hidden, out_dim))
        self.model = nn.Sequential(*layers)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.model(style)


class StyleWarp(nn.Module):
    """A rotation (``kind="rotation"``) or similarity transform of the decoded image, driven by the style code.

    A two-layer MLP maps the style code to an angle (radians, unbounded, so
    any rotation can be reached) and, for ``"similarity"``, a log-scale and
    a shift; the image is then resampled through that transform (bilinear,
    border pixels extended, so a uniform background stays uniform). Scale is
    kept within [1/1.5, 1.5] and the shift within a quarter of the image
    side, so a draw can never shrink the content away or push it off the
    image.

    The last layer starts small, so a new generator turns images by about a
    degree: close to the identity, but not at it. At exactly the identity two
    draws would decode to the same image, and the L1 terms that reward or
    penalize a difference between draws have a zero (sub)gradient there, so
    the warp would never start to move.
    """

    max_log_scale = math.log(1.5)
    max_shift = 0.5  # in affine_grid's [-1, 1] coordinates: a quarter of the side

    def __init__(self, style_dim: int, hidden: int, activation: str, kind: str = "similarity") -> None:
        super().__init__()
        if kind not in ("rotation", "similarity"):
            raise ValueError(f"kind must be 'rotation' or 'similarity', got {kind!r}")
        self.kind = kind
        outputs = 1 if kind == "rotation" else 4
        self.model = nn.Sequential(nn.Linear(style_dim, hidden), _activation(activation), nn.Linear(hidden, outputs))
        nn.init.normal_(self.model[-1].weight, std=0.002)
        nn.init.zeros_(self.model[-1].bias)

    def parameters_from_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """The transform a style code stands for: ``angle`` (radians), ``scale``, ``shift`` (N, 2)."""
        raw = self.model(style.float())
        angle = raw[:, 0]
        if self.kind == "rotation":
            return {"angle": angle, "scale": torch.ones_like(angle), "shift": raw.new_zeros(raw.shape[0], 2)}
        scale = torch.exp(self.max_log_scale * torch.tanh(raw[:, 1]))
        shift = self.max_shift * torch.tanh(raw[:, 2:])
        return {"angle": angle, "scale": scale, "shift": shift}

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return _similarity_resample(image, self.parameters_from_style(style))

    def draw(self, image: torch.Tensor, style: torch.Tensor, reference: torch.Tensor, extent: float = 1.0) -> torch.Tensor:
        """The warp's part of a draw (as :meth:`RangeWarp.draw`): this warp only moves ``image``, by the
        transform it learned (``extent`` widens a range warp's ranges; a learned transform has none to widen)."""
        return self(image, style)


class RangeWarp(nn.Module):
    """Rotation, scaling and shift drawn uniformly within fixed ranges, a background value and a contrast factor,
    driven by the style code.

    The first style components are turned into uniform draws in [-1, 1]
    (``erf(s / sqrt 2)`` of a standard normal component is uniform), which
    scale the ranges: angle = ``rotation`` * u0 (degrees), log-scale =
    ``log(scale)`` * u1, shift = ``shift`` * (u2, u3) (fractions of the side);
    u4 picks one of ``backgrounds`` (equally likely); the contrast factor is
    ``contrast ** u5``; with ``flip``, u6 > 0 mirrors the image left to right
    (half the draws). A style code from
    N(0, I) thus gives a transform uniform within the ranges, and the same
    code always gives the same transform. The ranges and values are plain
    numbers, not parameters: ``gitaug-fit`` sets them from a test of which
    transforms the data does not notice (:mod:`gitaug.fit.nuisance_probe`).
    With every range at 0 (contrast 1), no background values and no flip the
    image is returned untouched.

    Calling the module applies the geometric part (a fit's fakes go through
    it); :meth:`draw` applies all, scaling the contrast about the background
    value that a reference image shows and recolouring its flat background
    (:func:`recolor_background`).

    Example::

        >>> import torch
        >>> warp = RangeWarp(rotation=180.0)
        >>> image = torch.zeros(2, 1, 8, 8)
        >>> warp(image, torch.randn(2, 8)).shape
        torch.Size([2, 1, 8, 8])
    """

    #: The largest log-scale and shift (a fraction of the side) a draw may reach when ``extent`` widens the
    #: ranges: those the fit's nuisance test tries (x1.5, a quarter of the side), as :class:`StyleWarp`'s.
    max_log_scale = math.log(1.5)
    max_shift = 0.25
    #: The largest log contrast factor (x2 either way): the test's largest, as for the geometric families.
    max_log_contrast = math.log(2.0)

    def __init__(
        self, rotation: float = 0.0, scale: float = 1.0, shift: float = 0.0,
        backgrounds: Sequence[Sequence[float]] = (), contrast: float = 1.0, flip: bool = False,
    ) -> None:
        super().__init__()
        self.rotation, self.scale, self.shift = float(rotation), float(scale), float(shift)
        self.contrast = float(contrast)
        self.flip = bool(flip)
        #: (L, C) background values, or None: a plain tensor, not a buffer (the config holds them)
        self.backgrounds = torch.tensor(backgrounds, dtype=torch.float32) if len(backgrounds) else None

    @classmethod
    def from_config(cls, config: "MUNITConfig") -> "RangeWarp":
        """The warp of a ``warp="affine"`` :class:`MUNITConfig`: its ranges, background values, contrast and flip."""
        return cls(config.warp_rotation, config.warp_scale, config.warp_shift, config.warp_backgrounds,
                   config.warp_contrast, config.warp_flip)

    @property
    def is_geometric_identity(self) -> bool:
        """Whether calling the module (the turn, scale and shift a fit's fakes get) leaves an image as it is."""
        return self.rotation == 0 and self.scale == 1 and self.shift == 0

    @property
    def is_identity(self) -> bool:
        """Whether a draw (:meth:`draw`) leaves an image as it is."""
        return self.is_geometric_identity and self.backgrounds is None and self.contrast == 1 and not self.flip

    def contrast_range(self, extent: float = 1.0) -> float:
        """The log contrast factor a draw reaches, times ``extent``: up to :attr:`max_log_contrast` (or the fitted
        range, where that is already larger), as :meth:`ranges` widens the geometric ones."""
        log_contrast = math.log(self.contrast)
        return min(log_contrast * extent, max(log_contrast, self.max_log_contrast))

    def ranges(self, extent: float = 1.0) -> tuple[float, float, float]:
        """The geometric ranges a draw uses, each multiplied by ``extent``: rotation in degrees, log-scale and
        shift as a fraction of the side. A widened range stops at 180 degrees, :attr:`max_log_scale` and
        :attr:`max_shift` (or at the fitted range, where that is already larger)."""
        log_scale = math.log(self.scale)
        return (min(self.rotation * extent, max(self.rotation, 180.0)),
                min(log_scale * extent, max(log_scale, self.max_log_scale)),
                min(self.shift * extent, max(self.shift, self.max_shift)))

    def parameters_from_style(self, style: torch.Tensor, extent: float = 1.0) -> dict[str, torch.Tensor]:
        """The transform a style code stands for: ``angle`` (radians), ``scale``, ``shift`` (N, 2) in [-1, 1]
        units, with background values ``background`` (N, C), the one picked, with a contrast range
        ``contrast`` (N,), the factor, and with ``flip`` ``flip`` (N,), True where the draw mirrors (never at
        ``extent`` 0, which keeps the geometry). ``extent`` multiplies the ranges (:meth:`ranges`,
        :meth:`contrast_range`)."""
        dims = style.shape[1]
        u = torch.erf(style.float()[:, [k % dims for k in range(7)]] / math.sqrt(2))
        rotation, log_scale, shift_range = self.ranges(extent)
        angle = math.radians(rotation) * u[:, 0]
        scale = torch.exp(log_scale * u[:, 1])
        # affine_grid's coordinates span 2 per side, so a fraction f of the side is 2 f there
        shift = 2 * shift_range * u[:, 2:4]
        result = {"angle": angle, "scale": scale, "shift": shift}
        if self.backgrounds is not None:
            count = self.backgrounds.shape[0]
            index = ((u[:, 4] + 1) / 2 * count).long().clamp(0, count - 1).cpu()
            result["background"] = self.backgrounds[index].to(style.device)
        if self.contrast != 1:
            result["contrast"] = torch.exp(self.contrast_range(extent) * u[:, 5])
        if self.flip:
            result["flip"] = (u[:, 6] > 0) & (extent > 0)
        return result

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The geometric part: ``image`` turned, scaled and shifted (not mirrored: only draws are)."""
        if self.is_geometric_identity:
            return image
        return _similarity_resample(image, self.parameters_from_style(style))

    def draw(self, image: torch.Tensor, style: torch.Tensor, reference: torch.Tensor, extent: float = 1.0) -> torch.Tensor:
        """The whole draw: ``image``'s contrast scaled about ``reference``'s background value (the input
        ``image`` was drawn from), the change that recolouring the reference's flat background makes added
        to it; then the geometric part, within the ranges times ``extent``, and (with ``flip``) the mirror
        image of half the draws.

        Both are measured on the reference because a decoded or restyled
        image no longer has an exactly flat background to find.
        """
        if self.is_identity:
            return image
        p = self.parameters_from_style(style, extent)  # once for all parts: a draw is on the augmentation's hot path
        flat = None
        if "contrast" in p or self.backgrounds is not None:
            x = reference.float()
            # the reference's border value and flat background, found once for both parts
            border, flat = _flat_background(x) if self.backgrounds is not None else (_background(x), None)
        if "contrast" in p:
            image = scale_contrast(image, border, p["contrast"].to(image.device))
        if flat is not None:
            recolored = _recolored(x, p["background"].to(x.device), flat)
            image = (image.float() + recolored - x).clamp(-1, 1).to(image.dtype)
        if not self.is_geometric_identity:
            image = _similarity_resample(image, p)
        if "flip" in p:  # exact, so after the resampling: a mirror image of a uniform draw is another one
            image = torch.where(p["flip"].to(image.device).view(-1, 1, 1, 1), image.flip(-1), image)
        return image

    def extra_repr(self) -> str:
        count = 0 if self.backgrounds is None else self.backgrounds.shape[0]
        return (f"rotation={self.rotation:g}, scale={self.scale:g}, shift={self.shift:g}, backgrounds={count}, "
                f"contrast={self.contrast:g}, flip={self.flip}")


def scale_contrast(image: torch.Tensor, pivot: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W in [-1, 1]) with its distance from ``pivot`` (N, C, 1, 1) times ``factor`` (N,), clamped.

    About an image's background value, a factor below 1 fades the object into
    its background and one above 1 strengthens it; the background stays.

    Example::

        >>> x = -torch.ones(1, 1, 2, 2); x[0, 0, 0, 0] = 1.0
        >>> scale_contrast(x, torch.full((1, 1, 1, 1), -1.0), torch.tensor([0.5]))[0, 0, 0].tolist()
        [0.0, -1.0]
    """
    x = image.float()
    return (pivot + factor.view(-1, 1, 1, 1) * (x - pivot)).clamp(-1, 1).to(image.dtype)


#: Pixels within this distance of an image's background value (in [-1, 1] units: half a grey level
#: of an 8-bit image) count as background for :func:`recolor_background`.
BACKGROUND_TOLERANCE = 1 / 255

#: The share of its pixels that must equal its border value for an image to have a flat background.
#: Measured: at least 55 % on the digits, 20 % on 99 % of Fashion-MNIST, at most 2 % on smooth noise.
MIN_BACKGROUND_SHARE = 0.1


def background_mask(image: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) bool: the pixels of each image's flat background (none for an image without one).

    A pixel is background when it lies within :data:`BACKGROUND_TOLERANCE` of
    the image's border value (:func:`_background`) in every channel; an
    image has a flat background when at least :data:`MIN_BACKGROUND_SHARE`
    of its pixels are.
    """
    return _flat_background(image)[1]


def _flat_background(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's border value (N, C, 1, 1) and its flat-background pixels (:func:`background_mask`)."""
    level = _background(image)
    mask = (image - level).abs().amax(dim=1, keepdim=True) <= BACKGROUND_TOLERANCE
    flat = mask.float().mean(dim=(1, 2, 3)) >= MIN_BACKGROUND_SHARE
    return level, mask & flat.view(-1, 1, 1, 1)


def recolor_background(image: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W in [-1, 1]) with its flat background set to ``level`` (N, C), one value per channel.

    Every pixel of the flat background (:func:`background_mask`: the pixels
    at the border's value) takes the new value. An image with no flat
    background (a photograph) is returned as it is.

    Example::

        >>> x = -torch.ones(1, 1, 4, 4); x[0, 0, 1, 1] = 1.0
        >>> recolor_background(x, torch.tensor([[-0.5]]))[0, 0].tolist()[1][:2]
        [-0.5, 1.0]
    """
    if level.dim() != 2 or tuple(level.shape) != tuple(image.shape[:2]):
        raise ValueError(f"level must have shape {tuple(image.shape[:2])} (one value per image and channel), got {tuple(level.shape)}")
    return _recolored(image, level, background_mask(image))


def _recolored(image: torch.Tensor, level: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`recolor_background` with the flat-background ``mask`` already found."""
    target = level.to(image.device, image.dtype)[:, :, None, None].expand_as(image)
    return torch.where(mask, target, image)


def background_values(image: torch.Tensor) -> torch.Tensor:
    """(M, C): the flat-background value of each of the M images that have one (:func:`background_mask`)."""
    level, mask = _flat_background(image)
    return level[mask.flatten(1).any(1), :, 0, 0]


def _background(image: torch.Tensor) -> torch.Tensor:
    """Each image's background value per channel, ``(N, C, 1, 1)``: the median of its outermost ring of pixels."""
    ring = torch.cat([image[..., 0, :], image[..., -1, :], image[..., 1:-1, 0], image[..., 1:-1, -1]], dim=-1)
    return ring.median(dim=-1).values[..., None, None]


def _similarity_resample(image: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Turn by ``angle``, scale by ``scale``, then shift by ``shift``.

    Bicubic resampling, clamped to the model's range [-1, 1] (bicubic can
    overshoot): bilinear resampling blurs, and a classifier trained on blurred
    re-draws of its tail classes meets sharp images at test time (GIT with
    the warp alone on ``fmnist-rot-lt``, seed 0: 61.5 % balanced accuracy
    bilinear, 63.6 % bicubic, 64.4 % for the true nuisance).
    What comes in from outside the frame is the image's background value
    (:func:`_background`), so a uniform background stays uniform and content
    that touches the frame is not smeared into the corners, as extending the
    border pixels would.
    """
    cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
    # affine_grid maps output coordinates to input coordinates, so this is the inverse map:
    # rotation by -angle, scaling by 1/scale, after removing the shift.
    inv = 1 / p["scale"]
    theta = torch.stack(
        [
            torch.stack([cos * inv, sin * inv, -(cos * p["shift"][:, 0] + sin * p["shift"][:, 1]) * inv], 1),
            torch.stack([-sin * inv, cos * inv, (sin * p["shift"][:, 0] - cos * p["shift"][:, 1]) * inv], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    x = image.float()
    background = _background(x)
    warped = F.grid_sample(x - background, grid, mode="bicubic", padding_mode="zeros", align_corners=False) + background
    return warped.clamp(-1, 1).to(image.dtype)


# --------------------------------------------------------------------------- the generator


def _check_appearance_scale(scale: float, residual: bool) -> float:
    """``scale`` as a float, checked: finite, non-negative, and other than 1 only for residual draws."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"appearance_scale must be a finite number >= 0, got {scale!r}")
    if scale != 1 and not residual:
        raise ValueError(
            f"appearance_scale={scale!r} needs residual draws (residual=True): a decoded draw is wholly the "
            "generator's picture, with no input appearance to scale the change from"
        )
    return float(scale)


def _check_warp_extent(extent: float) -> float:
    """``extent`` as a float, checked: a finite number >= 0 (0 keeps the geometry, 1 the fitted ranges)."""
    if isinstance(extent, bool) or not isinstance(extent, (int, float)) or not math.isfinite(extent) or extent < 0:
        raise ValueError(f"warp_extent must be a finite number >= 0, got {extent!r}")
    return float(extent)


def _check_appearance(style: torch.Tensor, appearance: torch.Tensor | None) -> None:
    if appearance is not None and appearance.shape != style.shape:
        raise ValueError(f"appearance must have the style's shape {tuple(style.shape)}, got {tuple(appearance.shape)}")


class MUNITGenerator(nn.Module, GeneratorHubMixin):
    """Single-domain MUNIT generator: content encoder, style encoder, style MLP, AdaIN decoder.

    Args:
        config: the architecture, a :class:`MUNITConfig`.

    Inputs and outputs are images in [-1, 1] of shape
    ``(N, config.in_channels, config.image_size, config.image_size)``.

    Example::

        >>> import torch
        >>> g = MUNITGenerator(MUNITConfig.preset("small", in_channels=1, image_size=28))
        >>> x = torch.rand(2, 1, 28, 28) * 2 - 1
        >>> content, style = g.encode_content(x), g.encode_style(x)
        >>> g.decode(content, style).shape          # reconstruction
        torch.Size([2, 1, 28, 28])
        >>> seed = torch.Generator().manual_seed(0)
        >>> g.sample(x, generator=seed).shape       # x under a new, random nuisance
        torch.Size([2, 1, 28, 28])
    """

    def __init__(self, config: MUNITConfig) -> None:
        super().__init__()
        #: What ``config.json`` stores under "training" (set by gitaug-fit and by from_pretrained).
        self.training_metadata: dict[str, Any] = {}
        if not isinstance(config, MUNITConfig):
            raise TypeError(f"config must be a MUNITConfig, got {type(config).__name__}")
        self.config = config
        self.content_encoder = ContentEncoder(config)
        self.style_encoder = StyleEncoder(config)
        self.decoder = Decoder(config, self.content_encoder.out_channels)
        self.mlp = StyleMLP(config.style_dim, config.mlp_dim, self.decoder.num_adain_params(), config.n_mlp, config.activation)
        self.warp: nn.Module | None = None
        if config.warp == "affine":
            self.warp = RangeWarp.from_config(config)
        elif config.warp != "none":
            self.warp = StyleWarp(config.style_dim, config.mlp_dim, config.activation, kind=config.warp)

    def _check_images(self, x: torch.Tensor) -> None:
        expected = (self.config.in_channels, self.config.image_size, self.config.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")

    def encode_content(self, x: torch.Tensor) -> torch.Tensor:
        """Content code of images in [-1, 1]: a (N, dim * 2**n_downsample, H', W') map."""
        self._check_images(x)
        return self.content_encoder(x)

    def encode_style(self, x: torch.Tensor) -> torch.Tensor:
        """Style code of images in [-1, 1]: a (N, style_dim) vector."""
        self._check_images(x)
        return self.style_encoder(x)

    def decode(
        self, content: torch.Tensor, style: torch.Tensor, *, warp: bool = True, appearance: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Image in [-1, 1] from a content map and a style vector.

        ``warp=False`` skips the style-driven geometric transform (a generator
        built with ``warp="none"`` has none): fitting reconstructs a real
        image that way, since its content map already holds its geometry.
        ``appearance``, when given, is the style code the decoder's AdaIN
        layers see (e.g. one from :meth:`data_style`); ``style`` then drives
        the warp alone.
        """
        if style.dim() != 2 or style.shape[1] != self.config.style_dim:
            raise ValueError(f"style must have shape (N, {self.config.style_dim}), got {tuple(style.shape)}")
        if style.shape[0] != content.shape[0]:
            raise ValueError(f"content and style batch sizes differ: {content.shape[0]} vs {style.shape[0]}")
        _check_appearance(style, appearance)
        image = self.decoder(content, self.mlp(style if appearance is None else appearance))
        if warp and self.warp is not None:
            image = self.warp(image, style)
        return image

    def random_style(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Style codes drawn from N(0, I).

        With a ``generator``, the draw happens on the generator's device (so the
        same seed gives the same codes whatever device the model is on) and is
        then moved to ``device``.
        """
        param = next(self.parameters())
        device = torch.device(device) if device is not None else param.device
        dtype = dtype or param.dtype
        draw_device = generator.device if generator is not None else device
        style = torch.randn(batch_size, self.config.style_dim, generator=generator, device=draw_device)
        return style.to(device=device, dtype=dtype)

    @torch.no_grad()
    def style_statistics(self, x: torch.Tensor, *, batch_size: int = 256) -> dict[str, Any]:
        """Mean and standard deviation, per component, of the style codes of images ``x`` (in [-1, 1]).

        ``gitaug fit`` stores them for its training images under the
        ``"styles"`` key of the export's training metadata, where
        :meth:`data_style` reads them.
        """
        if x.dim() != 4 or x.shape[0] < 2:
            raise ValueError(f"x must be (N, C, H, W) images with N >= 2, got shape {tuple(x.shape)}")
        param = next(self.parameters())
        codes = torch.cat([self.encode_style(x[i : i + batch_size].to(param)).float() for i in range(0, x.shape[0], batch_size)])
        return {"mean": codes.mean(0).tolist(), "std": codes.std(0).tolist(), "images": int(x.shape[0])}

    def stored_style_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The checked ``(mean, std)`` of the training images' style codes that a ``gitaug fit`` export stores."""
        stats = self.training_metadata.get("styles")
        if not isinstance(stats, Mapping) or "mean" not in stats or "std" not in stats:
            raise ValueError(
                "this generator stores no style statistics (generators fitted before style statistics were stored lack them): use "
                "styles='prior', or set generator.training_metadata['styles'] = generator.style_statistics(images) "
                "with its training images in [-1, 1]"
            )
        dim = self.config.style_dim
        try:
            mean = torch.tensor(stats["mean"], dtype=torch.float32)
            std = torch.tensor(stats["std"], dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"the stored style statistics are not lists of numbers: {err}") from None
        if mean.shape != (dim,) or std.shape != (dim,) or not torch.isfinite(mean).all() or not torch.isfinite(std).all() or (std < 0).any():
            raise ValueError(
                f"the stored style statistics must be {dim} finite means and {dim} finite, non-negative standard "
                f"deviations, got mean={stats['mean']!r}, std={stats['std']!r}"
            )
        return mean, std

    def data_style(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        statistics: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Style codes drawn from the training images' own style distribution (a normal fitted per component).

        The style encoder maps real images to codes far narrower than the
        N(0, I) prior of :meth:`random_style` (standard deviation 0.2-0.35 per
        component on the built-in sets); decoding prior codes asks for
        appearances the data never showed. These codes stay within what the
        data holds. Needs the ``"styles"`` statistics a ``gitaug fit`` export
        stores (:meth:`style_statistics`); a caller that draws often passes
        them once read, as ``statistics=self.stored_style_statistics()``.
        """
        mean, std = self.stored_style_statistics() if statistics is None else statistics
        z = self.random_style(batch_size, generator=generator, device=device, dtype=torch.float32)
        return (mean.to(z.device) + std.to(z.device) * z).to(dtype or next(self.parameters()).dtype)

    def sample(self, x: torch.Tensor, *, generator: torch.Generator | None = None, residual: bool = False) -> torch.Tensor:
        """Re-draw ``x`` under a random nuisance: :meth:`redraw` with a style from N(0, I)."""
        style = self.random_style(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        return self.redraw(x, style, residual=residual)

    def redraw(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        *,
        residual: bool = False,
        appearance: torch.Tensor | None = None,
        appearance_scale: float = 1.0,
        warp_extent: float = 1.0,
    ) -> torch.Tensor:
        """``x`` (images in [-1, 1]) re-drawn with ``style``.

        ``residual=False`` (the GIT paper's draw) decodes ``x``'s content code
        with ``style``: the output is wholly the generator's, so whatever it
        cannot reproduce (fine texture, sharp edges) is lost. ``residual=True``
        adds to ``x`` the change the decoder makes when it swaps ``x``'s own
        style (from the style encoder) for ``style``::

            x + decode(c, style) - decode(c, own style),   c = content of x

        then applies the warp, if any. The generator's reconstruction error
        cancels in the difference, so ``x``'s detail is kept and only what the
        style controls changes. It costs the style encoder and a second decoder
        pass (both run as one batch).

        ``appearance`` (same shape as ``style``), when given, is what the
        decoder's AdaIN layers see instead of ``style``; ``style`` still
        drives the warp (see :meth:`data_style`).

        ``appearance_scale`` (residual draws only) multiplies the decoder's
        change: ``x + appearance_scale * (decode(c, style) - decode(c, own
        style))``. 1 is the whole change, 0 keeps ``x``'s appearance and
        draws only the warp (the decoder is then not run at all).

        ``warp_extent`` multiplies a range warp's geometric ranges
        (:meth:`RangeWarp.ranges`; a style-driven warp is not affected).
        """
        scale = _check_appearance_scale(appearance_scale, residual)
        extent = _check_warp_extent(warp_extent)
        if not residual:
            image = self.decode(self.encode_content(x), style, appearance=appearance, warp=False)
            return self._warp_draw(image, style, x, extent)
        if style.dim() != 2 or style.shape != (x.shape[0], self.config.style_dim):
            raise ValueError(f"style must have shape ({x.shape[0]}, {self.config.style_dim}), got {tuple(style.shape)}")
        _check_appearance(style, appearance)
        if scale == 0:
            image = x
        else:
            drawn_code = style if appearance is None else appearance.to(style.dtype)
            image = (x + scale * self.appearance_change(x, drawn_code)).clamp(-1, 1)
        return self._warp_draw(image, style, x, extent)

    def appearance_change(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The change a residual draw adds to ``x`` (images in [-1, 1]) for style ``code``, before any scale, clamp
        or warp: ``decode(c, code) - decode(c, own style)``, ``c`` the content of ``x`` (both decoded as one batch)."""
        content = self.encode_content(x)
        own = self.style_encoder(x).to(code.dtype)
        drawn, rebuilt = self.decoder(torch.cat([content, content]), self.mlp(torch.cat([code, own]))).chunk(2)
        return drawn - rebuilt

    def _warp_draw(self, image: torch.Tensor, style: torch.Tensor, x: torch.Tensor, extent: float = 1.0) -> torch.Tensor:
        """The warp's part of a draw of ``x`` (a range warp also recolours ``x``'s background)."""
        return self.warp.draw(image, style, reference=x, extent=extent) if self.warp is not None else image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` from its own content and style (without the warp)."""
        return self.decode(self.encode_content(x), self.encode_style(x), warp=False)

    @property
    def has_warp(self) -> bool:
        """Whether draws are moved by the warp: a style-driven warp, or a range warp with some range above 0."""
        return self.warp is not None and not getattr(self.warp, "is_identity", False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
