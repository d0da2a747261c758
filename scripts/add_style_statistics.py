"""Store the style statistics that ``GITAugment(styles="data")`` needs in a generator folder fitted without them.

``gitaug fit`` stores them at export (the mean and standard deviation of the
style codes of its training images, ``MUNITGenerator.style_statistics``);
generators exported before that have none. This computes them the same way
from the same images and rewrites the folder's ``config.json`` atomically.

    python scripts/add_style_statistics.py runs/mine/generator --dataset fmnist-rot-lt --seed 0
    python scripts/add_style_statistics.py runs/mine/generator --data my_images/
"""

from __future__ import annotations

import json

from _generator_folder import load, parse_args  # the scripts folder is on sys.path when a script runs
from gitaug._files import write_json
from gitaug.fit.data import to_model_range


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0], "the images it was fitted on (a folder or an .npz file, as gitaug fit reads them)")
    config_path, generator, data = load(args)
    stats = generator.style_statistics(to_model_range(data.images))
    config = json.loads(config_path.read_text())
    config.setdefault("training", {})["styles"] = stats
    write_json(config_path, config)
    print(f"stored the style statistics of {stats['images']} images in {config_path}: "
          f"std per component {min(stats['std']):.3f}-{max(stats['std']):.3f}")


if __name__ == "__main__":
    main()
