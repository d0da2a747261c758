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
import json
import dataclasses
import logging
import sys
from typing import Any, Sequence

from .config import GROUPS, FitConfig, load_config_file

__all__ = ["main", "build_parser", "config_from_args"]

_NUMBER_TYPES = {"int": int, "float": float, "str": str}


def _flag_type(annotation: str) -> type:
    """The argparse type of a FitConfig field from its annotation (``"int | None"`` -> ``int``)."""
    return _NUMBER_TYPES[annotation.split("|")[0].strip()]


def build_parser(prog: str = "gitaug-fit") -> argparse.ArgumentParser:
    """The argument parser, generated from :class:`FitConfig`'s fields (each field's help is written once, there).

    Every option's default is ``None`` so that only given flags override a config file or a resumed run.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
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
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for item in dataclasses.fields(FitConfig):
        meta = dict(item.metadata)
        group, text = groups[meta.pop("group")], meta.pop("help")
        flag = "--" + item.name.replace("_", "-")
        annotation = str(item.type)
        if annotation == "bool":
            if item.default is True:  # a switch that turns a default on off
                group.add_argument("--no-" + item.name.replace("_", "-"), dest=item.name, action="store_false",
                                   default=None, help=text)
            else:
                group.add_argument(flag, action="store_true", default=None, help=text)
            continue
        if item.default is not None:
            text += f" (default: {item.default!r})"
        group.add_argument(flag, type=_flag_type(annotation), help=text, **meta)
    groups["running"].add_argument("--threads", type=int, help="CPU threads for torch (default: the cores available "
                                   "to the process)")
    parser.add_argument("--config", metavar="FILE", help="a .json or .toml file of settings (FitConfig field names); "
                        "flags given here override it")
    parser.add_argument("--print-config", action="store_true", help="print the settings this command would run with "
                        "(JSON, every field; usable as --config) and exit without fitting")
    return parser


_NOT_CONFIG = {"config", "threads", "print_config"}


def config_from_args(args: argparse.Namespace) -> FitConfig:
    """A :class:`FitConfig` from parsed arguments: the ``--config`` file's values, then the flags given.

    With ``--resume`` and no ``--config``, the settings the run in ``--out`` was
    started with are the base (its ``fit_config.json``), so a resume needs no
    flag but ``--out`` (and those that extend the run, such as ``--steps``).

    Example::

        >>> args = build_parser().parse_args(["--dataset", "digits-bg-lt", "--steps", "10"])
        >>> config_from_args(args).steps
        10
    """
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update({key.replace("-", "_"): value for key, value in load_config_file(args.config).items()})
    elif args.resume and args.out is not None:
        values.update(_stored_settings(args.out))
    given = {name: value for name, value in vars(args).items() if name not in _NOT_CONFIG and value is not None}
    if given.get("dataset") is not None or given.get("data") is not None:
        values.pop("dataset", None)  # the data named on the command line replaces the stored one
        values.pop("data", None)
    values.update(given)
    return FitConfig.from_dict(values)


def _stored_settings(out: str) -> dict[str, Any]:
    from .run_folder import RunFolder

    stored = RunFolder(out).stored_config() or {}
    # How the stored run was started is not how this one is asked to start.
    return {name: value for name, value in stored.items() if name not in ("resume", "overwrite")}


def main(argv: Sequence[str] | None = None, prog: str = "gitaug-fit") -> int:
    """Entry point of the ``gitaug-fit`` console script; returns the exit status.

    Example::

        gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        parser.error(str(err))
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    import torch

    from .._threads import default_threads, warn_if_cpu_oversubscribed

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    else:  # never more threads than the cores this process may run on
        torch.set_num_threads(default_threads())
    if config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available()):
        warn_if_cpu_oversubscribed()

    # Imported here, not at the top: torch takes seconds to import and --help needs none of it.
    from .trainer import FitInterrupted, NonFiniteLossError, fit

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
    except OSError as err:  # a full disk, or a push that failed after the export was written
        print(f"gitaug-fit: error: {err}", file=sys.stderr)
        return 1
    print(f"gitaug-fit: the generator is in {out} (load it with GITAugment.from_pretrained({str(out)!r}))")
    return 0


if __name__ == "__main__":  # python -m gitaug.fit.cli (as torchrun launches it)
    sys.exit(main())
