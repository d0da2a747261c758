"""The typed configuration of a ``gitaug-fit`` run.

Every knob of a run lives in :class:`FitConfig`: the command line, a JSON or
TOML file and Python code all build one, and the run stores it next to its
checkpoints so that ``--resume`` can tell whether it continues the same run.

Example::

    >>> from gitaug.fit import FitConfig
    >>> config = FitConfig(dataset="digits-bg-lt", out="runs/digits-bg-lt")
    >>> config.batch_size, config.preset
    (32, 'small')
    >>> FitConfig(dataset="digits-rot-lt", batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: invalid FitConfig: batch_size=0: must be a positive integer
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["FitConfig", "load_config_file", "RESUMABLE_FIELDS"]

SAMPLING_MODES = ("auto", "balanced", "instance")
AMP_MODES = ("auto", "bf16", "fp16", "none")
PRESET_NAMES = ("small", "paper")
WARP_MODES = ("auto", "affine", "none", "rotation", "similarity")

#: Fields that may change when a run is resumed: how long it runs, where it
#: runs and what it writes -- not what it learns from or how it learns.
RESUMABLE_FIELDS = frozenset(
    {
        "steps",
        "out",
        "resume",
        "overwrite",
        "device",
        "amp",
        "checkpoint_every",
        "keep_checkpoints",
        "sample_every",
        "log_every",
        "grid_variants",
        "tensorboard",
        "push_to_hub",
        "progress",
    }
)


@dataclass
class FitConfig:
    """Everything a ``gitaug-fit`` run needs.

    Data (exactly one of ``dataset`` and ``data``):
        dataset: a built-in dataset of :mod:`gitaug.datasets` (e.g.
            ``"digits-rot-lt"``); its training split is used.
        data: a path: an image folder with one subfolder per class, a flat
            folder of images, or an ``.npz`` with ``images`` (N, H, W[, C])
            uint8 and optional ``labels`` (N,).
        image_size: side of the square training images; ``None`` takes it
            from the data (the most common size, rounded to a multiple of 4).
        channels: 1 (gray) or 3 (RGB); ``None`` takes it from the data (gray
            if every image is gray).
        sampling: ``"balanced"`` (every class equally likely, as the paper),
            ``"instance"`` (every image equally likely) or ``"auto"``
            (balanced when labels are known, instance otherwise).
        seed: seeds the built-in dataset and the whole run.

    Output:
        out: the run folder (export files at its top, ``checkpoints/``,
            ``samples/``, ``log.jsonl`` inside); ``None`` means
            ``runs/<dataset or data name>``.
        resume: continue the run in ``out`` from its last checkpoint (a
            fresh start when it has none).
        overwrite: replace a run already in ``out``.

    Generator and discriminator:
        preset: ``"small"`` (default; a narrow generator that fits 28-32 px
            data on a CPU in minutes) or ``"paper"`` (the reference, about
            15 M parameters; meant for a GPU).
        dim, mlp_dim, style_dim, n_res: override the preset's value.
        warp: the geometric part of the nuisance. ``"auto"`` (default): before
            training, a small detector learns which rotations, scalings and
            shifts of a real image it can tell from untouched ones
            (:mod:`gitaug.fit.nuisance_probe`); the generator then turns,
            scales and shifts its draws uniformly within the ranges the
            detector cannot see (:class:`gitaug.generator.RangeWarp`). Data
            whose digits stand upright gets a rotation range near 0, data
            turned at random nearly 180 degrees. ``"affine"``: the same warp
            with the ranges given by ``warp_rotation``, ``warp_scale`` and
            ``warp_shift`` (no test). ``"none"``: no warp (the paper's
            generator). ``"rotation"`` / ``"similarity"``: an older,
            unbounded warp learned from the style code
            (:class:`gitaug.generator.StyleWarp`); it needs
            ``weight_warp_diversity`` > 0, and on upright digits it turned
            them anyway and the decoder collapsed to one shape.
        warp_rotation, warp_scale, warp_shift: fix a range instead of testing
            it (largest turn in degrees, largest scale factor >= 1, largest
            shift per axis as a fraction of the side); with ``"auto"`` the
            others are still tested. ``None``: tested (``"auto"``) or no such
            transform (``"affine"``).
        probe_steps: detector training steps per transform family in the
            ``"auto"`` test.
        disc_dim: width of the discriminator's first layer; ``None`` is 64
            for ``"paper"`` and 32 for ``"small"``.
        disc_layers: stride-2 convolutions per scale (fewer at a scale whose
            input is too small to keep a 2x2 output).
        disc_scales: image scales the discriminator looks at (each half the
            size of the one before).

    Optimization (the paper's values except steps, batch size and lr):
        steps: training iterations (one generator and one discriminator update each).
        batch_size: images per iteration over all processes. The paper
            used 1; the default is 32 because one image per step leaves a
            GPU (and most of a CPU's vector units) idle, while the networks
            use instance norm, so images in a batch do not share statistics
            and the per-image objective is unchanged. 1500 steps of 32 show
            the generator about 48k images, several times the paper's 10k
            single-image iterations on K49.
        lr: Adam learning rate of the generator (and of the discriminator
            unless ``lr_disc`` is set).
        lr_disc: Adam learning rate of the discriminator; ``None`` is ``lr``.
            A faster critic (two time-scale updates) is an option when the
            discriminator loss sits near chance (about 1.0 per scale pair).
        beta1, beta2: Adam betas.
        weight_decay: Adam weight decay.
        lr_step_every, lr_gamma: multiply the learning rate by ``lr_gamma``
            every ``lr_step_every`` iterations.
        weight_image, weight_style, weight_content, weight_adv: loss weights
            (image reconstruction, style reconstruction, content
            reconstruction, adversarial).
        weight_diversity: weight of a mode-seeking term (not in the paper,
            which is ``0``: off, saving one decoder pass per step; default 10). Two
            styles are decoded from the same content, and the term rewards
            ``mean|G(c, s1) - G(c, s2)| / mean|s1 - s2|`` up to
            ``diversity_cap``. Without it the fitted style code can end up
            ignored: reconstruction alone is best served by an autoencoder,
            and a weak discriminator does not object.
        weight_warp_diversity: weight of the same term measured on the warp
            alone (one decoded image, warped by both styles; needs ``warp``).
            It rewards geometric variation only, where ``weight_diversity``
            also rewards texture and background changes.
        diversity_cap: the ratio above which more diversity earns nothing,
            so the terms cannot push the generator into noise. Images are in
            [-1, 1] and ``mean|s1 - s2|`` is about 1.13, so 0.2 asks for
            draws that differ by about 0.11 per pixel (in [0, 1] units).

    Running:
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a torch device string.
        amp: mixed precision, ``"bf16"``, ``"fp16"`` (with gradient
            scaling), ``"none"``, or ``"auto"`` (bf16 on a CUDA device that
            supports it, none elsewhere).
        checkpoint_every: write a checkpoint every this many iterations (0: only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        sample_every: write a sample grid every this many iterations (0: only at the end).
        log_every: append averaged losses to ``log.jsonl`` every this many iterations.
        grid_variants: generated variants per row of a sample grid.
        tensorboard: also write TensorBoard scalars (needs ``tensorboard``).
        push_to_hub: a Hub repo id to upload the exported generator to.
        progress: show a progress bar.

    Example::

        config = FitConfig(data="my_images/", out="runs/mine", steps=5000, device="cuda")
    """

    # data
    dataset: str | None = None
    data: str | None = None
    image_size: int | None = None
    channels: int | None = None
    sampling: str = "auto"
    seed: int = 0
    # output
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    # generator and discriminator
    preset: str = "small"
    dim: int | None = None
    mlp_dim: int | None = None
    style_dim: int | None = None
    n_res: int | None = None
    warp: str = "auto"
    warp_rotation: float | None = None
    warp_scale: float | None = None
    warp_shift: float | None = None
    probe_steps: int = 200
    disc_dim: int | None = None
    disc_layers: int = 4
    disc_scales: int = 2
    # optimization
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-4
    lr_disc: float | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4
    lr_step_every: int = 100_000
    lr_gamma: float = 0.5
    weight_image: float = 10.0
    weight_style: float = 1.0
    weight_content: float = 1.0
    weight_adv: float = 1.0
    weight_diversity: float = 10.0
    weight_warp_diversity: float = 0.0
    diversity_cap: float = 0.2
    # running
    device: str = "auto"
    amp: str = "auto"
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 500
    log_every: int = 10
    grid_variants: int = 8
    tensorboard: bool = False
    push_to_hub: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid FitConfig: " + "; ".join(problems))

    # ------------------------------------------------------------------ derived values

    @property
    def output_dir(self) -> Path:
        """The run folder: ``out``, or ``runs/<dataset or data name>`` when it is not set."""
        if self.out is not None:
            return Path(self.out)
        name = self.dataset if self.dataset is not None else Path(str(self.data)).stem
        return Path("runs") / name

    @property
    def resolved_disc_dim(self) -> int:
        """The discriminator width, with the preset's default filled in."""
        if self.disc_dim is not None:
            return self.disc_dim
        return 64 if self.preset == "paper" else 32

    def generator_overrides(self) -> dict[str, Any]:
        """The architecture fields set here, to apply over the preset."""
        names = ("dim", "mlp_dim", "style_dim", "n_res")
        overrides: dict[str, Any] = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if self.warp in ("none", "rotation", "similarity"):
            overrides["warp"] = self.warp
        # "auto" and "affine": the fit adds warp="affine" and the ranges (tested or given)
        return overrides

    # ------------------------------------------------------------------ conversion

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "FitConfig":
        """Build from a mapping (a parsed file); keys may use ``-`` or ``_``; unknown keys are an error.

        Example::

            >>> FitConfig.from_dict({"dataset": "digits-bg-lt", "batch-size": 8}).batch_size
            8
        """
        known = {field.name for field in dataclasses.fields(cls)}
        normalized = {str(key).replace("-", "_"): value for key, value in values.items()}
        unknown = sorted(set(normalized) - known)
        if unknown:
            raise ValueError(f"unknown FitConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**normalized)

    def replace(self, **changes: Any) -> "FitConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run configuration from a ``.json`` or ``.toml`` file as a flat dict.

    A TOML file may put its keys at the top level or under a ``[fit]`` table.

    Example::

        values = load_config_file("fit.toml")
        config = FitConfig.from_dict(values)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"config file {str(path)!r} is not valid JSON: {err}") from err
    elif suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - depends on the interpreter
            import tomli as tomllib
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {err}") from err
        if isinstance(values.get("fit"), dict) and len(values) == 1:
            values = values["fit"]
    else:
        raise ValueError(f"config file {str(path)!r} must end in .json or .toml, got {suffix or 'no suffix'!r}")
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a table/object of settings, got {type(values).__name__}")
    return values


# --------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_device(name: str) -> bool:
    if name == "auto":
        return True
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def _problems(config: FitConfig) -> list[str]:
    """Every invalid value of ``config``, each as ``"name=value: reason"``."""
    problems: list[str] = []

    def bad(name: str, reason: str) -> None:
        problems.append(f"{name}={getattr(config, name)!r}: {reason}")

    if (config.dataset is None) == (config.data is None):
        problems.append(
            f"dataset={config.dataset!r}, data={config.data!r}: give exactly one of dataset (a built-in name) "
            "and data (a folder or .npz path)"
        )
    for name in ("dataset", "data", "out", "push_to_hub"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, (str, os.PathLike)) or not os.fspath(value)):
            bad(name, "must be a non-empty string or None")
    if config.image_size is not None and (not _is_int(config.image_size) or config.image_size < 16):
        bad("image_size", "must be an integer >= 16 (the content map needs at least 4x4) or None")
    elif config.image_size is not None and config.image_size % 4:
        bad("image_size", "must be divisible by 4 (the generator downsamples twice)")
    if config.channels not in (None, 1, 3) or isinstance(config.channels, bool):
        bad("channels", "must be 1 (gray), 3 (RGB) or None (from the data)")
    if config.sampling not in SAMPLING_MODES:
        bad("sampling", f"must be one of {SAMPLING_MODES}")
    if not _is_int(config.seed) or config.seed < 0:
        bad("seed", "must be a non-negative integer")
    for name in ("resume", "overwrite", "tensorboard", "progress"):
        if not isinstance(getattr(config, name), bool):
            bad(name, "must be true or false")
    if config.resume is True and config.overwrite is True:
        problems.append("resume=True, overwrite=True: choose one of resume and overwrite")
    if config.preset not in PRESET_NAMES:
        bad("preset", f"must be one of {PRESET_NAMES}")
    for name in ("dim", "mlp_dim", "style_dim", "disc_dim"):
        value = getattr(config, name)
        if value is not None and (not _is_int(value) or value < 1):
            bad(name, "must be a positive integer or None (the preset's value)")
    if config.n_res is not None and (not _is_int(config.n_res) or config.n_res < 0):
        bad("n_res", "must be a non-negative integer or None (the preset's value)")
    for name in ("disc_layers", "disc_scales", "steps", "batch_size", "lr_step_every", "log_every", "keep_checkpoints"):
        value = getattr(config, name)
        if not _is_int(value) or value < 1:
            bad(name, "must be a positive integer")
    for name in ("checkpoint_every", "sample_every", "grid_variants"):
        value = getattr(config, name)
        if not _is_int(value) or value < 0:
            bad(name, "must be a non-negative integer")
    if not _is_number(config.lr) or config.lr <= 0:
        bad("lr", "must be a positive, finite number")
    if config.lr_disc is not None and (not _is_number(config.lr_disc) or config.lr_disc <= 0):
        bad("lr_disc", "must be a positive, finite number or None (the same as lr)")
    for name in ("beta1", "beta2"):
        value = getattr(config, name)
        if not _is_number(value) or not 0 <= value < 1:
            bad(name, "must be a number in [0, 1)")
    if not _is_number(config.weight_decay) or config.weight_decay < 0:
        bad("weight_decay", "must be a non-negative, finite number")
    if not _is_number(config.lr_gamma) or not 0 < config.lr_gamma <= 1:
        bad("lr_gamma", "must be a number in (0, 1]")
    if config.warp not in WARP_MODES:
        bad("warp", f"must be one of {WARP_MODES}")
    if config.warp not in ("rotation", "similarity") and _is_number(config.weight_warp_diversity) and config.weight_warp_diversity > 0:
        bad("weight_warp_diversity", "needs a learned warp (warp='rotation' or 'similarity'); there is none to reward")
    for name, low, high in (("warp_rotation", 0.0, 180.0), ("warp_scale", 1.0, 4.0), ("warp_shift", 0.0, 0.5)):
        value = getattr(config, name)
        if value is not None and (not _is_number(value) or not low <= value <= high):
            bad(name, f"must be a number in [{low:g}, {high:g}] or None")
        elif value is not None and config.warp not in ("auto", "affine"):
            bad(name, "needs warp='auto' or 'affine'")
    if not _is_int(config.probe_steps) or config.probe_steps < 1:
        bad("probe_steps", "must be a positive integer")
    if not _is_number(config.diversity_cap) or config.diversity_cap <= 0:
        bad("diversity_cap", "must be a positive, finite number")
    for name in ("weight_image", "weight_style", "weight_content", "weight_adv", "weight_diversity", "weight_warp_diversity"):
        value = getattr(config, name)
        if not _is_number(value) or value < 0:
            bad(name, "must be a non-negative, finite number")
    if not isinstance(config.device, str) or not _is_device(config.device):
        bad("device", "must be 'auto' or a torch device string such as 'cpu', 'cuda' or 'cuda:1'")
    if config.amp not in AMP_MODES:
        bad("amp", f"must be one of {AMP_MODES}")
    return problems
