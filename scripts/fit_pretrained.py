"""Fit the pretrained generators that ship with gitaug, and package them.

Each name in ``FITS`` is fitted with the project's own command (``gitaug fit``)
on a built-in dataset, then packaged into ``gitaug/pretrained/<name>/``:
``config.json`` (with the generator report of ``gitaug eval`` under
``"report"``), ``model.safetensors`` in float16 (the loader casts the weights
to the generator's float32 parameters), a model card and a labelled sample
grid. ``gitaug.list_pretrained()`` lists them and
``GITAugment.from_pretrained(name)`` loads them offline.

The fit flags live in one table, ``FITS``: change a row there to refit a
generator with a better recipe.

    python scripts/fit_pretrained.py                         # fit what is missing, then package all
    python scripts/fit_pretrained.py --names digits-rot-lt   # one generator
    python scripts/fit_pretrained.py --package-only          # re-package finished fits
    python scripts/fit_pretrained.py --refit                 # fit again from scratch

Fits run one at a time with one thread (OMP_NUM_THREADS=1), in
``runs/pretrained/<name>``; an interrupted fit resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gitaug.hub import is_generator_folder

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "gitaug" / "pretrained"

#: name -> the built-in dataset it is fitted on and the ``gitaug fit`` flags beyond the defaults.
#: Every generator is the default fit: no flag names the nuisance; the fit's nuisance test finds it.
FITS: dict[str, dict] = {
    # The digits: gitaug fit's defaults (1,500 steps), the seed-0 fits of benchmarks/reproduce_digits.py.
    "digits-rot-lt": {
        "dataset": "digits-rot-lt",
        "flags": [],
        "description": "rotation uniform in [-180, 180] degrees, found by the default fit",
    },
    "digits-bg-lt": {
        "dataset": "digits-bg-lt",
        "flags": [],
        "description": "background intensity in [0, 100) of 255, found by the default fit",
    },
    "digits-dil-lt": {
        "dataset": "digits-dil-lt",
        "flags": [],
        "description": "stroke dilation (kernel 2-4) or erosion (kernel 1-2), found by the default fit",
    },
    # Fashion-MNIST-LT: gitaug fit's defaults (no flag names the nuisance), 800 steps as in
    # benchmarks/reproduce_fmnist.py, whose seed-0 fits these are.
    "fmnist-rot-lt": {
        "dataset": "fmnist-rot-lt",
        "flags": ["--steps", "800"],
        "description": "rotation uniform in [-180, 180] degrees, found by the default fit",
    },
    "fmnist-bg-lt": {
        "dataset": "fmnist-bg-lt",
        "flags": ["--steps", "800"],
        "description": "background intensity, found by the default fit",
    },
    "fmnist-dil-lt": {
        "dataset": "fmnist-dil-lt",
        "flags": ["--steps", "800"],
        "description": "stroke dilation or erosion, found by the default fit",
    },
}
#: flags every fit gets: seed 0 (the dataset's class order and the run), the CPU, one thread.
COMMON_FLAGS = ["--seed", "0", "--device", "cpu", "--threads", "1", "--no-progress"]


def fit_command(name: str, out: Path, resume: bool) -> list[str]:
    spec = FITS[name]
    command = [sys.executable, "-m", "gitaug.cli", "fit", "--dataset", spec["dataset"], "--out", str(out)]
    command += COMMON_FLAGS + list(spec["flags"])
    if resume:
        command.append("--resume")
    return command


def run_fit(name: str, work: Path, refit: bool) -> None:
    out = work / name
    if refit and out.exists():
        shutil.rmtree(out)
    if is_generator_folder(out / "generator") or is_generator_folder(out):
        print(f"{name}: fitted already ({out})", flush=True)
        return
    resume = (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
    command = fit_command(name, out, resume)
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    started = time.time()
    done = subprocess.run(command, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name}: gitaug fit failed with status {done.returncode}")
    print(f"{name}: fitted in {time.time() - started:.0f} s", flush=True)


def package(name: str, work: Path) -> Path:
    """Copy a finished fit into the package: float16 weights, report, labelled grid, model card."""
    import torch
    from safetensors.torch import load_file, save_file

    from gitaug import GITAugment
    from gitaug._files import give_default_permissions
    from gitaug.datasets import load
    from gitaug.fit.grid import class_row_labels, grid_rows, save_sample_grid
    from gitaug.hub import WEIGHTS_NAME
    from gitaug.report import generator_report

    source = work / name
    spec = FITS[name]
    # With the draw the fit recommended (training.draw), when it stored one: the one users will get.
    aug = GITAugment.from_pretrained(source)
    train = load(spec["dataset"], split="train", seed=0)
    # The report is measured on the training images: the data the generator is meant for.
    report = generator_report(aug, train.images, train.targets, seed=0)
    print(f"{name}:\n{report}", flush=True)

    staging = PACKAGE_DIR / f".{name}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    rows = grid_rows(train.targets, len(train), max_rows=10, seed=0)
    grid = save_sample_grid(
        work / f"{name}-samples.png", aug.generator, train.images[rows], variants=8, seed=0,
        row_labels=class_row_labels(train.targets, rows, list(train.classes)),
        residual=aug.residual, styles=aug.styles, appearance_scale=aug.appearance_scale,
    )
    metadata = dict(aug.metadata)
    metadata["pretrained_name"] = name
    metadata["fit_command"] = " ".join(["gitaug fit --dataset", spec["dataset"], *COMMON_FLAGS, *spec["flags"]])
    metadata["weights_dtype"] = "float16"
    metadata["report"] = report.to_dict()
    # The model card's usage line names the pretrained generator, not the staging folder.
    aug.generator.save_pretrained(staging, metadata=metadata, samples_image=grid, model_card_kwargs={"repo_id": name})
    # Half-precision storage halves the package; load_state_dict copies into the float32 parameters.
    state = load_file(staging / WEIGHTS_NAME)
    half = {key: (t.half() if t.is_floating_point() else t) for key, t in state.items()}
    save_file(half, staging / WEIGHTS_NAME, metadata={"format": "pt"})
    give_default_permissions(staging / WEIGHTS_NAME)
    # What float16 storage costs: the largest pixel difference it makes to a batch of draws.
    halved = GITAugment.from_pretrained(staging)
    draws = [a(train.images[:64], generator=torch.Generator().manual_seed(0)) for a in (aug, halved)]
    difference = (draws[0].float() - draws[1].float()).abs().max().item() / 255
    print(f"{name}: float16 weights change the draws by at most {difference:.4f} (pixels in [0, 1])", flush=True)
    target = PACKAGE_DIR / name
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    size = sum(f.stat().st_size for f in target.iterdir())
    print(f"{name}: packaged in {target.relative_to(ROOT)} ({size / 1e6:.2f} MB)", flush=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=list(FITS), choices=list(FITS))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrained", help="where the fits run")
    parser.add_argument("--refit", action="store_true", help="delete earlier fits and fit again")
    parser.add_argument("--fit-only", action="store_true", help="fit, do not package")
    parser.add_argument("--package-only", action="store_true", help="package finished fits, fit nothing")
    args = parser.parse_args()
    if not args.package_only:
        for name in args.names:
            run_fit(name, args.work, args.refit)
    if not args.fit_only:
        import torch

        torch.set_num_threads(1)
        for name in args.names:
            package(name, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
