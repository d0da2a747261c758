"""GITAugment: the drop-in transform that re-draws tail-class images with a fitted generator."""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors

from ._threads import warn_if_cpu_oversubscribed
from .generator import MUNITGenerator, _check_appearance_scale, _check_warp_extent
from .sampler import ClassThresholdSampler, SelectionRule, class_indices

__all__ = ["GITAugment", "default_inference_dtype"]

_INFERENCE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

#: Where the decoder's style code comes from: the N(0, I) prior, or the training images' own style distribution.
STYLE_SOURCES = ("prior", "data")
#: The constructor arguments a generator folder may recommend (``training.draw`` in its config).
DRAW_SETTINGS = ("residual", "styles", "appearance_scale", "warp_extent")
_SMALLEST_BUCKET = 8


def recommended_draw(metadata: Any) -> dict[str, Any]:
    """The draw settings a generator's training metadata recommends (``"draw"``), checked: ``{}`` if none.

    Only the keys of :data:`DRAW_SETTINGS` may appear (plus a free-text ``"chosen"``
    saying how they were chosen); their values are checked by the constructor.
    """
    draw = metadata.get("draw") if isinstance(metadata, Mapping) else None
    if draw is None:
        return {}
    if not isinstance(draw, Mapping):
        raise ValueError(f"the generator's recommended draw (training.draw) must be a mapping, got {draw!r}")
    unknown = sorted(set(draw) - set(DRAW_SETTINGS) - {"chosen"})
    if unknown:
        raise ValueError(f"the generator's recommended draw (training.draw) has unknown keys {unknown}; allowed: {list(DRAW_SETTINGS)}")
    return {key: draw[key] for key in DRAW_SETTINGS if key in draw}


def complete_draw(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every one of :data:`DRAW_SETTINGS`: those in ``settings``, the constructor's defaults for the rest.

    What a :class:`GITAugment` made with ``settings`` draws with, e.g.
    ``complete_draw(recommended_draw(metadata))`` for ``from_pretrained``.
    """
    import inspect

    defaults = inspect.signature(GITAugment).parameters
    return {key: settings.get(key, defaults[key].default) for key in DRAW_SETTINGS}


def _cpu_has_native_bf16() -> bool:
    # AVX512-BF16 or AMX: the CPU computes bf16 dot products in hardware, so oneDNN's bf16
    # convolutions beat fp32 ones (1.7x eager measured on AVX512-BF16, see benchmarks/RESULTS.md).
    # Without them bf16 is emulated and slower than fp32.
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: stay with fp32
        return False


def default_inference_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype ``GITAugment(dtype=None)`` runs its generator in on ``device``.

    bf16 on CUDA GPUs that support it and on CPUs with native bf16
    arithmetic (AVX512-BF16 or AMX), where it is faster than fp32; fp32
    everywhere else (older GPUs, other CPUs, other devices).

    Example::

        >>> default_inference_dtype("meta")
        torch.float32
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_native_bf16() else torch.float32
    return torch.float32


def _bucket_size(count: int, batch_size: int) -> int:
    """The padded number of samples the compiled generator runs on: a power of two (at least 8), or the batch.

    A batch of N then compiles for at most ``log2(N / 8) + 2`` shapes, not one per selection count.
    """
    bucket = max(_SMALLEST_BUCKET, 1 << (count - 1).bit_length())
    return min(bucket, max(batch_size, count))


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the user's line, past gitaug's and torch's frames."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith((_PACKAGE_DIR, _TORCH_DIR)):
        frame, level = frame.f_back, level + 1
    return level


def _some(indices: list[int], limit: int = 10) -> str:
    """The first few of a list of indices, for an error message."""
    shown = ", ".join(map(str, indices[:limit]))
    return f"[{shown}, ...]" if len(indices) > limit else f"[{shown}]"


def _channel_stats(value: float | Sequence[float] | torch.Tensor, name: str, channels: int) -> torch.Tensor:
    stats = torch.as_tensor(value, dtype=torch.float32).flatten()
    if stats.numel() == 1:
        stats = stats.expand(channels)
    if stats.numel() != channels:
        raise ValueError(f"{name} must have 1 or {channels} values (one per channel), got {stats.numel()}")
    if not torch.isfinite(stats).all():
        raise ValueError(f"{name} must be finite, got {stats.tolist()}")
    return stats.clone().view(1, channels, 1, 1)


class GITAugment(nn.Module):
    """Generative Invariance Transfer as a transform.

    Wraps a fitted class-agnostic :class:`~gitaug.MUNITGenerator`. Called as
    ``aug(images)`` it re-draws every image under a random nuisance; called as
    ``images, labels = aug(images, labels)`` it re-draws only the samples its
    :class:`~gitaug.ClassThresholdSampler` selects (tail-class samples, with
    probability ``p``) and hands the labels back unchanged, like torchvision's
    v2 ``MixUp``/``CutMix``. Unselected samples come back bit-identical; the
    input is never modified in place.

    Images may be a batch ``(N, C, H, W)`` or a single image ``(C, H, W)``:

    * float in [0, 1] (the default),
    * float normalized with ``mean``/``std`` given here (as ``Normalize`` would),
    * ``uint8`` in [0, 255].

    Float images outside [0, 1] (after un-normalizing, when ``mean``/``std``
    are given), beyond a rounding tolerance of :attr:`range_tolerance`, and
    images holding NaN or inf are refused with an error that names what was
    seen: the whole batch is checked whenever the transform is enabled, so
    whether a call fails never depends on the random draw.

    Labels are class indices ``(N,)`` of any integer dtype (an ``int`` for a
    single image), or one-hot / soft labels ``(N, num_classes)`` of any
    integer or float dtype, which select by their largest entry. Boolean
    labels are refused.

    The output has the input's dtype, value range, normalization and device.
    When enabled, it never requires grad, whatever the draw: generated images
    are data, not a function of the input to differentiate through (disabled,
    the transform hands back the input itself).
    The generator runs on its own device (move it with ``aug.to(device)``),
    without gradients and in eval mode; images of another size than the
    generator's are resized to it and back.

    Args:
        generator: the fitted generator.
        sampler: which samples ``aug(images, labels)`` replaces: a
            :class:`~gitaug.ClassThresholdSampler`, or any
            :class:`~gitaug.sampler.SelectionRule` (a callable mapping int64
            class indices ``(N,)`` to a boolean mask ``(N,)``). ``None``
            replaces every sample. With a sampler, call the transform with
            labels: called without them it re-draws every image (head
            classes too) and warns once; inside a dataset's per-image
            ``transform`` (``ImageFolder(transform=...)``), which never sees
            the label, wrap the dataset with ``gitaug.GITDataset(dataset, aug)``.
        mean, std: per-channel normalization of float inputs, if they are
            normalized; both or neither.
        enabled: when ``False`` the transform is the identity (switch it on
            later for delayed GIT: ``aug.enabled = True``).
        dtype: the precision the generator runs in: ``torch.float32``,
            ``torch.bfloat16`` or ``torch.float16``; ``None`` (the default)
            picks :func:`default_inference_dtype` for the generator's device
            (bf16 on CUDA and on CPUs with native bf16, else fp32). Weights
            are cast once and cached (the fp32 weights stay the model's own
            and are what :meth:`save_pretrained` writes); normalization
            statistics and the conversion back to the input's format are
            computed in fp32. bf16 changes a generated pixel by about 1 % of
            the value range, a small fraction of the difference between two
            draws (see the README's performance section).
        compile: run the generator through ``torch.compile``. The selected
            samples are padded to a few fixed sizes (powers of two, at least
            8), so a training loop compiles a handful of shapes once instead
            of one per batch. The first calls are slow (compilation); needs a
            working ``torch.compile`` (a C++ compiler on CPU, Triton on CUDA).
        residual: keep the input's detail: a selected image becomes itself
            plus the change the generator makes between its own style and the
            drawn one (:meth:`MUNITGenerator.redraw`), instead of the
            generator's whole picture. What the generator cannot reproduce
            (fine texture, sharp edges) is kept; only what its style controls
            changes. Costs the style encoder and a second decoder pass.
        styles: where the style code the decoder sees comes from.
            ``"prior"`` (the GIT paper's): N(0, I). ``"data"``: a normal fitted
            to the style codes of the generator's training images
            (:meth:`MUNITGenerator.data_style`), so the draws' appearance stays
            within what the data shows; the warp, if any, keeps its own N(0, I)
            code. Needs a generator exported by ``gitaug fit`` with style
            statistics.
        appearance_scale: with ``residual=True``, how much of the decoder's
            appearance change a draw applies: ``x + appearance_scale *
            (decode(c, drawn) - decode(c, own))``, then the warp. 1 (the
            default) is the whole change; 0 keeps the input's appearance and
            draws only the generator's warp, without running the decoder.
        warp_extent: multiplies the geometric ranges of the generator's range
            warp (rotation, log-scale, shift; :meth:`RangeWarp.ranges`) in
            every draw. The fit's nuisance test finds the largest move a
            detector cannot see, which on a bounded nuisance (sizes within
            x0.7..x1.3, positions within a few pixels) is a fraction of the
            data's spread, estimated at
            :data:`gitaug.fit.nuisance_probe.DRAW_EXTENT` (2.5) times it. 1
            (the default, and what a fit recommends) draws within the fitted
            ranges; 2.5 helped on zoomed digits but cost class preservation
            where the data does not vary (``benchmarks/warp_extent.py``). A
            style-driven warp is not affected.

    On CUDA the transform does not wait on the GPU when the labels are on the
    CPU, as a ``DataLoader`` yields them: the selection is drawn there and only
    an index tensor travels. Labels already on the GPU cost one read-back of
    the selected count.

    Example::

        >>> import torch
        >>> from gitaug import GITAugment, ClassThresholdSampler, MUNITConfig, MUNITGenerator
        >>> generator = MUNITGenerator(MUNITConfig.preset("small", in_channels=1, image_size=28))
        >>> sampler = ClassThresholdSampler([500, 50, 5], threshold=100, p=0.5)
        >>> aug = GITAugment(generator, sampler)
        >>> images, labels = torch.rand(8, 1, 28, 28), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
        >>> out, same_labels = aug(images, labels, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(out[:3], images[:3])   # class 0 is above the threshold
        True
    """

    #: How far float images may stray outside [0, 1] (rounding, resampling) before they are refused.
    range_tolerance: float = 0.02

    def __init__(
        self,
        generator: MUNITGenerator,
        sampler: ClassThresholdSampler | SelectionRule | None = None,
        *,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        enabled: bool = True,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        residual: bool = False,
        styles: str = "prior",
        appearance_scale: float = 1.0,
        warp_extent: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(generator, MUNITGenerator):
            raise TypeError(f"generator must be a MUNITGenerator, got {type(generator).__name__}")
        if sampler is not None and not isinstance(sampler, ClassThresholdSampler) and not callable(sampler):
            raise TypeError(
                f"sampler must be a ClassThresholdSampler or None, got {type(sampler).__name__}; a custom "
                "selection rule must be callable as rule(labels, generator=None) and return a boolean mask"
            )
        if (mean is None) != (std is None):
            raise ValueError(f"give both mean and std or neither, got mean={mean!r}, std={std!r}")
        channels = generator.config.in_channels
        self.generator = generator.eval().requires_grad_(False)
        self.sampler = sampler
        self.enabled = bool(enabled)
        self.normalized = mean is not None
        if self.normalized:
            std_t = _channel_stats(std, "std", channels)
            if (std_t <= 0).any():
                raise ValueError(f"std must be positive, got {std_t.flatten().tolist()}")
            self.register_buffer("mean", _channel_stats(mean, "mean", channels), persistent=False)
            self.register_buffer("std", std_t, persistent=False)
        if dtype is not None and dtype not in _INFERENCE_DTYPES:
            raise ValueError(f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}")
        if not isinstance(residual, bool):
            raise TypeError(f"residual must be True or False, got {residual!r}")
        appearance_scale = _check_appearance_scale(appearance_scale, residual)
        warp_extent = _check_warp_extent(warp_extent)
        if styles not in STYLE_SOURCES:
            raise ValueError(f"styles must be one of {STYLE_SOURCES}, got {styles!r}")
        if styles == "data":  # read and checked once, here: fails now, naming the fix, if the folder stores none
            style_mean, style_std = generator.stored_style_statistics()
            self.register_buffer("style_mean", style_mean, persistent=False)
            self.register_buffer("style_std", style_std, persistent=False)
        self.residual = residual
        self.styles = styles
        self.appearance_scale = appearance_scale
        self.warp_extent = warp_extent
        self.dtype = dtype
        self.compile = compile
        # name -> weight in the inference dtype, and the key of the fp32 weights it was made from.
        self._cast_weights: dict[str, torch.Tensor] = {}
        self._cast_key: tuple | None = None
        self._compiled: Any = None
        #: Training metadata of a loaded generator (its config's "training" section).
        self.metadata: dict[str, Any] = {}
        self._warned_without_labels = False

    @property
    def warp_only(self) -> bool:
        """Whether a draw is the generator's warp alone (``residual=True, appearance_scale=0``).

        No network runs then: a draw is one resampling of the input, about as
        cheap as copying a stored draw, so :class:`~gitaug.GITDataset` draws
        it live rather than from a bank, whose few draws per image would
        only limit its variety.
        """
        return self.residual and self.appearance_scale == 0

    # ------------------------------------------------------------------ Hub / files

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> "GITAugment":
        """Load a fitted generator from a local folder or a Hugging Face Hub repo.

        Args:
            repo_id_or_path: a pretrained name (``gitaug.list_pretrained()``),
                a folder written by :meth:`save_pretrained`, a ``gitaug-fit``
                run folder (its ``generator/`` export is loaded), or a Hub
                repo id such as ``"org/name"``.
            revision: a Hub branch, tag or commit to pin.
            cache_dir: the Hub cache folder (default: the Hub's own).
            local_files_only: never reach the network; use the cache only
                (``HF_HUB_OFFLINE=1`` does the same for every download).
            token: a Hub token for private repos.
            force_download: download again even if the Hub cache has the files.
            device: where to put the generator (default CPU).
            **kwargs: ``sampler``, ``mean``, ``std``, ``enabled``, ``dtype``,
                ``compile``, ``residual``, ``styles``, ``appearance_scale``, as
                in the constructor. A generator whose config stores a
                recommended draw (``training.draw``: some of ``residual``,
                ``styles`` and ``appearance_scale``, as the pretrained
                Fashion-MNIST generators do) gets those settings for the ones
                not passed here.

        Example::

            aug = GITAugment.from_pretrained("digits-bg-lt", sampler=sampler)
        """
        from .pretrained import resolve_pretrained

        # A registered name loads the generator packaged with gitaug, offline; see gitaug.pretrained.
        repo_id_or_path = resolve_pretrained(repo_id_or_path)
        generator = MUNITGenerator.from_pretrained(
            repo_id_or_path,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            map_location=device if device is not None else "cpu",
        )
        aug = cls(generator, **{**recommended_draw(generator.training_metadata), **kwargs})
        aug.metadata = dict(generator.training_metadata)
        return aug

    def save_pretrained(self, directory: str | os.PathLike, *, samples_image: str | os.PathLike | None = None) -> None:
        """Write the generator as a folder that :meth:`from_pretrained` loads (``metadata`` goes with it)."""
        self.generator.save_pretrained(directory, metadata=self.metadata, samples_image=samples_image)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload gitaug generator",
    ) -> str:
        """Upload the generator to a Hub repo (created if needed); returns the commit URL.

        ``revision`` is the branch to push to (the Hub's default branch when ``None``).
        """
        self.generator.training_metadata = dict(self.metadata)
        return self.generator.push_to_hub(
            repo_id, token=token, private=private, branch=revision, commit_message=commit_message
        )

    # ------------------------------------------------------------------ the transform

    def train(self, mode: bool = True) -> "GITAugment":
        # The generator is a fixed, fitted model: it stays in eval mode whatever the wrapper's mode.
        super().train(mode)
        self.generator.eval()
        return self

    def _labels_as_indices(self, labels: Any, images: torch.Tensor) -> torch.Tensor:
        """Class indices ``(N,)`` (int64) from any accepted label form, or a clear error."""
        # numbers.Integral takes numpy's integers too (a dataset may hand out np.int64 labels).
        if isinstance(labels, (bool, np.bool_)) or not isinstance(labels, (numbers.Integral, torch.Tensor)):
            raise TypeError(f"labels must be an int or a tensor, got {type(labels).__name__}")
        single = images.dim() == 3
        batch_size = 1 if single else images.shape[0]
        if isinstance(labels, numbers.Integral):
            if not -(2**63) <= int(labels) < 2**63:
                raise ValueError(f"label {int(labels)} is out of range")
            return torch.tensor([int(labels)], dtype=torch.int64)
        if labels.device.type == "meta":
            raise ValueError("labels are on the meta device and hold no values; move them to a real device first")
        if labels.dtype == torch.bool or labels.is_complex():
            raise ValueError(
                f"labels must be integer class indices or one-hot / soft labels, got dtype {labels.dtype} "
                "(a boolean mask is not a class label)"
            )
        shape = tuple(labels.shape)
        if labels.dim() == 1 and single and labels.numel() > 1:
            indices = self._indices_from_rows(labels.unsqueeze(0), shape, batch_size)  # one image's one-hot / soft label
        elif labels.dim() <= 1 or (labels.dim() == 2 and labels.shape[1] == 1 and not labels.is_floating_point()):
            if labels.is_floating_point():
                raise ValueError(
                    f"labels must be integer class indices, got dtype {labels.dtype} with shape {shape}; "
                    f"float labels are soft labels of shape ({batch_size}, num_classes)"
                )
            indices = class_indices(labels.reshape(-1))  # class indices, or a column of them
        else:
            indices = self._indices_from_rows(labels, shape, batch_size)
        if indices.numel() != batch_size:
            raise ValueError(
                f"got {indices.numel()} labels for {batch_size} images (labels of shape {shape}): give class "
                f"indices of shape ({batch_size},) or one-hot / soft labels of shape ({batch_size}, num_classes)"
            )
        return indices

    def _indices_from_rows(self, rows: torch.Tensor, shape: tuple[int, ...], batch_size: int) -> torch.Tensor:
        """The main class of each row of one-hot (integer) or soft (float) labels."""
        if rows.dim() != 2 or rows.shape[0] != batch_size:
            raise ValueError(
                f"labels of shape {shape} do not fit a batch of {batch_size} image(s): give class indices of shape "
                f"({batch_size},) or one-hot / soft labels of shape ({batch_size}, num_classes)"
            )
        if rows.shape[1] == 1:
            raise ValueError(
                f"float labels of shape {shape} are ambiguous (a column of class indices or a single class?); "
                f"give integer class indices of shape ({batch_size},) or soft labels with one column per class"
            )
        num_classes = getattr(self.sampler, "num_classes", None)
        if isinstance(num_classes, int) and rows.shape[1] != num_classes:
            raise ValueError(
                f"one-hot / soft labels of shape {shape} have {rows.shape[1]} columns, "
                f"but the sampler knows {num_classes} classes"
            )
        if rows.is_floating_point():
            finite = torch.isfinite(rows).all(1)
            if not finite.all():
                bad = torch.nonzero(~finite).flatten().tolist()
                raise ValueError(f"soft labels hold NaN or inf in {len(bad)} row(s): {_some(bad)}")
        negative = (rows < 0).any(1)
        if negative.any():
            bad = torch.nonzero(negative).flatten().tolist()
            raise ValueError(f"one-hot / soft labels must be non-negative; row(s) {_some(bad)} hold negative values")
        empty = (rows == 0).all(1)
        if empty.any():
            bad = torch.nonzero(empty).flatten().tolist()
            raise ValueError(f"one-hot / soft labels have no class in row(s) {_some(bad)} (all zeros)")
        # argmax takes the first of tied entries: a 50/50 mix counts as its first class.
        return rows.argmax(dim=1).to(torch.int64)

    def _select(self, indices: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        """The sampler's mask for ``indices``, checked: a boolean tensor of shape (N,)."""
        mask = self.sampler(indices, generator=generator)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch_size,):
            got = (
                f"dtype {mask.dtype}, shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            )
            raise TypeError(
                f"the sampler {type(self.sampler).__name__} must return a boolean tensor of shape ({batch_size},), "
                f"got {got}"
            )
        return mask

    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() not in (3, 4):
            raise ValueError(f"images must be (N, C, H, W) or (C, H, W), got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"images must be float or uint8, got dtype {images.dtype}")
        if images.device.type == "meta":
            raise ValueError("images are on the meta device and hold no values; move them to a real device first")
        if images.dtype == torch.uint8 and self.normalized:
            raise ValueError("mean/std were given but the images are uint8; normalized images must be float")
        expected_channels = self.generator.config.in_channels
        if images.shape[-3] != expected_channels:
            raise ValueError(
                f"the generator takes {expected_channels}-channel images, got {images.shape[-3]} channels "
                f"(shape {tuple(images.shape)})"
            )
        if images.shape[-1] == 0 or images.shape[-2] == 0:
            raise ValueError(f"images must have a non-zero height and width, got shape {tuple(images.shape)}")

    def _check_values(self, batch: torch.Tensor) -> None:
        """Refuse non-finite pixels and float values outside [0, 1] (after un-normalizing)."""
        if not batch.is_floating_point() or batch.numel() == 0:
            return  # uint8 is [0, 255] by construction
        if self.normalized:
            # std > 0, so the per-channel extremes of x * std + mean are those of x, mapped.
            std, mean = self.std.flatten().to(batch.device), self.mean.flatten().to(batch.device)
            low = (batch.amin(dim=(0, 2, 3)).float() * std + mean).min()
            high = (batch.amax(dim=(0, 2, 3)).float() * std + mean).max()
        else:
            low, high = (v.float() for v in torch.aminmax(batch))
        # One pass over the batch and one transfer to the host: min and max propagate NaN and reach
        # inf, so they also tell whether every pixel is finite; which samples are not is only
        # worked out when some are.
        low, high = torch.stack([low, high]).tolist()
        if not (math.isfinite(low) and math.isfinite(high)):
            bad = torch.nonzero(~torch.isfinite(batch).flatten(1).all(1)).flatten().tolist()
            raise ValueError(
                f"images hold NaN or inf in {len(bad)} of {batch.shape[0]} sample(s), at batch index(es) {_some(bad)}; "
                "the generator would turn a re-drawn image into NaN"
            )
        tol = self.range_tolerance
        if low >= -tol and high <= 1 + tol:
            return
        if self.normalized:
            raise ValueError(
                f"un-normalized with mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}, "
                f"the images lie in [{low:.4g}, {high:.4g}], not in [0, 1] (tolerance {tol}): give the mean/std "
                "the images were normalized with"
            )
        raise ValueError(
            f"float images must lie in [0, 1] (tolerance {tol}), got values in [{low:.4g}, {high:.4g}]; "
            "declare the value range: pass uint8 images for [0, 255] (or divide by 255), or give mean/std "
            "for normalized images (mean=0.5, std=0.5 for [-1, 1])"
        )

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        labels: Any = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Transform ``images`` (all of them, or those the sampler selects when ``labels`` are given).

        Args:
            images: ``(N, C, H, W)`` or ``(C, H, W)``, float or uint8.
            labels: class indices ``(N,)`` of any integer dtype (an int for a
                single image), or one-hot / soft labels ``(N, num_classes)``
                of any integer or float dtype; returned unchanged.
            generator: a ``torch.Generator`` seeding the selection and style
                draws, for a reproducible call.

        Returns:
            The images, or ``(images, labels)`` when labels were given.
        """
        out = self._transform(images, labels, generator)
        if isinstance(images, tv_tensors.TVTensor) and not isinstance(out, tv_tensors.TVTensor):
            out = tv_tensors.wrap(out, like=images)  # keep v2's image type for the transforms after us
        return out if labels is None else (out, labels)

    def _transform(self, images: torch.Tensor, labels: Any, generator: torch.Generator | None) -> torch.Tensor:
        self._check_images(images)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if not self.enabled:
            return images

        batch = images if images.dim() == 4 else images.unsqueeze(0)
        indices = self._labels_as_indices(labels, images) if labels is not None else None
        self._check_values(batch)
        if indices is None or self.sampler is None:
            if indices is None and self.sampler is not None:
                self._warn_without_labels()
            mask = torch.ones(batch.shape[0], dtype=torch.bool)  # on the CPU: its count needs no device sync
        else:
            # The mask stays where the sampler made it (the CPU, for labels from a DataLoader): see _replace.
            mask = self._select(indices, batch.shape[0], generator)
        result = self._replace(batch, mask, generator)
        if result is None:  # nothing selected
            return images.detach()  # a new tensor object that never requires grad, as when samples are re-drawn
        return result if images.dim() == 4 else result.squeeze(0)

    def _warn_without_labels(self) -> None:
        if self._warned_without_labels:
            return
        self._warned_without_labels = True
        warnings.warn(
            "GITAugment has a sampler but was called without labels, so it re-draws every image, head classes "
            "included (a per-image transform such as ImageFolder(transform=...) never sees the label). Call "
            "aug(images, labels), or wrap the dataset with gitaug.GITDataset(dataset, aug) to hand each image's "
            "label to the transform; to re-draw every image on purpose, build GITAugment without a sampler.",
            UserWarning,
            stacklevel=_caller_stacklevel(),
        )

    def _replace(self, batch: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """A copy of ``batch`` with the ``mask``-selected samples generated; ``None`` when none is selected.

        The selected indices are found where the mask lives (the CPU, for labels
        straight from a ``DataLoader``), so a batch on the GPU is gathered and
        scattered with index tensors without waiting on the device.
        """
        index = mask.nonzero().flatten()
        count = index.numel()  # a host value only when the mask is on the CPU; else one read-back
        if count == 0:
            return None
        index = index.to(batch.device, non_blocking=True)
        if self.compile:
            # Pad to a fixed bucket by repeating the first selected sample; the extra outputs are dropped.
            padded = _bucket_size(count, batch.shape[0])
            if padded > count:
                index = torch.cat([index, index[:1].expand(padded - count)])
        generated = self._generate(batch.index_select(0, index), generator, drawn=count)
        result = batch.clone()
        result.index_copy_(0, index[:count], generated[:count])
        return result

    def inference_dtype(self) -> torch.dtype:
        """The dtype the generator runs in: ``dtype`` as given, else the default for its device."""
        if self.dtype is not None:
            return self.dtype
        return default_inference_dtype(next(self.generator.parameters()).device)

    def _weights_in(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The generator's weights in ``dtype``, cast once and reused until the fp32 weights change.

        The key holds each weight's storage, dtype and in-place version counter,
        so ``load_state_dict``, ``.to(device)`` or an optimizer step invalidate it.
        The style warp, if any, keeps fp32 weights: it maps a style code to a
        handful of angles and shifts, where bf16 would turn the image visibly.
        """
        params = list(self.generator.named_parameters())
        key = (dtype, tuple((t.data_ptr(), t.dtype, t.device, t._version) for _, t in params))
        if key != self._cast_key:
            self._cast_weights = {
                f"generator.{name}": t.detach() if name.startswith("warp.") else t.detach().to(dtype)
                for name, t in params
            }
            self._cast_key = key
        return self._cast_weights

    def _generate(
        self, selected: torch.Tensor, generator: torch.Generator | None, drawn: int | None = None
    ) -> torch.Tensor:
        """Run the generator on the selected samples and bring them back to the input's format.

        Only the first ``drawn`` samples (default: all) get their own style
        draw; padding after them reuses the first one, so padding changes
        neither the kept images nor how much randomness a call consumes.
        """
        param = next(self.generator.parameters())
        if param.device.type == "cpu":
            warn_if_cpu_oversubscribed()
        size = self.generator.config.image_size
        height, width = selected.shape[-2:]
        dtype = self.inference_dtype()

        # Input conversion in fp32 (at least), then one cast to the inference dtype.
        x = selected.to(device=param.device, dtype=torch.promote_types(param.dtype, torch.float32))
        if selected.dtype == torch.uint8:
            x = x / 255.0
        elif self.normalized:
            x = x * self.std.to(x) + self.mean.to(x)
        x = x * 2 - 1
        if (height, width) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

        drawn = x.shape[0] if drawn is None else drawn
        style = self.generator.random_style(drawn, generator=generator, device=x.device, dtype=dtype)
        appearance = None
        if self.styles == "data":
            appearance = self.generator.data_style(drawn, generator=generator, device=x.device, dtype=dtype,
                                                   statistics=(self.style_mean, self.style_std))
        if drawn < x.shape[0]:
            style = torch.cat([style, style[:1].expand(x.shape[0] - drawn, -1)])
            if appearance is not None:
                appearance = torch.cat([appearance, appearance[:1].expand(x.shape[0] - drawn, -1)])
        if dtype == param.dtype:
            weights = None  # the model's own weights: no copy, no functional call
        else:
            weights = self._weights_in(dtype)
        run = _decode_with
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(_decode_with, dynamic=False)
            run = self._compiled
        y = run(self.generator, weights, x.to(dtype), style, self.residual, appearance, self.appearance_scale,
                self.warp_extent).float()

        if (height, width) != (size, size):
            y = F.interpolate(y, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        y = (y + 1) / 2
        if selected.dtype == torch.uint8:
            y = (y * 255).round().clamp(0, 255)
        else:
            y = y.clamp(0, 1)
            if self.normalized:
                y = (y - self.mean.to(y)) / self.std.to(y)
        return y.to(device=selected.device, dtype=selected.dtype)

    def extra_repr(self) -> str:
        c = self.generator.config
        return (
            f"image_size={c.image_size}, in_channels={c.in_channels}, sampler={self.sampler!r}, "
            f"normalized={self.normalized}, enabled={self.enabled}, dtype={self.dtype}, compile={self.compile}, "
            f"residual={self.residual}, styles={self.styles!r}, appearance_scale={self.appearance_scale}, "
            f"warp_extent={self.warp_extent}"
        )


class _SamplePass(nn.Module):
    """``generator.redraw(x, style, ...)`` as a module's forward, so ``functional_call`` can swap its weights."""

    def __init__(self, generator: MUNITGenerator, residual: bool, appearance_scale: float, warp_extent: float = 1.0) -> None:
        super().__init__()
        self.generator = generator
        self.residual = residual
        self.appearance_scale = appearance_scale
        self.warp_extent = warp_extent

    def forward(self, x: torch.Tensor, style: torch.Tensor, appearance: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator.redraw(x, style, residual=self.residual, appearance=appearance,
                                     appearance_scale=self.appearance_scale, warp_extent=self.warp_extent)


def _decode_with(
    generator: MUNITGenerator,
    weights: dict[str, torch.Tensor] | None,
    x: torch.Tensor,
    style: torch.Tensor,
    residual: bool = False,
    appearance: torch.Tensor | None = None,
    appearance_scale: float = 1.0,
    warp_extent: float = 1.0,
) -> torch.Tensor:
    """``generator.redraw(x, style, residual=..., appearance=..., appearance_scale=..., warp_extent=...)``, run with
    ``weights`` (keys ``generator.<name>``) if given."""
    if weights is None:
        return generator.redraw(x, style, residual=residual, appearance=appearance, appearance_scale=appearance_scale,
                                warp_extent=warp_extent)
    return torch.func.functional_call(
        _SamplePass(generator, residual, appearance_scale, warp_extent), weights, (x, style, appearance), strict=True
    )
