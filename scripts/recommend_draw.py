"""Store the recommended draw (``training.draw``) in a generator folder: one exported without it, or an older rule's.

``gitaug fit`` stores it at export when its data has labels
(``gitaug.report.recommend_draw``: the most varied draw that a small
classifier learns about as much from as from the best one, by a pseudo-tail
transfer test on the head classes), with the test's figures
(``training.draw_test``); ``GITAugment.from_pretrained`` then draws that way
unless told otherwise. Generators exported before that, or fitted with
``--no-report``, have none, and older ones have an older rule's (class
preservation against the warp alone). This computes it the same way on the
same labelled images (and the style statistics first, when the folder has
none), then rewrites the folder's ``config.json`` atomically. With
``--stored-test`` it trains nothing: it applies the current rule to the
figures the folder already stores (a fit before the rule changed). Figures
stored before the test measured the pseudo-tail classes' true-class
probability are judged by balanced accuracy; test again for the current score.

``--prefer least`` recommends the least varied of the draws the test cannot
tell from the best instead of the most varied (the rule before this release;
it keeps the class more often on clothing, and transfers less invariance).

    python scripts/recommend_draw.py runs/mine/generator --dataset fmnist-rot-lt --seed 0
    python scripts/recommend_draw.py runs/mine/generator --stored-test
    python scripts/recommend_draw.py runs/mine/generator --stored-test --prefer least
"""

from __future__ import annotations

import json
from pathlib import Path

from _generator_folder import load, parse_args  # the scripts folder is on sys.path when a script runs
from gitaug._files import write_json
from gitaug.fit.data import to_model_range
from gitaug.fit.nuisance_probe import drawn_ranges
from gitaug.generator import MUNITConfig, RangeWarp
from gitaug.report import draw_transfer_test, recommendation
from gitaug.transfer import PREFER, PREFERENCES, TransferTest


def rechoose(config_path: Path, prefer: str = PREFER) -> None:
    """Apply the current rule to the transfer-test figures the folder stores (``training.draw_test``)."""
    config = json.loads(config_path.read_text())
    figures = config.get("training", {}).get("draw_test")
    if figures is None:
        raise SystemExit(f"error: {config_path} stores no transfer test (training.draw_test): "
                         "run without --stored-test, with the images it was fitted on")
    try:
        test = TransferTest.from_dict(figures)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"error: {config_path}: training.draw_test cannot be read ({err})") from err
    store(config, config_path, test, new_test=False, prefer=prefer)


def store(config: dict, config_path: Path, test: TransferTest, new_test: bool, prefer: str = PREFER) -> None:
    """Write the test's recommendation (and a new test's figures) into the folder's config; say what changed."""
    training = config.setdefault("training", {})
    before = {k: v for k, v in training.get("draw", {}).items() if k != "chosen"}
    training["draw"] = draw = recommendation(test, prefer=prefer)
    # How far that draw moves an input, as a fit reports it (a range warp's ranges times the draw's extent).
    arch = config.get("generator", {})
    if arch.get("warp") == "affine":
        warp = RangeWarp.from_config(MUNITConfig.from_dict(arch))
        training.setdefault("nuisance", {})["drawn"] = drawn_ranges(warp, draw.get("warp_extent", 1.0))
    if new_test:
        training["draw_test"] = test.to_dict()
    write_json(config_path, config)
    after = {k: v for k, v in draw.items() if k != "chosen"}
    print(f"stored the recommended draw in {config_path}: {after}" + ("" if before == after else f" (was {before or None})"))
    print(f"  {draw['chosen']}")


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0],
                      "the labelled images it was fitted on (a class-per-folder tree or an .npz with labels)",
                      images_optional_with="--stored-test",
                      optional_help="apply the current rule to the stored test figures; trains nothing, needs no images",
                      more=lambda parser: parser.add_argument(
                          "--prefer", choices=PREFERENCES, default=PREFER,
                          help=f"which of the draws the test cannot tell from the best to recommend: the most or the "
                               f"least varied (default: {PREFER}, the rule a fit applies)"))
    if args.stored_test:
        config_path = args.folder / "config.json"
        if not config_path.is_file():
            raise SystemExit(f"error: no generator folder at {args.folder} (no config.json)")
        rechoose(config_path, args.prefer)
        return
    config_path, generator, data = load(args)
    if not data.labelled:
        raise SystemExit("error: the images have no labels: the recommended draw is judged by a classifier trained on them")
    config = json.loads(config_path.read_text())
    training = config.setdefault("training", {})
    if "styles" not in training:
        training["styles"] = generator.style_statistics(to_model_range(data.images))
    generator.training_metadata["styles"] = training["styles"]
    test = draw_transfer_test(generator, data.images, data.targets, seed=args.seed)
    if test is None:
        raise SystemExit("error: no draw can be recommended for this generator (it has no warp, or the images "
                         "have fewer than two classes with enough images for the transfer test)")
    store(config, config_path, test, new_test=True, prefer=args.prefer)


if __name__ == "__main__":
    main()
