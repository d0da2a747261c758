"""A bank of V precomputed draws against live GIT draws: accuracy and tail eKLD on a built-in set.

Runs ``examples/train_longtail.py --method git`` once per seed with live
draws (``--bank-draws 0``) and once per seed and ``V`` with a
:class:`gitaug.bank.TailBank` of ``V`` draws per tail image, all with one
fitted generator, and reports balanced test accuracy and tail-class eKLD
(mean ± std over seeds). Each run writes its JSON into ``--work``; a run
whose JSON exists is not repeated, so an interrupted benchmark resumes.

    gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt --weight-diversity 10 --threads 1
    python benchmarks/bank_digits.py --generator runs/digits-bg-lt --dataset digits-bg-lt --draws 2 8

``--generator`` may name each seed's own generator with ``{seed}`` (the
reproduction benchmark's default fits, say), and ``--section`` gives a
comparison on another set its own section:

    python benchmarks/bank_digits.py --dataset digits-rot-lt --draws 8 32 --seeds 0 1 2 3 \
        --generator 'benchmarks/_work/generators/digits-rot-lt-seed{seed}' \
        --git-args '--threshold 200 --p 1.0 --rule linear --draw residual --styles data' \
        --work benchmarks/_work/bank_rot --out benchmarks/results/bank_digits_rot.json --section bank_digits_rot

Writes ``benchmarks/results/bank_digits.json`` and the section between
``<!-- bank_digits:start -->`` and ``<!-- bank_digits:end -->`` of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _report import command_line, update_section

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", required=True,
                        help="a gitaug-fit folder fitted on --dataset; '{seed}' in it is replaced by each run's seed")
    parser.add_argument("--dataset", default="digits-bg-lt")
    parser.add_argument("--draws", nargs="+", type=int, default=[8], metavar="V", help="bank sizes to compare (default: 8)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--git-args", default="--threshold 200 --p 1.0 --rule linear",
                        help="GIT flags for the example (default: the setting reproduce_digits.py chose for digits-bg-lt)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work" / "bank", help="per-run JSON and logs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bank_digits.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--section", default="bank_digits", help="the RESULTS.md section written (one per comparison)")
    args = parser.parse_args(argv)
    if min(args.draws) < 1:
        parser.error(f"--draws must be positive, got {args.draws}")
    return args


def run(args: argparse.Namespace, seed: int, draws: int) -> dict:
    out = args.work / f"seed{seed}-v{draws}.json"
    if not out.exists():
        command = [sys.executable, str(ROOT / "examples" / "train_longtail.py"), "--dataset", args.dataset,
                   "--method", "git", "--generator", args.generator.format(seed=seed), *args.git_args.split(), "--seed", str(seed),
                   "--bank-draws", str(draws), "--device", "cpu", "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with open(args.work / f"seed{seed}-v{draws}.log", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return json.loads(out.read_text())


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    command = command_line("bank_digits.py", sys.argv[1:] if argv is None else argv)
    arms = {"live": 0, **{f"bank V={v}": v for v in args.draws}}
    table = {}
    for name, draws in arms.items():
        runs = [run(args, seed, draws) for seed in args.seeds]
        table[name] = {
            "balanced_accuracy": [r["test_balanced_accuracy"] for r in runs],
            "ekld_tail": [r["ekld_summary"]["tail_mean"] for r in runs],
            "train_seconds": [r["train_seconds"] for r in runs],
        }
        print(f"{name}: accuracy {mean_std(table[name]['balanced_accuracy'])}, tail eKLD {mean_std(table[name]['ekld_tail'])}",
              flush=True)
    summary = {
        "benchmark": "bank_digits",
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dataset": args.dataset,
        "seeds": args.seeds,
        "git_args": args.git_args,
        "table": table,
    }
    lines = [
        f"## Tail bank against live draws ({args.dataset})",
        "",
        f"Produced by `{command}` on {summary['date'][:10]}: `examples/train_longtail.py --method git {args.git_args}` "
        f"on {args.dataset}, seeds {args.seeds}, "
        + (f"each seed's own generator (`{args.generator}`)" if "{seed}" in args.generator
           else f"one generator (`{args.generator}`) for every run")
        + "; live draws in the default inference dtype. Mean ± std over seeds; the train time is the whole run's, "
        "on a shared machine.",
        "",
        "| GIT draws | balanced test accuracy | tail eKLD | train seconds |",
        "|---|---|---|---|",
        *(f"| {name} | {mean_std(row['balanced_accuracy'])} | {mean_std(row['ekld_tail'])} | "
          f"{statistics.mean(row['train_seconds']):.0f} |" for name, row in table.items()),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    partial.replace(args.out)
    update_section(args.report, args.section, "\n".join(lines))
    print(f"wrote {args.out} and the bank section of {args.report}")
    return summary


if __name__ == "__main__":
    main()
