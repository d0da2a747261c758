"""Does testing contrast help? The nuisance test's contrast family, added to the benchmarks' fits.

``gitaug-fit --warp-contrast auto`` (the default from this release; ``keep``
turns it off) also tests which contrast factors (intensities scaled about an
image's background value) the data does not notice, and draws scale their
inputs' contrast within that range. Only draws apply it, so a fit trains the
same weights with or without it: this script adds the family to a finished
benchmark fit made without it, instead of fitting again. For each
(set, seed) it

1. runs the fit's own nuisance test again with the family (the test of
   ``gitaug.fit.nuisance_probe.run_probe``: same images, same seed), refusing
   a fit whose stored geometric ranges and background values it does not
   reproduce (a fit made another way);
2. copies the exported generator to ``<work>/generators/<set>-seed<S>-contrast``
   with the contrast range in its config, the folder a fit with
   ``--warp-contrast auto`` would have exported, then runs the fit's transfer
   test again on it (``scripts/recommend_draw.py``: the draws now vary the
   contrast) and stores its recommendation;
3. trains the set's recommended-draw run (``git-auto``: same K, p, rule, seed)
   again with that generator, to ``<set>-seed<S>-git-auto-contrast.json``;

and reports it beside CE+DRS, the oracle and the run of the fit's recommended
draw without the family (at extent 1: the previous release's default), as
shares of the oracle's gain (``default_fit.py``'s figures). Sets without a nuisance (the
harm check) get accuracy only. With ``--preservation-seeds`` it also measures
both recommended draws' class preservation against the true nuisance's.

    python benchmarks/contrast_family.py --sets digits-contrast-lt fmnist-contrast-lt --seeds 0 1
    python benchmarks/contrast_family.py --report-only --preservation-seeds 0 1
    python benchmarks/contrast_family.py --probe-only --sets digits-lt fmnist-lt --seeds 0 1

Resumable: a finished step is not repeated. Output: ``results/contrast_family.json`` and the
``contrast_family`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import default_fit
import reproduce_digits as shared
from _report import update_section
from gitaug.datasets import nuisance_of
from gitaug.hub import is_generator_folder

ROOT = shared.ROOT
TAG = "git-auto-contrast"
#: The runs that may hold the fit's recommended draw without the family, at extent 1 (fits made while a fit
#: recommended extent 2.5 had theirs trained again at 1 by ``warp_extent.py --extent 1``).
BASELINES = ("git-auto", "git-auto-extent1", "git-auto.other-setting")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=None, help="datasets to add the family to (default: none, report only)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--work", type=Path, nargs="+", default=None,
                        help="benchmark work folders (default: every benchmarks/_work*)")
    parser.add_argument("--workers", type=int, default=1, help="parallel jobs, one thread each")
    parser.add_argument("--report-only", action="store_true", help="train nothing, tabulate what exists")
    parser.add_argument("--probe-only", action="store_true",
                        help="only the contrast range the test finds on --sets (every seed of --seeds); nothing trained")
    parser.add_argument("--preservation-seeds", nargs="+", type=int, default=[],
                        help="seeds whose fits get the class preservation of both recommended draws measured (a few "
                             "minutes per fit, stored in the work folder's diagnostics/), as a share of the true "
                             "nuisance's under the reproduction benchmark's reference classifier")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args()


#: How far (in [-1, 1] units: 2 grey levels) a fit's stored background values may lie from the ones the test now
#: finds for the fit to be taken: an earlier rule took the quantiles at other ranks, the same values to within
#: a fraction of their spacing on the background sets.
BACKGROUND_TOLERANCE = 4 / 255


def background_shift(stored: list[list[float]], found: list[list[float]]) -> float | None:
    """The largest difference between matching background values (both sorted), ``None`` if their numbers differ."""
    if len(stored) != len(found):
        return None
    if not stored:
        return 0.0
    stored_sorted = sorted(map(tuple, stored))
    found_sorted = sorted(map(tuple, found))
    return max(abs(a - b) for s, f in zip(stored_sorted, found_sorted) for a, b in zip(s, f))


def contrast_dir(work: Path, dataset: str, seed: int) -> Path:
    return work / "generators" / f"{dataset}-seed{seed}-contrast"


def fit_probe(dataset: str, seed: int, steps: int = 200):
    """The nuisance test a fit of ``dataset`` (seed ``seed``) with ``--warp-contrast auto`` runs: its config and result."""
    import torch

    from gitaug.fit import FitConfig
    from gitaug.fit.data import read_training_data
    from gitaug.fit.nuisance_probe import run_probe

    config = FitConfig(dataset=dataset, seed=seed, probe_steps=steps, warp_contrast="auto")
    data = read_training_data(dataset=dataset, seed=seed)
    # The benchmark fits ran on one thread each, and the test's float results can differ with the thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return config, run_probe(config, data)
    finally:
        torch.set_num_threads(threads)


def add_family(work: Path, dataset: str, seed: int) -> Path:
    """Step 1 and the copy of step 2: the generator folder a fit with ``--warp-contrast auto`` would export."""
    out = contrast_dir(work, dataset, seed)
    if (out / "config.json").exists():
        record = json.loads((out / "contrast-added.json").read_text())
        if "appearance" not in record:  # a copy made before the appearance was measured again
            refresh_appearance(out, dataset, seed)
            (out / "contrast-added.json").write_text(json.dumps({**record, "appearance": "measured with the family"}))
        return out
    from gitaug._files import write_json
    from gitaug.fit.nuisance_probe import warp_ranges

    source = shared.generator_dir(work, dataset, seed)
    source = source if is_generator_folder(source) else source / "generator"
    config = json.loads((source / "config.json").read_text())
    fit = json.loads((source.parent / "fit_config.json").read_text()) if (source.parent / "fit_config.json").exists() else {}
    fit_config, probe = fit_probe(dataset, seed, fit.get("probe_steps", 200))
    # The fit's own test: geometric ranges and background values as the fit stored them.
    ranges = warp_ranges(fit_config, probe)
    arch = config["generator"]
    stored = {k: arch.get(k) for k in ("warp_rotation", "warp_scale", "warp_shift")}
    backgrounds = [list(v) for v in arch.get("warp_backgrounds", [])]
    shift = background_shift(backgrounds, ranges["warp_backgrounds"])
    if {k: ranges[k] for k in stored} != stored or shift is None or shift > BACKGROUND_TOLERANCE:
        raise SystemExit(f"error: the nuisance test on {dataset} seed {seed} does not reproduce the fit's ranges "
                         f"({ {k: ranges[k] for k in stored} } against {stored}; background values "
                         f"{'differ in number' if shift is None else f'differ by up to {shift * 127.5:.1f} grey levels'}): "
                         "not a default fit of these images as the test now runs")
    if shift > 0:
        # Fits made before the background values were the data's mid-quantiles store the quantiles a rank
        # apart; the test of the family does not use them, and the copy keeps the fit's own.
        print(f"  {dataset} seed {seed}: stored background values kept (within {shift * 127.5:.1f} grey levels "
              "of the current rule's)", flush=True)
    arch["warp_contrast"] = ranges["warp_contrast"]
    nuisance = config.setdefault("training", {}).setdefault("nuisance", {})
    nuisance["contrast"] = ranges["warp_contrast"]
    nuisance.setdefault("test", {})["contrast"] = {"magnitudes": probe.magnitudes["contrast"],
                                                   "detection_power": probe.power["contrast"]}
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    write_json(tmp / "config.json", config)
    refresh_appearance(tmp, dataset, seed)
    (tmp / "contrast-added.json").write_text(json.dumps({"source": shared.shown(source), "contrast": ranges["warp_contrast"],
                                                          "appearance": "measured with the family"}))
    os.replace(tmp, out)
    print(f"  {dataset} seed {seed}: contrast x{1 / ranges['warp_contrast']:.3f}..x{ranges['warp_contrast']:.3f}", flush=True)
    return out


def refresh_appearance(folder: Path, dataset: str, seed: int) -> None:
    """Measure again what each candidate draw changes in appearance (``training.nuisance.appearance``, as the fit
    stores it): the draws now scale the contrast too."""
    from gitaug import GITAugment
    from gitaug._files import write_json
    from gitaug.datasets import load
    from gitaug.report import draw_appearance

    train = load(dataset, split="train", seed=seed)
    generator = GITAugment.from_pretrained(folder).generator
    config = json.loads((folder / "config.json").read_text())
    config["training"]["nuisance"]["appearance"] = draw_appearance(generator, train.images, train.targets, seed=seed)
    write_json(folder / "config.json", config)


def probe_only(args: argparse.Namespace) -> None:
    """``--probe-only``: the contrast range a default fit's test finds, per set and seed (nothing trained)."""
    import math

    found = {}
    for dataset in args.sets:
        for seed in args.seeds:
            _, probe = fit_probe(dataset, seed)
            found.setdefault(dataset, {})[str(seed)] = {"contrast": round(math.exp(probe.ranges["contrast"]), 4),
                                                        "detection_power": [round(p, 4) for p in probe.power["contrast"]]}
            print(f"{dataset} seed {seed}: contrast x{math.exp(-probe.ranges['contrast']):.3f}.."
                  f"x{math.exp(probe.ranges['contrast']):.3f}, detection power "
                  f"{', '.join(f'{p:.2f}' for p in probe.power['contrast'])}", flush=True)
    out = args.results / "contrast_family_probe.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"command": "python benchmarks/contrast_family.py --probe-only --sets "
                                          + " ".join(args.sets) + " --seeds " + " ".join(map(str, args.seeds)),
                               "sets": found}, indent=2))
    os.replace(tmp, out)


def rejudge(folder: Path, dataset: str, seed: int) -> None:
    """Step 2's transfer test, once (its figures then differ from the copied ones: marked by ``rejudged``)."""
    marker = folder / "rejudged"
    if marker.exists():
        return
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "recommend_draw.py"), str(folder), "--dataset", dataset,
                           "--seed", str(seed)], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: the transfer test on {folder} failed:\n{done.stderr}")
    print(done.stdout.strip(), flush=True)
    marker.write_text(done.stdout)


def preservation(work: Path, dataset: str, seed: int, measure: bool = True) -> dict[str, float] | None:
    """Class preservation of the true nuisance and of the fit's recommended draw without (``"default"``) and with
    the family (``"contrast"``), as ``draw_rules.py`` measures it (the share of draws of training images on which the
    reference classifier keeps its prediction), each at extent 1 as the runs compared (a fit made while extent 2.5
    was tried recommends 2.5). Stored in ``<work>/diagnostics/<set>-seed<S>-contrast.json``; with ``measure=False``
    only read from there, ``None`` unless every figure is."""
    from gitaug import GITAugment

    folders = {"default": shared.generator_dir(work, dataset, seed), "contrast": contrast_dir(work, dataset, seed)}
    draws = {name: (lambda folder=folder: GITAugment.from_pretrained(folder, warp_extent=1.0))
             for name, folder in folders.items()} if measure else None
    stored = shared.stored_preservation(work / "diagnostics" / f"{dataset}-seed{seed}-contrast.json", dataset, seed, draws)
    return stored if all(name in stored for name in ("true", *folders)) else None


def job(work: Path, dataset: str, seed: int, folder: Path):
    """Step 3: the git-auto run's command with the family's generator."""
    run = shared.load_run(work, dataset, seed, "git-auto")
    out = work / "runs" / f"{dataset}-seed{seed}-{TAG}.json"
    command = shared.repeat_command(run, drop=("generator", "warp_extent")) + ["--generator", str(folder), "--out", str(out)]
    return command, work / "logs" / f"{dataset}-seed{seed}-{TAG}.log", out


def baseline(work: Path, dataset: str, seed: int) -> dict | None:
    """The run of the fit's recommended draw without the family, at extent 1 (the previous release's default)."""
    wanted = shared.recommended_by(shared.generator_dir(work, dataset, seed))
    if wanted is None:
        return None
    wanted = {**wanted, "warp_extent": 1.0}
    for tag in BASELINES:
        run = shared.load_run(work, dataset, seed, tag)
        if run is not None and shared.same_draw(run, wanted) and (run.get("draw") or {}).get("warp_extent", 1.0) == 1.0:
            return run
    return None


def main() -> None:
    args = parse_args()
    if args.probe_only:
        if not args.sets:
            raise SystemExit("error: --probe-only needs --sets")
        return probe_only(args)
    works = args.work or shared.work_folders()
    pairs = []
    for work in works:
        for path in sorted((work / "runs").glob("*-seed*-git-auto.json")):
            dataset, seed = re.fullmatch(r"(.+)-seed(\d+)-git-auto\.json", path.name).groups()
            if int(seed) in args.seeds and (args.sets is None or dataset in args.sets or args.report_only):
                pairs.append((work, dataset, int(seed)))
    if not args.report_only and args.sets:
        jobs = []
        for work, dataset, seed in pairs:
            if dataset in args.sets:
                folder = add_family(work, dataset, seed)
                rejudge(folder, dataset, seed)
                jobs.append(job(work, dataset, seed, folder))
        ran = shared.run_all(jobs, args.workers)
        print(f"trained {ran} runs ({len(jobs) - ran} found finished)", flush=True)

    summary: dict = {}
    lines = [
        "## Testing contrast too (`--warp-contrast auto`)",
        "",
        "Produced by `python benchmarks/contrast_family.py` (plus `--sets ... --seeds ...` for the runs). Each row pairs "
        "the fit's recommended draw at extent 1 (the previous release's default fit) with the same fit given the nuisance test's "
        "contrast family: the same weights (only draws scale the contrast), the transfer test run again on the new draws "
        "and its recommendation trained with the same seed, K, p and rule. Shares of the oracle's gain over CE+DRS as in "
        "`default_fit.py`, ± the ratio estimator's standard error over seeds; sets without a nuisance have no oracle and no eKLD. "
        "Class preservation (`--preservation-seeds`): the share of each recommended draw's draws of training images on which "
        "the reproduction benchmark's reference classifier (trained on balanced images with the true nuisance) keeps its "
        "prediction, as a share of the same for the true nuisance; mean over the seeds listed.",
        "",
        "| set | seeds | contrast range found | draw recommended with it | balanced acc. CE+DRS / default / + contrast / oracle (%) "
        "| share, default | share, + contrast | tail eKLD CE+DRS / default / + contrast / oracle | share, default | share, + contrast "
        "| + contrast - default per seed (points) | class preservation, default / + contrast |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_set: dict = {}
    work_of: dict = {}
    for work, dataset, seed in pairs:
        loaded = {"drs": shared.load_run(work, dataset, seed, "drs"), "auto": baseline(work, dataset, seed),
                  "contrast": shared.load_run(work, dataset, seed, TAG), "oracle": shared.load_run(work, dataset, seed, "oracle")}
        if loaded["drs"] is None or loaded["auto"] is None or loaded["contrast"] is None:
            continue
        config = json.loads((contrast_dir(work, dataset, seed) / "config.json").read_text())
        draw = {k: v for k, v in config["training"]["draw"].items() if k != "chosen"}
        work_of[dataset] = work
        by_set.setdefault(dataset, []).append((seed, {k: None if r is None else shared.run_figures(r) for k, r in loaded.items()},
                                               config["generator"]["warp_contrast"], draw))
    for dataset in sorted(by_set, key=lambda d: (not d.startswith("digits"), d)):
        rows = sorted(by_set[dataset], key=lambda r: r[0])
        seeds = [s for s, *_ in rows]
        acc = {k: np.array([r[k][0] for _, r, *_ in rows]) for k in ("drs", "auto", "contrast")}
        result: dict = {"seeds": seeds, "contrast": [c for *_, c, _ in rows], "draw": [d for *_, d in rows],
                        "balanced_accuracy": {k: float(v.mean()) for k, v in acc.items()},
                        "contrast_minus_default_per_seed": [float(x) for x in acc["contrast"] - acc["auto"]]}
        cells = {"acc_share": ("", ""), "ekld": "", "ekld_share": ("", "")}
        if nuisance_of(dataset) is not None and all(r["oracle"] is not None for _, r, *_ in rows):
            acc["oracle"] = np.array([r["oracle"][0] for _, r, *_ in rows])
            ekld = {k: np.array([r[k][1] for _, r, *_ in rows]) for k in ("drs", "auto", "contrast", "oracle")}
            result["balanced_accuracy"]["oracle"] = float(acc["oracle"].mean())
            result["ekld_tail"] = {k: float(v.mean()) for k, v in ekld.items()}
            # per seed, for default_fit.py's table (as warp_extent.py stores them)
            result["per_seed"] = {k: {"balanced_accuracy": [float(x) for x in acc[k]], "ekld_tail": [float(x) for x in ekld[k]]}
                                  for k in ("drs", "auto", "contrast", "oracle")}
            shares, more_cells = default_fit.paired_shares(acc, ekld, ("auto", "contrast"))
            result.update(shares)
            cells.update(more_cells)
        kept = {seed: figures for seed in seeds if (figures := preservation(
            work_of[dataset], dataset, seed, measure=seed in args.preservation_seeds and nuisance_of(dataset) is not None))}
        preserved = ""
        if kept:
            result["class_preservation"] = {name: float(np.mean([k[name] / k["true"] for k in kept.values()]))
                                            for name in ("default", "contrast")}
            result["class_preservation_seeds"] = sorted(kept)
            result["class_preservation_per_seed"] = {str(seed): kept[seed] for seed in sorted(kept)}
            preserved = (f"{result['class_preservation']['default'] * 100:.0f} % / "
                         f"{result['class_preservation']['contrast'] * 100:.0f} % ({', '.join(map(str, sorted(kept)))})")
        summary[dataset] = result
        found = "; ".join(f"x{1 / c:.2f}..x{c:.2f}" for c in result["contrast"])
        draws = "; ".join(shared.describe_draw(d) for d in result["draw"])
        accuracy = " / ".join(f"{acc[k].mean() * 100:.1f}" if k in acc else "-" for k in ("drs", "auto", "contrast", "oracle"))
        lines.append(
            f"| {dataset} | {', '.join(map(str, seeds))} | {found} | {draws} | {accuracy} | {cells['acc_share'][0]} | "
            f"{cells['acc_share'][1]} | {cells['ekld']} | {cells['ekld_share'][0]} | {cells['ekld_share'][1]} | "
            f"{', '.join(f'{d * 100:+.1f}' for d in result['contrast_minus_default_per_seed'])} | {preserved} |")
    out = args.results / "contrast_family.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"sets": summary}, indent=2))
    os.replace(tmp, out)
    update_section(args.report, "contrast_family", "\n".join(lines))
    print("\n".join(lines))



if __name__ == "__main__":
    main()
