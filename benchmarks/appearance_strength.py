"""Would drawing the appearance change further teach the tail more? Residual draws at a higher strength.

A residual draw adds the decoder's appearance change to the input:
``x + s * (decode(c, drawn style) - decode(c, own style))``, then the warp,
with ``s = 1`` in the draw a fit recommends (``GITAugment(appearance_scale=s)``;
the transfer test's ladder also holds ``s = 0.5`` and the warp alone). On
dilated clothing (``fmnist-dil-lt``) GIT reaches 68 % of the oracle's
tail-eKLD reduction, and the residual draws spread less than the true
nuisance does (``draw_variants.py``). This benchmark repeats the finished
CE+DRS+GIT runs of the current default whose fit recommends residual draws with
the data's styles at ``s = 1`` (same generator, K, p, rule and seed; the runs of
``keep_class.RUNS``), with one change: ``--appearance-scale S`` (default 2).
Nothing is fitted.

It reports validation and test balanced accuracy and tail eKLD beside the
finished CE+DRS, GIT and oracle runs of the same seed, with the paired
difference. Whether a stronger draw belongs in the transfer test's ladder is
a validation question; the test figures are reported, not chosen on.

    python benchmarks/appearance_strength.py --workers 2
    python benchmarks/appearance_strength.py --datasets fmnist-dil-lt --scale 2

Resumable (a finished run is kept). Output: ``results/appearance_strength.json`` and the
``appearance_strength`` section of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keep_class
import reproduce_digits as shared
from _report import update_section

ROOT = keep_class.ROOT
BENCH = keep_class.BENCH
#: The draw whose runs are repeated: what the transfer test recommends most often on the clothing.
REPEATED_DRAW = {"residual": True, "styles": "data", "appearance_scale": 1.0, "warp_extent": 1.0}
TAGS = ("drs", "git-auto", "stronger", "oracle")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets (default: all in keep_class.RUNS)")
    parser.add_argument("--scale", type=float, default=2.0, help="the appearance strength of the repeats (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs, one thread each")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--report", type=Path, default=BENCH / "RESULTS.md")
    return parser.parse_args()


def tag_of(scale: float) -> str:
    return f"git-auto-appearance{scale:g}"


def repeat_job(work: Path, dataset: str, seed: int, scale: float) -> None:
    """Repeat the seed's GIT run with residual draws of the data's styles at appearance strength ``scale``."""
    out = keep_class.run_path(work, dataset, seed, tag_of(scale))
    command = shared.repeat_command(shared.load_run(work, dataset, seed, "git-auto"),
                                    drop=("draw", "styles", "appearance_scale"))
    command += ["--draw", "residual", "--styles", "data", "--appearance-scale", f"{scale:g}",
                "--out", str(out.relative_to(ROOT))]
    shared.run_job(command, work / "logs" / f"{dataset}-seed{seed}-{tag_of(scale)}.log", out)


def repeated(selected: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """The runs of ``selected`` whose GIT run drew :data:`REPEATED_DRAW`."""
    return [(folder, dataset, seed) for folder, dataset, seed in selected
            if (shared.load_run(BENCH / folder, dataset, seed, "git-auto") or {}).get("draw") == REPEATED_DRAW]


def summarize(selected: list[tuple[str, str, int]], scale: float) -> dict:
    rows: dict[str, list[dict]] = {}
    for folder, dataset, seed in selected:
        work = BENCH / folder
        runs = {tag: shared.load_run(work, dataset, seed, tag_of(scale) if tag == "stronger" else tag) for tag in TAGS}
        if any(run is None for run in runs.values()):
            continue
        rows.setdefault(dataset, []).append({
            "seed": seed,
            "val": {tag: run["val_balanced_accuracy"] for tag, run in runs.items()},
            "test": {tag: run["test_balanced_accuracy"] for tag, run in runs.items()},
            "tail_ekld": {tag: run["ekld_summary"]["tail_mean"] for tag, run in runs.items()},
        })
    summary = {}
    for dataset, seeds in rows.items():
        means, differences = keep_class.paired_means(seeds, TAGS, "stronger", "git-auto")
        summary[dataset] = {"scale": scale, "seeds": [row["seed"] for row in seeds], "per_seed": seeds, "mean": means,
                            "stronger_minus_git": differences}
    return summary


def report_section(summary: dict, command: str) -> str:
    lines = [
        "## Residual draws at a higher appearance strength (`appearance_strength`)",
        "",
        "Finished CE+DRS+GIT runs of the current default whose fit recommends residual draws with the data's styles "
        "(strength 1), repeated with one change: the appearance change drawn at strength S "
        "(`--draw residual --styles data --appearance-scale S`). Same generator, K, p, rule and seed. Means over "
        "seeds, +- standard error; the last column is the paired difference, strength S minus strength 1.",
        "",
        "| set | S | seeds | | CE+DRS | GIT (strength 1) | GIT (strength S) | oracle | S - 1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, entry in summary.items():
        for key, label, factor, digits, cells, diff in keep_class.metric_rows(entry, TAGS, "stronger_minus_git"):
            per_seed = ", ".join(f"{(row[key]['stronger'] - row[key]['git-auto']) * factor:+.{digits}f}"
                                 for row in entry["per_seed"])
            lines.append(f"| {dataset} | {entry['scale']:g} | {' '.join(map(str, entry['seeds']))} | {label} | "
                         f"{' | '.join(cells)} | {diff} ({per_seed}) |")
    lines += ["", "Command: `" + command + "`", ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if not args.scale > 0:
        raise SystemExit(f"--scale must be above 0, got {args.scale}")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    selected = repeated([r for r in keep_class.RUNS if args.datasets is None or r[1] in args.datasets])
    print(f"{len(selected)} runs drew {REPEATED_DRAW}; {args.workers} at a time, strength {args.scale:g}; "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}", flush=True)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for future in [pool.submit(repeat_job, BENCH / folder, dataset, seed, args.scale)
                       for folder, dataset, seed in selected]:
            future.result()
    summary = summarize(selected, args.scale)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "appearance_strength.json").write_text(json.dumps(summary, indent=2) + "\n")
    command = ("python benchmarks/appearance_strength.py" + f" --scale {args.scale:g}"
               + ("" if args.datasets is None else " --datasets " + " ".join(args.datasets)))
    update_section(args.report, "appearance_strength", report_section(summary, command))
    print(report_section(summary, command))


if __name__ == "__main__":
    sys.exit(main())
