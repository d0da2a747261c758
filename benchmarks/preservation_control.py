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

With ``--reference-shift N`` the same figures are measured under a second
reference, trained the same way but with every training batch moved by up to
N whole pixels (``reproduce_digits.random_pixel_shift``), and tabulated
separately: a reference that does not see one-pixel moves as a change of class
gives a class-preservation figure that measures the draws rather than the
reference.

With ``--components`` it also measures the recommended draw's parts: the
generator's warp alone and the draw with its geometry kept.

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

import reproduce_digits as shared
from _report import command_line, update_section
from gitaug._files import write_json

ROOT = shared.ROOT
DATASETS = ("digits-rot-lt", "digits-bg-lt", "digits-dil-lt", "fmnist-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt")
CONTROL = "one-pixel shift"
TRUE = "true nuisance"
RECOMMENDED = "recommended draw"
#: With ``--components``: the recommended draw's parts, to tell which one loses the class.
WARP_ALONE = "warp alone"
GEOMETRY_KEPT = "geometry kept"


def one_pixel_shift(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` (N, C, H, W) each moved by one whole pixel up, down, left or right (equally likely), the edge
    pixels repeated into the uncovered row or column: an exact move, nothing resampled."""
    direction = torch.randint(0, 4, (images.shape[0],), generator=generator)
    return shared.shift_pixels(images, torch.tensor([[1, 0], [-1, 0], [0, 1], [0, -1]])[direction])


def measure(dataset: str, seed: int, generators: Path | None, shift: int = 0, components: bool = False) -> dict[str, float]:
    """The keep rates of :data:`CONTROL`, :data:`TRUE` and (where a generator is found) :data:`RECOMMENDED`, under
    the benchmarks' reference (trained with moves up to ``shift`` pixels; 0: theirs). With ``components`` also
    :data:`WARP_ALONE` (the generator's warp and swaps, the appearance kept) and :data:`GEOMETRY_KEPT` (the
    recommended draw with ``warp_extent=0``: its appearance change and swaps, no rotation, zoom or shift)."""
    from gitaug import GITAugment
    from gitaug.datasets import nuisance_of

    keep = shared.preservation_meter(dataset, seed, shift=shift)  # trains the reference, one thread
    result = {CONTROL: keep(one_pixel_shift), TRUE: keep(nuisance_of(dataset))}
    folder = None if generators is None else shared.generator_dir(generators, dataset, seed)
    if folder is not None and folder.exists():
        aug = GITAugment.from_pretrained(folder)  # the draw its config recommends
        result[RECOMMENDED] = keep(lambda batch, generator=None: aug(batch, generator=generator))
        if components:
            for name, settings in ((WARP_ALONE, {"residual": True, "appearance_scale": 0.0}),
                                   (GEOMETRY_KEPT, {"warp_extent": 0.0})):
                part = GITAugment.from_pretrained(folder, **settings)
                result[name] = keep(lambda batch, generator=None, part=part: part(batch, generator=generator))
    return result


TABLE_HEAD = ["| set | seed | one-pixel shift | true nuisance | recommended draw | draw / true | draw / one-pixel shift "
              "| its warp alone / true | its geometry kept / true |",
              "|---|---|---|---|---|---|---|---|---|"]


def markdown(results: dict[str, dict[str, dict[str, float]]], command: str,
             shifted: dict[str, dict[str, dict[str, dict[str, float]]]] | None = None) -> str:
    """The section: the benchmarks' reference's table, then one per ``--reference-shift`` measured (``shifted``:
    shift in pixels -> results)."""
    lines = [
        "## Class preservation: what the reference classifier itself changes",
        "",
        f"Produced by `{command}`. The share of images on which the reproduction benchmarks' reference classifier "
        "keeps its prediction (10 draws per training image), under a one-pixel shift (an exact move that cannot "
        "change the class), under the set's true nuisance, and for the draw a fitted generator recommends; the "
        "next two columns are the recommended draw's rate as a share of each control's. With `--components`, the "
        "last two: the same share for the recommended draw's parts, the generator's warp alone (rotation, zoom, "
        "shift and any swap, the appearance kept) and the draw with its geometry kept (`warp_extent=0`: the "
        "appearance change and any swap).",
        "",
        *TABLE_HEAD,
        *_rows(results),
    ]
    for shift, table in sorted((shifted or {}).items(), key=lambda item: int(item[0])):
        lines += ["", f"The same under a reference trained the same way but on training batches moved by up to {shift} "
                      "whole pixels each way (`--reference-shift " + shift + "`): one-pixel moves change its prediction "
                      "far less often, so more of what is left of a draw's shortfall is the draw's.", "", *TABLE_HEAD, *_rows(table)]
    return "\n".join(lines)


def _rows(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = []
    for dataset, seeds in results.items():
        for seed, entry in sorted(seeds.items(), key=lambda item: int(item[0])):
            draw = entry.get(RECOMMENDED)
            cells = [f"{100 * entry[CONTROL]:.1f} %", f"{100 * entry[TRUE]:.1f} %",
                     "" if draw is None else f"{100 * draw:.1f} %",
                     "" if draw is None else f"{100 * draw / entry[TRUE]:.0f} %",
                     "" if draw is None else f"{100 * draw / entry[CONTROL]:.0f} %",
                     *("" if entry.get(part) is None else f"{100 * entry[part] / entry[TRUE]:.0f} %"
                       for part in (WARP_ALONE, GEOMETRY_KEPT))]
            lines.append(f"| `{dataset}` | {seed} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--generators", type=Path, default=None,
                        help="a reproduction run's --work folder: also measure its fits' recommended draws")
    parser.add_argument("--reference-shift", type=int, default=0,
                        help="measure under a reference trained on batches moved by up to this many whole pixels "
                             "(tabulated apart; default 0: the reproduction benchmarks' reference)")
    parser.add_argument("--components", action="store_true",
                        help="also measure the recommended draw's warp alone and the draw with its geometry kept")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "preservation_control.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.reference_shift < 0:
        parser.error(f"--reference-shift must be 0 or more pixels, got {args.reference_shift}")
    stored = json.loads(args.output.read_text()) if args.output.exists() else {}
    shifted = stored.get("shifted", {})
    results = shifted.setdefault(str(args.reference_shift), {}) if args.reference_shift else stored.get("results", {})
    started = time.time()
    for dataset in args.datasets:
        for seed in args.seeds:
            entry = results.get(dataset, {}).get(str(seed))
            wanted_draw = args.generators is not None and shared.generator_dir(args.generators, dataset, seed).exists()
            wanted = [RECOMMENDED, *((WARP_ALONE, GEOMETRY_KEPT) if args.components else ())] if wanted_draw else []
            if entry is not None and all(name in entry for name in wanted):
                continue
            entry = measure(dataset, seed, args.generators, args.reference_shift, args.components)
            results.setdefault(dataset, {})[str(seed)] = entry
            print(f"{dataset} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry.items()), flush=True)
            write_json(args.output, _stored(stored, args.reference_shift, results, shifted))  # after every entry: resumable
    command = command_line("preservation_control.py", sys.argv[1:] if argv is None else argv)
    commands = sorted({*stored.get("commands", []), command})
    everything = _stored(stored, args.reference_shift, results, shifted)
    write_json(args.output, {**everything, "commands": commands, "seconds": round(time.time() - started, 1)})
    update_section(args.report, "preservation_control",
                   markdown(everything["results"], "`, `".join(commands), everything.get("shifted")))
    return 0


def _stored(stored: dict, shift: int, results: dict, shifted: dict) -> dict:
    """The JSON to write: the benchmarks' reference's results under ``results``, the others' under ``shifted``."""
    out = {**stored, "results": stored.get("results", {}) if shift else results}
    if any(shifted.values()):
        out["shifted"] = {key: value for key, value in shifted.items() if value}
    return out


if __name__ == "__main__":
    sys.exit(main())
