"""The typed configuration of a ``gitaug-fit`` run.

Every knob of a run lives in :class:`FitConfig`: the command line, a JSON or
TOML file and Python code all build one, and the run stores it next to its
checkpoints so that ``--resume`` can tell whether it continues the same run.

Example::

    >>> from gitaug.fit import FitConfig
    >>> config = FitConfig(dataset="digits-bg-lt", out="runs/digits-bg-lt")
    >>> config.batch_size, config.preset
    (32, 'small')
    >>> FitConfig.describe("steps")
    'training iterations (one generator and one discriminator update each)'
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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

__all__ = ["FitConfig", "load_config_file", "RESUMABLE_FIELDS", "GROUPS"]

from .._architecture import IMAGE_SIZE_MULTIPLE, MIN_IMAGE_SIZE, PRESETS, WARPS

SAMPLING_MODES = ("auto", "balanced", "instance")
AMP_MODES = ("auto", "bf16", "fp16", "none")
#: gitaug-fit's warp modes: "auto" (test the data for its geometric nuisance) or a generator warp.
WARP_MODES = ("auto", *WARPS)
#: --warp-background: test the background swap (auto) or never recolour (keep).
WARP_BACKGROUND_MODES = ("auto", "keep")
#: ``--warp-contrast``: test the contrast family (auto) or draw with the input's contrast (keep).
WARP_CONTRAST_MODES = ("auto", "keep")
#: ``--warp-flip``: test whether a mirror image goes unseen (auto), or never mirror (keep).
WARP_FLIP_MODES = ("auto", "keep")
#: Experiment trackers besides TensorBoard (gitaug.fit.trackers), each through its official client.
TRACKERS = ("wandb", "mlflow")

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
        "tracker",
        "tracker_project",
        "tracker_run_name",
        "push_to_hub",
        "progress",
        "report",
    }
)


def _setting(default: Any, group: str, help: str, **flag: Any) -> Any:
    """A FitConfig field with its one description: ``help`` is the flag's help and the field's documentation."""
    return field(default=default, metadata={"group": group, "help": help, **flag})


#: The ``gitaug-fit --help`` groups, in order.
GROUPS = ("data", "output", "networks", "optimization", "running")


@dataclass
class FitConfig:
    """Everything a ``gitaug-fit`` run needs.

    Each field is documented once, in its ``metadata["help"]``, which is also
    the help of its ``gitaug-fit`` flag (``--`` and the name with dashes):
    ``gitaug-fit --help`` lists them all, grouped as data, output, networks,
    optimization and running. Give exactly one of ``dataset`` and ``data``.

    Example::

        config = FitConfig(data="my_images/", out="runs/mine", steps=5000, device="cuda")
        FitConfig.describe("batch_size")   # the field's documentation
    """

    # data
    dataset: str | None = _setting(None, "data", "a built-in dataset of gitaug.datasets (its training split), "
                                   "e.g. digits-rot-lt, digits-bg-lt, digits-dil-lt", metavar="NAME")
    data: str | None = _setting(None, "data", "an image folder (one subfolder per class), a flat folder of images, "
                                "or an .npz with 'images' (N,H,W[,C]) uint8 and optional 'labels'", metavar="PATH")
    image_size: int | None = _setting(None, "data", "side of the square training images: a multiple of 4, at least "
                                      "16 (default: the data's most common size, rounded)", metavar="S")
    channels: int | None = _setting(None, "data", "1 (gray) or 3 (RGB) (default: 1 if every image is gray)",
                                    choices=(1, 3))
    sampling: str = _setting("auto", "data", "balanced: every class equally often, as the paper (needs labels); "
                             "instance: every image equally often; auto: balanced when labels are known",
                             choices=SAMPLING_MODES)
    seed: int = _setting(0, "data", "seeds the built-in dataset and the whole run")
    # output
    out: str | None = _setting(None, "output", "the run folder; the exported generator goes to its generator/ "
                               "sub-folder (default: runs/<dataset or data name>)", metavar="DIR")
    resume: bool = _setting(False, "output", "continue the run in --out from its last checkpoint, with the settings "
                            "it was started with (flags given only extend it, e.g. --steps)")
    overwrite: bool = _setting(False, "output", "replace the run in --out (only what that run wrote is removed)")
    # generator and discriminator
    preset: str = _setting("small", "networks", "generator size: small (CPU-friendly, for 28-32 px) or paper (the "
                           "reference, about 15 M parameters, for a GPU)", choices=tuple(PRESETS))
    dim: int | None = _setting(None, "networks", "generator base width (default: the preset's)")
    mlp_dim: int | None = _setting(None, "networks", "width of the style MLP (default: the preset's)")
    style_dim: int | None = _setting(None, "networks", "length of the style code (default: the preset's)")
    n_res: int | None = _setting(None, "networks", "residual blocks in the content encoder and decoder "
                                 "(default: the preset's)")
    warp: str = _setting("auto", "networks", "the tested part of the nuisance. auto: before training, a small "
                         "detector learns which rotations, scalings and shifts of a real image it can tell from "
                         "untouched ones (gitaug.fit.nuisance_probe), and the generator turns, scales and shifts its "
                         "draws uniformly within the ranges it cannot see (RangeWarp), and swaps their flat "
                         "background for one of the data's when it cannot see that either (--warp-background); "
                         "affine: the same warp with the ranges of --warp-rotation/--warp-scale/--warp-shift "
                         "(no background swap); none: no warp (the paper); "
                         "rotation/similarity: an older unbounded warp learned from the style code, for "
                         "--weight-warp-diversity", choices=WARP_MODES)
    warp_rotation: float | None = _setting(None, "networks", "fix the largest turn (degrees, <= 180) instead of "
                                           "testing it", metavar="DEGREES")
    warp_scale: float | None = _setting(None, "networks", "fix the largest scale factor (>= 1) instead of testing it",
                                        metavar="FACTOR")
    warp_shift: float | None = _setting(None, "networks", "fix the largest shift per axis (a fraction of the side, "
                                        "<= 0.5) instead of testing it", metavar="FRACTION")
    warp_background: str = _setting("auto", "networks", "with --warp auto: auto tests whether swapping an image's "
                                    "flat background for another training image's goes unseen, and if so draws "
                                    "swap it for one of the data's background values; keep: draws keep the "
                                    "input's background", choices=WARP_BACKGROUND_MODES)
    warp_contrast: str = _setting("auto", "networks", "with --warp auto: auto also tests which contrast factors "
                                  "(intensities scaled about the image's background value: faded or stronger ink) "
                                  "go unseen, and draws scale their inputs' contrast within that range; keep: draws "
                                  "keep the input's contrast", choices=WARP_CONTRAST_MODES)
    warp_flip: str = _setting("auto", "networks", "with --warp auto: auto also tests whether an image mirrored left "
                              "to right goes unseen (data that holds every image's mirror image), and if so draws "
                              "mirror half their inputs; keep: draws are never mirrored", choices=WARP_FLIP_MODES)
    probe_steps: int = _setting(200, "networks", "detector training steps per transform family in the --warp auto test")
    disc_dim: int | None = _setting(None, "networks", "discriminator base width (default: 64 for paper, 32 for small)")
    disc_layers: int = _setting(4, "networks", "stride-2 convolutions per discriminator scale, at most (fewer at a "
                                "scale too small to keep a 2x2 output)")
    disc_scales: int = _setting(2, "networks", "image scales the discriminator looks at, each half the one before")
    # optimization
    steps: int = _setting(1500, "optimization", "training iterations (one generator and one discriminator update each)")
    batch_size: int = _setting(32, "optimization", "images per iteration over all processes (the paper used 1; the "
                               "networks use instance norm, so the per-image objective is the same)")
    lr: float = _setting(1e-4, "optimization", "Adam learning rate of the generator (and the discriminator unless "
                         "--lr-disc is given)")
    lr_disc: float | None = _setting(None, "optimization", "Adam learning rate of the discriminator (default: --lr); "
                                     "a faster critic is an option when its loss sits near chance")
    beta1: float = _setting(0.5, "optimization", "Adam beta1")
    beta2: float = _setting(0.999, "optimization", "Adam beta2")
    weight_decay: float = _setting(1e-4, "optimization", "Adam weight decay")
    lr_step_every: int = _setting(100_000, "optimization", "multiply the learning rates by --lr-gamma every this "
                                  "many iterations")
    lr_gamma: float = _setting(0.5, "optimization", "learning-rate decay factor")
    weight_image: float = _setting(10.0, "optimization", "weight of the image reconstruction loss")
    weight_style: float = _setting(1.0, "optimization", "weight of the style reconstruction loss")
    weight_content: float = _setting(1.0, "optimization", "weight of the content reconstruction loss")
    weight_adv: float = _setting(1.0, "optimization", "weight of the adversarial loss")
    weight_diversity: float = _setting(10.0, "optimization", "weight of a bounded mode-seeking term (not in the paper, "
                                       "which is 0: off) that rewards two style draws of one input for differing, up "
                                       "to --diversity-cap; without it the style code ends up ignored")
    weight_warp_diversity: float = _setting(0.0, "optimization", "weight of the same term on the warp alone: "
                                            "rewards draws that differ in geometry (needs --warp)")
    diversity_cap: float = _setting(0.2, "optimization", "the ratio mean|G(c,s1)-G(c,s2)| / mean|s1-s2| above which "
                                    "the mode-seeking terms reward nothing more (0.2 asks for draws about 0.11 apart "
                                    "per pixel in [0, 1] units)")
    # running
    device: str = _setting("auto", "running", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    amp: str = _setting("auto", "running", "mixed precision: bf16, fp16 (with gradient scaling), none, or auto "
                        "(bf16 on a CUDA GPU that supports it, none elsewhere)", choices=AMP_MODES)
    checkpoint_every: int = _setting(500, "running", "write a checkpoint every this many iterations (0: only at the end)")
    keep_checkpoints: int = _setting(3, "running", "how many recent checkpoints to keep")
    sample_every: int = _setting(500, "running", "write a sample grid every this many iterations (0: only at the end)")
    log_every: int = _setting(10, "running", "append averaged losses to log.jsonl every this many iterations")
    grid_variants: int = _setting(8, "running", "generated variants per row of a sample grid")
    tensorboard: bool = _setting(False, "running", "also write TensorBoard scalars, the sample grids and the final "
                                 "report to <out>/tensorboard (needs tensorboard)")
    tracker: str | None = _setting(None, "running", "also log the same to an experiment tracker: wandb (Weights & "
                                   "Biases) or mlflow, through its own client, which must be installed (pip install "
                                   "wandb / mlflow) and configured as usual", choices=TRACKERS)
    tracker_project: str | None = _setting(None, "running", "the W&B project or MLflow experiment (default: the "
                                           "library's own, e.g. from WANDB_PROJECT or MLFLOW_EXPERIMENT_NAME)",
                                           metavar="NAME")
    tracker_run_name: str | None = _setting(None, "running", "the tracker's name for this run (default: the run "
                                            "folder's name)", metavar="NAME")
    push_to_hub: str | None = _setting(None, "running", "upload the exported generator to this Hugging Face Hub repo",
                                       metavar="REPO")
    progress: bool = _setting(True, "running", "show a progress bar (--no-progress hides it)")
    report: bool = _setting(True, "running", "measure the fitted generator at the end (gitaug eval's report: spread "
                            "between draws, reconstruction, warp range, class preservation; a verdict with warnings) "
                            "and store it in the export (--no-report skips it)")

    @classmethod
    def describe(cls, name: str) -> str:
        """The documentation of field ``name``.

        Example::

            >>> FitConfig.describe("seed")
            'seeds the built-in dataset and the whole run'
        """
        for item in fields(cls):
            if item.name == name:
                return item.metadata["help"]
        raise ValueError(f"FitConfig has no field {name!r}")

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

    @property
    def resolved_lr_disc(self) -> float:
        """The discriminator's learning rate: ``lr_disc``, or ``lr`` when it is not set."""
        return self.lr if self.lr_disc is None else self.lr_disc

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
    for name in ("dataset", "data", "out", "push_to_hub", "tracker_project", "tracker_run_name"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, (str, os.PathLike)) or not os.fspath(value)):
            bad(name, "must be a non-empty string or None")
    if config.image_size is not None and (not _is_int(config.image_size) or config.image_size < MIN_IMAGE_SIZE):
        bad("image_size", f"must be an integer >= {MIN_IMAGE_SIZE} (the content map needs at least 4x4) or None")
    elif config.image_size is not None and config.image_size % IMAGE_SIZE_MULTIPLE:
        bad("image_size", f"must be divisible by {IMAGE_SIZE_MULTIPLE} (the generator downsamples twice)")
    if config.channels not in (None, 1, 3) or isinstance(config.channels, bool):
        bad("channels", "must be 1 (gray), 3 (RGB) or None (from the data)")
    if config.sampling not in SAMPLING_MODES:
        bad("sampling", f"must be one of {SAMPLING_MODES}")
    if not _is_int(config.seed) or config.seed < 0:
        bad("seed", "must be a non-negative integer")
    for name in ("resume", "overwrite", "tensorboard", "progress", "report"):
        if not isinstance(getattr(config, name), bool):
            bad(name, "must be true or false")
    if config.tracker is not None and config.tracker not in TRACKERS:
        bad("tracker", f"must be one of {TRACKERS} or None")
    for name in ("tracker_project", "tracker_run_name"):
        if getattr(config, name) is not None and config.tracker is None:
            bad(name, "needs a tracker (tracker='wandb' or 'mlflow')")
    if config.resume is True and config.overwrite is True:
        problems.append("resume=True, overwrite=True: choose one of resume and overwrite")
    if config.preset not in PRESETS:
        bad("preset", f"must be one of {tuple(PRESETS)}")
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
    if config.warp_background not in WARP_BACKGROUND_MODES:
        bad("warp_background", f"must be one of {WARP_BACKGROUND_MODES}")
    if config.warp_contrast not in WARP_CONTRAST_MODES:
        bad("warp_contrast", f"must be one of {WARP_CONTRAST_MODES}")
    if config.warp_flip not in WARP_FLIP_MODES:
        bad("warp_flip", f"must be one of {WARP_FLIP_MODES}")
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
