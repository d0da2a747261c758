"""The ``gitaug`` command: fit, preview, evaluate and publish generators.

Subcommands::

    gitaug fit --dataset digits-bg-lt --out runs/digits-bg-lt     # the flags of gitaug-fit
    gitaug preview --generator digits-rot-lt --data digits-rot-lt --out grid.png
    gitaug eval --generator runs/digits-bg-lt --data held_out.npz
    gitaug eval --generator runs/digits-bg-lt --data digits-bg-lt --classifier runs/drs.safetensors
    gitaug push runs/digits-bg-lt my-org/digits-bg-lt
    gitaug list
    gitaug --version

``--generator`` takes what :meth:`gitaug.GITAugment.from_pretrained` takes: a
pretrained name (``gitaug list``), a folder or a Hub repo id. ``--data`` takes
an ``.npz`` with ``images`` (N, H, W[, C]) uint8 and optional ``labels``, an
image folder (one subfolder per class, or flat), or a built-in dataset name.

Nothing here imports torch before the arguments are parsed, so ``--help`` and
``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

PROG = "gitaug"


class CommandError(Exception):
    """A problem with the command's inputs, reported as ``gitaug <command>: error: ...`` with status 2."""


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand except ``fit``, whose flags belong to ``gitaug-fit``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generative Invariance Transfer: fit, preview, evaluate and publish class-agnostic generators.",
        epilog="'gitaug fit --help' lists the fitting flags. A generator is a pretrained name "
        "('gitaug list'), a folder, or a Hugging Face Hub repo id.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("fit", help="fit a generator on your images (the same flags as gitaug-fit)", add_help=False)

    def data_flags(command: argparse.ArgumentParser) -> None:
        command.add_argument("--generator", required=True, metavar="G",
                             help="a pretrained name, a generator folder, or a Hub repo id")
        command.add_argument("--data", required=True, metavar="D",
                             help="an .npz with 'images' (and 'labels'), an image folder, or a built-in dataset name")
        command.add_argument("--split", default="test", choices=("train", "val", "test"),
                             help="the split of a built-in dataset (default: test, images the generator never saw)")
        command.add_argument("--seed", type=int, default=0, help="seeds the built-in dataset and every draw (default: 0)")

    preview = commands.add_parser("preview", help="write a labelled sample grid of a generator on your images",
                                  description="Write a PNG: one image per class (smallest classes first), each "
                                  "followed by generated variants; rows name the class and its training count.")
    data_flags(preview)
    preview.add_argument("--out", default="grid.png", metavar="PNG", help="the image to write (default: grid.png)")
    preview.add_argument("--rows", type=int, default=10, help="rows (classes) at most (default: 10)")
    preview.add_argument("--variants", type=int, default=8, help="generated variants per row (default: 8)")
    preview.add_argument("--warp-extent", type=float, default=None, metavar="E",
                         help="draw with the warp's ranges times E (default: the generator's recommended draw's)")

    evaluate = commands.add_parser("eval", help="the generator report: does it vary, keep inputs apart, keep classes?",
                                   description="Measure a generator on your images (see gitaug.report) and print a "
                                   "verdict; exits with status 1 when the generator looks unusable for GIT.")
    data_flags(evaluate)
    evaluate.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    evaluate.add_argument("--max-images", type=int, default=2000,
                          help="use at most this many images for the report, drawn at random (default: 2000)")
    evaluate.add_argument("--classifier", metavar="CKPT",
                          help="also measure this classifier's per-class eKLD under the generator's draws: a "
                          ".safetensors file written by gitaug.longtail.classifiers.save_classifier (or "
                          "examples/train_longtail.py --save-classifier); needs labelled --data")
    evaluate.add_argument("--ekld-inputs", type=int, default=40,
                          help="eKLD: inputs per class (default: 40, as the paper)")
    evaluate.add_argument("--ekld-draws", type=int, default=100,
                          help="eKLD: generator draws per input (default: 100, as the paper)")

    push = commands.add_parser("push", help="upload a generator folder to the Hugging Face Hub",
                               description="Upload a generator folder (config.json, model.safetensors, README.md, "
                               "samples.png) to a Hub model repo, creating it if needed.")
    push.add_argument("folder", help="a folder written by gitaug fit or save_pretrained")
    push.add_argument("repo_id", help="the Hub repo, e.g. my-org/digits-rot-lt")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--revision", help="the branch to upload to")
    push.add_argument("--token", help="a Hub token (default: the one huggingface_hub has stored)")

    commands.add_parser("list", help="list the pretrained generators that ship with gitaug")
    return parser


# ----------------------------------------------------------------------------- shared pieces


def _threads() -> None:
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(4, torch.get_num_threads()))  # a preview is small; leave the machine usable


def _load_generator(name: str):
    from .augment import GITAugment

    try:
        return GITAugment.from_pretrained(name)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise CommandError(f"--generator {name!r}: {err}") from err


def _read_data(args: argparse.Namespace, aug) -> tuple[Any, Any, list[str] | None, str]:
    """Images (uint8, the generator's size and channels), labels or None, class names or None, and a description."""
    import torch

    from . import datasets
    from .fit.data import read_training_data

    config = aug.generator.config
    path = Path(args.data)
    if not path.exists() and args.data in datasets.available():
        dataset = datasets.load(args.data, split=args.split, seed=args.seed)
        images = dataset.images
        if images.shape[1] != config.in_channels or images.shape[-1] != config.image_size:
            import torch.nn.functional as F

            floats = images.float() / 255
            if images.shape[1] != config.in_channels:
                floats = floats.mean(1, keepdim=True) if config.in_channels == 1 else floats.expand(-1, 3, -1, -1)
            floats = F.interpolate(floats, size=(config.image_size,) * 2, mode="bilinear", antialias=True)
            images = (floats * 255).round().clamp(0, 255).to(torch.uint8)
        return images, dataset.targets, list(dataset.classes), f"{args.data} ({args.split} split, seed {args.seed})"
    try:
        data = read_training_data(data=path, image_size=config.image_size, channels=config.in_channels)
    except FileNotFoundError as err:
        known = ", ".join(datasets.available())
        raise CommandError(f"--data {args.data!r} is neither a file, a folder nor a built-in dataset ({known})") from err
    except ValueError as err:
        raise CommandError(f"--data {args.data!r}: {err}") from err
    if not data.labelled:
        return data.images, None, None, str(path)
    return data.images, data.targets, list(data.classes), str(path)


def _training_counts(labels, class_names: list[str] | None, metadata: dict[str, Any]) -> list[int] | None:
    """The generator's training count per class, when its classes are those of ``labels``; else ``None``."""
    trained_counts = metadata.get("class_counts")
    trained_names = metadata.get("class_names")
    same_classes = (
        isinstance(trained_counts, list)
        and (class_names is None or trained_names is None or list(trained_names) == list(class_names))
        and int(labels.max()) < len(trained_counts)
    )
    return [int(c) for c in trained_counts] if same_classes else None


def _row_labels(labels, rows, class_names: list[str] | None, metadata: dict[str, Any]) -> list[str]:
    """Class name and training count per row: the generator's training counts when they match these classes."""
    from .fit.grid import class_row_labels

    trained_counts = _training_counts(labels, class_names, metadata)
    if trained_counts is None:
        return class_row_labels(labels, rows, class_names)  # counts in the data given
    labelled = []
    for cls in labels[rows].tolist():
        name = class_names[cls] if class_names is not None else str(cls)
        count = int(trained_counts[cls])
        labelled.append(f"{name}\n{count} in training")
    return labelled


# ----------------------------------------------------------------------------- subcommands


def _preview(args: argparse.Namespace) -> int:
    from .generator import _check_warp_extent

    try:  # checked before anything is loaded
        extent = None if args.warp_extent is None else _check_warp_extent(args.warp_extent)
    except ValueError as err:
        raise CommandError(f"--warp-extent: {err}") from err
    for name in ("rows", "variants"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if not args.out.lower().endswith(".png"):
        raise CommandError(f"--out must name a .png file, got {args.out!r}")
    _threads()
    from .fit.grid import grid_rows, save_sample_grid

    aug = _load_generator(args.generator)
    extent = aug.warp_extent if extent is None else extent
    images, labels, class_names, source = _read_data(args, aug)
    # Smallest class first, by the generator's training counts where it has them: held-out splits are balanced.
    sizes = _training_counts(labels, class_names, aug.metadata) if labels is not None else None
    rows = grid_rows(labels, len(images), max_rows=args.rows, seed=args.seed, class_sizes=sizes)
    row_labels = _row_labels(labels, rows, class_names, aug.metadata) if labels is not None else None
    out = save_sample_grid(args.out, aug.generator, images[rows], variants=args.variants, seed=args.seed,
                           row_labels=row_labels, residual=aug.residual, styles=aug.styles,
                           appearance_scale=aug.appearance_scale, warp_extent=extent)
    print(f"{PROG} preview: wrote {out} ({len(rows)} rows of {source}, {args.variants} variants each)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.max_images < 2:
        raise CommandError(f"--max-images must be at least 2, got {args.max_images}")
    for name in ("ekld_inputs", "ekld_draws"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    _threads()
    import torch

    from .report import generator_report

    aug = _load_generator(args.generator)
    classifier = _load_classifier(args.classifier) if args.classifier else None  # a bad file fails before any work
    all_images, all_labels, class_names, source = _read_data(args, aug)
    if classifier is not None:
        _check_classifier(args, classifier[1], aug, all_labels, class_names)
    images, labels = all_images, all_labels
    if len(images) > args.max_images:
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[: args.max_images]
        images = images[chosen]
        labels = labels[chosen] if labels is not None else None
    report = generator_report(aug, images, labels, seed=args.seed)
    print(f"{PROG} eval: {args.generator} on {len(images)} images of {source}\n")
    print(report)
    result: dict[str, Any] = {"generator": args.generator, "data": source, **report.to_dict()}
    if classifier is not None:
        # eKLD draws its inputs per class from all the images: a random subset would starve the tail classes.
        invariance = _classifier_ekld(args, classifier, aug, all_images, all_labels, class_names)
        print("\n" + _describe_ekld(invariance, class_names))
        result["classifier_ekld"] = invariance
    if args.json:
        _write_json(Path(args.json), result)
    return 0 if report.status == "ok" else 1


def _load_classifier(path: str):
    from .longtail.classifiers import load_classifier

    try:
        return load_classifier(path)
    except FileNotFoundError as err:
        raise CommandError(f"--classifier {path!r}: no such file") from err
    except ValueError as err:
        raise CommandError(f"--classifier {path!r}: {err}") from err


def _check_classifier(args: argparse.Namespace, spec, aug, labels, class_names: list[str] | None) -> None:
    """The classifier must take the generator's images and predict the data's classes."""
    channels = aug.generator.config.in_channels
    if spec.in_channels != channels:
        raise CommandError(
            f"--classifier {args.classifier!r} takes {spec.in_channels}-channel images, but the generator "
            f"{args.generator!r} draws {channels}-channel ones"
        )
    if labels is None:
        raise CommandError(f"--classifier needs labelled --data (eKLD is measured per class); {args.data!r} has no labels")
    # Named classes (a folder, a built-in set) must match one to one; bare labels only must not exceed them.
    data_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
    wrong = spec.num_classes != data_classes if class_names is not None else spec.num_classes < data_classes
    if wrong:
        raise CommandError(
            f"--classifier {args.classifier!r} predicts {spec.num_classes} classes, but --data {args.data!r} has "
            f"{data_classes}"
        )


def _classifier_ekld(args: argparse.Namespace, classifier, aug, images, labels, class_names) -> dict[str, Any]:
    """Per-class eKLD of the classifier under the generator's draws, with its summary (a JSON-ready dict)."""
    import math

    import torch

    from .augment import GITAugment
    from .evaluation.invariance import ekld, summarize_ekld
    from .longtail.classifiers import ScaledLogits

    model, spec = classifier
    scored = model if spec.logit_scale == 1.0 else ScaledLogits(model, spec.logit_scale)
    redraw_all = GITAugment(aug.generator)  # no sampler: every input is re-drawn, in [0, 1]

    def transform(batch, generator=None):
        return redraw_all(batch, generator=generator)

    # eKLD is related to the sizes of the classes the classifier was trained on, when it says them.
    trained = aug.metadata.get("class_counts")
    trained_names = aug.metadata.get("class_names")
    if spec.class_counts is not None:
        class_sizes, sizes_from = spec.class_counts, "the classifier's training counts"
    elif isinstance(trained, list) and len(trained) == spec.num_classes and (
            class_names is None or trained_names is None or list(trained_names) == list(class_names)):
        class_sizes, sizes_from = trained, "the generator's training counts"
    else:
        class_sizes = torch.bincount(labels, minlength=spec.num_classes).tolist()
        sizes_from = "the counts in --data"
    result = ekld(scored, (images, labels), transform, n_per_class=args.ekld_inputs, m_per_input=args.ekld_draws,
                  seed=args.seed, class_sizes=class_sizes)
    summary = summarize_ekld(result)

    def plain(value: float) -> float | None:
        return None if math.isnan(value) else float(value)  # NaN (a class with no image) as JSON null

    return {
        "classifier": args.classifier,
        **{name: plain(value) for name, value in summary.items()},
        "per_class": [plain(value) for value in result.per_class.tolist()],
        "class_sizes": [int(size) for size in result.class_sizes.tolist()],
        "class_sizes_from": sizes_from,
        "inputs_per_class": result.inputs_per_class.tolist(),
        "draws_per_input": result.draws_per_input,
        "logit_scale": spec.logit_scale,
    }


def _describe_ekld(invariance: dict[str, Any], class_names: list[str] | None) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"  # eKLD spans orders of magnitude

    sizes = invariance["class_sizes"]
    group = max(1, round(len([v for v in invariance["per_class"] if v is not None]) / 3))
    lines = [
        f"classifier eKLD under the generator's draws (lower = more invariant): {invariance['classifier']}",
        f"  up to {max(invariance['inputs_per_class'])} inputs x {invariance['draws_per_input']} draws per class; "
        f"class sizes: {invariance['class_sizes_from']}",
        f"  mean {number(invariance['mean'])}   tail ({group} smallest classes) {number(invariance['tail_mean'])}   "
        f"head ({group} largest) {number(invariance['head_mean'])}   "
        f"Spearman(class size, eKLD) {number(invariance['spearman'])}",
        f"  {'class':16s} {'size':>7s} {'eKLD':>8s}",
    ]
    for cls in sorted(range(len(sizes)), key=lambda c: (sizes[c], c)):  # smallest first, as summarize_ekld ranks
        name = class_names[cls] if class_names is not None and cls < len(class_names) else str(cls)
        lines.append(f"  {name[:16]:16s} {sizes[cls]:7d} {number(invariance['per_class'][cls]):>8s}")
    return "\n".join(lines)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _push(args: argparse.Namespace) -> int:
    from .hub import push_folder_to_hub

    try:
        url = push_folder_to_hub(args.folder, args.repo_id, token=args.token, private=args.private or None,
                                 revision=args.revision)
    except FileNotFoundError as err:
        raise CommandError(str(err)) from err
    print(f"{PROG} push: uploaded {args.folder} to {args.repo_id}: {url}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from .pretrained import list_pretrained, pretrained_info

    for name in list_pretrained():
        info = pretrained_info(name)
        print(f"{name:16s} {info.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gitaug`` console script; returns the exit status.

    Example::

        gitaug preview --generator digits-rot-lt --data digits-rot-lt --out grid.png
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fit":
        # Every flag after "fit" belongs to gitaug-fit's own parser, help included.
        from .fit.cli import main as fit_main

        return fit_main(argv[1:], prog=f"{PROG} fit")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    run = {"preview": _preview, "eval": _eval, "push": _push, "list": _list}[args.command]
    try:
        return run(args)
    except CommandError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
