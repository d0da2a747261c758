"""Does the default fit leave alone what the data does not vary? GIT on the plain long-tailed sets.

``digits-lt`` and ``fmnist-lt`` carry no added nuisance: the digits are upright
and centred, the clothes photographed the same way. A generator that finds its
nuisance should learn geometric ranges near zero there, and GIT with it should
not lower balanced accuracy. For each set and seed this runs, as a user would:

1. ``gitaug-fit --dataset NAME`` with no flag but the step count (the default fit);
2. ``examples/train_longtail.py``: CE+DRS and CE+DRS+GIT with each draw of
   ``reproduce_digits.GIT_DRAWS`` (``--draws`` picks some; ``git-auto`` is the
   draw the fit recommends), each GIT draw's threshold, proportion and rule
   chosen on the validation split of the first seed among the candidates of the nuisance
   benchmarks (``reproduce_digits.CANDIDATES``, ``reproduce_fmnist.CANDIDATES``);
3. the report lists the ranges each fit learned (from its generator's config)
   and the accuracies.

Classifier epochs and generator steps are those of the nuisance benchmarks
(digits: 30 epochs, the fit's default steps; Fashion-MNIST: 12 epochs, 800
steps). Jobs resume like theirs. Outputs: ``benchmarks/results/plain_sets.json``
and the ``plain_sets`` section of ``benchmarks/RESULTS.md``.

    python benchmarks/plain_sets.py                       # the full run (2 sets x 2 seeds, every draw)
    python benchmarks/plain_sets.py --draws git-auto      # only the draw each fit recommends
    python benchmarks/plain_sets.py --datasets digits-lt --seeds 0 --smoke   # a smoke run
    python benchmarks/plain_sets.py --probe-only          # only the fit's nuisance test (a minute per set and seed)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import reproduce_digits as shared
import reproduce_fmnist
from _report import command_line, update_section

ROOT = shared.ROOT
#: Per set: classifier epochs, generator steps (None: gitaug-fit's default) and the GIT candidates.
SETS = {
    "digits-lt": {"epochs": 30, "fit_steps": None, "candidates": shared.CANDIDATES},
    "fmnist-lt": {"epochs": 12, "fit_steps": 800, "candidates": reproduce_fmnist.CANDIDATES},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    fixed = [m for m in shared.GIT_DRAWS if m != "git-val"]  # the validation choice of a draw is the reproductions'
    parser.add_argument("--draws", nargs="+", default=fixed, choices=fixed,
                        help="GIT draws to train (default: all; git-auto is the draw each fit recommends)")
    parser.add_argument("--smoke", action="store_true", help="2 classifier epochs and 20 generator steps (a plumbing check)")
    parser.add_argument("--probe-only", action="store_true",
                        help="run only the default fit's nuisance test (gitaug.fit.nuisance_probe.run_probe) and report its ranges")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs, one thread each")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work_plain", help="generators, logs, per-run JSON")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args()


def job_args(args: argparse.Namespace, dataset: str) -> argparse.Namespace:
    """The namespace ``reproduce_digits``' job builders expect, for one set."""
    spec = SETS[dataset]
    return argparse.Namespace(
        work=args.work, epochs=2 if args.smoke else spec["epochs"], fit_steps=20 if args.smoke else spec["fit_steps"],
        fit_flags="default", fit_extra="", workers=args.workers,
    )


def run(path: Path) -> dict:
    return json.loads(path.read_text())


def probe_only(args: argparse.Namespace, command: str) -> None:
    """The nuisance test a default fit runs first, on each set and seed: the geometric ranges the generator would draw."""
    from gitaug.fit import FitConfig
    from gitaug.fit.data import read_training_data
    from gitaug.fit.nuisance_probe import run_probe, warp_ranges

    torch.set_num_threads(1)
    ranges = {}
    for dataset in args.datasets:
        for seed in args.seeds:
            config = FitConfig(dataset=dataset, seed=seed)
            data = read_training_data(dataset=dataset, seed=seed)
            probe = run_probe(config, data)
            ranges[f"{dataset}-seed{seed}"] = {"probe": probe.ranges, "generator": warp_ranges(config, probe)}
            print(f"{dataset}, seed {seed}: {probe.summary()}", flush=True)
    out = args.results / "plain_sets_probe.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"command": command, "ranges": ranges}, indent=2, default=float))
    os.replace(tmp, out)
    lines = [
        "## What the default fit's nuisance test finds on sets without an added nuisance",
        "",
        f"Produced by `{command}`: the test `gitaug-fit` runs before it builds the generator "
        "(`gitaug.fit.nuisance_probe`), on the training split of each seed. Ranges the generator would draw from "
        "(a uniform turn of +-180 degrees is the rotated sets' truth):",
        "",
        "| set, seed | rotation (deg) | scale | shift (% of the side) | background |",
        "|---|---|---|---|---|",
    ]
    for name, entry in ranges.items():
        g = entry["generator"]
        background = f"swapped ({len(g['warp_backgrounds'])} values)" if g.get("warp_backgrounds") else "kept"
        lines.append(f"| {name} | +-{g['warp_rotation']:.1f} | x{1 / g['warp_scale']:.2f}..x{g['warp_scale']:.2f} | "
                     f"+-{100 * g['warp_shift']:.1f} | {background} |")
    update_section(args.report, "plain_sets_probe", "\n".join(lines))
    print(f"wrote {shared.shown(out)} and {shared.shown(args.report)}")


def main() -> None:
    args = parse_args()
    command = command_line("plain_sets.py", sys.argv[1:])
    args.work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    if args.probe_only:
        probe_only(args, command)
        return

    print(f"[1/3] fitting {len(args.datasets) * len(args.seeds)} generators with gitaug-fit's defaults", flush=True)
    shared.run_all([shared.fit_job(job_args(args, d), d, s) for d in args.datasets for s in args.seeds], args.workers)

    print("[2/3] choosing K, p and the rule on the validation split", flush=True)
    first = args.seeds[0]
    shared.run_all(
        [shared.train_job(job_args(args, d), d, first, m, c, shared.select_tag(m, c))
         for d in args.datasets for m in args.draws for c in SETS[d]["candidates"]],
        args.workers,
    )
    selection: dict = {}
    for dataset in args.datasets:
        for method in args.draws:
            scores, chosen = shared.validation_choice(args.work, dataset, first, method, SETS[dataset]["candidates"])
            shared.record_choice(selection, dataset, method, {"chosen": chosen, "val_balanced_accuracy": scores})

    methods = ("drs", *args.draws)
    print("[3/3] training CE+DRS and CE+DRS+GIT", flush=True)
    shared.run_all(
        [shared.train_job(job_args(args, d), d, s, m, shared.chosen_setting(selection, d, m) if m in shared.GIT_DRAWS else {}, m)
         for d in args.datasets for s in args.seeds for m in methods],  # CE+DRS takes no GIT setting
        args.workers,
    )

    table = {}
    for dataset in args.datasets:
        runs = {m: [run(args.work / "runs" / f"{dataset}-seed{s}-{m}.json") for s in args.seeds] for m in methods}
        table[dataset] = {
            **{m: [r["test_balanced_accuracy"] for r in runs[m]] for m in methods},
            "learned": [shared.learned(job_args(args, dataset), dataset, s) for s in args.seeds],
        }
    summary = {"command": command, "seeds": args.seeds, "smoke": args.smoke, "selection": selection, "table": table,
               "environment": f"{os.uname().machine}, {os.cpu_count()} CPU cores, torch {torch.__version__}"}
    out = args.results / "plain_sets.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    os.replace(tmp, out)

    lines = [
        "## The default fit on sets without an added nuisance",
        "",
        f"Produced by `{command}` ({summary['environment']}). Seeds {args.seeds}; generators: gitaug-fit with no flag "
        "(digits: its default steps; Fashion-MNIST: 800 steps, as its nuisance benchmark); classifiers as in the nuisance "
        "benchmarks; GIT's K, p and rule chosen on validation (first seed). Balanced test accuracy, mean ± std over seeds, "
        "and the per-seed difference GIT minus CE+DRS.",
        "",
        "| set | GIT draws | GIT setting | CE+DRS (%) | CE+DRS+GIT (%) | GIT - CE+DRS per seed (points) | learned per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in args.datasets:
        row = table[dataset]
        learned = "; ".join(shared.describe_learned(e) for e in row["learned"])
        for method in args.draws:
            draw = shared.GIT_DRAWS[method].label
            diffs = ", ".join(f"{(g - d) * 100:+.1f}" for g, d in zip(row[method], row["drs"]))
            lines.append(
                f"| {dataset} | {draw} | {shared.setting_tag(shared.chosen_setting(selection, dataset, method))} | "
                f"{shared.fmt(row['drs'], 100, 1)} | {shared.fmt(row[method], 100, 1)} | {diffs} | {learned} |"
            )
    update_section(args.report, "plain_sets", "\n".join(lines))
    print(json.dumps({d: {m: np.mean(table[d][m]) for m in methods} for d in args.datasets}, indent=2, default=float))
    print(f"wrote {shared.shown(out)} and {shared.shown(args.report)}")


if __name__ == "__main__":
    main()
