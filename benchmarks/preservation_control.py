"""How far can the benchmarks' class-preservation figure be trusted? Controls under the same reference classifier.

The reproduction benchmarks measure class preservation with a reference
classifier trained on balanced images that carry the nuisance
(``reproduce_digits.reference_classifier``): the share of draws on which it
keeps its prediction on the original, set against the same share for true
nuisance draws. A reference that changes its prediction under changes that
cannot change the class makes that figure low for any draw that moves a
pixel. This benchmark measures, under exactly that reference (same data, same
seed, one thread), the keep rate of

* ``one-pixel shift``: each image moved by one whole pixel up, down, left or
  right (edge pixels repeated; no resampling, nothing blurred): a change
  that cannot change what an image shows;
* ``true nuisance``: the set's own nuisance, the benchmarks' yardstick;
* with ``--generators WORK``, the draw each fitted generator of a
  reproduction run recommends (``WORK/generators/<set>-seed<S>/generator``,
  where it exists), so that it can be read against both.

    python benchmarks/preservation_control.py --datasets fmnist-bg-lt fmnist-rot-lt --seeds 0 1
    python benchmarks/preservation_control.py --datasets fmnist-bg-lt --seeds 2 3 --generators benchmarks/_work_fmnist_contrast

Resumable: a measured entry is not measured again. Output:
``results/preservation_control.json`` and the ``preservation_control``
section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import reproduce_digits as shared
from _report import command_line, update_section
from gitaug._files import write_json

ROOT = shared.ROOT
DATASETS = ("digits-rot-lt", "digits-bg-lt", "digits-dil-lt", "fmnist-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt")
CONTROL = "one-pixel shift"
TRUE = "true nuisance"
RECOMMENDED = "recommended draw"


def one_pixel_shift(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` (N, C, H, W) each moved by one whole pixel up, down, left or right (equally likely), the edge
    pixels repeated into the uncovered row or column: an exact move, nothing resampled."""
    n, height, width = images.shape[0], images.shape[-2], images.shape[-1]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    direction = torch.randint(0, 4, (n,), generator=generator)
    out = images.clone()
    for index, (dy, dx) in enumerate(((1, 0), (-1, 0), (0, 1), (0, -1))):
        chosen = direction == index
        # content moving by (dy, dx) is read from (-dy, -dx): the window of the padded image offset the other way
        out[chosen] = padded[chosen][:, :, 1 - dy:1 - dy + height, 1 - dx:1 - dx + width]
    return out


def measure(dataset: str, seed: int, generators: Path | None) -> dict[str, float]:
    """The keep rates of :data:`CONTROL`, :data:`TRUE` and (where a generator is found) :data:`RECOMMENDED`."""
    from gitaug import GITAugment
    from gitaug.datasets import nuisance_of

    keep = shared.preservation_meter(dataset, seed)  # trains the benchmarks' reference, one thread
    result = {CONTROL: keep(one_pixel_shift), TRUE: keep(nuisance_of(dataset))}
    folder = None if generators is None else shared.generator_dir(generators, dataset, seed)
    if folder is not None and folder.exists():
        aug = GITAugment.from_pretrained(folder)  # the draw its config recommends
        result[RECOMMENDED] = keep(lambda batch, generator=None: aug(batch, generator=generator))
    return result


def markdown(results: dict[str, dict[str, dict[str, float]]], command: str) -> str:
    lines = [
        "## Class preservation: what the reference classifier itself changes",
        "",
        f"Produced by `{command}`. The share of images on which the reproduction benchmarks' reference classifier "
        "keeps its prediction (10 draws per training image), under a one-pixel shift (an exact move that cannot "
        "change the class), under the set's true nuisance, and for the draw a fitted generator recommends; the "
        "last two columns are the recommended draw's rate as a share of each control's.",
        "",
        "| set | seed | one-pixel shift | true nuisance | recommended draw | draw / true | draw / one-pixel shift |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, seeds in results.items():
        for seed, entry in sorted(seeds.items(), key=lambda item: int(item[0])):
            draw = entry.get(RECOMMENDED)
            cells = [f"{100 * entry[CONTROL]:.1f} %", f"{100 * entry[TRUE]:.1f} %",
                     "" if draw is None else f"{100 * draw:.1f} %",
                     "" if draw is None else f"{100 * draw / entry[TRUE]:.0f} %",
                     "" if draw is None else f"{100 * draw / entry[CONTROL]:.0f} %"]
            lines.append(f"| `{dataset}` | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--generators", type=Path, default=None,
                        help="a reproduction run's --work folder: also measure its fits' recommended draws")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "preservation_control.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    stored = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = stored.get("results", {})
    started = time.time()
    for dataset in args.datasets:
        for seed in args.seeds:
            entry = results.get(dataset, {}).get(str(seed))
            wanted_draw = args.generators is not None and shared.generator_dir(args.generators, dataset, seed).exists()
            if entry is not None and (RECOMMENDED in entry or not wanted_draw):
                continue
            entry = measure(dataset, seed, args.generators)
            results.setdefault(dataset, {})[str(seed)] = entry
            print(f"{dataset} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry.items()), flush=True)
            write_json(args.output, {**stored, "results": results})  # after every entry: resumable
    command = command_line("preservation_control.py", sys.argv[1:] if argv is None else argv)
    commands = sorted({*stored.get("commands", []), command})
    write_json(args.output, {"results": results, "commands": commands, "seconds": round(time.time() - started, 1)})
    update_section(args.report, "preservation_control", markdown(results, "`, `".join(commands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
