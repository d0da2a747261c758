"""Would a residual draw with more appearance change, or with no geometry, teach the tail more? Paired repeats.

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

``--warp-extent E`` repeats them with the warp's geometric ranges multiplied
by E as well (``--scale 1 --warp-extent 0``: the same appearance change and
swaps, no rotation, zoom or shift). On the upright sets the nuisance test's
ranges (a few degrees, a few per cent) are the detector's resolution rather
than the data's spread, and on background clothing that geometry costs as
much class preservation as the appearance change (``preservation_control.py
--components``); this asks what it does to accuracy and invariance.
Each variant is its own row; every variant measured so far stays in the report.

    python benchmarks/appearance_strength.py --workers 2
    python benchmarks/appearance_strength.py --datasets fmnist-dil-lt --scale 2
    python benchmarks/appearance_strength.py --datasets fmnist-dil-lt fmnist-bg-lt --scale 1 --warp-extent 0

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
TAGS = ("drs", "git-auto", "variant", "oracle")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets (default: all in keep_class.RUNS)")
    parser.add_argument("--scale", type=float, default=2.0, help="the appearance strength of the repeats (default 2)")
    parser.add_argument("--warp-extent", type=float, default=1.0,
                        help="the warp extent of the repeats (default 1, the recommended draw's; 0: no geometry)")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs, one thread each")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--report", type=Path, default=BENCH / "RESULTS.md")
    return parser.parse_args()


def tag_of(scale: float, extent: float = 1.0) -> str:
    return f"git-auto-appearance{scale:g}" + ("" if extent == 1 else f"-extent{extent:g}")


def repeat_job(work: Path, dataset: str, seed: int, scale: float, extent: float = 1.0) -> None:
    """Repeat the seed's GIT run with residual draws of the data's styles at appearance strength ``scale`` and warp
    extent ``extent``."""
    out = keep_class.run_path(work, dataset, seed, tag_of(scale, extent))
    command = shared.repeat_command(shared.load_run(work, dataset, seed, "git-auto"),
                                    drop=("draw", "styles", "appearance_scale", "warp_extent"))
    command += ["--draw", "residual", "--styles", "data", "--appearance-scale", f"{scale:g}"]
    if extent != 1:
        command += ["--warp-extent", f"{extent:g}"]
    command += ["--out", str(out.relative_to(ROOT))]
    shared.run_job(command, work / "logs" / f"{dataset}-seed{seed}-{tag_of(scale, extent)}.log", out)


def repeated(selected: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """The runs of ``selected`` whose GIT run drew :data:`REPEATED_DRAW`."""
    return [(folder, dataset, seed) for folder, dataset, seed in selected
            if (shared.load_run(BENCH / folder, dataset, seed, "git-auto") or {}).get("draw") == REPEATED_DRAW]


def summarize(selected: list[tuple[str, str, int]], scale: float, extent: float = 1.0) -> dict:
    rows: dict[str, list[dict]] = {}
    for folder, dataset, seed in selected:
        work = BENCH / folder
        runs = {tag: shared.load_run(work, dataset, seed, tag_of(scale, extent) if tag == "variant" else tag)
                for tag in TAGS}
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
        means, differences = keep_class.paired_means(seeds, TAGS, "variant", "git-auto")
        summary[dataset] = {"scale": scale, "warp_extent": extent, "seeds": [row["seed"] for row in seeds],
                            "per_seed": seeds, "mean": means, "variant_minus_git": differences}
    return summary


def report_section(summaries: dict, commands: list[str]) -> str:
    """The section: one row group per variant (``summaries``: variant tag -> :func:`summarize`'s result)."""
    lines = [
        "## Residual draws at another appearance strength or warp extent (`appearance_strength`)",
        "",
        "Finished CE+DRS+GIT runs of the current default whose fit recommends residual draws with the data's styles "
        "(strength 1, warp extent 1), repeated with one change: the appearance change drawn at strength S and the "
        "warp's geometric ranges multiplied by E (`--draw residual --styles data --appearance-scale S "
        "--warp-extent E`; E = 0: no rotation, zoom or shift, swaps kept). Same generator, K, p, rule and seed. "
        "Means over seeds, +- standard error; the last column is the paired difference, the variant minus the "
        "recommended draw, then per seed.",
        "",
        "| set | S | E | seeds | | CE+DRS | GIT (recommended) | GIT (variant) | oracle | variant - recommended |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for summary in summaries.values():
        for dataset, entry in summary.items():
            for key, label, factor, digits, cells, diff in keep_class.metric_rows(entry, TAGS, "variant_minus_git"):
                per_seed = ", ".join(f"{(row[key]['variant'] - row[key]['git-auto']) * factor:+.{digits}f}"
                                     for row in entry["per_seed"])
                lines.append(f"| {dataset} | {entry['scale']:g} | {entry['warp_extent']:g} | "
                             f"{' '.join(map(str, entry['seeds']))} | {label} | {' | '.join(cells)} | {diff} ({per_seed}) |")
    lines += ["", "Commands: `" + "`, `".join(commands) + "`", ""]
    return "\n".join(lines)


def stored_variants(path: Path) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """The variants (tag -> (scale, extent)) and commands a results file holds. A file from before variants held
    one strength's summary per set, made by ``--scale S`` alone."""
    if not path.exists():
        return {}, []
    stored = json.loads(path.read_text())
    if "variants" not in stored:
        scales = {entry["scale"] for entry in stored.values()}
        return ({tag_of(scale): (scale, 1.0) for scale in scales},
                [f"python benchmarks/appearance_strength.py --scale {scale:g}" for scale in sorted(scales)])
    return ({tag: (v["scale"], v["warp_extent"]) for tag, v in stored["variants"].items()}, stored.get("commands", []))


def main() -> None:
    args = parse_args()
    if not args.scale > 0:
        raise SystemExit(f"--scale must be above 0, got {args.scale}")
    if args.warp_extent < 0:
        raise SystemExit(f"--warp-extent must be 0 or more, got {args.warp_extent}")
    if args.scale == 1 and args.warp_extent == 1:
        raise SystemExit("--scale 1 with --warp-extent 1 is the recommended draw itself: nothing to compare")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    selected = repeated([r for r in keep_class.RUNS if args.datasets is None or r[1] in args.datasets])
    print(f"{len(selected)} runs drew {REPEATED_DRAW}; {args.workers} at a time, strength {args.scale:g}, "
          f"warp extent {args.warp_extent:g}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}", flush=True)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for future in [pool.submit(repeat_job, BENCH / folder, dataset, seed, args.scale, args.warp_extent)
                       for folder, dataset, seed in selected]:
            future.result()
    output = args.results / "appearance_strength.json"
    variants, commands = stored_variants(output)
    variants[tag_of(args.scale, args.warp_extent)] = (args.scale, args.warp_extent)
    everything = repeated(keep_class.RUNS)  # every set's runs, not only this call's --datasets
    summaries = {tag: summarize(everything, scale, extent) for tag, (scale, extent) in variants.items()}
    stored = {tag: {"scale": variants[tag][0], "warp_extent": variants[tag][1], "sets": summary}
              for tag, summary in summaries.items()}
    command = ("python benchmarks/appearance_strength.py" + f" --scale {args.scale:g}"
               + ("" if args.warp_extent == 1 else f" --warp-extent {args.warp_extent:g}")
               + ("" if args.datasets is None else " --datasets " + " ".join(args.datasets)))
    commands = sorted({*commands, command})
    args.results.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"variants": stored, "commands": commands}, indent=2) + "\n")
    update_section(args.report, "appearance_strength", report_section(summaries, commands))
    print(report_section(summaries, commands))


if __name__ == "__main__":
    sys.exit(main())
