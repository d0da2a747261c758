"""How do the nuisance test's ranges depend on how long its detector trains? The test at several strengths.

The fit's nuisance test (``gitaug.fit.nuisance_probe``) trains one small
detector per family for ``--probe-steps`` steps (default 200) and takes as a
family's range the largest move it cannot see. On a set that does not vary
along a family, that range is the detector's resolution, not zero: a few
degrees and a few per cent of zoom on upright clothing, which a reference
classifier that never saw such moves does notice (``preservation_control.py
--components``: the warp alone keeps 90-92 % of the true nuisance's class
preservation on background clothing). A detector trained longer resolves
finer moves, so its ranges on such sets shrink; on a set that varies within
bounds (sizes within x0.7..x1.3, positions within 15 % of the side) they
shrink too (``DRAW_EXTENT``'s docstring), and on a set closed under a family
(any rotation of turned images) they should not. This benchmark runs the
test exactly as a fit with the defaults would (``gitaug.fit.nuisance_probe.run_probe``,
same images and seed, one thread) at each of ``--steps`` and tabulates the
ranges, beside the true nuisance's, and what the test costs.

    python benchmarks/probe_strength.py --steps 200 800 --seeds 0 --workers 2

Measured (seed 0, 200 against 800 steps): on upright clothing the ranges
barely move (background clothing +-2.6 to +-2.5 degrees, x1.070 to x1.051,
2.1 to 2.0 % shift), on the digits they shrink by a third to over a half, on the
zoomed and shifted sets by a fifth to a third, and on turned clothing the
rotation range falls from the full +-180 degrees to +-47: a detector trained
that long finds something in turned clothing that gives a turn away. So the
default stays at 200 steps.

Nothing is fitted and no classifier trained: what the narrower ranges would do
to GIT's gains needs fits. Resumable (a measured (set, seed, steps) is kept).
Output: ``results/probe_strength.json`` and the ``probe_strength`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import reproduce_digits as shared
from _report import command_line, update_section
from gitaug._files import write_json

ROOT = shared.ROOT
#: Sets without a geometric nuisance first, then those with one.
DATASETS = ("digits-lt", "digits-bg-lt", "digits-dil-lt", "fmnist-lt", "fmnist-bg-lt", "fmnist-dil-lt",
            "digits-rot-lt", "digits-scale-lt", "digits-shift-lt", "fmnist-rot-lt", "fmnist-scale-lt", "fmnist-shift-lt")


def measure(dataset: str, seed: int, steps: int) -> dict:
    """The test's ranges on ``dataset`` (seed ``seed``) with ``steps`` detector steps per family, and its time."""
    import torch

    from gitaug.fit import FitConfig
    from gitaug.fit.data import read_training_data
    from gitaug.fit.nuisance_probe import run_probe, warp_ranges

    torch.set_num_threads(1)  # as the benchmark fits ran; the test's figures can differ with the thread count
    config = FitConfig(dataset=dataset, seed=seed, probe_steps=steps)
    data = read_training_data(dataset=dataset, seed=seed)
    started = time.time()
    warp = warp_ranges(config, run_probe(config, data))  # the generator config's fields a fit would store
    return {
        "rotation_deg": warp["warp_rotation"],
        "scale": warp["warp_scale"],
        "shift": warp["warp_shift"],
        "contrast": warp["warp_contrast"],
        "background_values": len(warp["warp_backgrounds"]),
        "flip": warp["warp_flip"],
        "seconds": round(time.time() - started, 1),
    }


def true_nuisance(dataset: str) -> str:
    from gitaug.datasets import nuisance_of

    nuisance = nuisance_of(dataset)
    return "none" if nuisance is None else repr(nuisance)


def markdown(results: dict[str, dict[str, dict[str, dict]]], command: str) -> str:
    lines = [
        "## The nuisance test's ranges against its detector's training steps",
        "",
        f"Produced by `{command}`. The test a default fit runs before training (`run_probe`, one thread), with "
        "`--probe-steps` detector steps per family: rotation (+- degrees), scale (the largest zoom; the smallest is "
        "its inverse), shift (+- % of the side), contrast (the largest factor), and whether the background swap "
        "(its number of values) and the mirror image are taken. Seconds: the whole test, on this machine with other "
        "jobs running beside it (a rough cost only).",
        "",
        "| set | true nuisance | seed | steps | rotation | scale | shift | contrast | swap, mirror | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        for seed, by_steps in sorted(results.get(dataset, {}).items(), key=lambda item: int(item[0])):
            for steps, r in sorted(by_steps.items(), key=lambda item: int(item[0])):
                swaps = ", ".join(part for part in (f"{r['background_values']} backgrounds" if r["background_values"] else "",
                                                    "mirror" if r["flip"] else "") if part) or "-"
                lines.append(f"| `{dataset}` | {true_nuisance(dataset)} | {seed} | {steps} | +-{r['rotation_deg']:.1f} | "
                             f"x{r['scale']:.3f} | +-{100 * r['shift']:.1f} % | x{r['contrast']:.3f} | {swaps} | "
                             f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", nargs="+", type=int, default=[200, 800])
    parser.add_argument("--workers", type=int, default=1, help="parallel tests, one thread each")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "probe_strength.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    bad = [s for s in args.steps if s < 1]
    if bad:
        parser.error(f"--steps must be positive, got {bad}")
    stored = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = stored.get("results", {})
    todo = [(d, seed, steps) for d in args.datasets for seed in args.seeds for steps in args.steps
            if str(steps) not in results.get(d, {}).get(str(seed), {})]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(measure, *job): job for job in todo}
        for future in futures:
            dataset, seed, steps = futures[future]
            results.setdefault(dataset, {}).setdefault(str(seed), {})[str(steps)] = entry = future.result()
            print(f"{dataset} seed {seed}, {steps} steps: {entry}", flush=True)
            write_json(args.output, {**stored, "results": results})  # after every entry: resumable
    command = command_line("probe_strength.py", sys.argv[1:] if argv is None else argv)
    commands = sorted({*stored.get("commands", []), command})
    write_json(args.output, {"results": results, "commands": commands})
    update_section(args.report, "probe_strength", markdown(results, "`, `".join(commands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
