"""Store the recommended draw (``training.draw``) in a generator folder exported without one.

``gitaug fit`` stores it at export when its data has labels
(``gitaug.report.recommend_draw``: residual draws with the data's own styles,
or the warp alone when those lose classes); ``GITAugment.from_pretrained``
then draws that way unless told otherwise. Generators exported before that,
or fitted with ``--no-report``, have none. This computes it the same way on
the same labelled images (and the style statistics first, when the folder
has none), then rewrites the folder's ``config.json`` atomically.

    python scripts/recommend_draw.py runs/mine/generator --dataset fmnist-rot-lt --seed 0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gitaug import MUNITGenerator
from gitaug._files import write_json
from gitaug.fit.data import read_training_data, to_model_range
from gitaug.report import recommend_draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the generator folder (with config.json and model.safetensors)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="the built-in dataset it was fitted on (training split)")
    source.add_argument("--data", help="the labelled images it was fitted on (a class-per-folder tree or an .npz with labels)")
    parser.add_argument("--seed", type=int, default=0, help="the built-in dataset's seed, and the report's (default 0)")
    args = parser.parse_args()

    config_path = args.folder / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"error: no generator folder at {args.folder} (no config.json)")
    generator = MUNITGenerator.from_pretrained(args.folder).eval()
    c = generator.config
    data = read_training_data(dataset=args.dataset, data=args.data, image_size=c.image_size, channels=c.in_channels,
                              seed=args.seed)
    if not data.labelled:
        raise SystemExit("error: the images have no labels: the recommended draw is judged by class preservation")
    config = json.loads(config_path.read_text())
    training = config.setdefault("training", {})
    if "styles" not in training:
        training["styles"] = generator.style_statistics(to_model_range(data.images))
    generator.training_metadata["styles"] = training["styles"]
    draw = recommend_draw(generator, data.images, data.targets, seed=args.seed)
    if draw is None:
        raise SystemExit("error: no draw can be recommended for this generator (it has no warp to compare with)")
    training["draw"] = draw
    write_json(config_path, config)
    print(f"stored the recommended draw in {config_path}: {({k: v for k, v in draw.items() if k != 'chosen'})}")
    print(f"  {draw['chosen']}")


if __name__ == "__main__":
    main()
