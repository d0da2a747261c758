"""What does each draw of a default-fit generator vary in appearance, against the true nuisance?

For every generator a reproduction benchmark fitted (the digits' and Fashion-MNIST-LT's
default fits, every seed found in their work folders), ``gitaug.report.draw_appearance``
measures, for each draw of ``DRAW_CANDIDATES``, the standard deviation between four
draws of one training image of its border level, brightness, contrast and share of
bright pixels, beside the same figure between the training images of one class. The
true nuisance is measured the same way on the same seed's images without the nuisance
(``gitaug.datasets.plain_version``): what a draw would vary if it were the nuisance.
Nothing is trained; a generator takes a few seconds.

    python benchmarks/draw_appearance.py --threads 1

Output: ``benchmarks/results/draw_appearance.json`` and the ``draw_appearance`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import reproduce_digits as shared
from _report import command_line, update_section

DATASETS = ("digits-rot-lt", "digits-bg-lt", "digits-dil-lt", "fmnist-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt")
WORK = {"digits": "_work", "fmnist": "_work_fmnist"}
TRUE = "the true nuisance"


def measure(dataset: str, seed: int, folder: Path) -> dict:
    from gitaug import MUNITGenerator
    from gitaug.datasets import load, nuisance_of, plain_version
    from gitaug.diagnostics import appearance_spread
    from gitaug.report import draw_appearance

    train = load(dataset, "train", seed=seed)
    generator = MUNITGenerator.from_pretrained(folder).eval()
    result = draw_appearance(generator, train.images, train.targets, seed=seed)
    plain = load(plain_version(dataset), "train", seed=seed)
    nuisance = nuisance_of(dataset)
    result[TRUE] = appearance_spread(nuisance, plain.images, plain.targets, plain.num_classes, seed=seed)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=shared.ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=shared.ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = command_line("draw_appearance.py", sys.argv[1:])
    table: dict[str, dict[int, dict]] = {}
    for dataset in args.datasets:
        work = shared.ROOT / "benchmarks" / WORK[dataset.split("-")[0]]
        for seed in args.seeds:
            folder = shared.generator_dir(work, dataset, seed) / "generator"
            if not (folder / "config.json").exists():
                continue
            started = time.time()
            table.setdefault(dataset, {})[seed] = measure(dataset, seed, folder)
            print(f"{dataset} seed {seed}: {time.time() - started:.0f} s", flush=True)
    if not table:
        raise SystemExit("no fitted generator found: run benchmarks/reproduce_digits.py or reproduce_fmnist.py first")

    from gitaug.diagnostics import APPEARANCE_STATISTICS

    lines = [
        f"Command: `{command}` ({args.threads} thread{'s' if args.threads > 1 else ''}). For every default-fit generator the reproduction benchmarks fitted, "
        "each draw's standard deviation, between four draws of one training image, of the image's border level, "
        "brightness, contrast and share of pixels above 0.5; the true nuisance measured the same way on the "
        "same seed's images without it; and the same figure between the training images of one class (the "
        "data, nuisance included). Mean over the seeds found (in brackets: their number); pixels in [0, 1].",
        "",
        "| set | draw | " + " | ".join(APPEARANCE_STATISTICS) + " |",
        "|---|---|" + "---|" * len(APPEARANCE_STATISTICS),
    ]
    for dataset, seeds in table.items():
        names = [TRUE, *(n for n in next(iter(seeds.values())) if n != TRUE)]
        for name in [*names, "the data, within a class"]:
            key, source = ("data", names[1]) if name == "the data, within a class" else ("draws", name)
            cells = [np.mean([s[source][k][key] for s in seeds.values()]) for k in APPEARANCE_STATISTICS]
            lines.append(f"| {dataset} ({len(seeds)}) | {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / "draw_appearance.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"command": command, "table": table}, indent=2) + "\n")
    os.replace(tmp, out)
    update_section(args.report, "draw_appearance", "## What each draw varies in appearance\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
