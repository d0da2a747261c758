"""Store the recommended draw (``training.draw``) in a generator folder: one exported without it, or an older rule's.

``gitaug fit`` stores it at export when its data has labels
(``gitaug.report.recommend_draw``: the most varied draw that keeps the class
about as often as the generator's warp alone, down a ladder from the decoded
draws to the warp alone, judged by five reference classifiers pooled);
``GITAugment.from_pretrained`` then draws that way unless told otherwise.
Generators exported before that, or fitted with ``--no-report``, have none,
and ones exported before the ladder or the pooled references have an older
rule's. This computes it the same way on the same labelled images (and
the style statistics first, when the folder has none), then rewrites the
folder's ``config.json`` atomically.

    python scripts/recommend_draw.py runs/mine/generator --dataset fmnist-rot-lt --seed 0
"""

from __future__ import annotations

import json

from _generator_folder import load, parse_args  # the scripts folder is on sys.path when a script runs
from gitaug._files import write_json
from gitaug.fit.data import to_model_range
from gitaug.report import recommend_draw


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0],
                      "the labelled images it was fitted on (a class-per-folder tree or an .npz with labels)")
    config_path, generator, data = load(args)
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
