"""Reproduce GIT's findings on the Fashion-MNIST-LT built-ins (real 28x28 clothing images).

For each of ``fmnist-rot-lt``, ``fmnist-bg-lt`` and ``fmnist-dil-lt`` and each
seed (its own validation hold-out, class order and nuisance draws), this runs
gitaug as a user would, with the jobs and helpers of
``benchmarks/reproduce_digits.py``:

1. ``gitaug-fit`` fits a generator on the long-tailed training split (4,479
   images, 2,000 down to 10 per class): with no flag but the step count
   (``--fit-flags default``, the main result), with the digits recipes per
   nuisance (``recipes``, ``FIT_FLAGS``) or with the paper's objective
   (``paper``);
2. ``examples/train_longtail.py`` trains ERM, CE+DRS, CE+DRS+GIT and
   CE+DRS+oracle (the true nuisance on the samples GIT would replace);
3. each run reports balanced and tail test accuracy (official test split,
   10,000 images, one nuisance draw each) and per-class eKLD under the true
   nuisance on the untransformed test images;
4. the digits benchmark's generator diagnostic: a reference classifier trained
   on balanced images carrying the nuisance (300 per class) measures how often
   the generator's draws keep their class, against the true nuisance's draws.

GIT's threshold K, proportion p and rule: by default the setting the digits
benchmark chose on its validation split for the same nuisance and the same
``--fit-flags`` (read from its results file when there is one, else
``DEFAULT_SETTINGS``), with K scaled by the ratio of the largest classes
(2,000 / 500); ``--select`` instead chooses among ``CANDIDATES`` on this
benchmark's validation split (seed of the first ``--seeds``), at the cost of
three more runs per dataset.

Sized to finish in under 90 minutes of wall time on 2 idle CPU cores with the
defaults (2 seeds, 12 classifier epochs, 800 generator steps, 2 workers of
one thread each); a busier machine takes longer. Each job writes its own
output, so an interrupted run resumes where it stopped when started again with
the same arguments. Outputs: ``benchmarks/results/reproduce_fmnist.json`` and
the ``reproduce_fmnist`` section of ``benchmarks/RESULTS.md``, with ``_<variant>``
appended for ``--fit-flags`` other than ``default`` (as the digits benchmark).

    python benchmarks/reproduce_fmnist.py                       # the full run
    python benchmarks/reproduce_fmnist.py --seeds 0 --epochs 2 --fit-steps 20 --datasets fmnist-bg-lt   # a smoke run

Needs the Fashion-MNIST idx files (see ``gitaug.datasets.fashion_mnist``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

# Run as a script, this file's folder is on sys.path: the digits benchmark's jobs and table helpers are shared.
import reproduce_digits as shared
from _report import command_line, update_section

ROOT = shared.ROOT
DATASETS = ("fmnist-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt")
#: Nuisances the defaults were not developed on (zoom, faded ink, shift, mirror image), as in the digits benchmark: pass them
#: with ``--datasets`` and ``--select`` (there is no digits run of theirs to take K and p from).
HELD_OUT = ("fmnist-scale-lt", "fmnist-contrast-lt", "fmnist-shift-lt", "fmnist-flip-lt")
#: gitaug-fit flags beyond its defaults, per dataset: the best recipe per nuisance found on the digits
#: (see README and the digits section of benchmarks/RESULTS.md).
FIT_FLAGS = {
    "fmnist-rot-lt": ("--warp", "rotation", "--weight-warp-diversity", "10"),
    "fmnist-bg-lt": ("--weight-diversity", "10"),
    "fmnist-dil-lt": ("--weight-diversity", "10"),
}
#: The digits benchmark's validation choice per nuisance (recipes fit), K scaled from a largest class of 500 to 2,000:
#: the fallback when no digits results file for the same --fit-flags exists.
DEFAULT_SETTINGS = {
    "fmnist-rot-lt": {"threshold": 800, "p": 1.0, "rule": "linear"},
    "fmnist-bg-lt": {"threshold": 800, "p": 1.0, "rule": "linear"},
    "fmnist-dil-lt": {"threshold": 400, "p": 0.5, "rule": "hard"},
}
CANDIDATES = (
    {"threshold": None, "p": 0.5, "rule": "hard"},
    {"threshold": 400, "p": 0.5, "rule": "hard"},
    {"threshold": 800, "p": 1.0, "rule": "linear"},
)
PAPER_FLAGS = shared.PAPER_FLAGS
METHODS = shared.METHODS
METHOD_NAMES = shared.METHOD_NAMES
IDLE_BUDGET_MINUTES = 90


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS + HELD_OUT)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=12, help="classifier epochs (re-sampling and GIT from 2/3 on)")
    parser.add_argument("--fit-steps", type=int, default=800, help="generator steps")
    parser.add_argument("--fit-flags", choices=("default", "recipes", "paper"), default="default",
                        help="default: gitaug-fit with no flag; recipes: the digits recipes per nuisance (FIT_FLAGS); "
                             "paper: the paper's objective")
    parser.add_argument("--fit-extra", default="", metavar="FLAGS", help="more gitaug-fit flags for every dataset")
    parser.add_argument("--select", action="store_true", help="choose K, p and the rule on validation (3 runs per dataset)")
    parser.add_argument("--skip", nargs="+", default=[], choices=("erm", *(m for m in shared.GIT_DRAWS if m != "git")),
                        help="methods not to train (their rows show the seeds that exist; ERM does not depend on the "
                             "generator; skipping GIT draws other than the paper's saves their runs)")
    parser.add_argument("--validate-only", nargs="+", default=[], choices=tuple(m for m in shared.LADDER if m != "git"),
                        help="ladder draws that take part in git-val's choice on validation (--select) but get no run of "
                             "their own on every seed (git-val reuses the chosen one's)")
    parser.add_argument("--diagnostic-seeds", nargs="+", type=int, default=None,
                        help="seeds whose generators get the diagnostic (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs, one thread each")
    parser.add_argument("--work", type=Path, default=None,
                        help="generators, logs, per-run JSON (default: benchmarks/_work_fmnist, with _<variant> "
                             "appended for --fit-flags other than default)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--partial", action="store_true",
                        help="only summarize the runs already finished (no job is started)")
    parser.add_argument("--output-suffix", default=None, metavar="SUFFIX",
                        help="appended to the results file, the report section and the figures (default: _<variant> "
                             "for --fit-flags other than default), e.g. to re-run some datasets beside a full run")
    args = parser.parse_args()
    held_out = [d for d in args.datasets if d in HELD_OUT]
    if held_out and not args.select:
        parser.error(f"{', '.join(held_out)}: K and p come from the digits benchmark's choice for the same nuisance "
                     "unless --select chooses them on validation; the held-out nuisances need --select")
    if args.output_suffix is None:
        args.output_suffix = shared.variant_suffix(args.fit_flags)
    if args.work is None:
        args.work = ROOT / "benchmarks" / f"_work_fmnist{shared.variant_suffix(args.fit_flags)}"
    return args


def dataset_fit_flags(args: argparse.Namespace, dataset: str) -> tuple[str, ...]:
    return {"default": (), "recipes": FIT_FLAGS.get(dataset, ()), "paper": PAPER_FLAGS}[args.fit_flags]


def fit_job(args: argparse.Namespace, dataset: str, seed: int):
    # shared.fit_job adds the digits' own per-variant flags; this benchmark's come from dataset_fit_flags.
    command, log, marker = shared.fit_job(argparse.Namespace(**{**vars(args), "fit_flags": "default"}), dataset, seed)
    return [*command, *dataset_fit_flags(args, dataset)], log, marker


def run_ordered(jobs: list[tuple[tuple, Path | None]], workers: int) -> int:
    """Run ``(job, needs)`` pairs in list order on ``workers`` threads, a job only once the file ``needs`` exists.

    Unlike ``reproduce_digits.run_all`` (a plain pool), a GIT run starts as soon as its own generator is
    fitted, so a run stopped early has whole datasets (all four methods) rather than many half-finished ones.
    """
    pending = list(jobs)
    ran, running, failures = [0], [0], []
    changed = threading.Condition()

    def worker() -> None:
        while True:
            with changed:
                while True:
                    if failures or not pending:
                        return
                    ready = next((item for item in pending if item[1] is None or item[1].exists()), None)
                    if ready is not None:
                        pending.remove(ready)
                        running[0] += 1
                        break
                    if not running[0]:
                        return  # nothing running can make the rest ready (reported below)
                    changed.wait()  # a running job may produce what the others need
            try:
                did_run = shared.run_job(*ready[0])
            except Exception as error:  # stop handing out jobs; re-raised below
                did_run = False
                failures.append(error)
            with changed:
                ran[0] += did_run
                running[0] -= 1
                changed.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    if pending:
        raise RuntimeError(f"{len(pending)} jobs never became ready, e.g. waiting for {pending[0][1]}")
    return ran[0]


def tail_accuracy(run: dict, fraction: float = 1 / 3) -> float:
    """Mean test accuracy of the smallest third of training classes."""
    accuracy, _ = shared.tail_head_means(run["class_counts"], run["test_per_class_accuracy"], fraction)
    return accuracy


def digits_choice(args: argparse.Namespace, dataset: str, method: str = "git") -> dict:
    """The digits benchmark's validation choice for the same nuisance, fit and GIT draw, K scaled x4 (see the module docstring)."""
    path = args.results / f"reproduce_digits{shared.variant_suffix(args.fit_flags)}.json"
    digits_name = dataset.replace("fmnist", "digits")
    if path.exists():
        selection = json.loads(path.read_text())["selection"]
        chosen = shared.chosen_setting(selection, digits_name, method) if digits_name in selection else None
        if chosen is not None:
            scaled = {**chosen, "threshold": None if chosen["threshold"] is None else 4 * chosen["threshold"]}
            return {"chosen": scaled, "how": f"the digits benchmark's validation choice for {digits_name} ({args.fit_flags} fit), K scaled x4"}
    return {"chosen": DEFAULT_SETTINGS[dataset], "how": "the digits benchmark's validation choice (recipes fit), K scaled x4"}


def choose_settings(args: argparse.Namespace) -> tuple[dict, int]:
    """Per dataset, the plain draw's setting at the top level and each other GIT draw's under its method name."""
    if not args.select:
        selection = {}
        for dataset in args.datasets:
            selection[dataset] = digits_choice(args, dataset)
            # git-val chooses a draw on Fashion-MNIST's own validation split: only with --select
            selection[dataset].update({m: digits_choice(args, dataset, m) for m in shared.GIT_DRAWS if m not in ("git", "git-val")})
        return selection, 0
    seed = args.seeds[0]
    chosen_between = [m for m in git_draws(args) if m != "git-val"]  # git-val chooses between the others' choices
    jobs = [shared.train_job(args, d, seed, m, c, shared.select_tag(m, c)) for d in args.datasets for m in chosen_between for c in CANDIDATES]
    ran = 0 if args.partial else shared.run_all(jobs, args.workers)
    selection = {}
    for dataset in args.datasets:
        for method in chosen_between:
            scores, chosen = shared.validation_choice(args.work, dataset, seed, method, CANDIDATES)
            if chosen is None:
                choice = {"chosen": DEFAULT_SETTINGS.get(dataset, CANDIDATES[-1]), "how": "selection unfinished: default"}
            else:
                choice = {"chosen": chosen, "how": f"validation, seed {seed}", "val_balanced_accuracy": scores}
            shared.record_choice(selection, dataset, method, choice)
        if "git-val" in git_draws(args) and (draw := shared.choose_draw(selection, dataset)) is not None:
            shared.record_choice(selection, dataset, "git-val", draw)
    return selection, ran


def summarize(args: argparse.Namespace, selection: dict) -> dict:
    """Per dataset and method, every finished seed's figures (a method with no finished seed is left out).

    A run made with another K, p, rule or recommended draw than the selection now gives its method (a
    draw left out with ``--skip`` whose runs an earlier selection made) is left out too.
    """
    table: dict = {}
    for dataset in args.datasets:
        table[dataset] = {}
        for method in METHODS:
            runs = []
            for seed in args.seeds:
                path = args.work / "runs" / f"{dataset}-seed{seed}-{method}.json"
                setting = shared.chosen_setting(selection, dataset, method)
                if path.exists() and not shared.stale(path, method, setting, shared.generator_dir(args.work, dataset, seed)):
                    runs.append(json.loads(path.read_text()))
            if not runs:
                continue
            tails, heads = zip(*(shared.tail_head_means(r["class_counts"], r["ekld_per_class"]) for r in runs))
            table[dataset][method] = {
                "seeds": [r["seed"] for r in runs],
                "balanced_accuracy": [r["test_balanced_accuracy"] for r in runs],
                "tail_accuracy": [tail_accuracy(r) for r in runs],
                "val_balanced_accuracy": [r["val_balanced_accuracy"] for r in runs],
                "ekld_tail": list(tails),
                "ekld_head": list(heads),
                "spearman": [r["ekld_summary"]["spearman"] for r in runs],
                "train_seconds": [r["train_seconds"] for r in runs],
            }
    return {"selection": selection, "table": table}


def diagnostics(args: argparse.Namespace) -> dict:
    """The generator diagnostic of every seed whose generator is fitted (only those already on disk with --partial)."""
    result = {}
    for dataset in args.datasets:
        entries = []
        for seed in args.seeds if args.diagnostic_seeds is None else [s for s in args.seeds if s in args.diagnostic_seeds]:
            fitted = fit_job(args, dataset, seed)[2].exists()
            stored = (args.work / "diagnostics" / f"{dataset}-seed{seed}.json").exists()
            if stored or (fitted and not args.partial):
                entries.append((seed, shared.diagnostic(args, dataset, seed), shared.learned(args, dataset, seed)))
        if not entries:
            continue
        result[dataset] = {
            "seeds": [seed for seed, _, _ in entries],
            "reference_val_accuracy": [d["reference_val_accuracy"] for _, d, _ in entries],
            "generator_keep": [float(np.nanmean(d["generator_keep_rate"])) for _, d, _ in entries],
            "true_keep": [float(np.nanmean(d["true_nuisance_keep_rate"])) for _, d, _ in entries],
            "generator_spread": [float(np.nanmean(d["generator_spread"])) for _, d, _ in entries],
            **({"generator_keep_residual": [float(np.nanmean(d["generator_keep_rate_residual"])) for _, d, _ in entries],
                "generator_spread_residual": [float(np.nanmean(d["generator_spread_residual"])) for _, d, _ in entries]}
               if all("generator_keep_rate_residual" in d for _, d, _ in entries) else {}),
            **({"generator_keep_data": [float(np.nanmean(d["generator_keep_rate_data"])) for _, d, _ in entries],
                "generator_spread_data": [float(np.nanmean(d["generator_spread_data"])) for _, d, _ in entries]}
               if all("generator_keep_rate_data" in d for _, d, _ in entries) else {}),
            **shared.recommended_summary([d for _, d, _ in entries]),
            "true_spread": [float(np.nanmean(d["true_nuisance_spread"])) for _, d, _ in entries],
            "learned": [entry for _, _, entry in entries],
        }
    return result


def plot_figures(args: argparse.Namespace) -> dict[str, str]:
    """Per dataset, eKLD against class size for every method with a finished run (seeds pooled); the PNG paths."""
    from gitaug.evaluation.invariance import EKLDResult, plot_ekld

    figures = {}
    for dataset in args.datasets:
        series = {}
        for method in METHODS:
            runs = [json.loads(p.read_text()) for seed in args.seeds
                    if (p := args.work / "runs" / f"{dataset}-seed{seed}-{method}.json").exists()]
            if runs:
                series[METHOD_NAMES[method]] = EKLDResult(
                    per_class=torch.tensor([v for r in runs for v in r["ekld_per_class"]]),
                    class_sizes=torch.tensor([c for r in runs for c in r["class_counts"]]),
                    inputs_per_class=torch.full((len(runs) * len(runs[0]["class_counts"]),), 40),
                    draws_per_input=50,
                )
        if series:
            path = args.results / f"ekld_{dataset}{args.output_suffix}.png"
            plot_ekld(series, path, title=f"{dataset}, true nuisance, seeds {' '.join(map(str, args.seeds))} pooled")
            figures[dataset] = path
    return figures


def trained_methods(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(m for m in METHODS if m not in args.skip)


def git_draws(args: argparse.Namespace) -> tuple[str, ...]:
    """The GIT draws this run trains (``shared.GIT_DRAWS`` less ``--skip``)."""
    return tuple(m for m in shared.GIT_DRAWS if m not in args.skip)


def cpu_seconds(args: argparse.Namespace) -> dict:
    """CPU time of this configuration's finished jobs, from their ``.cpu`` records (see ``run_job``)."""
    records, partial = {}, []
    for seed in args.seeds:
        for dataset in args.datasets:
            names = [f"fit-{dataset}-seed{seed}"] + [f"{dataset}-seed{seed}-{m}" for m in trained_methods(args)]
            for name in names:
                path = args.work / "logs" / f"{name}.cpu"
                if not path.exists():
                    continue
                log = path.with_suffix(".log")
                head = log.read_text(errors="replace")[:300] if log.exists() else ""
                resumed = re.match(r"resuming .* from step (\d+)", head)
                records[name] = float(path.read_text())
                if resumed and not name_fully_recorded(args, name):
                    # Resumed from a checkpoint written before CPU times were recorded: only the last
                    # stretch is on record, so scale it to all the fit's steps.
                    done_before = int(resumed.group(1))
                    records[name] *= args.fit_steps / max(1, args.fit_steps - done_before)
                    partial.append(name)
    total = sum(records.values())
    return {"jobs": records, "total": total, "finished_jobs": len(records), "extrapolated_from_last_stretch": partial,
            "all_jobs": len(args.seeds) * len(args.datasets) * (1 + len(trained_methods(args))),
            "fits": len(args.seeds) * len(args.datasets)}


def name_fully_recorded(args: argparse.Namespace, name: str) -> bool:
    """Whether every stretch of a resumed fit ran under ``run_job`` (marked when its first stretch started)."""
    return (args.work / "logs" / f"{name}.cpu-from-start").exists()


def gap_to_oracle(rows: dict, git_method: str = "git") -> dict | None:
    """How much of the oracle's tail-eKLD reduction over CE+DRS GIT achieves (1 = all of it)."""
    methods = ("drs", git_method, "oracle")
    if not all(m in rows for m in methods):
        return None
    # Only the seeds all three finished, so that a partial run compares like with like.
    common = set.intersection(*(set(rows[m]["seeds"]) for m in methods))
    if not common:
        return None

    def mean(method: str, key: str) -> float:
        return float(np.mean([v for seed, v in zip(rows[method]["seeds"], rows[method][key]) if seed in common]))

    drs, git, oracle = (mean(m, "ekld_tail") for m in methods)
    acc = {m.split("-")[0]: mean(m, "balanced_accuracy") for m in methods}
    return {
        "seeds": sorted(common),
        "tail_ekld_drs_git_oracle": [drs, git, oracle],
        "tail_ekld_share_of_oracle_reduction": (drs - git) / (drs - oracle) if drs != oracle else None,
        "accuracy_git_minus_drs": acc["git"] - acc["drs"],
        "accuracy_oracle_minus_git": acc["oracle"] - acc["git"],
        "accuracy_share_of_oracle_gain": ((acc["git"] - acc["drs"]) / (acc["oracle"] - acc["drs"])
                                          if acc["oracle"] > acc["drs"] else None),
    }


def as_given(path: Path) -> str:
    """A path as stored: relative to the repository when inside it, without following links (unlike ``shown``)."""
    relative = os.path.relpath(os.path.abspath(path), ROOT)
    return str(path) if relative.startswith("..") else relative


def fmt(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``reproduce_digits.fmt`` (mean ± std over seeds), or the bare value when only one seed has finished."""
    return f"{values[0] * scale:.{digits}f}" if len(values) == 1 else shared.fmt(values, scale, digits)


def cpu_note(cpu: dict) -> str:
    if not cpu["finished_jobs"]:
        return ""
    note = (f" (the {cpu['finished_jobs']} of {cpu['all_jobs']} jobs with a CPU-time record took {cpu['total'] / 60:.0f} "
            f"min of CPU, i.e. about {cpu['total'] / 120:.0f} min of wall time on 2 idle cores"
            + (f"; {len(cpu['extrapolated_from_last_stretch'])} fits resumed before CPU times were recorded are "
               "scaled from their last stretch to all their steps" if cpu["extrapolated_from_last_stretch"] else ""))
    if cpu["finished_jobs"] < cpu["all_jobs"]:
        per_job = {kind: [v for k, v in cpu["jobs"].items() if k.startswith("fit-") == (kind == "fit")] for kind in ("fit", "train")}
        if all(per_job.values()):
            fits = cpu["fits"]
            estimate = fits * float(np.mean(per_job["fit"])) + (cpu["all_jobs"] - fits) * float(np.mean(per_job["train"]))
            note += f"; at the same cost per job, all {cpu['all_jobs']} would take about {estimate / 120:.0f} min"
    return note + ")"


def report_section(args: argparse.Namespace, summary: dict, command: str) -> str:
    complete = summary["complete"]
    lines = [
        f"## GIT on Fashion-MNIST-LT: {args.fit_flags} fit",
        "",
        f"Produced by `{command.replace(' --partial', '')}` ({summary['environment']}"
        + (f"; {summary['seconds'] / 60:.0f} min of wall time on a shared machine" if summary["seconds"] else "")
        + ")." + (" The tables were redrawn from its finished jobs with `--partial`." if args.partial else "")
        + ("" if complete else " **Partial: the run had not finished; the seeds behind each row are listed, and a "
           "method with none finished is marked so. Running the same command again resumes it.**"),
        "",
        f"Seeds {args.seeds} (each its own validation hold-out, class order and nuisance draws); training split "
        "2,000 down to 10 images per class (4,479); test: the official 10,000 images, one nuisance draw each. "
        f"Classifier: a ResNet-8 (widths 16/32/64), {args.epochs} epochs of SGD, re-sampling (and GIT, and the oracle) "
        f"from epoch {(2 * args.epochs) // 3} on. Generators: {shared.VARIANT_NAMES[args.fit_flags]}, {args.fit_steps} steps"
        + "".join(f", plus `{' '.join(dataset_fit_flags(args, d))}` for {d}" for d in args.datasets if dataset_fit_flags(args, d))
        + (f", plus `{args.fit_extra}` for every dataset" if args.fit_extra else "")
        + f". Sized for under {IDLE_BUDGET_MINUTES} minutes on 2 idle CPU cores{cpu_note(summary['cpu_seconds'])}; "
        "far from converged classifiers and "
        "generators (the paper trains for hours on a GPU), so compare the rows with each other, not with published "
        "Fashion-MNIST figures. eKLD under the true nuisance on untransformed test images (40 per class, 50 draws "
        "each). Tail / head: the smallest / largest third of classes (3 classes each). Mean ± std over seeds "
        "(a bare value: one seed).",
        "",
    ]
    for dataset in args.datasets:
        rows = summary["table"][dataset]
        chosen = summary["selection"][dataset]
        setting = chosen["chosen"]
        lines += [
            f"### {dataset}",
            "",
            f"GIT setting: K = {setting['threshold'] or 'none'}, p = {setting['p']}, rule {setting['rule']} ({chosen['how']})"
            + "".join(f"; {METHOD_NAMES[m]}: {shared.setting_tag(chosen[m]['chosen'])}" for m in git_draws(args)
                      if m in chosen and m in rows) + "."
            + shared.validated_draw_text(chosen),
            "",
            "| method | seeds | balanced acc. (%) | tail acc. (%) | eKLD tail | eKLD head | Spearman(size, eKLD) |",
            "|---|---|---|---|---|---|---|",
        ]
        for method in METHODS:
            if method not in rows and (method in args.skip or method in args.validate_only
                                       or (method == "git-val" and "git-val" not in chosen)):
                continue  # not asked for, and no run of it to show
            if method not in rows:
                lines.append(f"| {METHOD_NAMES[method]} | none finished | | | | | |")
                continue
            row = rows[method]
            lines.append(
                f"| {METHOD_NAMES[method]} | {', '.join(map(str, row['seeds']))} | {fmt(row['balanced_accuracy'], 100, 1)} | "
                f"{fmt(row['tail_accuracy'], 100, 1)} | {fmt(row['ekld_tail'], 1, 3)} | "
                f"{fmt(row['ekld_head'], 1, 3)} | {fmt(row['spearman'], 1, 2)} |"
            )
        for method, gap in summary["gap_to_oracle"].get(dataset, {}).items():
            if gap is None:
                continue
            drs, git, oracle = gap["tail_ekld_drs_git_oracle"]
            share = gap["tail_ekld_share_of_oracle_reduction"]
            if git > drs:
                ekld_text = f"GIT raises tail eKLD over CE+DRS ({drs:.3f} to {git:.3f}; the oracle lowers it to {oracle:.3f})"
            elif oracle >= drs:
                ekld_text = f"tail eKLD CE+DRS {drs:.3f}, GIT {git:.3f}, oracle {oracle:.3f}"
            else:
                ekld_text = (f"GIT gets {share * 100:.0f} % of the oracle's tail-eKLD reduction over CE+DRS "
                             f"({drs:.3f} to {git:.3f}; oracle {oracle:.3f})")
            lines += [
                "",
                f"{METHOD_NAMES[method]} against the oracle (seeds {', '.join(map(str, gap['seeds']))}): {ekld_text}; balanced "
                f"accuracy {gap['accuracy_git_minus_drs'] * 100:+.1f} points over CE+DRS, "
                f"{gap['accuracy_oracle_minus_git'] * 100:.1f} points below the oracle"
                + (f" ({gap['accuracy_share_of_oracle_gain'] * 100:.0f} % of the oracle's gain)."
                   if gap["accuracy_share_of_oracle_gain"] is not None else "."),
            ]
        recommended = shared.recommended_draws(args.work, dataset, args.seeds)
        if recommended:
            lines += ["", f"The draw each fit recommended (`training.draw`): {recommended}."]
        diag = summary["diagnostics"].get(dataset)
        if diag:
            lines += [
                "",
                f"Generator diagnostic (seeds {', '.join(map(str, diag['seeds']))}): a reference classifier trained on "
                f"balanced images with the nuisance (validation accuracy {fmt(diag['reference_val_accuracy'], 100, 1)} %) "
                f"keeps its prediction on {fmt(diag['generator_keep'], 100, 1)} % of generated samples and on "
                f"{fmt(diag['true_keep'], 100, 1)} % of true-nuisance samples. Spread between two draws of one input: "
                f"generator {fmt(diag['generator_spread'], 1, 3)}, true nuisance {fmt(diag['true_spread'], 1, 3)}."
                + (f" Residual draws: kept {fmt(diag['generator_keep_residual'], 100, 1)} %, spread "
                   f"{fmt(diag['generator_spread_residual'], 1, 3)}." if "generator_keep_residual" in diag else ""),
            ]
            ranges = [shared.describe_learned(entry) for entry in diag["learned"] if entry["nuisance"]]
            if ranges:
                lines += ["", "Learned by the fit: " + "; ".join(f"seed {s}: {r}" for s, r in zip(diag["seeds"], ranges)) + "."]
        if dataset in summary.get("figures", {}):
            figure = Path(summary["figures"][dataset]).name
            lines += ["", f"![eKLD against class size, {dataset}](results/{figure})"]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    command = command_line("reproduce_fmnist.py", sys.argv[1:])
    from gitaug.datasets import find_fashion_mnist

    find_fashion_mnist()  # fails early, saying how to get the files
    args.work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    started = shared.first_start(args.work)
    print(f"Sized for under {IDLE_BUDGET_MINUTES} min on 2 idle CPU cores with the defaults "
          f"({len(args.datasets)} datasets x {len(args.seeds)} seeds); a shared machine takes longer. "
          "Interrupt any time: running it again resumes.", flush=True)
    ran, planned = 0, 0
    selection, selected_runs = choose_settings(args) if not args.select else ({}, 0)
    for seed in [] if args.partial else args.seeds:
        # Seed by seed and dataset by dataset (two fits ahead), so that a run stopped midway has whole
        # rows to report.
        print(f"[seed {seed}] fitting {len(args.datasets)} generators ({args.fit_steps} steps each) and training "
              "ERM, CE+DRS, CE+DRS+GIT and the oracle", flush=True)
        if args.select and seed == args.seeds[0]:
            ran += shared.run_all([fit_job(args, d, seed) for d in args.datasets], args.workers)
            print("  choosing K, p and the rule on the validation split", flush=True)
            selection, selected_runs = choose_settings(args)
            ran += selected_runs
        fits = {d: fit_job(args, d, seed) for d in args.datasets}
        jobs: list[tuple[tuple, Path | None]] = [(fits[d], None) for d in args.datasets[:2]]
        for position, dataset in enumerate(args.datasets):
            setting = selection[dataset]["chosen"]
            jobs += [(shared.train_job(args, dataset, seed, m, shared.chosen_setting(selection, dataset, m), m), fits[dataset][2])
                     for m in git_draws(args) if m != "git-val" and m not in args.validate_only]
            jobs += [(shared.train_job(args, dataset, seed, m, setting, m), None) for m in METHODS
                     if m not in shared.GIT_DRAWS and m not in args.skip]
            if position + 2 < len(args.datasets):
                jobs.append((fits[args.datasets[position + 2]], None))
        ran += run_ordered(jobs, args.workers)
        planned += len(jobs)
        val_jobs = [(job, fits[d][2]) for d, job in shared.git_val_jobs(args, selection, seed)]
        ran += run_ordered(val_jobs, args.workers)
        planned += len(val_jobs)
    if args.partial:
        selection, _ = choose_settings(args)

    summary = summarize(args, selection)
    summary["complete"] = all(
        method in summary["table"][d] and len(summary["table"][d][method]["seeds"]) == len(args.seeds)
        for d in args.datasets for method in METHODS if method not in args.skip and method not in args.validate_only
        and (method != "git-val" or "git-val" in summary["selection"][d])
    )
    summary["gap_to_oracle"] = {d: {m: gap_to_oracle(summary["table"][d], m) for m in shared.GIT_DRAWS} for d in args.datasets}
    summary["diagnostics"] = diagnostics(args)
    summary["figures"] = {d: shared.shown(p) for d, p in plot_figures(args).items()}
    summary["environment"] = (f"{os.uname().machine}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                              f"{args.workers} single-thread workers")
    # A wall time only for a run that did every job itself: a resumed run's would mean nothing.
    summary["seconds"] = time.time() - started if (ran and ran >= planned and summary["complete"]) else None
    summary["cpu_seconds"] = cpu_seconds(args)
    summary["command"] = command
    summary["args"] = {k: (as_given(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = args.results / f"reproduce_fmnist{args.output_suffix}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    os.replace(tmp, out)
    update_section(args.report, f"reproduce_fmnist{args.output_suffix}", report_section(args, summary, command))
    if summary["complete"]:
        (args.work / "started_at").unlink(missing_ok=True)
    print(json.dumps(summary["gap_to_oracle"], indent=2))
    print(f"wrote {shared.shown(out)} and {shared.shown(args.report)}"
          + ("" if summary["complete"] else " (partial: run again to finish)"))


if __name__ == "__main__":
    main()
