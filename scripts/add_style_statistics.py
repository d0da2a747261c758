"""Store the style statistics that ``GITAugment(styles="data")`` needs in a generator folder fitted without them.

``gitaug fit`` stores them at export (the mean and standard deviation of the
style codes of its training images, ``MUNITGenerator.style_statistics``);
generators exported before that have none. This computes them the same way
from the same images and rewrites the folder's ``config.json`` atomically.

    python scripts/add_style_statistics.py runs/mine/generator --dataset fmnist-rot-lt --seed 0
    python scripts/add_style_statistics.py runs/mine/generator --data my_images/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gitaug import MUNITGenerator
from gitaug._files import write_json
from gitaug.fit.data import read_training_data, to_model_range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the generator folder (with config.json and model.safetensors)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="the built-in dataset it was fitted on (training split)")
    source.add_argument("--data", help="the images it was fitted on (a folder or an .npz file, as gitaug fit reads them)")
    parser.add_argument("--seed", type=int, default=0, help="the built-in dataset's seed (default 0)")
    args = parser.parse_args()

    config_path = args.folder / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"error: no generator folder at {args.folder} (no config.json)")
    generator = MUNITGenerator.from_pretrained(args.folder).eval()
    c = generator.config
    images = read_training_data(dataset=args.dataset, data=args.data, image_size=c.image_size, channels=c.in_channels,
                                seed=args.seed).images
    stats = generator.style_statistics(to_model_range(images))
    config = json.loads(config_path.read_text())
    config.setdefault("training", {})["styles"] = stats
    write_json(config_path, config)
    print(f"stored the style statistics of {stats['images']} images in {config_path}: "
          f"std per component {min(stats['std']):.3f}-{max(stats['std']):.3f}")


if __name__ == "__main__":
    main()
