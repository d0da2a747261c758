"""Do GIT's draws cost accuracy where they change the class? Undo the draws a reference sees cross a class.

On dilated clothing (``fmnist-dil-lt``) GIT's losses sit in a few confusable
classes (shirts, sandals) whose draws a reference classifier keeps least. This
benchmark repeats finished CE+DRS+GIT runs of the current default (the fit's
recommended draw, the same K, p, rule and seed) with one change:
``examples/train_longtail.py --keep-class REF`` undoes every draw that the
reference ``REF`` predicts as another class than the draw's input. The
reference is the seed's CE+DRS classifier, repeated with
``--save-classifier`` (what a user would have: the classifier trained without
GIT). Nothing is fitted: the generators are those of the finished runs.

For each run it reports validation and test balanced accuracy and tail eKLD
beside the finished CE+DRS, GIT and oracle runs of the same seed, and the
share of draws undone per class, and the test accuracy of the class that GIT
lowers most on each seed (CE+DRS / GIT / GIT with the filter / oracle). Whether to keep the filter is a validation
question; the test figures are reported, not chosen on.

    python benchmarks/keep_class.py --workers 2

Output: ``results/keep_class.json`` and the ``keep_class`` section of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import reproduce_digits as shared
from _report import update_section

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

#: (work folder under benchmarks/, dataset, seed): finished runs of the current default whose generators were kept.
RUNS = [
    *[("_work_fmnist_contrast", "fmnist-dil-lt", s) for s in (2, 3)],
    *[("_work_fmnist_contrast_67", "fmnist-dil-lt", s) for s in (6, 7)],
    *[("_work_fmnist_contrast_89", "fmnist-dil-lt", s) for s in (8, 9)],
    *[("_work_fmnist_contrast", "fmnist-bg-lt", s) for s in (2, 3)],
    *[("_work_fmnist_contrast_45", "fmnist-bg-lt", s) for s in (4, 5)],
    *[("_work_fmnist_rot_flip", "fmnist-rot-lt", s) for s in (0, 3, 4)],
    ("_work_fmnist_rot_flip_5", "fmnist-rot-lt", 5),
]


#: The runs a summary sets side by side: CE+DRS, GIT, GIT with the filter, the oracle.
TAGS = ("drs", "git-auto", "git-auto-keep", "oracle")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets (default: all in RUNS)")
    parser.add_argument("--workers", type=int, default=2, help="parallel (dataset, seed) pairs, one thread each")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--report", type=Path, default=BENCH / "RESULTS.md")
    return parser.parse_args()


def run_path(work: Path, dataset: str, seed: int, tag: str) -> Path:
    return work / "runs" / f"{dataset}-seed{seed}-{tag}.json"


def pair_jobs(work: Path, dataset: str, seed: int) -> None:
    """Repeat CE+DRS saving its classifier, then GIT with that classifier undoing class-changing draws."""
    reference = work / "references" / f"{dataset}-seed{seed}-drs.safetensors"
    reference.parent.mkdir(parents=True, exist_ok=True)
    for tag, repeated, flags in (("drs-reference", "drs", ["--save-classifier"]), ("git-auto-keep", "git-auto", ["--keep-class"])):
        out = run_path(work, dataset, seed, tag)
        command = shared.repeat_command(shared.load_run(work, dataset, seed, repeated))
        command += [*flags, str(reference.relative_to(ROOT)), "--out", str(out.relative_to(ROOT))]
        shared.run_job(command, work / "logs" / f"{dataset}-seed{seed}-{tag}.log", out)


def mean_error(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error over seeds (0 for one seed)."""
    mean, std = shared.mean_std(values)
    return mean, std / np.sqrt(len(values))


#: The figures a paired repeat is judged by: (key in a seed's row, label, display factor, decimals).
METRICS = (("val", "val. bal. acc. (%)", 100, 1), ("test", "test bal. acc. (%)", 100, 1), ("tail_ekld", "tail eKLD", 1, 3))


def paired_means(seeds: list[dict], tags: tuple[str, ...], new: str, old: str) -> tuple[dict, dict]:
    """Per metric of :data:`METRICS`: each tag's mean and standard error over ``seeds`` (rows holding
    ``row[key][tag]``; a row without the tag is left out), and the same for the paired difference ``new - old``."""
    keys = [key for key, *_ in METRICS]
    means = {key: {tag: mean_error([row[key][tag] for row in seeds if tag in row[key]]) for tag in tags} for key in keys}
    differences = {key: mean_error([row[key][new] - row[key][old] for row in seeds]) for key in keys}
    return means, differences


def metric_rows(entry: dict, tags: tuple[str, ...], difference: str):
    """Per metric of :data:`METRICS`: its key, label, factor, decimals, the cells ``mean +- error`` of ``tags``
    (from ``entry["mean"]``) and the cell of ``entry[difference]``, for a report's table."""
    for key, label, factor, digits in METRICS:
        cells = [f"{entry['mean'][key][tag][0] * factor:.{digits}f} +- {entry['mean'][key][tag][1] * factor:.{digits}f}"
                 for tag in tags]
        diff = entry[difference][key]
        yield key, label, factor, digits, cells, f"{diff[0] * factor:+.{digits}f} +- {diff[1] * factor:.{digits}f}"


def summarize(selected: list[tuple[str, str, int]]) -> dict:
    rows: dict[str, list[dict]] = {}
    for folder, dataset, seed in selected:
        work = BENCH / folder
        runs = {tag: run for tag in ("drs", "drs-reference", "git-auto", "git-auto-keep", "oracle")
                if (run := shared.load_run(work, dataset, seed, tag)) is not None}
        if "git-auto-keep" not in runs:
            continue
        keep = runs["git-auto-keep"]["keep_class"]
        drawn, undone = np.array(keep["drawn_per_class"]), np.array(keep["undone_per_class"])
        # The tail third of the classes by training count, as the eKLD summaries count it.
        tail = shared.tail_classes(runs["git-auto"]["class_counts"])
        rest = np.setdiff1d(np.arange(len(drawn)), tail)
        rows.setdefault(dataset, []).append({
            "seed": seed,
            "class_counts": runs["git-auto"]["class_counts"],
            "draw": runs["git-auto"]["draw"],
            "val": {tag: run["val_balanced_accuracy"] for tag, run in runs.items()},
            "test": {tag: run["test_balanced_accuracy"] for tag, run in runs.items()},
            "tail_ekld": {tag: run["ekld_summary"]["tail_mean"] for tag, run in runs.items()},
            "test_per_class": {tag: run["test_per_class_accuracy"] for tag, run in runs.items()},
            "undone_share": float(undone.sum() / max(drawn.sum(), 1)),
            "undone_share_tail": float(undone[tail].sum() / max(drawn[tail].sum(), 1)),
            "undone_share_rest": float(undone[rest].sum() / max(drawn[rest].sum(), 1)),
            "undone_per_class": [float(u / d) if d else None for u, d in zip(undone, drawn)],
        })
    summary = {}
    for dataset, seeds in rows.items():
        means, differences = paired_means(seeds, TAGS, "git-auto-keep", "git-auto")
        summary[dataset] = {"seeds": [row["seed"] for row in seeds], "per_seed": seeds, "mean": means,
                            "keep_minus_git": differences}
    return summary


def report_section(summary: dict, command: str) -> str:
    lines = [
        "## Undoing class-changing draws (`keep_class`)",
        "",
        "Finished CE+DRS+GIT runs of the current default repeated with one change: a draw that the seed's CE+DRS "
        "classifier predicts as another class than its input is undone (`examples/train_longtail.py --keep-class`). "
        "Same generator, recommended draw, K, p, rule and seed. Means over seeds, +- standard error; the last "
        "column is the paired difference, filter minus no filter.",
        "",
        "| set | seeds | | CE+DRS | GIT | GIT, class-keeping | oracle | keeping - GIT |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, entry in summary.items():
        for _, label, _, _, cells, diff in metric_rows(entry, TAGS, "keep_minus_git"):
            lines.append(f"| {dataset} | {' '.join(map(str, entry['seeds']))} | {label} | {' | '.join(cells)} | {diff} |")
        shares = "; ".join(f"seed {row['seed']} {row['undone_share']:.0%} ({row['undone_share_tail']:.0%} / "
                           f"{row['undone_share_rest']:.0%})" for row in entry["per_seed"])
        lines.append(f"| {dataset} | | draws undone (tail third / other classes) | {shares} | | | | |")
        worst = []
        for row in entry["per_seed"]:  # read after the runs, for the figure; nothing is chosen on it
            per_class = {tag: np.array(values) * 100 for tag, values in row["test_per_class"].items()}
            c = int(np.argmin(per_class["git-auto"] - per_class["drs"]))
            worst.append(f"seed {row['seed']} class {c}: " + " / ".join(
                f"{per_class[tag][c]:.0f}" for tag in TAGS))
        lines.append(f"| {dataset} | | test acc. (%) of the class GIT lowers most | {'; '.join(worst)} | | | | |")
    lines += ["", "Command: `" + command + "`", ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    selected = [r for r in RUNS if args.datasets is None or r[1] in args.datasets]
    missing = [r for r in selected if not run_path(BENCH / r[0], r[1], r[2], "git-auto").exists()]
    if missing:
        raise SystemExit(f"finished runs missing for {missing}: run the reproduction benchmark for them first")
    print(f"{len(selected)} (dataset, seed) pairs, {args.workers} at a time; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}",
          flush=True)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for future in [pool.submit(pair_jobs, BENCH / folder, dataset, seed) for folder, dataset, seed in selected]:
            future.result()
    summary = summarize(selected)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "keep_class.json").write_text(json.dumps(summary, indent=2) + "\n")
    command = "python benchmarks/keep_class.py" + ("" if args.datasets is None else " --datasets " + " ".join(args.datasets))
    update_section(args.report, "keep_class", report_section(summary, command))
    print(report_section(summary, command))


if __name__ == "__main__":
    sys.exit(main())
