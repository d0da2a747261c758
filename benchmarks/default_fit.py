"""How much of the oracle's gain does each way of fitting the generator give? One table over every set.

Reads what the reproduction benchmarks wrote (nothing is trained here):

* ``results/reproduce_digits.json`` and ``results/reproduce_fmnist.json``: the
  default fit (``gitaug-fit`` with no flag);
* ``results/reproduce_*_recipes.json``: the per-nuisance recipes of earlier releases;
* ``results/reproduce_*_paper.json``: the GIT paper's objective;
* ``results/plain_sets.json``: the default fit on the sets with no added nuisance;
* ``results/reproduce_*_background.json``: the default fit since its nuisance test
  also tests a background swap, re-run on the background sets (``--output-suffix
  _background``). On the sets with black backgrounds there is one background value,
  nothing to swap and nothing tested, so their fits and draws are those of the
  ``default`` rows unchanged.
* ``results/reproduce_*_rule.json``: the current default, re-run with
  ``--output-suffix _rule``: the background swap, and the recommended draw judged
  by the pseudo-tail classes' true-class probability, the most varied one
  within one standard error of the best (``gitaug.transfer``). Generators
  fitted before the transfer test stored that probability are tested again
  (``scripts/recommend_draw.py FOLDER --dataset NAME --seed S``), and those
  fitted under an earlier tie-break get the current one from their stored
  figures (``--stored-test``, nothing trained).
* ``results/warp_extent.json`` (optional, ``benchmarks/warp_extent.py``): the ``rule`` and ``heldout``
  fits' recommended draws over the spread the nuisance test's ranges suggest (``warp_extent=2.5``, an
  option; a fit's training does not depend on the extent, only its draws do); its sets are counted per group.
* ``results/contrast_family.json`` (optional, ``benchmarks/contrast_family.py``): the ``rule`` fits given
  the nuisance test's contrast family (the default from this release; only draws change, so the fits are
  the same), their recommended draws judged again and trained with the same K, p and rule.
* ``results/reproduce_*_heldout_flip.json`` (optional): the current default, mirror test included, on the
  mirror-image nuisance (``--datasets fmnist-flip-lt --select --output-suffix _heldout_flip``, and the digits
  benchmark with ``--datasets digits-flip-lt``), added to its
  rows like the file below, and counted apart from the six.
* ``results/reproduce_*_contrast_seeds*.json`` (optional): the current default fitted anew on more seeds
  (``--datasets fmnist-bg-lt fmnist-dil-lt --seeds 2 3 --select --output-suffix _contrast_seeds``, and
  ``--datasets fmnist-bg-lt --seeds 4 5 ... --output-suffix _contrast_seeds_45``, ``--datasets fmnist-dil-lt
  --seeds 6 7`` / ``8 9 ... --output-suffix _contrast_seeds_67`` / ``_contrast_seeds_89``; K, p and the rule chosen
  on the validation split of each run's first seed), added seed by seed to ``contrast_family.json``'s rows
  (:func:`add_seeds`; a seed both hold takes the fresh fit's figures).
* ``results/reproduce_*_flip_family*.json`` (optional): the seeds of a developed-on set whose draws the mirror
  test changed, fitted anew (``--datasets fmnist-rot-lt --seeds 0`` / ``3 4`` / ``5 --select --output-suffix
  _flip_family`` / ``_flip_family_34`` / ``_flip_family_5``), added the same way: each replaces that seed's
  pre-mirror run. The file patterns of the current default are :data:`CURRENT_DEFAULT_FILES`.
* ``results/reproduce_*_fresh.json`` (optional): fits made anew on nuisances no rule or setting was chosen
  on (``--datasets digits-shift-lt`` / ``fmnist-contrast-lt --output-suffix _fresh``), while a fit
  recommended extent 2.5: every GIT row of theirs drew at 2.5 (``results/warp_extent_x1.json`` has their
  recommended draws at extent 1, the default, beside them).
* ``results/reproduce_*_heldout.json`` (optional): the current default on nuisances it was not
  developed on (``--datasets digits-scale-lt digits-contrast-lt --output-suffix _heldout``, and the
  Fashion-MNIST benchmark with ``--datasets fmnist-scale-lt fmnist-contrast-lt --select``):
  the check that the rule carries over. Its sets are counted apart from the six.

A variant's file may be completed by re-runs of some of its datasets, e.g. with
more seeds, written beside it with a longer suffix
(``results/reproduce_digits_rule_seeds.json`` from ``--output-suffix
_rule_seeds``): their rows replace those datasets' rows.

For each nuisance set and fit it reports, on the seeds that GIT, CE+DRS and the
oracle all finished, GIT's share of the oracle's gain over CE+DRS:

    accuracy share = (acc_GIT - acc_DRS) / (acc_oracle - acc_DRS)
    tail-eKLD share = (eKLD_DRS - eKLD_GIT) / (eKLD_DRS - eKLD_oracle)

(1 = GIT does all the oracle does; 0 = nothing; negative = harm), the per-seed
accuracy difference GIT minus CE+DRS, and class preservation against the true
nuisance's. Missing inputs are listed, not guessed. Output: the ``default_fit``
section of ``benchmarks/RESULTS.md`` and ``results/default_fit.json``.

    python benchmarks/default_fit.py
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import reproduce_digits as shared
from _report import update_section

ROOT = shared.ROOT
#: Results-file variants: the --fit-flags variants; "background", "rule" and "heldout", the re-runs written with
#: --output-suffix _background, _rule and _heldout.
VARIANTS = ("paper", "recipes", "default", "background", "rule", "heldout", "fresh")
#: The variants fitted with the default (each gets its sentence on how many sets reach the bar), and those
#: whose results file is optional (not listed as missing).
DEFAULT_VARIANTS = ("default", "background", "rule", "heldout", "fresh", "extent", "contrast")
OPTIONAL_VARIANTS = ("heldout", "fresh")
#: The sets no rule, setting or default was developed on, counted apart from the six.
NOT_DEVELOPED_ON = ("digits-scale-lt", "digits-contrast-lt", "digits-shift-lt", "digits-flip-lt", "fmnist-scale-lt",
                    "fmnist-contrast-lt", "fmnist-shift-lt", "fmnist-flip-lt")
#: Table rows: (fit variant, GIT method of its benchmark run).
ROWS = (("paper", "git"), ("recipes", "git"), ("default", "git"), ("default", "git-residual"), ("default", "git-data"),
        ("default", "git-auto"), ("default", "git-val"), ("background", "git"), ("background", "git-auto"),
        ("rule", "git"), ("rule", "git-auto"), ("heldout", "git"), ("heldout", "git-auto"), ("extent", "git-auto"),
        ("fresh", "git"), ("fresh", "git-auto"), ("contrast", "git-auto"))
ROW_LABELS = {("paper", "git"): "paper objective", ("recipes", "git"): "per-nuisance recipe", ("default", "git"): "default fit",
              ("default", "git-residual"): "default fit, residual draws",
              ("default", "git-data"): "default fit, residual draws, data styles",
              ("default", "git-auto"): "default fit, the fit's recommended draw",
              ("default", "git-val"): "default fit, the draw chosen on validation",
              ("background", "git"): "default fit with the background swap",
              ("background", "git-auto"): "default fit with the background swap, the fit's recommended draw",
              ("rule", "git"): "previous default fit (no contrast test), the paper's decoded draws (for comparison)",
              ("rule", "git-auto"): "previous default fit (no contrast test), the fit's recommended draw",
              ("heldout", "git"): "previous default fit on a held-out nuisance, the paper's decoded draws",
              ("heldout", "git-auto"): "previous default fit on a held-out nuisance, the fit's recommended draw",
              ("extent", "git-auto"): "previous default fit, the recommended draw over the estimated spread (warp_extent 2.5, an option)",
              ("fresh", "git"): "fit on a fresh nuisance while extent 2.5 was tried (every draw at 2.5), the paper's decoded draws",
              ("fresh", "git-auto"): "fit on a fresh nuisance while extent 2.5 was tried, the fit's recommended draw at 2.5",
              ("contrast", "git-auto"): "current default fit (contrast tested too, this release), the fit's recommended draw"}
#: The generator diagnostic's class preservation for each GIT method's draw, and the true nuisance's figure it is
#: set against. The recommended draw (which differs from seed to seed) is measured per seed with its own pair,
#: under the same reference classifier; the draw chosen on validation has no figure.
KEEP_KEYS = {"git": ("generator_keep", "true_keep"), "git-residual": ("generator_keep_residual", "true_keep"),
             "git-data": ("generator_keep_data", "true_keep"),
             "git-auto": ("generator_keep_recommended", "true_keep_recommended")}
SOURCES = {"digits": "reproduce_digits", "fmnist": "reproduce_fmnist"}
BAR = 0.8  # the share of the oracle's gain the default fit is meant to reach on every set


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args()


def seeds_of(summary: dict, row: dict) -> list[int]:
    """The seeds behind a table row: stored per row (Fashion-MNIST) or per run (digits; older runs used 0, 1, 2)."""
    return list(row.get("seeds") or summary.get("seeds") or [0, 1, 2])


def per_seed(summary: dict, row: dict, key: str) -> dict[int, float]:
    return dict(zip(seeds_of(summary, row), row[key]))


def share_error(gain: list[float], oracle_gain: list[float]) -> float | None:
    """Standard error of ``mean(gain) / mean(oracle_gain)`` over seeds (the ratio estimator's), ``None`` under 2 seeds.

    ``gain`` and ``oracle_gain`` are per-seed improvements over CE+DRS on the same seeds, so the seed's own
    luck, which moves all three runs of a seed together, cancels in the pairs: the error comes from how far
    each seed's gain strays from the share times its oracle gain.
    """
    gain, oracle_gain = np.asarray(gain, dtype=float), np.asarray(oracle_gain, dtype=float)
    if len(gain) < 2 or oracle_gain.mean() <= 0:
        return None
    ratio = gain.mean() / oracle_gain.mean()
    return float((gain - ratio * oracle_gain).std(ddof=1) / np.sqrt(len(gain)) / oracle_gain.mean())


def share_of(gain: list[float], oracle_gain: list[float]) -> tuple[float | None, float | None]:
    """``mean(gain) / mean(oracle_gain)`` (None when the oracle gains nothing) and its :func:`share_error`."""
    oracle_mean = float(np.mean(oracle_gain))
    return (float(np.mean(gain)) / oracle_mean if oracle_mean > 0 else None), share_error(gain, oracle_gain)


def paired_shares(acc: dict, ekld: dict, names: tuple[str, ...]) -> tuple[dict, dict]:
    """For runs paired by seed: each of ``names``' share of the oracle's gain over CE+DRS (``acc`` and ``ekld`` map
    ``"drs"``, ``"oracle"`` and each name to per-seed arrays), as ``accuracy_share_<name>`` / ``ekld_share_<name>``
    (:func:`share_of`), and a table row's cells: the tail eKLDs of CE+DRS, the names and the oracle, and the shares."""
    shares = {}
    for name in names:
        shares[f"accuracy_share_{name}"] = share_of(list(acc[name] - acc["drs"]), list(acc["oracle"] - acc["drs"]))
        shares[f"ekld_share_{name}"] = share_of(list(ekld["drs"] - ekld[name]), list(ekld["drs"] - ekld["oracle"]))
    cells = {"ekld": " / ".join(f"{ekld[k].mean():.3f}" for k in ("drs", *names, "oracle")),
             "acc_share": tuple(share(*shares[f"accuracy_share_{n}"]) for n in names),
             "ekld_share": tuple(share(*shares[f"ekld_share_{n}"]) for n in names)}
    return shares, cells


def overlay(base: dict, extra: dict) -> None:
    """Put the datasets of ``extra`` (a re-run of some of ``base``'s datasets) in place of ``base``'s rows."""
    for dataset, rows in extra["table"].items():
        base["table"][dataset] = {method: {"seeds": seeds_of(extra, row), **row} for method, row in rows.items()}
        if dataset in extra.get("diagnostics", {}):
            base.setdefault("diagnostics", {})[dataset] = {"seeds": seeds_of(extra, {}), **extra["diagnostics"][dataset]}
        elif dataset in base.get("diagnostics", {}):
            del base["diagnostics"][dataset]


#: The per-seed figures :func:`compare` reads from a row, and the class-preservation figures from a diagnostic.
SEED_KEYS = ("balanced_accuracy", "ekld_tail")
KEEP_SEED_KEYS = ("generator_keep_recommended", "true_keep_recommended")


def add_seeds(base: dict, extra: dict, methods: tuple[str, ...] = ("drs", "git-auto", "oracle")) -> None:
    """Add the seeds of ``extra`` (the same fit and draw rule run on more seeds) to ``base``'s rows of ``methods``,
    seed by seed: a seed both hold takes ``extra``'s figures. Unlike :func:`overlay`, a dataset keeps the seeds
    ``extra`` lacks. Only the figures :func:`compare` reads are kept (``SEED_KEYS``, ``KEEP_SEED_KEYS``)."""

    def merged(old: dict, new: dict, old_seeds: list[int], new_seeds: list[int], keys: tuple[str, ...]) -> dict:
        by_seed = {seed: {k: old[k][i] for k in keys if k in old} for i, seed in enumerate(old_seeds)}
        for i, seed in enumerate(new_seeds):
            by_seed[seed] = {k: new[k][i] for k in keys if k in new}
        seeds = sorted(s for s, figures in by_seed.items() if set(figures) == set(keys))
        return {"seeds": seeds, **{k: [by_seed[s][k] for s in seeds] for k in keys}}

    for dataset, rows in extra["table"].items():
        target = base["table"].setdefault(dataset, {})
        for method in methods:
            if method in rows:
                old = target.get(method, {})
                target[method] = merged(old, rows[method], seeds_of({}, old) if old else [],
                                        seeds_of(extra, rows[method]), SEED_KEYS)
        diag = extra.get("diagnostics", {}).get(dataset)
        if diag and all(k in diag for k in KEEP_SEED_KEYS):
            old = base.setdefault("diagnostics", {}).get(dataset, {})
            base["diagnostics"][dataset] = merged(old, diag, list(old.get("seeds", [])),
                                                  list(diag.get("seeds") or seeds_of(extra, {})), KEEP_SEED_KEYS)


def compare(summary: dict, dataset: str, git_method: str = "git") -> dict | None:
    """GIT (``git_method``'s runs) against CE+DRS and the oracle on the seeds all three finished, from one benchmark run."""
    rows = summary["table"].get(dataset, {})
    if not all(m in rows for m in ("drs", git_method, "oracle")):
        return None
    values = {m.split("-")[0]: {k: per_seed(summary, rows[m], k) for k in ("balanced_accuracy", "ekld_tail")}
              for m in ("drs", git_method, "oracle")}
    common = sorted(set.intersection(*(set(values[m]["balanced_accuracy"]) for m in values)))
    if not common:
        return None

    def mean(method: str, key: str) -> float:
        return float(np.mean([values[method][key][s] for s in common]))

    acc = {m: mean(m, "balanced_accuracy") for m in values}
    ekld = {m: mean(m, "ekld_tail") for m in values}
    result = {
        "seeds": common,
        "balanced_accuracy": acc,
        "ekld_tail": ekld,
        "accuracy_share": (acc["git"] - acc["drs"]) / (acc["oracle"] - acc["drs"]) if acc["oracle"] > acc["drs"] else None,
        "ekld_share": (ekld["drs"] - ekld["git"]) / (ekld["drs"] - ekld["oracle"]) if ekld["oracle"] < ekld["drs"] else None,
        "accuracy_git_minus_drs_per_seed": [values["git"]["balanced_accuracy"][s] - values["drs"]["balanced_accuracy"][s] for s in common],
    }

    def gains(method: str, key: str, sign: float) -> list[float]:
        return [sign * (values[method][key][s] - values["drs"][key][s]) for s in common]

    result["accuracy_share_error"] = share_error(gains("git", "balanced_accuracy", 1), gains("oracle", "balanced_accuracy", 1))
    result["ekld_share_error"] = share_error(gains("git", "ekld_tail", -1), gains("oracle", "ekld_tail", -1))
    diag = summary.get("diagnostics", {}).get(dataset)
    if diag:
        generated_key, true_key = KEEP_KEYS.get(git_method, (None, None))
        generated, true = diag.get(generated_key), diag.get(true_key)
        keep = dict(zip(diag.get("seeds") or seeds_of(summary, rows[git_method]), zip(generated or [], true or [])))
        kept = [keep[s] for s in common if s in keep]
        if kept:
            result["class_preservation_ratio"] = float(np.mean([g for g, _ in kept]) / np.mean([t for _, t in kept]))
        learned = diag.get("learned")
        if learned:
            result["learned"] = [shared.describe_learned(e) for e in learned if e.get("nuisance")]
    return result


def variant_of(sets: dict, name: str, kept_name: str | None = None) -> dict:
    """A paired benchmark's per-seed figures (``warp_extent.py``, ``contrast_family.py``: ``per_seed[name]`` beside
    ``drs`` and ``oracle``) as one more variant's summary, its ``name`` runs as the recommended draw's (``git-auto``),
    with their class preservation (``class_preservation_per_seed[...][kept_name or name]``) where measured."""
    kept_name = kept_name or name
    return {"table": {
        dataset: {method: {"seeds": entry["seeds"], **entry["per_seed"][key]}
                  for method, key in (("drs", "drs"), ("git-auto", name), ("oracle", "oracle"))}
        for dataset, entry in sets.items() if {"drs", name, "oracle"} <= set(entry.get("per_seed", {}))},
        # class preservation of the draw, against the true nuisance's, on the seeds measured
        "diagnostics": {dataset: {"seeds": [int(seed) for seed in kept],
                                  "generator_keep_recommended": [k[kept_name] for k in kept.values()],
                                  "true_keep_recommended": [k["true"] for k in kept.values()]}
                        for dataset, entry in sets.items() if (kept := entry.get("class_preservation_per_seed"))}}


#: Reproduction results made with the current default (the contrast and mirror tests included), added seed by
#: seed to its rows (:func:`add_seeds`): more seeds of the developed-on sets, a held-out nuisance first run
#: with it (the mirror image), which the ``heldout`` variant, fits of an earlier default, must not take, and
#: the seeds of a developed-on set fitted anew because the mirror test changed their draws (``_flip_family``):
#: a seed these hold replaces the same seed of a fit made before the mirror test.
CURRENT_DEFAULT_FILES = ("reproduce_*_contrast_seeds*.json", "reproduce_*_heldout_flip.json",
                         "reproduce_*_flip_family*.json")


def current_default_file(path: Path) -> bool:
    """Whether the results file ``path`` holds fits of the current default (:data:`CURRENT_DEFAULT_FILES`)."""
    return any(path.match(pattern) for pattern in CURRENT_DEFAULT_FILES)


def share(value: float | None, error: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.0f} %" + ("" if error is None else f" ± {error * 100:.0f}")


def main() -> None:
    args = parse_args()
    loaded, missing = {}, []
    for family, stem in SOURCES.items():
        for variant in VARIANTS:
            suffix = shared.variant_suffix(variant)
            path = args.results / f"{stem}{suffix}.json"
            if path.exists():
                loaded[family, variant] = json.loads(path.read_text())
                for extra in sorted(args.results.glob(f"{stem}{suffix}_*.json")) if suffix else ():
                    if not current_default_file(extra):
                        overlay(loaded[family, variant], json.loads(extra.read_text()))
            elif variant not in OPTIONAL_VARIANTS:
                missing.append(shared.shown(path))

    # The paired benchmarks' files hold both families: the same fits' recommended draws over the estimated
    # extent, and with the nuisance test's contrast family, each as one more variant.
    for variant, path, name, kept_name in (("extent", "warp_extent.json", "wide", "extent"),
                                           ("contrast", "contrast_family.json", "contrast", None)):
        if (args.results / path).exists():
            loaded["all", variant] = variant_of(json.loads((args.results / path).read_text())["sets"], name, kept_name)
    for extra in sorted(p for p in args.results.glob("reproduce_*.json") if current_default_file(p)) \
            if ("all", "contrast") in loaded else ():
        add_seeds(loaded["all", "contrast"], json.loads(extra.read_text()))

    comparison: dict = {}
    for variant, method in ROWS:
        for family in (*SOURCES, "all"):
            summary = loaded.get((family, variant))
            for dataset in summary["table"] if summary else ():
                result = compare(summary, dataset, method)
                if result is not None:
                    comparison.setdefault(dataset, {})[f"{variant}/{method}"] = result

    lines = [
        "## The default fit against the oracle, every set",
        "",
        "Produced by `python benchmarks/default_fit.py` from the reproduction benchmarks' results (their sections in this file "
        "give the commands, seeds and full tables). Share of the oracle's gain over CE+DRS that CE+DRS+GIT reaches "
        "(means over the seeds GIT, CE+DRS and the oracle all finished; 100 % = as good as applying the true nuisance "
        "to the tail, 0 % = no gain, negative = harm). Class preservation: the share of generated draws on which a "
        "classifier trained with the true nuisance keeps its prediction, relative to the same share for true-nuisance "
        "draws, both under the same reference (the target is at least 90 %; for the recommended draw, each seed's own "
        "draw, on the seeds the diagnostic ran; blank for the draw chosen on validation). Where the oracle itself gains less than the seed-to-seed spread (a point "
        "or two), a share is mostly noise: read the accuracies beside it. After ± : the share's standard error over "
        "seeds (from the per-seed gains over CE+DRS, GIT's against the oracle's; the ratio estimator's).",
        "",
        "| set | generator | seeds | balanced acc. CE+DRS / GIT / oracle (%) | share | tail eKLD CE+DRS / GIT / oracle | share | "
        "GIT - CE+DRS per seed (points) | class preservation | learned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in sorted(comparison, key=lambda d: (not d.startswith("digits"), d)):
        for row in ROWS:
            result = comparison[dataset].get("/".join(row))
            if result is None:
                continue
            preservation = result.get("class_preservation_ratio")
            acc, ekld = result["balanced_accuracy"], result["ekld_tail"]
            lines.append(
                f"| {dataset} | {ROW_LABELS[row]} | {', '.join(map(str, result['seeds']))} | "
                f"{acc['drs'] * 100:.1f} / {acc['git'] * 100:.1f} / {acc['oracle'] * 100:.1f} | {share(result['accuracy_share'], result.get('accuracy_share_error'))} | "
                f"{ekld['drs']:.3f} / {ekld['git']:.3f} / {ekld['oracle']:.3f} | {share(result['ekld_share'], result.get('ekld_share_error'))} | "
                f"{', '.join(f'{d * 100:+.1f}' for d in result['accuracy_git_minus_drs_per_seed'])} | "
                f"{'' if preservation is None else f'{preservation * 100:.0f} %'} | {'; '.join(result.get('learned', []))} |"
            )
    for variant, method in [row for row in ROWS if row[0] in DEFAULT_VARIANTS]:
        defaults = {d: c[f"{variant}/{method}"] for d, c in comparison.items() if f"{variant}/{method}" in c}
        for group, members in (("", [d for d in defaults if d not in NOT_DEVELOPED_ON]),
                               (" it was not developed on", [d for d in defaults if d in NOT_DEVELOPED_ON])):
            if not members:
                continue
            reached = [d for d in members if all(s is not None and s >= BAR for s in (defaults[d]["accuracy_share"], defaults[d]["ekld_share"]))]
            lines += [
                "",
                f"The {ROW_LABELS[variant, method]} reaches {BAR * 100:.0f} % of the oracle's gain in both measures on "
                f"{len(reached)} of {len(members)} sets{group}" + (f" ({', '.join(sorted(reached))})" if reached else "") + ".",
            ]
    plain_path = args.results / "plain_sets.json"
    if plain_path.exists():
        plain = json.loads(plain_path.read_text())
        lines += ["", "Sets with no added nuisance (`benchmarks/plain_sets.py`, seeds "
                  f"{plain['seeds']}): GIT with the default fit minus CE+DRS, balanced accuracy per seed: " + "; ".join(
                      f"{d} " + ", ".join(
                          f"{shared.METHOD_NAMES[m]} {' '.join(f'{(g - r) * 100:+.1f}' for g, r in zip(t[m], t['drs']))}"
                          for m in shared.GIT_DRAWS if m in t)
                      + f" points (learned: {'; '.join(shared.describe_learned(e) for e in t['learned'])})"
                      for d, t in plain["table"].items()) + "."]
    else:
        missing.append(shared.shown(plain_path))
    if missing:
        lines += ["", "Not found (not run yet): " + ", ".join(f"`{m}`" for m in missing) + "."]
    out = args.results / "default_fit.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"comparison": comparison, "missing": missing}, indent=2, default=float))
    os.replace(tmp, out)
    update_section(args.report, "default_fit", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
