"""Reproduce GIT's findings end to end on the built-in long-tailed digits.

For each of ``digits-rot-lt``, ``digits-bg-lt`` and ``digits-dil-lt`` and each
seed (its own class order, split and nuisance draws), this runs gitaug exactly
as a user would, through its command line and the example script:

1. ``gitaug-fit`` fits a generator on the long-tailed training split;
2. ``examples/train_longtail.py`` trains ERM, CE+DRS, CE+DRS+GIT and the
   oracle (the true nuisance on the samples GIT would replace);
3. each run reports balanced test accuracy and per-class eKLD under the true
   nuisance;
4. a reference classifier trained on *balanced* data carrying the nuisance
   measures whether each generator keeps the digits' identity
   (``gitaug.diagnostics.class_preservation``).

GIT's threshold K, proportion p and rule are chosen per dataset on the
validation split (seed 0), never on test; the oracle uses the same choice.

Jobs run in ``--workers`` processes of one thread each and write their own
JSON, so an interrupted run picks up where it stopped. Outputs:
``benchmarks/results/reproduce_digits.json``, ``benchmarks/RESULTS.md`` (the
tables) and ``benchmarks/results/ekld_<dataset>.png`` (eKLD against class size
per method, as the paper's Figures 1 and 3). ``--fit-flags`` picks how the
generators are fitted: ``default`` (gitaug-fit with no flag, the main result),
``recipes`` or ``paper``; the other two write their outputs under names with
the variant appended (``reproduce_digits_paper.json``, section
``reproduce_digits_paper``), so the variants sit side by side
(``benchmarks/default_fit.py`` compares them).

    python benchmarks/reproduce_digits.py                 # the full run (about 60-90 min on 2 cores)
    python benchmarks/reproduce_digits.py --seeds 0 --epochs 4 --fit-steps 50   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from _report import ROOT, command_line, portable, update_section
from gitaug._files import write_json
from gitaug.hub import is_generator_folder

EXAMPLE = ROOT / "examples" / "train_longtail.py"
DATASETS = ("digits-rot-lt", "digits-bg-lt", "digits-dil-lt")
#: Nuisances the defaults were not developed on (zoom, faded ink, shift, mirror image): ``--datasets`` takes them to check
#: that a rule chosen on the three above carries over to what it was not chosen on.
HELD_OUT = ("digits-scale-lt", "digits-contrast-lt", "digits-shift-lt", "digits-flip-lt")
#: Per-dataset gitaug-fit recipes of earlier releases (``--fit-flags recipes``), kept to compare
#: with: the rotation set got the style-driven warp and the term that rewards it, the others the
#: mode-seeking term. The default (``--fit-flags default``) is gitaug-fit with no flag at all: it
#: tests which geometric transforms each dataset does not notice and warps within those ranges.
#: ``--fit-flags paper`` is the GIT paper's objective (no warp, no mode-seeking term).
PAPER_FLAGS = ("--warp", "none", "--weight-diversity", "0")
FIT_FLAGS = {
    "digits-rot-lt": ("--warp", "rotation", "--weight-warp-diversity", "10"),
    "digits-bg-lt": ("--weight-diversity", "10"),
    "digits-dil-lt": ("--weight-diversity", "10"),
}
METHODS = ("erm", "drs", "git", "git-residual", "git-data", "git-half", "git-warp", "git-auto", "git-val", "oracle")
#: GIT with the generator's own picture (the paper's draw), with residual draws (``GITAugment(residual=True)``),
#: with residual draws whose style codes come from the training images' style distribution
#: (``styles="data"``), the same at half strength (``appearance_scale=0.5``), with the generator's warp
#: alone (``appearance_scale=0``: the input's appearance kept), with the draw the fit recommends
#: (``training.draw``: one of those four, by a pseudo-tail transfer test), and with the draw that scores
#: best on validation (git-val); each gets its own choice of K, p and rule on validation; the oracle uses the
#: plain draw's.
class GitDraw(NamedTuple):
    label: str  # how reports name the draw ("<label> draws")
    flags: tuple[str, ...]  # what examples/train_longtail.py is given for it


GIT_DRAWS = {
    "git": GitDraw("decode", ("--draw", "decode")),
    "git-residual": GitDraw("residual", ("--draw", "residual")),
    "git-data": GitDraw("residual, data styles", ("--draw", "residual", "--styles", "data")),
    "git-half": GitDraw("residual, data styles, half strength",
                        ("--draw", "residual", "--styles", "data", "--appearance-scale", "0.5")),
    "git-warp": GitDraw("warp only", ("--draw", "residual", "--appearance-scale", "0")),
    "git-auto": GitDraw("recommended by the fit", ("--draw", "recommended")),
    # Its flags are those of the LADDER draw chosen on validation (the setting's "draw").
    "git-val": GitDraw("chosen on validation", ()),
}
#: The draws the validation choice (git-val) weighs: gitaug.report.DRAW_LADDER's rungs, the most varied
#: first, and the warp alone. A tie goes to the more varied draw.
LADDER = ("git", "git-data", "git-half", "git-warp")
METHOD_NAMES = {"erm": "ERM", "drs": "CE+DRS", "git": "CE+DRS+GIT", "git-residual": "CE+DRS+GIT, residual draws",
                "git-data": "CE+DRS+GIT, residual draws, data styles", "git-warp": "CE+DRS+GIT, the warp alone",
                "git-half": "CE+DRS+GIT, residual draws, data styles, half strength",
                "git-auto": "CE+DRS+GIT, the fit's recommended draw",
                "git-val": "CE+DRS+GIT, the draw chosen on validation",
                "oracle": "CE+DRS+oracle"}
# Candidate GIT settings, chosen between on the validation split.
CANDIDATES = (
    {"threshold": None, "p": 0.5, "rule": "hard"},
    {"threshold": 100, "p": 0.5, "rule": "hard"},
    {"threshold": 200, "p": 1.0, "rule": "linear"},
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS + HELD_OUT)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="classifier epochs (re-sampling and GIT from 2/3 on)")
    parser.add_argument("--fit-steps", type=int, default=None, help="generator steps (default: gitaug-fit's)")
    parser.add_argument("--fit-flags", choices=("default", "recipes", "paper"), default="default",
                        help="default: gitaug-fit's defaults on every dataset; recipes: the per-dataset flags of "
                             "earlier releases; paper: the paper's objective (use a separate --work folder each)")
    parser.add_argument("--fit-extra", default="", metavar="FLAGS",
                        help="more gitaug-fit flags for every dataset, e.g. '--weight-diversity 10' "
                             "(use a separate --work folder: finished generators are reused)")
    parser.add_argument("--skip", nargs="+", default=[], choices=("erm", *(m for m in GIT_DRAWS if m != "git")),
                        help="methods not to train, neither chosen for nor run (their rows are left out unless an earlier "
                             "invocation finished them; ERM does not depend on the generator; the paper's draw, git, "
                             "always runs: the oracle uses its setting)")
    parser.add_argument("--validate-only", nargs="+", default=[], choices=tuple(m for m in LADDER if m != "git"),
                        help="ladder draws that take part in git-val's choice on validation but get no run of their "
                             "own on every seed (saves their runs; git-val reuses the chosen one's)")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs, one thread each")
    parser.add_argument("--work", type=Path, default=None,
                        help="generators, logs, per-run JSON (default: benchmarks/_work, with _<variant> appended for "
                             "--fit-flags other than default)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--output-suffix", default=None, metavar="SUFFIX",
                        help="appended to the results file, the report section and the figures (default: _<variant> "
                             "for --fit-flags other than default), e.g. to re-run some datasets beside a full run")
    args = parser.parse_args()
    if args.output_suffix is None:
        args.output_suffix = variant_suffix(args.fit_flags)
    if args.work is None:
        args.work = ROOT / "benchmarks" / f"_work{variant_suffix(args.fit_flags)}"
    return args


def variant_suffix(fit_flags: str) -> str:
    """What the outputs of a ``--fit-flags`` variant carry after their name: nothing for the default fit."""
    return "" if fit_flags == "default" else f"_{fit_flags}"


#: How each variant's generators are described in the reports.
VARIANT_NAMES = {
    "default": "the default fit (`gitaug-fit` with no flag: it tests which transforms the data does not notice and draws within them)",
    "recipes": "the per-nuisance recipes of earlier releases",
    "paper": "the GIT paper's objective (no warp, no mode-seeking term)",
}


# ----------------------------------------------------------------------------- running jobs


def run_job(command: list[str], log: Path, done_marker: Path) -> bool:
    """Run one command with one thread, unless its output already exists (resume); True if it ran.

    The job's CPU time goes to ``<log>.cpu`` (seconds, added up over resumed stretches), for the
    benchmarks' sizing figures; ``<log>.cpu-from-start`` marks a job whose first stretch was recorded.
    """
    if done_marker.exists():
        return False
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.time()
    cpu_file = log.with_suffix(".cpu")
    if not log.exists():  # the job's first stretch: its CPU record will be complete
        log.parent.joinpath(log.stem + ".cpu-from-start").touch()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        # wait4 gives this child's own resource use, even with other jobs running beside it.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    previous = float(cpu_file.read_text()) if cpu_file.exists() else 0.0  # an interrupted job's earlier stretches
    cpu_file.write_text(f"{previous + usage.ru_utime + usage.ru_stime:.1f}\n")
    if process.returncode != 0:
        raise RuntimeError(f"job failed ({process.returncode}) after {time.time() - started:.0f}s; see {log}: {' '.join(command)}")
    print(f"  done in {time.time() - started:5.0f}s ({usage.ru_utime + usage.ru_stime:5.0f}s of CPU): {log.stem}", flush=True)
    return True


def run_all(jobs: list[tuple[list[str], Path, Path]], workers: int) -> int:
    """Run the jobs in ``workers`` parallel processes; returns how many actually ran (not resumed from disk)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(future.result() for future in [pool.submit(run_job, *job) for job in jobs])


def shown(path: Path) -> str:
    """A path as printed and stored: relative to the repository when inside it (--results and --report may be
    elsewhere; :func:`_report.portable`)."""
    return portable(str(path.resolve()))


def generator_dir(work: Path, dataset: str, seed: int) -> Path:
    return work / "generators" / f"{dataset}-seed{seed}"


def fit_config(folder: Path) -> dict | None:
    """The exported generator's config of a fit folder (in ``generator/``, or at the top for older fits), or None."""
    folder = folder if is_generator_folder(folder) else folder / "generator"
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else None


def generator_config(work: Path, dataset: str, seed: int) -> dict | None:
    """:func:`fit_config` of a benchmark fit."""
    return fit_config(generator_dir(work, dataset, seed))


def recommended_by(folder: Path) -> dict | None:
    """The draw a fit folder's config recommends over ``GITAugment``'s defaults (what ``from_pretrained`` draws
    with), or None before the fit is exported."""
    from gitaug.augment import complete_draw, recommended_draw

    config = fit_config(folder)
    return None if config is None else complete_draw(recommended_draw(config.get("training", {})))


def work_folders() -> list[Path]:
    """Every benchmark work folder with finished runs (``benchmarks/_work*``)."""
    return sorted(p for p in (ROOT / "benchmarks").glob("_work*") if (p / "runs").is_dir())


def load_run(work: Path, dataset: str, seed: int, tag: str) -> dict | None:
    """A finished run's JSON (``<work>/runs/<set>-seed<S>-<tag>.json``), or None."""
    path = work / "runs" / f"{dataset}-seed{seed}-{tag}.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_figures(run: dict) -> tuple[float, float | None]:
    """A run's test balanced accuracy and tail eKLD (None on a set without a nuisance)."""
    return run["test_balanced_accuracy"], (run.get("ekld_summary") or {}).get("tail_mean")


def same_draw(run: dict, settings: dict) -> bool:
    """Whether a run drew with ``settings``, its ``warp_extent`` aside (a setting a run does not record is one from
    before it existed: its default).

    The transfer test judges the candidates within the tested ranges; every run of one fit draws with the extent
    the fit recommended (1 but on the fits made while 2.5 was tried), so the rules are compared at one extent.
    """
    from gitaug.augment import complete_draw

    def judged(draw: dict) -> dict:
        return {k: v for k, v in complete_draw(draw).items() if k != "warp_extent"}

    return judged(run.get("draw") or {}) == judged(settings)


#: train_longtail arguments a run stores that :func:`repeat_command` does not pass again (paths are given anew; the
#: rest are defaults).
NOT_PASSED = ("cifar", "out", "save_classifier", "imbalance")


def repeat_command(run: dict, drop: tuple[str, ...] = ()) -> list[str]:
    """The ``train_longtail`` command that repeats a finished run (its stored ``args``), without ``--out`` and the
    arguments named in ``drop``: a paired ablation adds its own change and output."""
    command = [sys.executable, str(EXAMPLE)]
    for key, value in run["args"].items():
        if key in NOT_PASSED or key in drop or value is None or value is False:
            continue
        command += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return command


def fit_job(args: argparse.Namespace, dataset: str, seed: int):
    out = generator_dir(args.work, dataset, seed)
    command = ["gitaug-fit", "--dataset", dataset, "--seed", str(seed), "--out", str(out), "--device", "cpu"]
    command += dataset_fit_flags(args, dataset)
    command += shlex.split(args.fit_extra)
    if args.fit_steps is not None:
        command += ["--steps", str(args.fit_steps)]
    # A finished fit has an exported generator: in <out>/generator, or at <out>'s top for fits made before
    # the export got its own folder. The generator's config is written last, so it marks a complete export.
    finished = out / "config.json" if is_generator_folder(out) else out / "generator" / "config.json"
    if out.exists() and not finished.exists():
        command.append("--resume")  # an interrupted fit continues from its last checkpoint
    return command, args.work / "logs" / f"fit-{dataset}-seed{seed}.log", finished


def dataset_fit_flags(args: argparse.Namespace, dataset: str) -> tuple[str, ...]:
    if args.fit_flags == "recipes":
        return FIT_FLAGS.get(dataset, ())
    if args.fit_flags == "paper":
        return PAPER_FLAGS
    return ()


def train_job(args: argparse.Namespace, dataset: str, seed: int, method: str, setting: dict, tag: str, extra: tuple[str, ...] = ()):
    out = args.work / "runs" / f"{dataset}-seed{seed}-{tag}.json"
    command = [sys.executable, str(EXAMPLE), "--dataset", dataset, "--method", "git" if method in GIT_DRAWS else method,
               "--seed", str(seed), "--epochs", str(args.epochs), "--device", "cpu", "--out", str(out), *extra]
    if method in GIT_DRAWS or method == "oracle":
        if setting["threshold"] is not None:
            command += ["--threshold", str(setting["threshold"])]
        command += ["--p", str(setting["p"]), "--rule", setting["rule"]]
    if method in GIT_DRAWS:
        command += ["--generator", str(generator_dir(args.work, dataset, seed)), *draw_flags(method, setting)]
    if method == "git-auto":
        reuse_recommended_run(args, dataset, seed, setting, tag, out)
    if out.exists() and (why := stale(out, method, setting, generator_dir(args.work, dataset, seed))):
        # A finished run made with another setting or draw would be reported as this one's: set it aside.
        os.replace(out, out.with_suffix(".other-setting.json"))
        print(f"  {out.name}: made with {why}; set aside, to run again", flush=True)
    return command, args.work / "logs" / f"{dataset}-seed{seed}-{tag}.log", out


def stale(out: Path, method: str, setting: dict, generator: Path) -> str | None:
    """Why a finished run no longer matches its job (another K, p or rule; another draw or bank size), or None.

    The selection on validation and a fit's recommended draw can change between invocations (a
    rerun with more candidates, a new recommendation rule) while the run's file name stays the same.
    """
    if method not in GIT_DRAWS and method != "oracle":
        return None  # ERM and CE+DRS take no GIT setting
    run = json.loads(out.read_text())
    used = run["args"]
    wanted = (None if setting["threshold"] is None else float(setting["threshold"]), float(setting["p"]), setting["rule"])
    if (used["threshold"], float(used["p"]), used["rule"]) != wanted:
        return f"K={used['threshold']}, p={used['p']}, {used['rule']} (wanted K={wanted[0]}, p={wanted[1]}, {wanted[2]})"
    if method == "git-val" and "draw" not in setting:
        return "no draw chosen on validation by this invocation (git-val skipped)"
    if method in GIT_DRAWS and method != "git-auto":
        wanted_draw = flag_values(draw_flags(method, setting))
        used_draw = {key: used.get(key) for key in wanted_draw}
        if used_draw != wanted_draw:
            return f"the draw {used_draw} (wanted {wanted_draw})"
    if method == "git-auto" and (expected := recommended_by(generator)) is not None:
        from gitaug.augment import complete_draw

        # Runs from before a draw setting existed drew with its default.
        if complete_draw(run.get("draw") or {}) != expected:
            return f"the draw {run.get('draw')} (the fit now recommends {expected})"
    if method in GIT_DRAWS and run.get("draw") is not None and used.get("bank_draws"):
        # The example's default (no --bank-draws): every draw live. Runs from before it served a bank.
        return f"a bank of {used['bank_draws']} draws per image (wanted live draws, the example's default)"
    return None


def draw_flags(method: str, setting: dict) -> tuple[str, ...]:
    """What examples/train_longtail.py is given for a GIT draw: git-val's come from the draw its setting names."""
    return GIT_DRAWS[setting["draw"] if method == "git-val" else method].flags


def flag_values(flags: tuple[str, ...]) -> dict:
    """The draw arguments a run records (its JSON's ``args``) for these flags, over the example's defaults."""
    values = {"draw": "decode", "styles": "prior", "appearance_scale": 1.0}
    for flag, value in zip(flags[::2], flags[1::2]):
        key = flag.removeprefix("--").replace("-", "_")
        values[key] = float(value) if key == "appearance_scale" else value
    return values


def choose_draw(selection: dict, dataset: str) -> dict | None:
    """git-val's choice: the LADDER draw whose chosen setting scores best on validation (None while one is missing).

    Each draw's K, p and rule are already chosen on the same validation split, so this picks a
    (draw, setting) pair as K and p are picked; ties go to the more varied draw.
    """
    entry = selection[dataset]
    scores = {}
    for method in LADDER:
        choice = entry if method == "git" else entry.get(method)
        if choice is None or choice.get("chosen") is None or not choice.get("val_balanced_accuracy"):
            return None
        scores[method] = choice["val_balanced_accuracy"][setting_tag(choice["chosen"])]
    best = max(LADDER, key=lambda m: (scores[m], -LADDER.index(m)))
    return {"chosen": {**chosen_setting(selection, dataset, best), "draw": best}, "val_balanced_accuracy": scores,
            "how": f"the draw of {', '.join(LADDER)} that scores best on validation: {best}"}


def validated_draw_text(entry: dict) -> str:
    """A sentence on git-val's choice in a dataset's selection entry ("" when it has none), for the reports."""
    if (val := entry.get("git-val")) is None:
        return ""
    scores = "; ".join(f"{GIT_DRAWS[m].label} {v * 100:.1f} %" for m, v in val["val_balanced_accuracy"].items())
    return f" The ladder draw chosen on validation (git-val): {GIT_DRAWS[val['chosen']['draw']].label} (validation balanced accuracy {scores})."


def git_val_jobs(args: argparse.Namespace, selection: dict, seed: int) -> list[tuple[str, tuple]]:
    """git-val's (dataset, job) pairs for one seed, after giving it the chosen draw's matching runs.

    To be run after the other draws' jobs: their finished runs are the ones it can reuse. A dataset
    without a git-val choice (a ladder draw was skipped) has none.
    """
    jobs = []
    for dataset in args.datasets:
        if "git-val" in selection[dataset]:
            setting = chosen_setting(selection, dataset, "git-val")
            reuse_chosen_run(args, dataset, seed, setting)
            jobs.append((dataset, train_job(args, dataset, seed, "git-val", setting, "git-val")))
    return jobs


def reuse_chosen_run(args: argparse.Namespace, dataset: str, seed: int, setting: dict) -> None:
    """Give git-val the chosen draw's finished run with the same setting, when there is one: the same command.

    The validation run (first seed) or the draw's own run, when it was made with this K, p and rule,
    is copied rather than trained again (training is deterministic for a seed on CPU).
    """
    out = args.work / "runs" / f"{dataset}-seed{seed}-git-val.json"
    generator = generator_dir(args.work, dataset, seed)
    if out.exists() and not stale(out, "git-val", setting, generator):
        return
    method = setting["draw"]
    for tag in (method, select_tag(method, setting)):
        source = args.work / "runs" / f"{dataset}-seed{seed}-{tag}.json"
        if source.exists() and not stale(source, method, setting, generator):
            if out.exists():  # made with another setting or draw: set aside, as train_job does
                os.replace(out, out.with_suffix(".other-setting.json"))
            tmp = out.with_suffix(".json.tmp")
            tmp.write_text(source.read_text())
            os.replace(tmp, out)
            return


def reuse_recommended_run(args: argparse.Namespace, dataset: str, seed: int, setting: dict, tag: str, out: Path) -> None:
    """Give git-auto the finished run of the draw its fit recommends, when that draw has one with this setting.

    The recommended draw is one of the ladder's (``gitaug.report.DRAW_CANDIDATES``), so its run is the
    same command as that draw's (training is deterministic for a seed on CPU): copied, not trained again.
    ``tag`` is git-auto's (its own run or a validation run); the source is the same run of the other draw.
    """
    generator = generator_dir(args.work, dataset, seed)
    wanted = recommended_by(generator)
    if (out.exists() and not stale(out, "git-auto", setting, generator)) or wanted is None:
        return
    for method in LADDER:
        values = flag_values(GIT_DRAWS[method].flags)
        # the ladder's rows draw within the fitted ranges (no --warp-extent)
        draw = {"residual": values["draw"] == "residual", "styles": values["styles"],
                "appearance_scale": values["appearance_scale"], "warp_extent": 1.0}
        if draw != wanted:
            continue
        source_tag = method if tag == "git-auto" else select_tag(method, setting)
        source = args.work / "runs" / f"{dataset}-seed{seed}-{source_tag}.json"
        if source.exists() and not stale(source, method, setting, generator):
            if out.exists():  # made with another draw: set aside, as train_job does
                os.replace(out, out.with_suffix(".other-setting.json"))
            tmp = out.with_suffix(".json.tmp")
            tmp.write_text(source.read_text())
            os.replace(tmp, out)
            print(f"  {out.name}: the recommended draw's run {source.name}, reused", flush=True)
        return


def setting_tag(setting: dict) -> str:
    return f"K{setting['threshold'] or 'all'}-p{setting['p']}-{setting['rule']}"


def select_tag(method: str, setting: dict) -> str:
    """The validation run of one GIT draw and candidate setting (the plain draw's keep their earlier names)."""
    return f"select-{setting_tag(setting)}" if method == "git" else f"select-{method}-{setting_tag(setting)}"


def validation_choice(work: Path, dataset: str, seed: int, method: str, candidates) -> tuple[dict, dict | None]:
    """One GIT draw's validation scores per candidate and the best candidate (``None`` while a run is missing)."""
    scores = {}
    for candidate in candidates:
        path = work / "runs" / f"{dataset}-seed{seed}-{select_tag(method, candidate)}.json"
        if path.exists():
            scores[setting_tag(candidate)] = json.loads(path.read_text())["val_balanced_accuracy"]
    if len(scores) < len(candidates):
        return scores, None
    return scores, max(candidates, key=lambda c: scores[setting_tag(c)])


def record_choice(selection: dict, dataset: str, method: str, choice: dict) -> None:
    """Store a GIT draw's choice where :func:`chosen_setting` reads it: the plain draw's at the top level."""
    entry = selection.setdefault(dataset, {})
    if method == "git":
        entry.update(choice)
    else:
        entry[method] = choice


def chosen_setting(selection: dict, dataset: str, method: str) -> dict:
    """The setting a method trains with: its own validation choice for a GIT draw, the plain draw's otherwise."""
    return selection[dataset].get(method, selection[dataset])["chosen"]


def finished_methods(args: argparse.Namespace, dataset: str) -> tuple[str, ...]:
    """The methods whose runs exist for every seed (earlier runs of this benchmark had no residual draws)."""
    return tuple(m for m in METHODS if all((args.work / "runs" / f"{dataset}-seed{s}-{m}.json").exists() for s in args.seeds))


# ----------------------------------------------------------------------------- the diagnostic


def shift_pixels(images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) each moved by its whole-pixel ``offsets`` (N, 2) as (down, right), the edge pixels
    repeated into what is uncovered: an exact move, nothing resampled or blurred."""
    height, width = images.shape[-2], images.shape[-1]
    pad = int(offsets.abs().max()) if offsets.numel() else 0
    padded = torch.nn.functional.pad(images, (pad,) * 4, mode="replicate")
    out = torch.empty_like(images)
    for dy, dx in offsets.unique(dim=0).tolist():
        chosen = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
        # content moved by (dy, dx) is read from the window offset by (-dy, -dx)
        top, left = pad - dy, pad - dx
        out[chosen] = padded[chosen][:, :, top:top + height, left:left + width]
    return out


def random_pixel_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` (N, C, H, W) each moved by a whole number of pixels, up to ``max_shift`` along each axis
    (uniform), by :func:`shift_pixels`."""
    if max_shift <= 0:
        return images
    return shift_pixels(images, torch.randint(-max_shift, max_shift + 1, (images.shape[0], 2), generator=generator))


def reference_classifier(dataset: str, seed: int, epochs: int = 15, shift: int = 0) -> torch.nn.Module:
    """A classifier invariant to the dataset's nuisance: trained on balanced training images carrying it.

    300 images per class, from the same training pool as the long-tailed split (digits or Fashion-MNIST). With
    ``shift`` each training batch is also moved by up to that many whole pixels (:func:`random_pixel_shift`), so
    that the reference does not change its prediction under moves that cannot change the class (the benchmarks'
    reference, ``shift=0``, changes it on 9-17 % of Fashion-MNIST images moved by one pixel:
    ``preservation_control.py``).
    """
    from gitaug.datasets import DIGITS_DATASETS, FASHION_MNIST_DATASETS, load_digits_lt, load_fashion_mnist_lt
    from gitaug.longtail.classifiers import SmallResNet

    if dataset in DIGITS_DATASETS:
        balanced = load_digits_lt(DIGITS_DATASETS[dataset], split="train", seed=seed, imbalance=1.0, max_count=300)
    else:
        balanced = load_fashion_mnist_lt(FASHION_MNIST_DATASETS[dataset], split="train", seed=seed, imbalance=1.0, max_count=300)
    torch.manual_seed(seed)
    model = SmallResNet(1, balanced.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    loader = torch.utils.data.DataLoader(balanced, batch_size=64, shuffle=True, drop_last=True)
    moves = torch.Generator().manual_seed(seed)  # its own stream: shift=0 trains exactly as before
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            images = random_pixel_shift(images, shift, moves)
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    return model.eval()


def stored_preservation(out: Path, dataset: str, seed: int,
                        draws: dict[str, Callable[[], Any]] | None = None) -> dict[str, float]:
    """Class preservation (:func:`preservation_meter`) of the true nuisance (``"true"``) and of each of ``draws``
    (name: a function that builds its transform), stored in the JSON file ``out``: only what the file lacks is
    measured, and nothing without ``draws`` (then it returns what is stored)."""
    stored = json.loads(out.read_text()) if out.exists() else {}
    todo = [name for name in ("true", *(draws or {})) if name not in stored]
    if not draws or not todo:
        return stored
    from gitaug.datasets import nuisance_of

    keep = preservation_meter(dataset, seed)
    for name in todo:
        stored[name] = keep(nuisance_of(dataset) if name == "true" else draws[name]())
        print(f"  class preservation {dataset} seed {seed}: {name} {stored[name]:.3f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, stored)
    return stored


def preservation_meter(dataset: str, seed: int, shift: int = 0) -> Callable[[Any], float]:
    """Class preservation under :func:`reference_classifier` (trained with ``shift``), as a function of a transform:
    the share of its draws of the training images, 10 per input, on which the reference keeps its prediction
    (trained once, one thread)."""
    from gitaug.datasets import load
    from gitaug.evaluation.diagnostics import class_preservation

    torch.set_num_threads(1)
    reference = reference_classifier(dataset, seed, shift=shift)
    train = load(dataset, split="train", seed=seed)

    def keep(transform: Any) -> float:
        return class_preservation(transform, reference, train.images, train.targets, train.num_classes,
                                  m_per_input=10, seed=seed).mean

    return keep


def recommended_diagnostic(
    args: argparse.Namespace, dataset: str, seed: int, reference: torch.nn.Module | None = None,
    true: Any = None, true_spread: torch.Tensor | None = None,
) -> dict | None:
    """Class preservation and spread of the draw the fit recommends (``training.draw``), ``None`` if it stores none.

    Set against the true nuisance's keep rate under the same reference classifier. :func:`diagnostic` passes
    its own reference and true-nuisance figures; without them (a diagnostic stored before this one existed)
    both are measured here, so the pair holds whatever reference the earlier file was made with.
    """
    from gitaug import GITAugment
    from gitaug.datasets import load, nuisance_of, plain_version
    from gitaug.evaluation.diagnostics import class_preservation, variant_spread

    aug = GITAugment.from_pretrained(generator_dir(args.work, dataset, seed))
    if not aug.metadata.get("draw"):
        return None
    torch.set_num_threads(max(1, args.workers))
    started = time.time()
    train = load(dataset, split="train", seed=seed)
    if reference is None:
        reference = reference_classifier(dataset, seed)
        true = true_spread = None  # figures of another reference do not pair with this one
    if true is None:
        true = class_preservation(nuisance_of(dataset), reference, train.images, train.targets, train.num_classes, m_per_input=10, seed=seed)
    if true_spread is None:
        plain = load(plain_version(dataset), split="train", seed=seed)
        true_spread = variant_spread(nuisance_of(dataset), plain.images, plain.targets, plain.num_classes, seed=seed)
    keep = class_preservation(aug, reference, train.images, train.targets, train.num_classes, m_per_input=10, seed=seed)
    spread = variant_spread(aug, train.images, train.targets, train.num_classes, seed=seed)
    print(f"  diagnostic {dataset} seed {seed}: the recommended draw keeps {keep.mean:.3f}, the true nuisance "
          f"{true.mean:.3f} (same reference)", flush=True)
    return {
        "draw": {k: v for k, v in aug.metadata["draw"].items() if k != "chosen"},
        "keep_rate": keep.per_class.tolist(),
        "true_nuisance_keep_rate": true.per_class.tolist(),
        "spread": spread.tolist(),
        "true_nuisance_spread": true_spread.tolist(),
        "seconds": time.time() - started,
    }


def stale_recommendation(args: argparse.Namespace, dataset: str, seed: int, measured: dict | None) -> bool:
    """Whether a stored diagnostic of the recommended draw measured another draw than the fit's config now names."""
    from gitaug.augment import complete_draw

    wanted = recommended_by(generator_dir(args.work, dataset, seed))
    return measured is not None and wanted is not None and complete_draw(measured["draw"]) != wanted


def diagnostic(args: argparse.Namespace, dataset: str, seed: int) -> dict:
    out = args.work / "diagnostics" / f"{dataset}-seed{seed}.json"
    if out.exists():
        result = json.loads(out.read_text())
        # Stored before the recommended draw was measured, or for a draw the fit no longer recommends (a new
        # rule re-judged its stored transfer test): measure the current one.
        if "recommended" not in result or stale_recommendation(args, dataset, seed, result["recommended"]):
            result["recommended"] = recommended_diagnostic(args, dataset, seed)
            write_json(out, result)  # whole or not at all
        return result
    from gitaug import GITAugment
    from gitaug.datasets import load, nuisance_of, plain_version
    from gitaug.evaluation.diagnostics import class_preservation, variant_spread

    torch.set_num_threads(max(1, args.workers))
    started = time.time()
    reference = reference_classifier(dataset, seed)
    train = load(dataset, split="train", seed=seed)
    val = load(dataset, split="val", seed=seed)
    # the paper's draw, whatever the folder recommends (training.draw)
    aug = GITAugment.from_pretrained(generator_dir(args.work, dataset, seed), residual=False, styles="prior", appearance_scale=1.0)
    generated = class_preservation(aug, reference, train.images, train.targets, train.num_classes, m_per_input=10, seed=seed)
    residual = GITAugment(aug.generator, residual=True)
    generated_residual = class_preservation(residual, reference, train.images, train.targets, train.num_classes, m_per_input=10, seed=seed)
    true = class_preservation(nuisance_of(dataset), reference, train.images, train.targets, train.num_classes, m_per_input=10, seed=seed)
    data_styles = None
    if "styles" in aug.metadata:  # generators fitted before style statistics were stored have none
        data_styles = GITAugment(aug.generator, residual=True, styles="data")
        generated_data = class_preservation(data_styles, reference, train.images, train.targets, train.num_classes, m_per_input=10, seed=seed)
    # How much the draws vary: the generator on its own training inputs, the true nuisance on the same
    # base digits without a nuisance (a generator that ignores its style code scores 0).
    plain = load(plain_version(dataset), split="train", seed=seed)
    generated_spread = variant_spread(aug, train.images, train.targets, train.num_classes, seed=seed)
    residual_spread = variant_spread(residual, train.images, train.targets, train.num_classes, seed=seed)
    if data_styles is not None:
        data_spread = variant_spread(data_styles, train.images, train.targets, train.num_classes, seed=seed)
    true_spread = variant_spread(nuisance_of(dataset), plain.images, plain.targets, plain.num_classes, seed=seed)
    val_images = val.images.float() / 255
    val_accuracy = (reference(val_images).argmax(1) == val.targets).float().mean().item()
    result = {
        "reference_val_accuracy": val_accuracy,
        "class_counts": train.class_counts.tolist(),
        "generator_keep_rate": generated.per_class.tolist(),
        "true_nuisance_keep_rate": true.per_class.tolist(),
        "generator_spread": generated_spread.tolist(),
        "generator_keep_rate_residual": generated_residual.per_class.tolist(),
        "generator_spread_residual": residual_spread.tolist(),
        **({"generator_keep_rate_data": generated_data.per_class.tolist(), "generator_spread_data": data_spread.tolist()}
           if data_styles is not None else {}),
        "true_nuisance_spread": true_spread.tolist(),
        "seconds": time.time() - started,
        "recommended": recommended_diagnostic(args, dataset, seed, reference, true, true_spread),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"  diagnostic {dataset} seed {seed}: generator keeps {generated.mean:.3f} (residual draws {generated_residual.mean:.3f}), "
          f"true nuisance keeps {true.mean:.3f}; "
          f"spread {generated_spread.nanmean():.3f} vs {true_spread.nanmean():.3f}", flush=True)
    return result


def recommended_summary(results: list[dict]) -> dict:
    """Per seed, the recommended draw's keep rate and spread, with the true nuisance's under the same reference.

    Empty unless every seed's diagnostic measured a recommended draw.
    """
    if not all(r.get("recommended") for r in results):
        return {}
    rec = [r["recommended"] for r in results]
    return {"generator_keep_recommended": [float(np.nanmean(r["keep_rate"])) for r in rec],
            "true_keep_recommended": [float(np.nanmean(r["true_nuisance_keep_rate"])) for r in rec],
            "generator_spread_recommended": [float(np.nanmean(r["spread"])) for r in rec]}


def learned(args: argparse.Namespace, dataset: str, seed: int) -> dict:
    """What a fitted generator's config says it learned: the warp ranges and the fit's own report."""
    config = generator_config(args.work, dataset, seed)
    training = config.get("training", {})
    report = training.get("report") or {}
    return {
        "nuisance": {k: v for k, v in (training.get("nuisance") or {}).items() if k != "test"},
        "report": {k: report.get(k) for k in ("status", "relative_spread", "class_preservation", "reference_accuracy", "warp")},
    }


def grid_name(fit_flags: str, dataset: str) -> str:
    """The file in docs/ holding a variant's seed-0 sample grid (the recipe grids kept their earlier names)."""
    return f"samples-{dataset}.png" if fit_flags == "recipes" else f"samples-{fit_flags}-{dataset}.png"


def describe_learned(entry: dict) -> str:
    """The warp ranges a default fit chose, in readable units."""
    n = entry["nuisance"]
    if n.get("warp") != "affine":
        return f"warp {n.get('warp')}"
    text = (f"rotation +-{n['rotation_degrees']:.0f} deg, scale x{1 / n['scale']:.2f}..x{n['scale']:.2f}, "
            f"shift +-{100 * n['shift']:.0f} % of the side")
    if (drawn := n.get("drawn")) and drawn.get("extent", 1) != 1:  # fits whose recommended draw reaches further
        text += (f" (draws x{drawn['extent']:g}: +-{drawn['rotation_degrees']:.0f} deg, "
                 f"x{1 / drawn['scale']:.2f}..x{drawn['scale']:.2f}, +-{100 * drawn['shift']:.0f} %)")
    # only fits whose background swap went unseen draw the data's backgrounds
    return text + ", background swapped for the data's own" if n.get("backgrounds") else text


# ----------------------------------------------------------------------------- the report


def mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def fmt(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    mean, std = mean_std([v * scale for v in values])
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def tail_classes(counts: list[int], fraction: float = 1 / 3, head: bool = False) -> np.ndarray:
    """The indices of the smallest ``fraction`` of the classes by training count (the largest with ``head``)."""
    order = np.argsort(counts, kind="stable")
    k = max(1, int(round(fraction * len(counts))))
    return order[-k:] if head else order[:k]


def tail_head_means(counts: list[int], ekld_values: list[float], fraction: float = 1 / 3) -> tuple[float, float]:
    values = np.asarray(ekld_values)
    return float(values[tail_classes(counts, fraction)].mean()), float(values[tail_classes(counts, fraction, head=True)].mean())


def describe_draw(draw: dict) -> str:
    """A GIT run's draw settings (its run JSON's ``draw``) in words."""
    if draw.get("residual") and draw.get("appearance_scale") == 0:
        return "warp alone"
    name = "residual" if draw.get("residual") else "decoded"
    scale = draw.get("appearance_scale", 1.0)
    return f"{name}, {draw.get('styles', 'prior')} styles" + (f", appearance x{scale:g}" if scale != 1 else "")


def recommended_draws(work: Path, dataset: str, seeds: list[int]) -> str | None:
    """What each seed's fit recommended (the git-auto runs' draws), or None when no git-auto run finished."""
    found = [(s, p) for s in seeds if (p := work / "runs" / f"{dataset}-seed{s}-git-auto.json").exists()]
    if not found:
        return None
    return "; ".join(f"seed {s}: {describe_draw(json.loads(p.read_text()).get('draw', {}))}" for s, p in found)


def pct(share: float | None) -> str:
    return "oracle no better than CE+DRS" if share is None else f"{share * 100:.0f} %"


def write_report(args: argparse.Namespace, summary: dict, command: str) -> None:
    lines = [
        f"## GIT on the built-in long-tailed digits: {args.fit_flags} fit",
        "",
        f"Produced by `{command}` ({summary['environment']}; "
        + (f"{summary['seconds'] / 60:.0f} min of wall time; " if summary["seconds"] is not None
           else "redrawn from jobs finished by earlier invocations, whose logs are in the work folder; ")
        + "jobs whose outputs were already in the work folder are reused, not re-run).",
        "",
        f"Seeds {args.seeds} (each its own split, class order and nuisance draws); classifier: a ResNet-8 "
        f"(widths 16/32/64) trained {args.epochs} epochs with SGD, re-sampling (and GIT, and the oracle) from epoch "
        f"{(2 * args.epochs) // 3} on; generators: {VARIANT_NAMES[args.fit_flags]}"
        + (f", {args.fit_steps} steps" if args.fit_steps else "")
        + "".join(f", plus `{' '.join(dataset_fit_flags(args, d))}` for {d}" for d in args.datasets if dataset_fit_flags(args, d))
        + (f", plus `{args.fit_extra}` for every dataset" if args.fit_extra else "")
        + ". eKLD under the true nuisance on untransformed test digits (40 per class, 50 draws each). "
        "Balanced accuracy on the test split (52 base images per class, 4 nuisance draws each). "
        "Tail / head: the smallest / largest third of classes (3 classes each). Mean ± std over seeds.",
        "",
    ]
    for dataset in args.datasets:
        chosen = summary["selection"][dataset]["chosen"]
        lines += [
            f"### {dataset}",
            "",
            f"GIT setting chosen on validation: K = {chosen['threshold'] or 'none'}, p = {chosen['p']}, rule {chosen['rule']}"
            + "".join(f"; {METHOD_NAMES[m]}: {setting_tag(summary['selection'][dataset][m]['chosen'])}"
                      for m in GIT_DRAWS if m in summary["selection"][dataset]) + "."
            + validated_draw_text(summary["selection"][dataset]),
            "",
            "| method | balanced acc. (%) | eKLD tail | eKLD head | Spearman(size, eKLD) |",
            "|---|---|---|---|---|",
        ]
        for method in summary["table"][dataset]:
            row = summary["table"][dataset][method]
            lines.append(
                f"| {METHOD_NAMES[method]} | {fmt(row['balanced_accuracy'], 100, 1)} | {fmt(row['ekld_tail'], 1, 3)} | "
                f"{fmt(row['ekld_head'], 1, 3)} | {fmt(row['spearman'], 1, 2)} |"
            )
        diag = summary["diagnostics"][dataset]
        lines += [
            "",
            f"Generator diagnostic: a reference classifier trained on balanced data with the nuisance "
            f"(validation accuracy {fmt(diag['reference_val_accuracy'], 100, 1)} %) keeps its prediction on "
            f"{fmt(diag['generator_keep'], 100, 1)} % of generated samples and on "
            f"{fmt(diag['true_keep'], 100, 1)} % of true-nuisance samples; on the tail third of classes "
            f"{fmt(diag['generator_keep_tail'], 100, 1)} % vs {fmt(diag['true_keep_tail'], 100, 1)} %. "
            f"Spread (mean absolute pixel difference between two draws of one input, 0 = the draws never differ): "
            f"generator {fmt(diag['generator_spread'], 1, 3)}, true nuisance {fmt(diag['true_spread'], 1, 3)}."
            + (f" Residual draws: kept {fmt(diag['generator_keep_residual'], 100, 1)} %, spread "
               f"{fmt(diag['generator_spread_residual'], 1, 3)}." if "generator_keep_residual" in diag else ""),
            "",
        ]
        recommended = recommended_draws(args.work, dataset, args.seeds)
        if recommended:
            lines += [f"The draw each fit recommended (`training.draw`, used by the recommended-draw row): {recommended}.", ""]
        ranges = [describe_learned(entry) for entry in diag.get("learned", []) if entry["nuisance"]]
        if ranges:
            lines += ["Learned by the fit, per seed: " + "; ".join(f"seed {s}: {r}" for s, r in zip(args.seeds, ranges)) + ".", ""]
        lines += [
            f"![eKLD against class size, {dataset}](results/ekld_{dataset}{args.output_suffix}.png)",
            "",
        ]
        grid = ROOT / "docs" / grid_name(args.fit_flags, dataset)
        fitted_grid = generator_dir(args.work, dataset, args.seeds[0]) / "generator" / "samples.png"
        if fitted_grid.exists():  # the first seed's final sample grid, from its exported generator
            shutil.copyfile(fitted_grid, grid)
        if grid.exists():
            lines += [
                "The first seed's generator's sample grid (one training digit per class, smallest class first, "
                "then eight draws):",
                "",
                f"![gitaug-fit samples, {dataset}](../docs/{grid.name})",
                "",
            ]
    bar = summary["bar"]
    lines += [
        "### Against the bar",
        "",
        "| check | result |",
        "|---|---|",
    ]
    for dataset in args.datasets:
        for method in bar["spearman"][dataset]:
            value = bar["spearman"][dataset][method]
            lines.append(f"| {METHOD_NAMES[method]} Spearman < 0 on {dataset} | {value:+.2f} ({'yes' if value < 0 else 'no'}) |")
    lines += [
        f"| tail eKLD, CE+DRS+GIT vs CE+DRS, averaged over datasets | {bar['tail_ekld_reduction'] * 100:+.1f} % reduction "
        f"({'meets' if bar['tail_ekld_reduction'] >= 0.3 else 'misses'} the 30 % bar) |",
        f"| balanced accuracy, CE+DRS+GIT minus CE+DRS, averaged over datasets | {bar['accuracy_gain'] * 100:+.2f} points "
        f"({'meets' if bar['accuracy_gain'] > 0 else 'misses'} the bar) |",
        "",
        "Share of the oracle's gain over CE+DRS, from the means over seeds (1 = all of it; the default fit's "
        "target is 80 % in both):",
        "",
        "| set | GIT draw | balanced accuracy | tail eKLD reduction |",
        "|---|---|---|---|",
        *(f"| {d} | {METHOD_NAMES[m]} | {pct(share['accuracy'])} | {pct(share['tail_ekld'])} |"
          for d in args.datasets for m, share in bar["oracle_share"][d].items() if share is not None),
        "",
        "Per dataset: " + "; ".join(
            f"{d}: tail eKLD {bar['per_dataset'][d]['tail_ekld_reduction'] * 100:+.1f} %, accuracy "
            f"{bar['per_dataset'][d]['accuracy_gain'] * 100:+.2f} points" for d in args.datasets
        ) + ".",
        "",
    ]
    update_section(args.report, f"reproduce_digits{args.output_suffix}", "\n".join(lines))


def oracle_share(rows: dict, method: str) -> dict | None:
    """How much of the oracle's gain over CE+DRS a GIT draw reaches (1 = all of it), from the means over seeds.

    ``accuracy``: (GIT - CE+DRS) / (oracle - CE+DRS) in balanced accuracy; ``tail_ekld``: the same ratio of
    tail-eKLD reductions. None where the oracle does not improve on CE+DRS (the ratio would mean nothing).
    """
    if not all(m in rows for m in ("drs", method, "oracle")):
        return None

    def share(key: str, sign: float) -> float | None:
        drs, git, oracle = (sign * float(np.mean(rows[m][key])) for m in ("drs", method, "oracle"))
        return (git - drs) / (oracle - drs) if oracle > drs else None

    return {"accuracy": share("balanced_accuracy", 1.0), "tail_ekld": share("ekld_tail", -1.0)}


def summarize(args: argparse.Namespace, selection: dict, started: float) -> dict:
    from gitaug.evaluation.invariance import EKLDResult, plot_ekld

    table: dict = {}
    figures: dict = {}
    for dataset in args.datasets:
        table[dataset] = {}
        series = {}
        for method in finished_methods(args, dataset):
            generator = lambda seed: generator_dir(args.work, dataset, seed)  # noqa: E731
            if any(stale(args.work / "runs" / f"{dataset}-seed{seed}-{method}.json", method,
                         chosen_setting(selection, dataset, method), generator(seed)) for seed in args.seeds):
                continue  # made with another setting or draw than the selection now gives it
            runs = [json.loads((args.work / "runs" / f"{dataset}-seed{seed}-{method}.json").read_text()) for seed in args.seeds]
            tails, heads = zip(*(tail_head_means(r["class_counts"], r["ekld_per_class"]) for r in runs))
            table[dataset][method] = {
                "balanced_accuracy": [r["test_balanced_accuracy"] for r in runs],
                "val_balanced_accuracy": [r["val_balanced_accuracy"] for r in runs],
                "ekld_tail": list(tails),
                "ekld_head": list(heads),
                "spearman": [r["ekld_summary"]["spearman"] for r in runs],
            }
            # Pool the seeds into one scatter per method (class sizes are the same profile in every seed).
            series[METHOD_NAMES[method]] = EKLDResult(
                per_class=torch.tensor([v for r in runs for v in r["ekld_per_class"]]),
                class_sizes=torch.tensor([c for r in runs for c in r["class_counts"]]),
                inputs_per_class=torch.full((len(runs) * len(runs[0]["class_counts"]),), 40),
                draws_per_input=50,
            )
        path = args.results / f"ekld_{dataset}{args.output_suffix}.png"
        plot_ekld(series, path, title=f"{dataset}, true nuisance, mean ± std over {len(args.seeds)} seeds")
        figures[dataset] = shown(path)

    diagnostics = {}
    for dataset in args.datasets:
        results = [diagnostic(args, dataset, seed) for seed in args.seeds]
        tail = lambda r, key: tail_head_means(r["class_counts"], r[key])[0]  # noqa: E731
        diagnostics[dataset] = {
            "reference_val_accuracy": [r["reference_val_accuracy"] for r in results],
            "generator_keep": [float(np.nanmean(r["generator_keep_rate"])) for r in results],
            "true_keep": [float(np.nanmean(r["true_nuisance_keep_rate"])) for r in results],
            "generator_keep_tail": [tail(r, "generator_keep_rate") for r in results],
            "true_keep_tail": [tail(r, "true_nuisance_keep_rate") for r in results],
            "generator_spread": [float(np.nanmean(r["generator_spread"])) for r in results],
            # diagnostics stored before residual draws existed have none
            **({"generator_keep_residual": [float(np.nanmean(r["generator_keep_rate_residual"])) for r in results],
                "generator_spread_residual": [float(np.nanmean(r["generator_spread_residual"])) for r in results]}
               if all("generator_keep_rate_residual" in r for r in results) else {}),
            **({"generator_keep_data": [float(np.nanmean(r["generator_keep_rate_data"])) for r in results],
                "generator_spread_data": [float(np.nanmean(r["generator_spread_data"])) for r in results]}
               if all("generator_keep_rate_data" in r for r in results) else {}),
            **recommended_summary(results),
            "learned": [learned(args, dataset, seed) for seed in args.seeds],
            "true_spread": [float(np.nanmean(r["true_nuisance_spread"])) for r in results],
            "per_seed": results,
        }

    per_dataset = {}
    for dataset in args.datasets:
        git, drs = table[dataset]["git"], table[dataset]["drs"]
        per_dataset[dataset] = {
            "tail_ekld_reduction": 1 - np.mean(git["ekld_tail"]) / np.mean(drs["ekld_tail"]),
            "accuracy_gain": float(np.mean(git["balanced_accuracy"]) - np.mean(drs["balanced_accuracy"])),
        }
    bar = {
        "oracle_share": {d: {m: oracle_share(table[d], m) for m in GIT_DRAWS if m in table[d]} for d in args.datasets},
        "spearman": {d: {m: float(np.mean(table[d][m]["spearman"])) for m in ("erm", "drs") if m in table[d]} for d in args.datasets},
        "tail_ekld_reduction": float(np.mean([per_dataset[d]["tail_ekld_reduction"] for d in args.datasets])),
        "accuracy_gain": float(np.mean([per_dataset[d]["accuracy_gain"] for d in args.datasets])),
        "per_dataset": per_dataset,
    }
    return {
        "environment": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.workers} single-thread workers",
        "seeds": list(args.seeds),
        "fit_flags": args.fit_flags,
        "seconds": time.time() - started,
        "selection": selection,
        "table": table,
        "diagnostics": diagnostics,
        "bar": bar,
        "figures": figures,
    }


# ----------------------------------------------------------------------------- main


def first_start(work: Path) -> float:
    """When this run first started: a run resumed after an interruption reports its whole wall time.

    The marker is removed once a run completes, so the next invocation (which
    may reuse finished jobs and re-run only those whose outputs were deleted)
    times itself.
    """
    marker = work / "started_at"
    if not marker.exists():
        marker.write_text(f"{time.time():.0f}\n")
    return float(marker.read_text())


def main() -> None:
    args = parse_args()
    command = command_line("reproduce_digits.py", sys.argv[1:])
    args.work.mkdir(parents=True, exist_ok=True)
    started = first_start(args.work)
    args.results.mkdir(parents=True, exist_ok=True)

    print(f"[1/4] fitting {len(args.datasets) * len(args.seeds)} generators", flush=True)
    ran = run_all([fit_job(args, d, s) for d in args.datasets for s in args.seeds], args.workers)

    print("[2/4] choosing K, p and the rule on the validation split (seed 0 of each dataset)", flush=True)
    select_seed = args.seeds[0]
    git_draws = [m for m in GIT_DRAWS if m not in args.skip and m != "git-val"]
    ran += run_all(
        [train_job(args, d, select_seed, m, c, select_tag(m, c)) for d in args.datasets for m in git_draws for c in CANDIDATES],
        args.workers,
    )
    selection = {}
    for dataset in args.datasets:
        for method in git_draws:
            scores, chosen = validation_choice(args.work, dataset, select_seed, method, CANDIDATES)
            record_choice(selection, dataset, method, {"val_balanced_accuracy": scores, "chosen": chosen})
            print(f"  {dataset}, {METHOD_NAMES[method]}: {setting_tag(chosen)} (val {scores[setting_tag(chosen)]:.3f})", flush=True)
        if "git-val" not in args.skip and (draw := choose_draw(selection, dataset)) is not None:
            record_choice(selection, dataset, "git-val", draw)
            print(f"  {dataset}, {METHOD_NAMES['git-val']}: {draw['chosen']['draw']}", flush=True)

    print("[3/4] training ERM, CE+DRS, CE+DRS+GIT and the oracle", flush=True)
    trained = [m for m in METHODS if m not in args.skip and m not in args.validate_only and m != "git-val"]
    ran += run_all(
        [train_job(args, d, s, m, chosen_setting(selection, d, m), m) for d in args.datasets for s in args.seeds for m in trained],
        args.workers,
    )
    ran += run_all([job for s in args.seeds for _, job in git_val_jobs(args, selection, s)], args.workers)

    print("[4/4] generator diagnostic and report", flush=True)
    missing_diagnostics = any(
        not (args.work / "diagnostics" / f"{d}-seed{s}.json").exists() for d in args.datasets for s in args.seeds
    )
    summary = summarize(args, selection, started)
    did_work = bool(ran) or missing_diagnostics
    # An invocation that ran nothing only redraws the report: it has no wall time of its own.
    summary["seconds"] = time.time() - started if did_work else None
    summary["command"] = command
    out = args.results / f"reproduce_digits{args.output_suffix}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    os.replace(tmp, out)
    write_report(args, summary, command)
    (args.work / "started_at").unlink(missing_ok=True)
    bar = summary["bar"]
    print(json.dumps({"tail_ekld_reduction": bar["tail_ekld_reduction"], "accuracy_gain": bar["accuracy_gain"], "spearman": bar["spearman"]}, indent=2))
    took = f"{summary['seconds'] / 60:.1f} min of wall time in all" if summary["seconds"] is not None else "no job ran"
    print(f"wrote {shown(out)} and {shown(args.report)}; {took}")


if __name__ == "__main__":
    main()
