"""Which rule should pick a fitted generator's draw? Each rule's picks, scored by the full training runs.

A default fit (``gitaug-fit`` with no flag) stores a pseudo-tail transfer test
of every candidate draw (``training.draw_test``: :data:`gitaug.report.DRAW_CANDIDATES`,
the most varied first) and recommends one of them. The test's differences are
often within its noise, so the rule that breaks a tie decides a lot. This
script replays rules on the stored tests and looks each pick up in the
reproduction benchmarks' finished runs (nothing is trained here):

* ``least``: the least varied draw within one standard error of the best;
* ``most``: the most varied draw within one standard error of the best;
* ``best``: the best-scoring draw.

The fit applies one of the first two (:data:`gitaug.transfer.PREFER`, through
:meth:`gitaug.transfer.TransferTest.recommended`); the table marks it.

A pick is scored by the run of the same generator and seed that drew with the
same settings: the fit's recommended draw (``git-auto``) when the pick is the
fit's own, else the matching draw's run (``git`` decoded, ``git-data``
residual with data styles, ``git-half`` the same at half strength,
``git-warp`` the warp alone, or the run of an earlier recommendation that the
benchmark set aside, ``git-auto.other-setting``), each with its own K and p
chosen on validation by the benchmark. A pick without a run is listed as missing, and its set's
figures for that rule left out. Per set it reports, as ``default_fit.py``
does, the share of the oracle's gain over CE+DRS in balanced accuracy and in
tail eKLD, with the ratio estimator's standard error over seeds.

It reads the benchmarks' work folders (``benchmarks/_work*``: the generators'
configs and the per-run JSON files), which the reproduction benchmarks leave
behind; writes ``results/draw_rules.json`` and the ``draw_rules`` section of
``benchmarks/RESULTS.md``.

    python benchmarks/draw_rules.py
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
from reproduce_digits import same_draw
from _report import update_section
from gitaug.datasets import nuisance_of
from gitaug.report import complete_draw
from gitaug.transfer import PREFER, TransferTest

ROOT = shared.ROOT
#: The rules, in the order reported.
RULES = ("least", "most", "best")
RULE_NAMES = {rule: name + (" (the fit's rule)" if rule == PREFER else "") for rule, name in
              (("least", "least varied within 1 SE of the best"), ("most", "most varied within 1 SE of the best"),
               ("best", "the best score"))}
#: Runs that may score a pick, in the order tried: the fit's own recommendation first, and last the recommended
#: draw's run an earlier rule made, which the benchmark set aside when the recommendation changed.
DRAW_RUNS = ("git-auto", "git", "git-data", "git-half", "git-warp", "git-auto.other-setting")
SHORT = {"the decoded draws": "decoded", "residual draws with data styles": "residual",
         "residual draws with data styles at half strength": "half", "the warp alone": "warp"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, nargs="+", default=None,
                        help="benchmark work folders (default: every benchmarks/_work*)")
    parser.add_argument("--tolerance", type=float, default=1.0, help="in standard errors of a difference")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--preservation-seeds", nargs="+", type=int, default=[],
                        help="seeds whose fits get every candidate draw's class preservation measured (a few minutes "
                             "per fit, stored in the work folder's diagnostics/); the table then shows each rule's "
                             "picks' as a share of the true nuisance's")
    return parser.parse_args()


def pick(test: TransferTest, rule: str, tolerance: float) -> str:
    """The draw ``rule`` picks from a transfer test."""
    return test.best() if rule == "best" else test.recommended(tolerance, prefer=rule)


def draw_preservation(work: Path, dataset: str, seed: int, test: TransferTest, extent: float) -> dict[str, float]:
    """Class preservation of every candidate draw of a fit and of the true nuisance (``"true"``).

    As ``warp_extent.py`` measures it: under the reproduction benchmark's reference classifier (trained on balanced
    images carrying the true nuisance), the share of draws of training images, 10 per input, on which it keeps its
    prediction; each draw at the ``warp_extent`` the fit's runs drew with. Stored in
    ``<work>/diagnostics/<set>-seed<S>-draws.json``; only what that file lacks is measured.
    """
    from gitaug import GITAugment

    folder = shared.generator_dir(work, dataset, seed)
    draws = {name: (lambda name=name: GITAugment.from_pretrained(folder, **{**test.settings[name], "warp_extent": extent}))
             for name in test.names}
    return shared.stored_preservation(work / "diagnostics" / f"{dataset}-seed{seed}-draws.json", dataset, seed, draws)


def preserved(result: dict) -> str:
    """A rule row's class preservation cell: the share and the seeds it was measured on, or nothing."""
    if "class_preservation" not in result:
        return ""
    return f"{result['class_preservation'] * 100:.0f} % ({', '.join(map(str, result['class_preservation_seeds']))})"


def main() -> None:
    args = parse_args()
    works = args.work or shared.work_folders()
    found: dict = {}  # dataset -> seed -> {"drs", "oracle", "picks", rule: (acc, ekld) or None}
    missing: list[str] = []
    for work in works:
        seeds_of = {}
        for path in (work / "runs").glob("*-seed*-drs.json"):
            dataset, seed = re.fullmatch(r"(.+)-seed(\d+)-drs\.json", path.name).groups()
            seeds_of.setdefault(dataset, set()).add(int(seed))
        for dataset, seeds in seeds_of.items():
            for seed in sorted(seeds):
                config = shared.generator_config(work, dataset, seed)
                drs, oracle = shared.load_run(work, dataset, seed, "drs"), shared.load_run(work, dataset, seed, "oracle")
                test_figures = (config or {}).get("training", {}).get("draw_test")
                if not test_figures or drs is None or oracle is None:
                    continue
                test = TransferTest.from_dict(test_figures)
                kept = None
                if seed in args.preservation_seeds and nuisance_of(dataset) is not None:
                    extent = shared.recommended_by(shared.generator_dir(work, dataset, seed))["warp_extent"]
                    kept = draw_preservation(work, dataset, seed, test, extent)
                entry = {"drs": shared.run_figures(drs), "oracle": shared.run_figures(oracle), "picks": {}, "runs": {}}
                runs = {tag: run for tag in DRAW_RUNS if (run := shared.load_run(work, dataset, seed, tag)) is not None}
                for rule in RULES:
                    name = pick(test, rule, args.tolerance)
                    entry["picks"][rule] = SHORT.get(name, name)
                    tag = next((t for t, run in runs.items() if same_draw(run, test.settings[name])), None)
                    entry["runs"][rule] = tag
                    if kept is not None:
                        entry.setdefault("preservation", {})[rule] = kept[name] / kept["true"]
                    entry[rule] = shared.run_figures(runs[tag]) if tag else None
                    if tag:
                        entry.setdefault("extents", set()).add(complete_draw(runs[tag].get("draw") or {})["warp_extent"])
                    if tag is None:
                        missing.append(f"{dataset} seed {seed}: {name} ({rule})")
                found.setdefault(dataset, {})[seed] = entry

    summary: dict = {}
    lines = [
        "## Which rule picks the draw",
        "",
        "Produced by `python benchmarks/draw_rules.py` from the reproduction benchmarks' finished runs (nothing trained). "
        "Each rule is replayed on the pseudo-tail transfer test every default fit stores, and its pick is scored by that "
        "seed's full training run with the same draw (the fit's recommended draw's run when the pick is the fit's own, "
        "else the draw's own run; each with K and p chosen on validation). Share of the oracle's gain over CE+DRS, "
        "mean over the seeds with every run, ± the ratio estimator's standard error over seeds. Rules: "
        + "; ".join(f"`{r}`: {RULE_NAMES[r]}" for r in RULES) + ".",
        "",
        "Class preservation: the picks' class preservation as a share of the true nuisance's (the seeds it was "
        "measured on, `--preservation-seeds`, whether or not the pick has a run).",
        "",
        "| set | seeds | rule | picks per seed | balanced acc. CE+DRS / GIT / oracle (%) | share | tail eKLD share | GIT - CE+DRS per seed (points) | class preservation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in sorted(found, key=lambda d: (not d.startswith("digits"), d)):
        seeds = found[dataset]
        for rule in RULES:
            usable = [s for s in sorted(seeds) if seeds[s][rule] is not None]
            if not usable:
                continue
            acc = {k: np.array([seeds[s][k][0] if k != "git" else seeds[s][rule][0] for s in usable]) for k in ("drs", "git", "oracle")}
            ekld = {k: np.array([seeds[s][k][1] if k != "git" else seeds[s][rule][1] for s in usable]) for k in ("drs", "git", "oracle")}
            accuracy_share, accuracy_error = default_fit.share_of(list(acc["git"] - acc["drs"]), list(acc["oracle"] - acc["drs"]))
            ekld_share, ekld_error = default_fit.share_of(list(ekld["drs"] - ekld["git"]), list(ekld["drs"] - ekld["oracle"]))
            result = {
                "seeds": usable, "picks": [seeds[s]["picks"][rule] for s in usable],
                "runs": [seeds[s]["runs"][rule] for s in usable],
                "balanced_accuracy": {k: float(v.mean()) for k, v in acc.items()},
                "ekld_tail": {k: float(v.mean()) for k, v in ekld.items()},
                "accuracy_share": accuracy_share, "ekld_share": ekld_share,
                "accuracy_share_error": accuracy_error, "ekld_share_error": ekld_error,
                "accuracy_git_minus_drs_per_seed": [float(g) for g in acc["git"] - acc["drs"]],
                "complete": len(usable) == len(seeds),
                "warp_extent": sorted({e for s in usable for e in seeds[s].get("extents", {1.0})}),
            }
            kept = {s: seeds[s]["preservation"][rule] for s in sorted(seeds) if "preservation" in seeds[s]}
            if kept:  # measured on the fit whether or not the pick has a run
                result["class_preservation"] = float(np.mean(list(kept.values())))
                result["class_preservation_seeds"] = list(kept)
            summary.setdefault(dataset, {})[rule] = result
            a = result["balanced_accuracy"]
            lines.append(
                f"| {dataset} | {', '.join(map(str, usable))}{'' if result['complete'] else ' (of ' + ', '.join(map(str, sorted(seeds))) + ')'} "
                f"| {rule} | {', '.join(result['picks'])}{'' if result['warp_extent'] == [1.0] else ' (warp extent ' + ', '.join(f'{e:g}' for e in result['warp_extent']) + ')'} | {a['drs'] * 100:.1f} / {a['git'] * 100:.1f} / {a['oracle'] * 100:.1f} "
                f"| {default_fit.share(result['accuracy_share'], result['accuracy_share_error'])} "
                f"| {default_fit.share(result['ekld_share'], result['ekld_share_error'])} "
                f"| {', '.join(f'{d * 100:+.1f}' for d in result['accuracy_git_minus_drs_per_seed'])} "
                f"| {preserved(result)} |")
    if missing:
        lines += ["", "Picks without a finished run (their seeds are left out of that rule's row): " + "; ".join(missing) + "."]
    out = args.results / "draw_rules.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"tolerance": args.tolerance, "rules": summary, "missing": missing}, indent=2))
    os.replace(tmp, out)
    update_section(args.report, "draw_rules", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
