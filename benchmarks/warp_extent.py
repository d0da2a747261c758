"""Does drawing over the data's estimated extent beat drawing within the undetectable range? A paired ablation.

The default fit's nuisance test (:mod:`gitaug.fit.nuisance_probe`) finds, per
geometric family, the largest move a detector cannot see. On a nuisance the
data is closed under (any rotation of turned digits) that is the whole range;
on a bounded one (sizes x0.7..x1.3, positions within 15 % of the side) it is a
fraction of the data's spread: a further zoom by m moves a uniform spread of
width W by m / W in total variation, so a detector reaches the test's
threshold power tau = 0.2 near m = 2 tau a, a the spread's half-width. The
half-width is then about m / (2 tau) = 2.5 m, and a tail image redrawn across
the data's spread needs moves of that size.

For each finished run of the fit's recommended draw (``git-auto``) of the
reproduction benchmarks, this trains the same classifier again (same data,
seed, K, p and rule: the run's own arguments) with only ``--warp-extent E``
added, and reports, beside CE+DRS and the oracle of the same seed, the balanced
accuracy and tail eKLD of both, and per set the share of the oracle's gain each
reaches (``default_fit.py``'s figures). Sets without a nuisance (``digits-lt``,
``fmnist-lt``: the harm check) get accuracy only.

    python benchmarks/warp_extent.py --extent 2.5 --sets digits-scale-lt digits-lt
    python benchmarks/warp_extent.py --extent 2.5 --report-only

Runs go to ``<work>/runs/<set>-seed<S>-git-auto-extent<E>.json`` beside the
originals (resumable: a finished run is not trained again). Output:
``results/warp_extent.json`` and the ``warp_extent`` section of ``benchmarks/RESULTS.md`` (another
``--extent E``: ``warp_extent_xE``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np

import default_fit
import reproduce_digits as shared
from _report import update_section
from gitaug.datasets import nuisance_of
from gitaug.fit.nuisance_probe import DRAW_EXTENT

ROOT = shared.ROOT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extent", type=float, default=DRAW_EXTENT,
                        help="the factor (default DRAW_EXTENT, 2.5); another one writes its own results file and section")
    parser.add_argument("--sets", nargs="+", default=None, help="datasets to train (default: none, report only)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: every seed with a git-auto run")
    parser.add_argument("--work", type=Path, nargs="+", default=None,
                        help="benchmark work folders (default: every benchmarks/_work*)")
    parser.add_argument("--workers", type=int, default=1, help="parallel jobs, one thread each")
    parser.add_argument("--report-only", action="store_true", help="train nothing, tabulate what exists")
    parser.add_argument("--preservation-seeds", nargs="+", type=int, default=[],
                        help="seeds whose fits of --sets get class preservation measured at both extents (the "
                             "reproduction benchmark's reference classifier, trained with the true nuisance)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args()


def tag(extent: float) -> str:
    return f"git-auto-extent{extent:g}"


def job(work: Path, dataset: str, seed: int, extent: float):
    """The command that repeats a git-auto run with ``--warp-extent``, its log and its output.

    A finished extent run that repeated another draw than the git-auto run now makes (the fit's recommendation
    changed since) is set aside as ``.other-setting.json``, so that it is trained again.
    """
    run = json.loads((work / "runs" / f"{dataset}-seed{seed}-git-auto.json").read_text())
    out = work / "runs" / f"{dataset}-seed{seed}-{tag(extent)}.json"
    command = shared.repeat_command(run) + ["--warp-extent", str(extent), "--out", str(out)]
    if out.exists() and "draw" in run and not shared.same_draw(json.loads(out.read_text()), run["draw"]):
        # The fit's recommendation changed since: this run repeats a draw the git-auto run no longer makes.
        os.replace(out, out.with_suffix(".other-setting.json"))
        print(f"  {out.name}: repeated another draw than {dataset} seed {seed}'s git-auto run now makes; set aside, "
              "to run again", flush=True)
    return command, work / "logs" / f"{dataset}-seed{seed}-{tag(extent)}.log", out


def preservation(work: Path, dataset: str, seed: int, extent: float) -> dict:
    """Class preservation of the recommended draw at extent 1 and ``extent``, beside the true nuisance's.

    Under the reproduction benchmark's reference (a classifier trained on balanced images carrying the true
    nuisance, :func:`reproduce_digits.reference_classifier`), the share of draws of training images on which
    it keeps its prediction, 10 per input; stored in ``<work>/diagnostics/<set>-seed<S>-extent<E>.json``.
    """
    out = work / "diagnostics" / f"{dataset}-seed{seed}-extent{extent:g}.json"
    if out.exists():
        return json.loads(out.read_text())
    from gitaug import GITAugment
    from gitaug._files import write_json

    keep = shared.preservation_meter(dataset, seed)
    folder = shared.generator_dir(work, dataset, seed)
    result = {"true": keep(nuisance_of(dataset)),
              "recommended": keep(GITAugment.from_pretrained(folder, warp_extent=1.0)),
              "extent": keep(GITAugment.from_pretrained(folder, warp_extent=extent))}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"  class preservation {dataset} seed {seed}: recommended {result['recommended']:.3f}, x{extent:g} "
          f"{result['extent']:.3f}, true nuisance {result['true']:.3f}", flush=True)
    return result


def main() -> None:
    args = parse_args()
    works = args.work or shared.work_folders()
    pairs = []  # (work, dataset, seed) with a git-auto run
    for work in works:
        for path in sorted((work / "runs").glob("*-seed*-git-auto.json")):
            dataset, seed = re.fullmatch(r"(.+)-seed(\d+)-git-auto\.json", path.name).groups()
            if args.seeds is None or int(seed) in args.seeds:
                pairs.append((work, dataset, int(seed)))
    if not args.report_only and args.sets:
        jobs = [job(w, d, s, args.extent) for w, d, s in pairs if d in args.sets]
        ran = shared.run_all(jobs, args.workers)
        print(f"trained {ran} runs ({len(jobs) - ran} found finished)", flush=True)
        for work, dataset, seed in pairs:
            if dataset in args.sets and seed in args.preservation_seeds and nuisance_of(dataset) is not None:
                preservation(work, dataset, seed, args.extent)

    summary: dict = {}
    lines = [
        "## Drawing over the data's estimated extent",
        "",
        f"Produced by `python benchmarks/warp_extent.py --extent {args.extent:g}` (plus `--sets ...` for the runs). Each row "
        "pairs the fit's recommended draw (`git-auto` of the reproduction benchmarks) with the same run repeated with "
        f"`--warp-extent {args.extent:g}` (the warp's geometric ranges times {args.extent:g}; same generator, seed, K, p "
        "and rule). Shares of the oracle's gain over CE+DRS as in `default_fit.py`, ± the ratio estimator's standard "
        "error over seeds; sets without a nuisance have no oracle and no eKLD.",
        "",
        f"| set | seeds | learned ranges | balanced acc. CE+DRS / recommended / x{args.extent:g} / oracle (%) | share, recommended | share, x{args.extent:g} "
        f"| tail eKLD CE+DRS / recommended / x{args.extent:g} / oracle | share, recommended | share, x{args.extent:g} | x{args.extent:g} - recommended per seed (points) "
        f"| class preservation, recommended / x{args.extent:g} (seeds) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_set: dict = {}
    by_work: dict = {}
    for work, dataset, seed in pairs:
        loaded = {name: shared.load_run(work, dataset, seed, t)
                  for name, t in (("drs", "drs"), ("wide", tag(args.extent)), ("oracle", "oracle"))}
        # The recommended-draw run the extent run repeats: the current one, or the one a new recommendation set aside.
        loaded["auto"] = next((run for t in ("git-auto", "git-auto.other-setting")
                               if (run := shared.load_run(work, dataset, seed, t)) is not None and loaded["wide"] is not None
                               and shared.same_draw(run, loaded["wide"].get("draw") or {})), None)
        runs = {name: None if run is None else shared.run_figures(run) for name, run in loaded.items()}
        if runs["drs"] is None or runs["auto"] is None or runs["wide"] is None:
            continue
        g = shared.generator_config(work, dataset, seed)["generator"]
        learned = f"+-{g['warp_rotation']:.0f} deg, x{g['warp_scale']:.2f}, {100 * g['warp_shift']:.0f} %"
        by_set.setdefault(dataset, []).append((seed, runs, learned))
        by_work[dataset] = work
    for dataset in sorted(by_set, key=lambda d: (not d.startswith("digits"), d)):
        rows = sorted(by_set[dataset])
        seeds = [s for s, _, _ in rows]
        acc = {k: np.array([r[k][0] for _, r, _ in rows]) for k in ("drs", "auto", "wide")}
        has_oracle = all(r["oracle"] is not None for _, r, _ in rows)
        # per seed, as the reproduction benchmarks' tables hold them (default_fit.py reads them so)
        per_seed = {name: {"balanced_accuracy": [r[name][0] for _, r, _ in rows], "ekld_tail": [r[name][1] for _, r, _ in rows]}
                    for name in ("drs", "auto", "wide", "oracle") if all(r[name] is not None for _, r, _ in rows)}
        result: dict = {"seeds": seeds, "learned": [l for _, _, l in rows], "per_seed": per_seed,
                        "balanced_accuracy": {k: float(v.mean()) for k, v in acc.items()},
                        "wide_minus_recommended_per_seed": [float(x) for x in acc["wide"] - acc["auto"]]}
        cells = {"acc": "", "acc_share": ("", ""), "ekld": "", "ekld_share": ("", "")}
        if has_oracle:
            acc["oracle"] = np.array([r["oracle"][0] for _, r, _ in rows])
            ekld = {k: np.array([r[k][1] for _, r, _ in rows]) for k in ("drs", "auto", "wide", "oracle")}
            result["ekld_tail"] = {k: float(v.mean()) for k, v in ekld.items()}
            result["balanced_accuracy"]["oracle"] = float(acc["oracle"].mean())
            shares, more_cells = default_fit.paired_shares(acc, ekld, ("auto", "wide"))
            result.update(shares)
            cells.update(more_cells)
        cells["acc"] = " / ".join(f"{acc[k].mean() * 100:.1f}" if k in acc else "-" for k in ("drs", "auto", "wide", "oracle"))
        kept = [(s, json.loads(p.read_text())) for s in seeds
                if (p := by_work[dataset] / "diagnostics" / f"{dataset}-seed{s}-extent{args.extent:g}.json").exists()]
        if kept:
            result["class_preservation"] = {name: float(np.mean([k[name] for _, k in kept]) / np.mean([k["true"] for _, k in kept]))
                                            for name in ("recommended", "extent")}
            result["class_preservation_seeds"] = [s for s, _ in kept]
            result["class_preservation_per_seed"] = {str(s): k for s, k in kept}
        preserved = (f"{result['class_preservation']['recommended'] * 100:.0f} % / {result['class_preservation']['extent'] * 100:.0f} % "
                     f"({', '.join(map(str, result['class_preservation_seeds']))})" if kept else "")
        summary[dataset] = result
        lines.append(
            f"| {dataset} | {', '.join(map(str, seeds))} | {'; '.join(result['learned'])} | {cells['acc']} | "
            f"{cells['acc_share'][0]} | {cells['acc_share'][1]} | {cells['ekld']} | {cells['ekld_share'][0]} | {cells['ekld_share'][1]} | "
            f"{', '.join(f'{d * 100:+.1f}' for d in result['wide_minus_recommended_per_seed'])} | {preserved} |")
    name = "warp_extent" if args.extent == DRAW_EXTENT else f"warp_extent_x{args.extent:g}"
    out = args.results / f"{name}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"extent": args.extent, "sets": summary}, indent=2))
    os.replace(tmp, out)
    update_section(args.report, name, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
