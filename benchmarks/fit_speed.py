"""Training throughput of ``gitaug-fit``: images per second at several batch sizes.

Each measurement is a real ``gitaug.fit.fit`` run -- the same training step,
sampler, mixed precision and logging as ``gitaug-fit`` -- on synthetic random
uint8 images written to a temporary ``.npz``, with the progress bar, periodic
checkpoints and sample grids switched off. The run logs every ``--warmup``
steps; the first logged interval (allocator warm-up, cuDNN autotuning, lazy
initialisation) is dropped and the rest are pooled into one figure. The
checkpoint and export a run writes after its last step are not timed.

The ratio baseline is the GIT paper's reference trainer step, written here
from its description (MUNIT's two-domain step with both domains fed the same
images): two generators and two discriminators of the same architecture as
``gitaug-fit``'s, within-domain reconstruction, cross-domain translation
with random styles, style and content re-encoding, LSGAN updates of both
discriminators, MUNIT's layer norm (per-sample ``std``) and plain per-tensor
Adam, fp32. Its per-domain images/s are measured in blocks of
``--reference-steps`` steps right before and right after each ``fit`` run
(the median step time counts), so both see the same machine load.

Configurations: the ``small`` preset on 28x28 gray images and the ``paper``
preset on 32x32 RGB images (each with its default discriminator), on the CPU
and, when ``torch.cuda.is_available()``, on CUDA (where ``amp="auto"`` picks
bf16 if the GPU supports it, as ``gitaug-fit`` does).

    python benchmarks/fit_speed.py                                  # batch sizes 8 32 64, CPU (+ CUDA)
    python benchmarks/fit_speed.py --devices cuda --steps 50
    python benchmarks/fit_speed.py --threads 4 --batch-sizes 16 32

OMP_WAIT_POLICY is set to PASSIVE unless already set (spinning OpenMP
threads collapse throughput on a shared machine).

Prints a table, writes ``benchmarks/results/fit_speed.json`` (``--out``) with
the command line, torch version, device names, thread count and every figure,
and replaces the section between ``<!-- fit_speed:start -->`` and
``<!-- fit_speed:end -->`` in ``benchmarks/RESULTS.md`` (``--report``), adding
it if missing and leaving the rest of the file as it is.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import argparse
import datetime
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gitaug.fit import FitConfig, fit
from gitaug.fit.discriminator import MultiScaleDiscriminator, lsgan_loss
from gitaug.generator import MUNITConfig, MUNITGenerator
from _reference import munit_norms
from _report import command_line, device_name, update_section

ROOT = Path(__file__).resolve().parent.parent

# (preset, image side, channels): the CPU-friendly preset at MNIST size, the reference one at CIFAR size.
CONFIGURATIONS = (("small", 28, 1), ("paper", 32, 3))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32, 64], metavar="B",
                        help="global batch sizes to measure (default: 8 32 64)")
    parser.add_argument("--steps", type=int, default=30,
                        help="training steps per measurement, warm-up included (default: 30)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="steps in the first logged interval, which is not counted (default: 5)")
    parser.add_argument("--devices", nargs="+", default=None, metavar="DEVICE",
                        help="torch devices to measure on (default: cpu, and cuda when available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice, recorded in the results)")
    parser.add_argument("--images", type=int, default=512, help="synthetic training images per configuration")
    parser.add_argument("--reference-steps", type=int, default=4,
                        help="reference trainer steps timed before and after each fit run (default: 4; 0 skips it)")
    parser.add_argument("--no-flops", action="store_true", help="skip counting FLOPs per image (two short fits per preset)")
    parser.add_argument("--flops-only", action="store_true",
                        help="count FLOPs for the configurations already in --out and add them there and to the report, "
                             "timing nothing (the counts do not depend on the machine's load)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fit_speed.json",
                        help="results file (default: benchmarks/results/fit_speed.json)")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                        help="Markdown report whose fit-speed section is replaced (default: benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1:
        parser.error(f"--batch-sizes must be positive, got {args.batch_sizes}")
    if args.warmup < 1 or args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup}), and --warmup must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be positive, got {args.threads}")
    if args.devices is None:
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for name in args.devices:
        if torch.device(name).type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--devices {name}: CUDA is not available here")
    return args


def write_images(folder: Path, count: int, side: int, channels: int, seed: int = 0) -> Path:
    """Random uint8 images as an unlabelled ``.npz`` (throughput does not depend on the pixels)."""
    rng = np.random.default_rng(seed)
    shape = (count, side, side) if channels == 1 else (count, side, side, channels)
    path = folder / f"random-{side}x{side}x{channels}.npz"
    np.savez(path, images=rng.integers(0, 256, size=shape, dtype=np.uint8))
    return path


def throughput(records: list[dict], batch_size: int) -> tuple[float, int]:
    """Images per second over every logged interval but the first, and the steps that covers.

    Each record's ``images_per_second`` covers the steps since the previous
    record, so the intervals are pooled by their time, not averaged.
    """
    images = seconds = 0.0
    steps = 0
    for previous, record in zip(records, records[1:]):
        interval = record["step"] - previous["step"]
        images += interval * batch_size
        seconds += interval * batch_size / record["images_per_second"]
        steps += interval
    return images / seconds, steps


def measure(data: Path, workdir: Path, preset: str, device: str, batch_size: int, steps: int, warmup: int) -> dict:
    """One ``fit`` run; returns its throughput and what it ran with."""
    out = workdir / f"{preset}-{device.replace(':', '')}-b{batch_size}"
    config = FitConfig(
        data=str(data),
        out=str(out),
        preset=preset,
        steps=steps,
        batch_size=batch_size,
        device=device,
        log_every=warmup,  # so the first logged interval is exactly the warm-up
        checkpoint_every=0,
        sample_every=0,
        grid_variants=1,
        progress=False,
    )
    started = time.perf_counter()
    exported = fit(config)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    images_per_second, measured_steps = throughput(records, batch_size)
    meta = json.loads((exported / "config.json").read_text())["training"]
    return {
        "images_per_second": images_per_second,
        "milliseconds_per_step": 1000 * batch_size / images_per_second,
        "measured_steps": measured_steps,
        "warmup_steps": records[0]["step"],
        "amp": meta["amp"],
        "run_seconds": wall,
    }


# --------------------------------------------------------------------------- the reference trainer step


class ReferenceTrainer:
    """The reference code's two-domain MUNIT step, both domains fed images of the one dataset.

    Same architectures as ``gitaug-fit`` (the preset's generator, its default
    discriminator), two of each; loss weights image 10, style 1, content 1,
    adversarial 1; Adam lr 1e-4, betas (0.5, 0.999), weight decay 1e-4, one
    tensor at a time (``foreach=False``), as the reference's optimizer ran.
    """

    def __init__(self, preset: str, side: int, channels: int, device: torch.device) -> None:
        config = FitConfig(data="unused", out="unused", preset=preset)
        gen_config = MUNITConfig.preset(preset, in_channels=channels, image_size=side)
        self.generators = [MUNITGenerator(gen_config).to(device) for _ in range(2)]
        self.discriminators = [
            MultiScaleDiscriminator(channels, side, dim=config.resolved_disc_dim, n_layers=config.disc_layers,
                                    n_scales=config.disc_scales).to(device)
            for _ in range(2)
        ]

        def adam(modules):
            params = [p for m in modules for p in m.parameters()]
            return torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4, foreach=False)

        self.opt_g, self.opt_d = adam(self.generators), adam(self.discriminators)
        self.style_dim = gen_config.style_dim

    def step(self, x_a: torch.Tensor, x_b: torch.Tensor) -> None:
        gen_a, gen_b = self.generators
        dis_a, dis_b = self.discriminators
        n = x_a.shape[0]
        with munit_norms():
            s_a = torch.randn(n, self.style_dim, device=x_a.device)
            s_b = torch.randn(n, self.style_dim, device=x_a.device)
            # generator update
            self.opt_g.zero_grad(set_to_none=True)
            c_a, s_a_own = gen_a.encode_content(x_a), gen_a.encode_style(x_a)
            c_b, s_b_own = gen_b.encode_content(x_b), gen_b.encode_style(x_b)
            x_a_recon = gen_a.decode(c_a, s_a_own)
            x_b_recon = gen_b.decode(c_b, s_b_own)
            x_ba = gen_a.decode(c_b, s_a)
            x_ab = gen_b.decode(c_a, s_b)
            c_b_recon, s_a_recon = gen_a.encode_content(x_ba), gen_a.encode_style(x_ba)
            c_a_recon, s_b_recon = gen_b.encode_content(x_ab), gen_b.encode_style(x_ab)
            loss = (
                10 * (F.l1_loss(x_a_recon, x_a) + F.l1_loss(x_b_recon, x_b))
                + F.l1_loss(s_a_recon, s_a) + F.l1_loss(s_b_recon, s_b)
                + F.l1_loss(c_a_recon, c_a) + F.l1_loss(c_b_recon, c_b)
                + lsgan_loss(dis_a(x_ba), 1.0) + lsgan_loss(dis_b(x_ab), 1.0)
            )
            loss.backward()
            self.opt_g.step()
            # discriminator update, on fresh translations as the reference code does
            self.opt_d.zero_grad(set_to_none=True)
            with torch.no_grad():
                x_ba = gen_a.decode(gen_b.encode_content(x_b), s_a)
                x_ab = gen_b.decode(gen_a.encode_content(x_a), s_b)
            loss_d = (
                lsgan_loss(dis_a(x_ba), 0.0) + lsgan_loss(dis_a(x_a), 1.0)
                + lsgan_loss(dis_b(x_ab), 0.0) + lsgan_loss(dis_b(x_b), 1.0)
            )
            loss_d.backward()
            self.opt_d.step()


def reference_step_seconds(trainer: ReferenceTrainer, data: np.ndarray, batch_size: int, steps: int,
                           device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` reference steps (after one untimed warm-up step) on batches from ``data``."""
    rng = np.random.default_rng(0)

    def batch() -> torch.Tensor:
        chosen = data[rng.integers(0, len(data), size=batch_size)]
        x = torch.from_numpy(chosen).float().div(127.5).sub(1)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return x.contiguous().to(device)

    trainer.step(batch(), batch())
    times = []
    for _ in range(steps):
        x_a, x_b = batch(), batch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        trainer.step(x_a, x_b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return times


# --------------------------------------------------------------------------- FLOPs per image


def fit_flops_per_image(data: Path, workdir: Path, preset: str, device: str, batch_size: int) -> float:
    """Convolution and matmul FLOPs (forward and backward) of one ``gitaug-fit`` step, per training image.

    Counted with ``torch.utils.flop_counter`` around two whole ``fit`` runs of 2
    and 4 steps: their difference is two steps, without the nuisance test, the
    setup and the export every run does once.
    """
    from torch.utils.flop_counter import FlopCounterMode

    totals = []
    for steps in (2, 4):
        config = FitConfig(data=str(data), out=str(workdir / f"flops-{preset}-{steps}"), preset=preset, steps=steps,
                           batch_size=batch_size, device=device, log_every=steps, checkpoint_every=0, sample_every=0,
                           grid_variants=1, progress=False)
        with FlopCounterMode(display=False) as counter:
            fit(config)
        totals.append(counter.get_total_flops())
    return (totals[1] - totals[0]) / 2 / batch_size


def reference_flops_per_image(preset: str, side: int, channels: int, device: str, batch_size: int) -> float:
    """The same count for one reference step, per image of one domain (the unit of its images/s)."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer = ReferenceTrainer(preset, side, channels, torch.device(device))
    x_a, x_b = (torch.rand(batch_size, channels, side, side, device=device) * 2 - 1 for _ in range(2))
    with FlopCounterMode(display=False) as counter:
        trainer.step(x_a, x_b)
    return counter.get_total_flops() / batch_size


def count_flops(results: list[dict], workdir: Path, images: int) -> None:
    """Add each configuration's FLOPs per image and their ratio to its result rows (one count per preset and size)."""
    counted: dict[tuple, dict] = {}
    for result in results:
        key = (result["preset"], result["image_size"], result["channels"], result["device"])
        if key not in counted:
            preset, side, channels, device = key
            data = write_images(workdir, images, side, channels)
            batch = min(r["batch_size"] for r in results if r["preset"] == preset)
            fit_flops = fit_flops_per_image(data, workdir, preset, device, batch)
            reference = reference_flops_per_image(preset, side, channels, device, batch)
            counted[key] = {"fit_gflop_per_image": fit_flops / 1e9, "reference_gflop_per_domain_image": reference / 1e9,
                            "flop_ratio": reference / fit_flops}
            print(f"{device} {preset} {side}x{side}x{channels}: {fit_flops / 1e9:.3f} GFLOP per image per step, "
                  f"reference {reference / 1e9:.3f} per domain image ({reference / fit_flops:.2f}x)", flush=True)
        result.update(counted[key])


def parameters(preset: str, side: int, channels: int) -> int:
    return MUNITGenerator(MUNITConfig.preset(preset, in_channels=channels, image_size=side)).num_parameters()


def table(results: list[dict]) -> list[str]:
    lines = [
        "| device | preset | images | generator params | batch | images/s | ms/step | amp | reference images/s per domain "
        "| vs reference | FLOP ratio | speed per FLOP vs reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        reference = r.get("reference_images_per_second")
        speedup = r["images_per_second"] / reference if reference else None
        ref_cells = f"{reference:.1f} | {speedup:.2f}x" if reference else "- | -"
        flops = r.get("flop_ratio")
        flop_cells = f"{flops:.2f}x | {speedup / flops:.2f}x" if flops and speedup else (f"{flops:.2f}x | -" if flops else "- | -")
        lines.append(
            f"| {r['device']} | {r['preset']} | {r['image_size']}x{r['image_size']}x{r['channels']} | "
            f"{r['generator_parameters'] / 1e6:.2f} M | {r['batch_size']} | {r['images_per_second']:.1f} | "
            f"{r['milliseconds_per_step']:.1f} | {r['amp']} | {ref_cells} | {flop_cells} |"
        )
    return lines


def report_section(summary: dict) -> str:
    devices = "; ".join(f"{name}: {hardware}" for name, hardware in summary["device_names"].items())
    lines = [
        "## Fit speed",
        "",
        f"Produced by `{summary['command']}` on {summary['date'][:10]} (torch {summary['torch_version']}, "
        f"{summary['threads']} CPU thread(s); {devices}).",
        "",
        f"`gitaug-fit` training throughput: one generator and one discriminator update per step, each preset with "
        f"its default discriminator, on random images; {summary['warmup_steps']} warm-up steps dropped, "
        f"then {summary['steps'] - summary['warmup_steps']} steps timed. Batch = images per step. The reference "
        f"column is the GIT paper's two-generator, two-discriminator trainer step at the same architecture and "
        f"batch per domain (fp32, {summary.get('reference_steps', 0)} steps timed before and "
        f"{summary.get('reference_steps', 0)} after each fit run, median).",
        "",
        *table(summary["results"]),
    ]
    if any("flop_ratio" in r for r in summary["results"]):
        lines += [
            "",
            "FLOP ratio: the reference step's convolution and matmul FLOPs (forward and backward) per image of one "
            "domain over a `gitaug-fit` step's per image, counted with `torch.utils.flop_counter` (fit runs of 2 and 4 "
            "steps, differenced). It is the speed-up fewer FLOPs alone give; the last column is the rest, how much "
            "faster each FLOP runs"
            + (f" (counted by `{summary['flops_command']}`)" if summary.get("flops_command") else "") + ".",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # fit() logs each run at INFO
    command = command_line("fit_speed.py", sys.argv[1:] if argv is None else argv)
    if args.flops_only:
        summary = json.loads(args.out.read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory(prefix="gitaug-fit-flops-") as tmp:
            count_flops(summary["results"], Path(tmp), summary.get("images", args.images))
        summary["flops_command"] = command
        args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        update_section(args.report, "fit_speed", report_section(summary))
        print("\n".join(table(summary["results"])))
        print(f"\nadded FLOP counts to {args.out} and the fit-speed section of {args.report}")
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="gitaug-fit-speed-") as tmp:
        workdir = Path(tmp)
        for preset, side, channels in CONFIGURATIONS:
            data = write_images(workdir, max(args.images, max(args.batch_sizes)), side, channels)
            n_params = parameters(preset, side, channels)
            for device in args.devices:
                for batch_size in args.batch_sizes:
                    reference_times: list[float] = []
                    if args.reference_steps:
                        arrays = np.load(data)["images"]
                        trainer = ReferenceTrainer(preset, side, channels, torch.device(device))
                        reference_times += reference_step_seconds(trainer, arrays, batch_size, args.reference_steps,
                                                                  torch.device(device))
                    figures = measure(data, workdir, preset, device, batch_size, args.steps, args.warmup)
                    if args.reference_steps:
                        reference_times += reference_step_seconds(trainer, arrays, batch_size, args.reference_steps,
                                                                  torch.device(device))
                        figures["reference_images_per_second"] = batch_size / statistics.median(reference_times)
                    result = {
                        "device": device,
                        "preset": preset,
                        "image_size": side,
                        "channels": channels,
                        "generator_parameters": n_params,
                        "batch_size": batch_size,
                        **figures,
                    }
                    results.append(result)
                    ratio = (f", {result['images_per_second'] / result['reference_images_per_second']:.2f}x the reference"
                             if "reference_images_per_second" in result else "")
                    print(
                        f"{device} {preset} {side}x{side}x{channels} batch {batch_size}: "
                        f"{result['images_per_second']:.1f} images/s ({result['milliseconds_per_step']:.1f} ms/step){ratio}",
                        flush=True,
                    )

    if not args.no_flops:
        with tempfile.TemporaryDirectory(prefix="gitaug-fit-flops-") as tmp:
            count_flops(results, Path(tmp), max(args.images, max(args.batch_sizes)))
    summary = {
        "benchmark": "fit_speed",
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "device_names": {device: device_name(device) for device in args.devices},
        "cuda_version": torch.version.cuda if any(torch.device(d).type == "cuda" for d in args.devices) else None,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "reference_steps": args.reference_steps,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "images": max(args.images, max(args.batch_sizes)),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    update_section(args.report, "fit_speed", report_section(summary))
    print()
    print("\n".join(table(results)))
    print(f"\nwrote {args.out} and the fit-speed section of {args.report}")


if __name__ == "__main__":
    main()
