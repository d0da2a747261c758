"""Long-tail losses with and without GIT on a built-in long-tailed set.

Compares CE+DRS, LDAM+DRW and Bal-BCE, each with and without GIT, on
``digits-bg-lt`` (fixed in advance: background is the nuisance a style code
expresses most directly) over the seeds, with the same classifier, epochs,
generators and GIT setting as ``reproduce_digits.py`` (its runs and
generators are reused when present). LDAM+DRW and Bal-BCE keep instance
sampling (they re-weight or re-balance in the loss); LDAM's DRW weights and
GIT start at the same epoch as DRS does.

    python benchmarks/losses_digits.py            # after (or instead of) reproduce_digits.py

Appends its table to ``benchmarks/RESULTS.md`` and writes
``benchmarks/results/losses_digits.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


# Run as a script, this file's folder is on sys.path: the reproduction's job runner and work folder are shared.
import reproduce_digits as repro
from _report import command_line, update_section

ROWS = (
    # (label, method, extra flags); CE+DRS rows reuse the reproduction's runs (same tags, same commands)
    ("CE+DRS", "drs", ()),
    ("CE+DRS+GIT", "git", ()),
    ("LDAM+DRW", "erm", ("--loss", "ldam", "--resampling", "none")),
    ("LDAM+DRW+GIT", "git", ("--loss", "ldam", "--resampling", "none")),
    ("Bal-BCE", "erm", ("--loss", "bal-bce", "--resampling", "none")),
    ("Bal-BCE+GIT", "git", ("--loss", "bal-bce", "--resampling", "none")),
)
DEFAULT_SETTING = {"threshold": 100, "p": 0.5, "rule": "hard"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits-bg-lt", choices=repro.DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fit-steps", type=int, default=None)
    parser.add_argument("--fit-flags", choices=("default", "recipes", "paper"), default="default",
                        help="how the generators are fitted, as reproduce_digits.py takes it")
    parser.add_argument("--fit-extra", default="", help="more gitaug-fit flags, as reproduce_digits.py takes them")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=repro.ROOT / "benchmarks" / "_work")
    parser.add_argument("--results", type=Path, default=repro.ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=repro.ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    command = command_line("losses_digits.py", sys.argv[1:])
    started = time.time()

    # GIT's setting: the one the reproduction chose on validation, if it ran; else a fixed default.
    setting, source = DEFAULT_SETTING, "default (K 100, p 0.5, hard)"
    repro_results = args.results / f"reproduce_digits{repro.variant_suffix(args.fit_flags)}.json"
    if repro_results.exists():
        selection = json.loads(repro_results.read_text())["selection"].get(args.dataset)
        if selection:
            setting, source = selection["chosen"], "chosen on validation by reproduce_digits.py"

    repro.run_all([repro.fit_job(args, args.dataset, seed) for seed in args.seeds], args.workers)
    jobs, tags = [], {}
    for label, method, extra in ROWS:
        tag = method if not extra else f"{method}-{extra[1]}"
        tags[label] = tag
        jobs += [repro.train_job(args, args.dataset, seed, method, setting, tag, extra) for seed in args.seeds]
    repro.run_all(jobs, args.workers)

    table = {}
    for label, _, _ in ROWS:
        runs = [json.loads((args.work / "runs" / f"{args.dataset}-seed{seed}-{tags[label]}.json").read_text()) for seed in args.seeds]
        tails = [repro.tail_head_means(r["class_counts"], r["ekld_per_class"])[0] for r in runs]
        table[label] = {
            "balanced_accuracy": [r["test_balanced_accuracy"] for r in runs],
            "tail_accuracy": [repro.tail_head_means(r["class_counts"], r["test_per_class_accuracy"])[0] for r in runs],
            "ekld_tail": tails,
        }
    summary = {"command": command, "dataset": args.dataset, "seeds": args.seeds, "git_setting": setting,
               "git_setting_source": source, "table": table, "seconds": time.time() - started}
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / "losses_digits.json"
    out.with_suffix(".tmp").write_text(json.dumps(summary, indent=2))
    os.replace(out.with_suffix(".tmp"), out)

    lines = [
        "",
        f"## Long-tail losses with and without GIT ({args.dataset})",
        "",
        f"Produced by `{command}`. Seeds {args.seeds}; same classifier, epochs and generators as above; "
        f"GIT setting: K = {setting['threshold'] or 'none'}, p = {setting['p']}, rule {setting['rule']} ({source}). "
        "Tail: the smallest third of classes. Mean ± std over seeds.",
        "",
        "| method | balanced acc. (%) | tail acc. (%) | eKLD tail |",
        "|---|---|---|---|",
    ]
    for label, _, _ in ROWS:
        row = table[label]
        lines.append(f"| {label} | {repro.fmt(row['balanced_accuracy'], 100, 1)} | {repro.fmt(row['tail_accuracy'], 100, 1)} | "
                     f"{repro.fmt(row['ekld_tail'], 1, 3)} |")
    update_section(args.report, f"losses_digits:{args.dataset}", "\n".join(lines))
    print("\n".join(lines))
    print(f"{(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
