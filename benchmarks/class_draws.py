"""What do GIT's draws do to one class? Its images beside their draws and the true nuisance's, and where the lost ones go.

On the clothing the draws a fit recommends lose the class most on shirts
(``preservation_control.py``), and on dilated clothing GIT's accuracy losses sit
on shirts (``keep_class.py``). This benchmark looks: for one fitted generator
and one class, a grid of the class's training images, each followed by draws
of the fit's recommended draw (as ``GITAugment.from_pretrained`` makes them
in training) and by the true nuisance applied to the same image's plain
version (what the oracle trains on). Each row's label gives how many of the
draws the benchmarks' reference classifier (``reproduce_digits.reference_classifier``)
still assigns the class it assigns the input. Over 40 images of the class
and 10 draws each it also counts, for both, which class the reference
predicts instead when it changes its mind.

    python benchmarks/class_draws.py --dataset fmnist-dil-lt --seeds 2 3 --classes 6 \\
        --generators benchmarks/_work_fmnist_contrast

Output: ``results/class_draws_<set>_seed<S>_class<C>.png``, ``results/class_draws.json``
and the ``class_draws`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import reproduce_digits as shared
from _report import command_line, update_section
from gitaug._files import write_json

ROOT = shared.ROOT
#: Images shown per grid, draws shown per image and per kind.
ROWS, SHOWN = 6, 5
#: Images and draws per image behind the counts.
COUNTED, DRAWS_PER_INPUT = 40, 10
CLOTHES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def class_name(dataset: str, c: int) -> str:
    return CLOTHES[c] if dataset.startswith("fmnist") else str(c)


def measure(dataset: str, seed: int, c: int, folder: Path, picture: Path) -> dict:
    """The grid (written to ``picture``) and the counts for class ``c`` of ``dataset``'s training split."""
    from torchvision.utils import make_grid, save_image

    from gitaug import GITAugment
    from gitaug.datasets import load, nuisance_of, plain_version
    from gitaug.fit.grid import _add_row_labels

    torch.set_num_threads(2)
    aug = GITAugment.from_pretrained(folder)
    true = nuisance_of(dataset)
    train = load(dataset, split="train", seed=seed)
    plain = load(plain_version(dataset), split="train", seed=seed)  # the same base images, in the same order
    members = torch.nonzero(train.targets == c).flatten()
    if not torch.equal(plain.targets[members], train.targets[members]):
        raise RuntimeError(f"{plain_version(dataset)} does not hold {dataset}'s images in the same order")
    rng = torch.Generator().manual_seed(seed)
    chosen = members[torch.randperm(members.numel(), generator=rng)[:COUNTED]]
    reference = shared.reference_classifier(dataset, seed)

    def as_float(images: torch.Tensor) -> torch.Tensor:
        return images.float() / 255 if images.dtype == torch.uint8 else images.float()

    def predict(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return reference(images).argmax(1)

    inputs, bases = as_float(train.images[chosen]), as_float(plain.images[chosen])
    expected = predict(inputs).repeat_interleave(DRAWS_PER_INPUT)
    kinds = {"recommended draw": aug(inputs.repeat_interleave(DRAWS_PER_INPUT, 0), generator=rng),
             "true nuisance": true(bases.repeat_interleave(DRAWS_PER_INPUT, 0), generator=rng)}
    counts: dict = {}
    same: dict[str, torch.Tensor] = {}  # per draw: whether the reference keeps its prediction
    for kind, drawn in kinds.items():
        again = predict(drawn)
        same[kind] = again == expected
        moved = again[~same[kind]]
        counts[kind] = {"kept": round(float(same[kind].float().mean()), 4),
                        "changed to": {class_name(dataset, int(k)): int((moved == k).sum())
                                       for k in moved.unique().tolist()}}
    # the grid: the first ROWS inputs, SHOWN of each kind's draws
    cells, labels = [], []
    for row in range(min(ROWS, len(chosen))):
        span = slice(row * DRAWS_PER_INPUT, row * DRAWS_PER_INPUT + SHOWN)
        cells += [inputs[row:row + 1], kinds["recommended draw"][span], kinds["true nuisance"][span]]
        kept = [int(same[kind][span].sum()) for kind in ("recommended draw", "true nuisance")]
        labels.append(f"draws {kept[0]}/{SHOWN}\ntrue {kept[1]}/{SHOWN}")
    grid = torch.cat(cells)
    grid = torch.nn.functional.interpolate(grid, scale_factor=2, mode="nearest")
    grid = make_grid(grid, nrow=1 + 2 * SHOWN, padding=2, pad_value=0.5)
    grid = _add_row_labels(grid, labels, 2 * inputs.shape[-2] + 2)
    picture.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, picture)
    return {"generator draw": {k: v for k, v in aug.metadata.get("draw", {}).items() if k != "chosen"},
            "images": int(len(chosen)), "draws per image": DRAWS_PER_INPUT, **counts,
            "picture": picture.name}


def markdown(results: dict, command: str) -> str:
    lines = [
        "## What the draws do to one class (`class_draws`)",
        "",
        f"Produced by `{command}`. For each fitted generator and class: the share of draws on which the "
        f"benchmarks' reference keeps the prediction it makes on the input ({COUNTED} training images of the class, "
        f"{DRAWS_PER_INPUT} draws each), for the fit's recommended draw and for the true nuisance applied to the "
        "image's plain version (the oracle's draw), and the classes it predicts instead when it changes its mind. "
        f"Each picture: one training image per row, then {SHOWN} recommended draws, then {SHOWN} true-nuisance "
        "draws; the left margin counts the kept ones.",
        "",
        "| set | seed | class | recommended draw: kept, changed to | true nuisance: kept, changed to |",
        "|---|---|---|---|---|",
    ]
    pictures = []
    for key in sorted(results):
        entry = results[key]
        dataset, seed, name = entry["dataset"], entry["seed"], entry["class"]

        def cell(kind: str) -> str:
            moved = sorted(entry[kind]["changed to"].items(), key=lambda item: -item[1])
            return f"{100 * entry[kind]['kept']:.0f} %, " + ", ".join(f"{k} {v}" for k, v in moved)

        lines.append(f"| `{dataset}` | {seed} | {name} | {cell('recommended draw')} | {cell('true nuisance')} |")
        pictures.append(f"![{name} draws, {dataset} seed {seed}](results/{entry['picture']})")
    return "\n".join([*lines, "", *pictures])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--classes", nargs="+", type=int, required=True)
    parser.add_argument("--generators", type=Path, required=True, help="a reproduction run's --work folder")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    output = args.results / "class_draws.json"
    stored = json.loads(output.read_text()) if output.exists() else {}
    results = stored.get("results", {})
    for seed in args.seeds:
        folder = shared.generator_dir(args.generators, args.dataset, seed)
        if not folder.exists():
            parser.error(f"no fit of {args.dataset} seed {seed} in {args.generators}")
        for c in args.classes:
            picture = args.results / f"class_draws_{args.dataset}_seed{seed}_class{c}.png"
            entry = measure(args.dataset, seed, c, folder, picture)
            results[f"{args.dataset} {seed} {c}"] = {"dataset": args.dataset, "seed": seed,
                                                    "class": class_name(args.dataset, c), **entry}
            print(f"{args.dataset} seed {seed} class {c}: " + json.dumps(entry), flush=True)
    command = command_line("class_draws.py", sys.argv[1:] if argv is None else argv)
    commands = sorted({*stored.get("commands", []), command})
    write_json(output, {"results": results, "commands": commands})
    update_section(args.report, "class_draws", markdown(results, "`, `".join(commands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
