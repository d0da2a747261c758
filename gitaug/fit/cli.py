"""``gitaug-fit``: fit a class-agnostic generator on your images from the command line.

Every flag maps onto a :class:`~gitaug.fit.FitConfig` field of the same name
(dashes for underscores). ``--config FILE`` reads a JSON or TOML file of
fields first; flags given on the command line override it.

Examples::

    gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt
    gitaug-fit --data my_images/ --out runs/mine --preset paper --steps 20000 --device cuda
    gitaug-fit --config fit.toml --resume
    torchrun --nproc_per_node 4 -m gitaug.fit.cli --data my_images/ --out runs/mine
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any, Sequence

from .config import AMP_MODES, PRESET_NAMES, SAMPLING_MODES, WARP_MODES, FitConfig, load_config_file
from .trainer import FitInterrupted, NonFiniteLossError, fit

__all__ = ["main", "build_parser", "config_from_args"]

_DEFAULTS = FitConfig(dataset="-")  # the documented default of every field


def _default(name: str) -> str:
    return f" (default: {getattr(_DEFAULTS, name)!r})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option's default is ``None`` so that only given flags override a config file."""
    parser = argparse.ArgumentParser(
        prog="gitaug-fit",
        description=(
            "Fit a class-agnostic, input-conditioned generator (single-domain MUNIT) on all training images "
            "pooled together, and export a folder that GITAugment.from_pretrained loads."
        ),
        epilog=(
            "Multi-GPU (or multi-process CPU): launch with torchrun, e.g. "
            "'torchrun --nproc_per_node 4 -m gitaug.fit.cli --data imgs/ --out runs/imgs'; "
            "--batch-size is then the global batch. Ctrl-C (SIGINT) or SIGTERM writes a checkpoint "
            "before exiting; continue with --resume."
        ),
        argument_default=None,
    )
    flag = parser.add_argument

    group = parser.add_argument_group("data (give --dataset or --data)")
    flag = group.add_argument
    flag("--dataset", metavar="NAME", help="a built-in dataset, e.g. digits-rot-lt, digits-bg-lt, digits-dil-lt")
    flag("--data", metavar="PATH", help="an image folder (one subfolder per class), a flat folder of images, "
         "or an .npz with 'images' (N,H,W[,C]) uint8 and optional 'labels'")
    flag("--image-size", type=int, metavar="S", help="resize every image to SxS; a multiple of 4, at least 16 "
         "(default: the data's most common size)")
    flag("--channels", type=int, choices=(1, 3), help="1 (gray) or 3 (RGB) (default: 1 if every image is gray)")
    flag("--sampling", choices=SAMPLING_MODES, help="balanced: every class equally often (needs labels); "
         "instance: every image equally often; auto: balanced when labels are known" + _default("sampling"))
    flag("--seed", type=int, help="seeds the built-in dataset and the run" + _default("seed"))

    group = parser.add_argument_group("output")
    flag = group.add_argument
    flag("--out", metavar="DIR", help="run folder; the exported generator is written at its top "
         "(default: runs/<dataset or data name>)")
    flag("--resume", action="store_true", default=None, help="continue the run in --out from its last checkpoint")
    flag("--overwrite", action="store_true", default=None, help="replace a run already in --out")
    flag("--push-to-hub", metavar="REPO", help="upload the exported generator to this Hugging Face Hub repo")

    group = parser.add_argument_group("networks")
    flag = group.add_argument
    flag("--preset", choices=PRESET_NAMES, help="generator size: small (CPU-friendly, for 28-32 px) or paper "
         "(the reference, ~15 M parameters, for a GPU)" + _default("preset"))
    flag("--dim", type=int, help="generator base width (default: the preset's)")
    flag("--mlp-dim", type=int, help="width of the style MLP (default: the preset's)")
    flag("--style-dim", type=int, help="length of the style code (default: the preset's)")
    flag("--n-res", type=int, help="residual blocks in the content encoder and decoder (default: the preset's)")
    flag("--warp", choices=WARP_MODES, help="auto: test which rotations, scalings and shifts the data does not "
         "notice and draw within those ranges; affine: the same warp with the ranges of --warp-rotation/-scale/"
         "-shift; none: no warp (the paper); rotation/similarity: an unbounded style-driven warp, use with "
         "--weight-warp-diversity" + _default("warp"))
    flag("--warp-rotation", type=float, metavar="DEGREES", help="fix the largest turn instead of testing it")
    flag("--warp-scale", type=float, metavar="FACTOR", help="fix the largest scale factor (>= 1) instead of testing it")
    flag("--warp-shift", type=float, metavar="FRACTION", help="fix the largest shift (fraction of the side) instead "
         "of testing it")
    flag("--probe-steps", type=int, help="detector steps per transform family of --warp auto" + _default("probe_steps"))
    flag("--disc-dim", type=int, help="discriminator base width (default: 64 for paper, 32 for small)")
    flag("--disc-layers", type=int, help="stride-2 layers per discriminator scale, at most" + _default("disc_layers"))
    flag("--disc-scales", type=int, help="image scales the discriminator looks at" + _default("disc_scales"))

    group = parser.add_argument_group("optimization")
    flag = group.add_argument
    flag("--steps", type=int, help="training iterations" + _default("steps"))
    flag("--batch-size", type=int, help="images per iteration, over all processes" + _default("batch_size"))
    flag("--lr", type=float, help="Adam learning rate" + _default("lr"))
    flag("--lr-disc", type=float, help="Adam learning rate of the discriminator (default: --lr)")
    flag("--beta1", type=float, help="Adam beta1" + _default("beta1"))
    flag("--beta2", type=float, help="Adam beta2" + _default("beta2"))
    flag("--weight-decay", type=float, help="Adam weight decay" + _default("weight_decay"))
    flag("--lr-step-every", type=int, help="halve (x --lr-gamma) the learning rate every this many iterations"
         + _default("lr_step_every"))
    flag("--lr-gamma", type=float, help="learning-rate decay factor" + _default("lr_gamma"))
    flag("--weight-image", type=float, help="weight of the image reconstruction loss" + _default("weight_image"))
    flag("--weight-style", type=float, help="weight of the style reconstruction loss" + _default("weight_style"))
    flag("--weight-content", type=float, help="weight of the content reconstruction loss" + _default("weight_content"))
    flag("--weight-adv", type=float, help="weight of the adversarial loss" + _default("weight_adv"))
    flag("--weight-diversity", type=float, help="weight of the mode-seeking term that rewards outputs which "
         "differ between two style draws, up to --diversity-cap (0: off, as the paper)" + _default("weight_diversity"))
    flag("--weight-warp-diversity", type=float, help="weight of the mode-seeking term for the warp alone: "
         "rewards draws that differ in geometry (needs --warp)" + _default("weight_warp_diversity"))
    flag("--diversity-cap", type=float, help="the output/style difference ratio above which the mode-seeking "
         "term rewards nothing more" + _default("diversity_cap"))

    group = parser.add_argument_group("running")
    flag = group.add_argument
    flag("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps" + _default("device"))
    flag("--amp", choices=AMP_MODES, help="mixed precision; auto is bf16 on a CUDA GPU that supports it, "
         "none elsewhere" + _default("amp"))
    flag("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    flag("--checkpoint-every", type=int, help="checkpoint every N iterations (0: only at the end)"
         + _default("checkpoint_every"))
    flag("--keep-checkpoints", type=int, help="how many recent checkpoints to keep" + _default("keep_checkpoints"))
    flag("--sample-every", type=int, help="write a sample grid every N iterations (0: only at the end)"
         + _default("sample_every"))
    flag("--log-every", type=int, help="append averaged losses to log.jsonl every N iterations" + _default("log_every"))
    flag("--grid-variants", type=int, help="generated variants per row of a sample grid" + _default("grid_variants"))
    flag("--tensorboard", action="store_true", default=None, help="also write TensorBoard scalars (needs tensorboard)")
    flag("--no-progress", dest="progress", action="store_false", default=None, help="hide the progress bar")

    parser.add_argument("--config", metavar="FILE", help="a .json or .toml file of settings (FitConfig field names); "
                        "flags given here override it")
    return parser


_NOT_CONFIG = {"config", "threads"}


def config_from_args(args: argparse.Namespace) -> FitConfig:
    """A :class:`FitConfig` from parsed arguments: the ``--config`` file's values, then the flags given.

    Example::

        >>> args = build_parser().parse_args(["--dataset", "digits-bg-lt", "--steps", "10"])
        >>> config_from_args(args).steps
        10
    """
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update({key.replace("-", "_"): value for key, value in load_config_file(args.config).items()})
    fields = {field.name for field in dataclasses.fields(FitConfig)}
    for name, value in vars(args).items():
        if name in _NOT_CONFIG or value is None:
            continue
        assert name in fields, name  # every flag is a config field
        values[name] = value
    return FitConfig.from_dict(values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gitaug-fit`` console script; returns the exit status.

    Example::

        gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        parser.error(str(err))
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be a positive integer, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.captureWarnings(True)
    try:
        out = fit(config)
    except FitInterrupted as stopped:
        print(f"gitaug-fit: {stopped}; continue with --resume", file=sys.stderr)
        return 128 + stopped.signal_number
    except KeyboardInterrupt:
        print("gitaug-fit: aborted without a checkpoint (resume continues from the last one)", file=sys.stderr)
        return 130
    except NonFiniteLossError as err:
        print(f"gitaug-fit: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"gitaug-fit: error: {err}", file=sys.stderr)
        return 2
    print(f"gitaug-fit: the generator is in {out} (load it with GITAugment.from_pretrained({str(out)!r}))")
    return 0


if __name__ == "__main__":  # python -m gitaug.fit.cli (as torchrun launches it)
    sys.exit(main())
