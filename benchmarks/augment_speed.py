"""What GIT costs at augmentation time: generator paths against the machine's peaks and a classifier step.

Everything is measured in ONE process, with the cases interleaved (one call
of each case per round, ``--rounds`` rounds) and medians reported, so the
ratios hold on a busy machine even where the absolute figures do not.

1. Peaks: fp32 and bf16 matmul (square, ``--matmul-size``) and convolution
   (the paper generator's 3x3 residual convolution, 256 channels on a 7x7
   map at batch 64) in FLOP/s.
2. Generator paths, per preset (``paper``, ``small``) and image format
   (1x28x28, 3x32x32), for a batch of 64 of which half is used:

   * ``reference``: the GIT paper's procedure written from its description:
     the whole batch goes through the generator (content *and* style
     encoders, a random style, the decoder, MUNIT's layer norm with its
     per-sample ``std``) and half of the outputs are kept;
   * ``fp32`` / ``bf16``: ``GITAugment(dtype=...)`` on the 32 used images;
   * ``compiled``: ``GITAugment(compile=True)`` in the default dtype
     (compilation is done before timing; ``--compile-configs`` limits it,
     since it takes minutes per shape on a CPU);
   * ``bank``: a :class:`gitaug.bank.TailBank` serving the 32 images.

   Reported as used images/s, the ratio to ``reference``, the share of
   the bf16 convolution peak the generator's FLOPs reach, and the share of
   the rate its convolutions reach when each is timed alone in bf16
   (:func:`conv_ceiling`): what limits a path below the peak.
3. The classifier-step overhead: a ResNet-20 (three stages of three basic
   blocks, widths 16/32/64) SGD step on a batch of 128 1x28x28 images with
   class-balanced labels over CIFAR-10-LT's class sizes (imbalance 100),
   GIT with K = 500, p = 0.5 (the paper's CIFAR-10-LT setting; five tail
   classes, about 32 replaced samples per batch), paper preset
   (``--classifier-preset``). Ratios to the plain step for:

   * ``default_user_path``: what a user gets by default, the issue's target
     row: ``GITDataset(dataset, aug)`` with its defaults (live draws: a
     generator pass per replaced item; before this release, a bank of 8
     draws per tail image drawn before timing), the batch's 128 items read
     through it and collated in the main process, then the step;
   * ``git_live``: ``aug(images, labels)`` on the batch (a generator pass,
     default dtype); ``git_fp32``: the same in fp32; ``git_compiled``:
     with ``compile=True``;
   * ``git_bank``: a :class:`gitaug.bank.TailBank` on the batch;
   * ``reference_git``: the reference procedure.
4. With ``--fitted PATH --fitted-dataset NAME`` (a ``gitaug-fit`` folder and
   the built-in set it was fitted on): how far the fast paths move the
   generated pixels on real images of that set, next to the spread between
   two draws (:func:`gitaug.evaluation.diagnostics.variant_spread`): bf16
   against fp32 with the same style draws, and the fused norms against
   MUNIT's formulas.

OMP_WAIT_POLICY is set to PASSIVE before torch loads (unless already set):
on a shared machine, OpenMP threads that spin while waiting steal the cores
the other threads need.

    python benchmarks/augment_speed.py --threads 1
    python benchmarks/augment_speed.py --threads 2 --rounds 9 --compile-configs paper-1x28x28
    python benchmarks/augment_speed.py --threads 1 --fitted runs/digits-bg-lt --fitted-dataset digits-bg-lt

Prints a table, writes ``benchmarks/results/augment_speed.json`` (``--out``)
and replaces the section between ``<!-- augment_speed:start -->`` and
``<!-- augment_speed:end -->`` in ``benchmarks/RESULTS.md`` (``--report``).
When CUDA is available the same cases run there too (``--devices``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the OpenMP runtime's start (torch import)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset, default_collate  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from gitaug import ClassThresholdSampler, GITAugment, GITDataset, MUNITConfig, MUNITGenerator  # noqa: E402
from gitaug.augment import default_inference_dtype  # noqa: E402
from gitaug.bank import TailBank  # noqa: E402
from gitaug.per_sample import BANK_DRAWS  # noqa: E402
from gitaug.longtail.classifiers import BasicBlock  # noqa: E402
from _reference import munit_norms  # noqa: E402
from _report import command_line, device_name, update_section  # noqa: E402
from gitaug._files import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

PRESET_NAMES = ("paper", "small")
FORMATS = ((1, 28), (3, 32))  # (channels, side)
GENERATOR_BATCH = 64  # images per batch in the generator comparison; half of them are used
CLASSIFIER_BATCH = 128
CIFAR10_LT_COUNTS = [round(5000 * 100 ** (-c / 9)) for c in range(10)]  # 5000 ... 50; 891 below K = 500
THRESHOLD, PROPORTION = 500, 0.5
#: The issue's target for the classifier-step overhead of GIT with the default settings a user gets.
TARGET_RATIO = 1.10
#: What each classifier-step case is, for the report.
CLASSIFIER_CASES = {
    "plain": "the step alone, on the batch in memory",
    "default_user_path": "**default user path**: `GITDataset(dataset, aug)` with its defaults (live draws; a bank "
    "of draws per tail image before this release), 128 items read and collated in the main process, then the step",
    "git_live": "`aug(images, labels)` on the batch: a generator pass per batch, default dtype",
    "git_fp32": "the same in fp32",
    "git_bank": "`TailBank(aug, images, labels, draws={draws})` on the batch",
    "reference_git": "the reference procedure (whole batch through the generator, selected samples kept)",
    "git_compiled": "`aug(images, labels)` with `compile=True`",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per case, after one warm-up round (default: 7)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--presets", nargs="+", default=list(PRESET_NAMES), choices=PRESET_NAMES)
    parser.add_argument("--compile-configs", nargs="*", default=None, metavar="PRESET-CxHxW",
                        help="configurations measured compiled, e.g. paper-1x28x28 (default: all on CUDA, "
                             "paper-1x28x28 on CPU, where each shape compiles for minutes); none: no argument")
    parser.add_argument("--bank-draws", type=int, default=BANK_DRAWS,
                        help=f"V for the bank cases (default: {BANK_DRAWS}, the bank size GITDataset's docs suggest)")
    parser.add_argument("--classifier-preset", default="paper", choices=PRESET_NAMES,
                        help="generator preset of the classifier-step comparison (default: paper, the target's; "
                        "small for a quick check)")
    parser.add_argument("--matmul-size", type=int, default=None, help="side of the square matmul (default: 1024 CPU, 8192 CUDA)")
    parser.add_argument("--note", default="", help="a sentence about the machine, added to the report")
    parser.add_argument("--skip-classifier", action="store_true", help="skip the classifier-step overhead")
    parser.add_argument("--fitted", default=None, help="a fitted generator (folder or Hub id) for the precision check")
    parser.add_argument("--fitted-dataset", default=None, help="the built-in dataset it was fitted on (its training split)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "augment_speed.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be positive, got {args.threads}")
    if args.bank_draws < 1:
        parser.error(f"--bank-draws must be positive, got {args.bank_draws}")
    if args.rounds < 1:
        parser.error(f"--rounds must be positive, got {args.rounds}")
    if (args.fitted is None) != (args.fitted_dataset is None):
        parser.error("--fitted and --fitted-dataset go together")
    if args.devices is None:
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return args


# --------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each case, the cases run in turn within every round."""
    for run in cases.values():  # warm-up: allocator, oneDNN primitive caches, cuDNN autotuning
        run()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            _sync(device)
            started = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def count_flops(run: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


# --------------------------------------------------------------------------- the reference procedure


def reference_git(generator: MUNITGenerator, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's procedure: translate the whole batch (both encoders, a random style, decode), keep the masked part.

    ``images`` are in [0, 1]; fp32 throughout, as the reference code runs.
    """
    with torch.no_grad(), munit_norms():
        x = images * 2 - 1
        content = generator.encode_content(x)
        generator.encode_style(x)  # the reference translates with a full MUNIT pass, style code included
        style = torch.randn(x.shape[0], generator.config.style_dim, device=x.device)
        fake = (generator.decode(content, style) + 1) / 2
        return torch.where(mask.view(-1, 1, 1, 1), fake, images)


# --------------------------------------------------------------------------- models


class ResNet20(nn.Module):
    """ResNet-20 for 28-32 px images: three stages of three basic blocks, widths 16/32/64."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks: list[nn.Module] = []
        width = 16
        for stage, out in enumerate((16, 32, 64)):
            for block in range(3):
                blocks.append(BasicBlock(width, out, 2 if stage > 0 and block == 0 else 1))
                width = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


def peaks(device: torch.device, rounds: int, matmul_size: int) -> dict[str, float]:
    """FLOP/s of a square matmul and of the paper generator's residual convolution, fp32 and bf16."""
    n = matmul_size
    a32, b32 = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    conv = nn.Conv2d(256, 256, 3, padding=1).to(device).requires_grad_(False)
    conv16 = nn.Conv2d(256, 256, 3, padding=1).to(device).bfloat16().requires_grad_(False)
    x32 = torch.randn(GENERATOR_BATCH, 256, 7, 7, device=device)
    x16 = x32.bfloat16()
    cases = {
        "matmul_fp32": lambda: a32 @ b32,
        "matmul_bf16": lambda: a16 @ b16,
        "conv_fp32": lambda: conv(x32),
        "conv_bf16": lambda: conv16(x16),
    }
    seconds = interleaved(cases, rounds, device)
    conv_flops = 2 * GENERATOR_BATCH * 256 * 256 * 9 * 7 * 7
    return {
        "matmul_fp32": 2 * n**3 / seconds["matmul_fp32"],
        "matmul_bf16": 2 * n**3 / seconds["matmul_bf16"],
        "conv_fp32": conv_flops / seconds["conv_fp32"],
        "conv_bf16": conv_flops / seconds["conv_bf16"],
    }


# --------------------------------------------------------------------------- generator paths


def generator_paths(
    device: torch.device, preset: str, channels: int, side: int, rounds: int, compiled: bool, bank_draws: int
) -> dict:
    torch.manual_seed(0)
    generator = MUNITGenerator(MUNITConfig.preset(preset, in_channels=channels, image_size=side)).to(device).eval()
    generator.requires_grad_(False)
    images = torch.rand(GENERATOR_BATCH, channels, side, side, device=device)
    used = GENERATOR_BATCH // 2
    mask = torch.zeros(GENERATOR_BATCH, dtype=torch.bool, device=device)
    mask[::2] = True
    selected = images[mask]
    fp32 = GITAugment(generator, dtype=torch.float32)
    bf16 = GITAugment(generator, dtype=torch.bfloat16)
    cases: dict[str, Callable[[], object]] = {
        "reference": lambda: reference_git(generator, images, mask),
        "fp32": lambda: fp32(selected),
        "bf16": lambda: bf16(selected),
    }
    if compiled:
        compiled_aug = GITAugment(generator, compile=True)
        compile_started = time.perf_counter()
        compiled_aug(selected)  # compiles for this bucket (32) before any timing
        compile_seconds = time.perf_counter() - compile_started
        cases["compiled"] = lambda: compiled_aug(selected)
    # A bank over the batch's images, every other one a tail image, as in the other cases.
    labels = (~mask).long().cpu()  # class 0 (selected half) is the tail class
    sampler = ClassThresholdSampler([used, 10 * used], threshold=2 * used, p=1.0)
    bank = TailBank(GITAugment(generator, sampler), images, labels, draws=bank_draws)
    bank.refresh()
    indices = torch.arange(GENERATOR_BATCH)
    cases["bank"] = lambda: bank(images, labels, indices)

    seconds = interleaved(cases, rounds, device)
    flops_per_image = count_flops(lambda: fp32(selected)) / used
    reference_flops = count_flops(lambda: reference_git(generator, images, mask)) / used
    result = {
        "preset": preset,
        "format": f"{channels}x{side}x{side}",
        "parameters": generator.num_parameters(),
        "generator_flops_per_image": flops_per_image,
        "reference_flops_per_used_image": reference_flops,
        "used_images_per_second": {name: used / s for name, s in seconds.items()},
        "bank_draws": bank_draws,
        "bank_bytes_per_tail_image": bank.nbytes // max(1, bank.indices.numel()),
    }
    if compiled:
        result["compile_seconds"] = compile_seconds
    with torch.no_grad():
        ceiling = conv_ceiling(generator, lambda: bf16(selected), device, rounds)
    result["conv_ceiling"] = {**ceiling, "used_images_per_second": used / ceiling["seconds"]}
    return result


def conv_ceiling(generator: MUNITGenerator, run: Callable[[], object], device: torch.device, rounds: int) -> dict:
    """The rate a path would reach if nothing but its convolutions took time, each at its own shape's speed.

    Records every convolution ``run`` (a bf16 ``GITAugment`` call) executes --
    its layer and input shape -- then times each alone in bf16 on a random
    input of that shape (reflection padding done beforehand, so only the
    convolution is timed), interleaved. Their summed medians bound the path from
    below: the generator's small-channel, large-map layers run slower per FLOP
    than the 256-channel convolution of the peak.
    """
    calls: list[tuple[nn.Conv2d, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda module, inputs, _: calls.append((module, inputs[0].shape)))
             for m in generator.modules() if isinstance(m, nn.Conv2d)]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    cases: dict[str, Callable[[], object]] = {}
    flops = 0
    for i, (conv, shape) in enumerate(calls):
        x = torch.randn(shape, device=device, dtype=torch.bfloat16)
        padding = conv.padding
        if conv.padding_mode != "zeros":
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            padding = 0
        weight = conv.weight.detach().to(torch.bfloat16)
        bias = None if conv.bias is None else conv.bias.detach().to(torch.bfloat16)
        call = (lambda x=x, w=weight, b=bias, c=conv, pad=padding: F.conv2d(x, w, b, c.stride, pad, c.dilation, c.groups))
        cases[f"conv{i}"] = call
        flops += count_flops(call)
    seconds = sum(interleaved(cases, rounds, device).values())
    return {"convolutions": len(calls), "seconds": seconds, "flops": flops, "flops_per_second": flops / seconds}


# --------------------------------------------------------------------------- classifier step


def classifier_overhead(device: torch.device, rounds: int, compiled: bool, bank_draws: int, preset: str = "paper") -> dict:
    channels, side, num_classes = 1, 28, len(CIFAR10_LT_COUNTS)
    torch.manual_seed(0)
    generator = MUNITGenerator(MUNITConfig.preset(preset, in_channels=channels, image_size=side)).to(device).eval()
    generator.requires_grad_(False)
    sampler = ClassThresholdSampler(CIFAR10_LT_COUNTS, threshold=THRESHOLD, p=PROPORTION)
    model = ResNet20(channels, num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)

    # A small stand-in training set with CIFAR-10-LT's tail (the bank holds the tail only: 891 images).
    tail_counts = [n if n < THRESHOLD else 1 for n in CIFAR10_LT_COUNTS]
    train_labels = torch.cat([torch.full((n,), c) for c, n in enumerate(tail_counts)])
    train_images = torch.rand(train_labels.numel(), channels, side, side)
    # Class-balanced batches (DRS), as the labels are drawn after re-sampling starts.
    labels = torch.arange(CLASSIFIER_BATCH) % num_classes
    per_class = [torch.nonzero(train_labels == c).flatten() for c in range(num_classes)]
    indices = torch.stack([per_class[int(c)][i % per_class[int(c)].numel()] for i, c in enumerate(labels)])
    images = train_images[indices]

    live_aug = GITAugment(generator, sampler)
    fp32_aug = GITAugment(generator, sampler, dtype=torch.float32)
    # The default user path: the per-sample wrapper as constructed by default, its bank drawn before timing.
    dataset = GITDataset(TensorDataset(train_images, train_labels), GITAugment(generator, sampler))
    if not dataset.uses_bank:
        raise RuntimeError(f"GITDataset does not use a bank here: {dataset!r}")
    dataset.build_bank()
    batch_indices = indices.tolist()
    bank = TailBank(GITAugment(generator, sampler), train_images, train_labels, draws=bank_draws)
    if bank_draws == dataset.draws:
        # The dataset's draws (bank rows are the tail indices in order): drawing them twice would
        # cost minutes of generator time at the paper preset on a CPU.
        bank.bank = torch.stack([dataset.bank_versions(i) for i in bank.indices.tolist()])
    else:
        bank.refresh()

    def step(batch: torch.Tensor, batch_labels: torch.Tensor) -> None:
        loss = F.cross_entropy(model(batch.to(device, non_blocking=True)), batch_labels.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def reference_step() -> None:
        batch = images.to(device)
        mask = sampler(labels).to(device)
        step(reference_git(generator, batch, mask), labels)

    cases: dict[str, Callable[[], object]] = {
        "plain": lambda: step(images, labels),
        "default_user_path": lambda: step(*default_collate([dataset[i] for i in batch_indices])),
        "git_live": lambda: step(*live_aug(images, labels)),
        "git_fp32": lambda: step(*fp32_aug(images, labels)),
        "git_bank": lambda: step(*bank(images, labels, indices)),
        "reference_git": reference_step,
    }
    if compiled:
        compiled_aug = GITAugment(generator, sampler, compile=True)
        # Compile every bucket a batch of 128 can need before timing (8, 16, 32, 64, 128).
        for size in (8, 16, 32, 64, 128):
            compiled_aug._generate(images[:size], None)
        cases["git_compiled"] = lambda: step(*compiled_aug(images, labels))
    seconds = interleaved(cases, rounds, device)
    default_ratio = seconds["default_user_path"] / seconds["plain"]
    return {
        "preset": preset,
        "default_dtype": str(default_inference_dtype(device)).replace("torch.", ""),
        "tail_images": int(sum(n for n in CIFAR10_LT_COUNTS if n < THRESHOLD)),
        "default_user_path": {
            "what": "GITDataset(dataset, aug) with its defaults",
            "uses_bank": dataset.uses_bank,
            "bank_draws": dataset.draws,
            "bank_megabytes": dataset.bank_nbytes / 1e6,
            "ratio_to_plain": default_ratio,
            "target_ratio": TARGET_RATIO,
            "meets_target": default_ratio <= TARGET_RATIO,
        },
        "bank_draws": bank_draws,
        "bank_megabytes_cifar10_lt_uint8": sum(n for n in CIFAR10_LT_COUNTS if n < THRESHOLD) * bank_draws * 3 * 32 * 32 / 1e6,
        "seconds_per_step": seconds,
        "ratio_to_plain": {name: s / seconds["plain"] for name, s in seconds.items()},
    }


# --------------------------------------------------------------------------- precision on a fitted generator


def precision_check(path: str, dataset: str, n_per_class: int = 40, seed: int = 0) -> dict:
    """Mean (and max) absolute pixel change, in [0, 1] units, of bf16 and of MUNIT's norms, next to the draw spread."""
    from gitaug import datasets
    from gitaug.evaluation.diagnostics import variant_spread

    train = datasets.load(dataset, split="train", seed=seed)
    fp32 = GITAugment.from_pretrained(path, dtype=torch.float32, residual=False, styles="prior", appearance_scale=1.0)
    bf16 = GITAugment.from_pretrained(path, dtype=torch.bfloat16, residual=False, styles="prior", appearance_scale=1.0)
    spread = variant_spread(fp32, train.images, train.targets, train.num_classes, n_per_class=n_per_class, seed=seed)
    pick = torch.Generator().manual_seed(seed)
    chosen = torch.cat([
        idx[torch.randperm(idx.numel(), generator=pick)[:n_per_class]]
        for idx in (torch.nonzero(train.targets == c).flatten() for c in range(train.num_classes))
    ])
    images = train.float_images()[chosen]
    reference = fp32(images, generator=torch.Generator().manual_seed(seed + 1))
    low = bf16(images, generator=torch.Generator().manual_seed(seed + 1))
    with munit_norms():
        munit = fp32(images, generator=torch.Generator().manual_seed(seed + 1))
    return {
        "generator": str(path),
        "dataset": dataset,
        "images": int(images.shape[0]),
        "variant_spread_mean": float(spread.nanmean()),
        "variant_spread_min_class": float(spread.min()),
        "bf16_vs_fp32_mean": float((low - reference).abs().mean()),
        "bf16_vs_fp32_max": float((low - reference).abs().max()),
        "fused_vs_munit_norms_mean": float((munit - reference).abs().mean()),
        "fused_vs_munit_norms_max": float((munit - reference).abs().max()),
    }


# --------------------------------------------------------------------------- report


def tables(summary: dict) -> list[str]:
    lines: list[str] = []
    for device, figures in summary["devices"].items():
        p = figures["peaks"]
        lines += [
            f"**{device}** ({figures['name']}): matmul fp32 {p['matmul_fp32'] / 1e9:.1f} / bf16 {p['matmul_bf16'] / 1e9:.1f} "
            f"GFLOP/s; 3x3 conv (256 ch, 7x7, batch 64) fp32 {p['conv_fp32'] / 1e9:.1f} / bf16 {p['conv_bf16'] / 1e9:.1f} GFLOP/s.",
            "",
            "| preset | images | path | used images/s | vs reference | share of bf16 conv peak | share of its convolutions' own rate |",
            "|---|---|---|---|---|---|---|",
        ]
        ceilings = []
        for g in figures["generator"]:
            rates = g["used_images_per_second"]
            ceiling = g.get("conv_ceiling")
            for name, rate in rates.items():
                flops = g["reference_flops_per_used_image" if name == "reference" else "generator_flops_per_image"]
                share = "" if name == "bank" else f"{100 * rate * flops / p['conv_bf16']:.0f} %"
                own = (f"{100 * rate / ceiling['used_images_per_second']:.0f} %"
                       if ceiling and name in ("bf16", "compiled") else "")
                lines.append(
                    f"| {g['preset']} | {g['format']} | {name} | {rate:.1f} | {rate / rates['reference']:.2f}x | {share} | {own} |"
                )
            if ceiling:
                ceilings.append(f"{g['preset']} {g['format']} {100 * ceiling['flops_per_second'] / p['conv_bf16']:.0f} %")
        if ceilings:
            lines += [
                "",
                "Each bf16 path's convolutions timed alone, each at its own shape (reflection padding done beforehand), "
                "reach this share of the bf16 conv peak: " + ", ".join(ceilings) + ". That is the most a path whose "
                "only cost were its convolutions could reach; the last column is how close the path gets to it.",
            ]
        c = figures.get("classifier")
        if c:
            lines += [
                "",
                f"Classifier step (ResNet-20, batch {CLASSIFIER_BATCH}, 1x28x28, class-balanced labels over CIFAR-10-LT "
                f"counts, K = {THRESHOLD}, p = {PROPORTION}, {c.get('preset', 'paper')} preset; default dtype here: "
                f"{c['default_dtype']}; bank V = {c['bank_draws']}, {c['bank_megabytes_cifar10_lt_uint8']:.1f} MB for "
                f"CIFAR-10-LT's {c['tail_images']} tail images as uint8):",
                "",
                "| step | what | ms | vs plain |",
                "|---|---|---|---|",
            ]
            for name, seconds in c["seconds_per_step"].items():
                what = CLASSIFIER_CASES.get(name, "").format(draws=c["bank_draws"])
                lines.append(f"| {name} | {what} | {1000 * seconds:.1f} | {c['ratio_to_plain'][name]:.2f}x |")
            d = c.get("default_user_path")
            if d:
                verdict = "meets" if d["meets_target"] else "misses"
                lines += [
                    "",
                    f"Default user path (`{d['what']}`, bank of {d['bank_draws']} draws, {d['bank_megabytes']:.1f} MB "
                    f"as this stand-in's float32 images): **{d['ratio_to_plain']:.2f}x** the plain step, which "
                    f"{verdict} the target of {d['target_ratio']:.2f}x.",
                ]
        lines.append("")
    check = summary.get("precision")
    if check:
        lines += [
            f"Precision on a fitted generator ({check['dataset']}, {check['images']} training images, pixels in [0, 1]): "
            f"two independent draws differ by {check['variant_spread_mean']:.4f} on average "
            f"(smallest class {check['variant_spread_min_class']:.4f}); bf16 against fp32 with the same style draws "
            f"{check['bf16_vs_fp32_mean']:.4f} (max {check['bf16_vs_fp32_max']:.3f}); the fused norms against MUNIT's "
            f"formulas {check['fused_vs_munit_norms_mean']:.1e} (max {check['fused_vs_munit_norms_max']:.1e}).",
            "",
        ]
    return lines


def report_section(summary: dict) -> str:
    return "\n".join(
        [
            "## Augmentation speed",
            "",
            f"Produced by `{summary['command']}` on {summary['date'][:10]} (torch {summary['torch_version']}, "
            f"{summary['threads']} CPU thread(s), OMP_WAIT_POLICY={summary['omp_wait_policy']}), one process, "
            f"cases interleaved, medians of {summary['rounds']} rounds. {summary['note']}",
            "",
            "Used images/s: images that end up in the classifier's batch. `reference` translates the whole batch "
            "of 64 (both encoders) and keeps half; the other paths generate only the 32 used images. The share of "
            "the bf16 convolution peak counts the FLOPs each path executes.",
            "",
            *tables(summary),
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = command_line("augment_speed.py", sys.argv[1:] if argv is None else argv)
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (PASSIVE unless set), {torch.get_num_threads()} thread(s)")
    summary: dict = {
        "benchmark": "augment_speed",
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "rounds": args.rounds,
        "note": " ".join(filter(None, [args.note, "Only the ratios within this run are meaningful."])),
        "devices": {},
    }
    for name in args.devices:
        device = torch.device(name)
        matmul = args.matmul_size or (8192 if device.type == "cuda" else 1024)
        figures: dict = {"name": device_name(device), "peaks": peaks(device, args.rounds, matmul), "generator": []}
        print(f"{name}: peaks {json.dumps({k: round(v / 1e9, 1) for k, v in figures['peaks'].items()})} GFLOP/s", flush=True)
        for preset in args.presets:
            for channels, side in FORMATS:
                key = f"{preset}-{channels}x{side}x{side}"
                if args.compile_configs is None:
                    compiled = device.type == "cuda" or key == "paper-1x28x28"
                else:
                    compiled = key in args.compile_configs
                result = generator_paths(device, preset, channels, side, args.rounds, compiled, args.bank_draws)
                figures["generator"].append(result)
                rates = result["used_images_per_second"]
                print(f"{name} {key}: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + " used images/s", flush=True)
        if not args.skip_classifier:
            compiled = device.type == "cuda" if args.compile_configs is None else "classifier" in args.compile_configs
            figures["classifier"] = classifier_overhead(device, args.rounds, compiled, args.bank_draws, args.classifier_preset)
            print(f"{name} classifier step vs plain: "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in figures["classifier"]["ratio_to_plain"].items()), flush=True)
            default = figures["classifier"]["default_user_path"]
            print(f"{name} default user path (GITDataset defaults): {default['ratio_to_plain']:.2f}x the plain step "
                  f"(target <= {TARGET_RATIO:.2f}x: {'met' if default['meets_target'] else 'missed'})", flush=True)
        summary["devices"][name] = figures
    if args.fitted:
        summary["precision"] = precision_check(args.fitted, args.fitted_dataset)
        print(f"precision: {json.dumps(summary['precision'])}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, summary)
    update_section(args.report, "augment_speed", report_section(summary))
    print()
    print("\n".join(tables(summary)))
    print(f"wrote {args.out} and the augment-speed section of {args.report}")
    return summary


if __name__ == "__main__":
    main()
