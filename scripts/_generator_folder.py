"""What the scripts that complete a generator folder share: their arguments, and loading the folder and its images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from gitaug import MUNITGenerator
from gitaug.datasets import ImageDataset
from gitaug.fit.data import read_training_data


def parse_args(description: str, data_help: str, images_optional_with: str | None = None,
               optional_help: str = "", more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """``FOLDER`` and the images it was fitted on: ``--dataset NAME [--seed S]`` or ``--data PATH``.

    ``images_optional_with``: a flag (``store_true``) that makes the images unnecessary; ``more`` adds a
    script's own arguments to the parser.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folder", type=Path, help="the generator folder (with config.json and model.safetensors)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="the built-in dataset it was fitted on (training split)")
    source.add_argument("--data", help=data_help)
    parser.add_argument("--seed", type=int, default=0, help="the built-in dataset's seed (default 0)")
    if images_optional_with:
        parser.add_argument(images_optional_with, action="store_true", help=optional_help)
    if more is not None:
        more(parser)
    args = parser.parse_args()
    optional = images_optional_with and getattr(args, images_optional_with.removeprefix("--").replace("-", "_"))
    if not optional and args.dataset is None and args.data is None:
        parser.error("one of the arguments --dataset --data is required"
                     + (f" (or {images_optional_with})" if images_optional_with else ""))
    return args


def load(args: argparse.Namespace) -> tuple[Path, MUNITGenerator, ImageDataset]:
    """The folder's ``config.json`` path, its generator (eval mode) and its training images, at the generator's size."""
    config_path = args.folder / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"error: no generator folder at {args.folder} (no config.json)")
    generator = MUNITGenerator.from_pretrained(args.folder).eval()
    c = generator.config
    data = read_training_data(dataset=args.dataset, data=args.data, image_size=c.image_size, channels=c.in_channels,
                              seed=args.seed)
    return config_path, generator, data
