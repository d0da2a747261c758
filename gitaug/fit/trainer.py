"""Fitting a class-agnostic generator: the training loop behind ``gitaug-fit``.

:func:`fit` reads top to bottom: where it runs, the data, the output folder,
the networks and optimizers, resuming, the loop (every loss in one place),
the export. One iteration on a batch of real images ``x``:

1. encode ``x`` into its content ``c`` (a spatial map) and style ``s`` (a vector);
2. reconstruct ``x`` from ``(c, s)``;
3. draw a random style ``s_rand ~ N(0, I)``, decode ``G(c, s_rand)`` and warp it
   (``x_fake``; by default the warp's ranges come from the nuisance test run
   once before the loop, :mod:`gitaug.fit.nuisance_probe`);
4. re-encode the draw before its warp into ``(c', s')``;
5. generator update on
   ``10 |G(c, s) - x| + 1 |s' - s_rand| + 1 |c' - c| + 1 LSGAN(D(x_fake) -> 1)``
   plus, by default, ``10 x`` the bounded mode-seeking term on a second draw;
6. discriminator update on ``LSGAN(D(x) -> 1) + LSGAN(D(x_fake) -> 0)``
   (``x_fake`` as generated in step 3, detached).

The run folder::

    <out>/config.json, model.safetensors, README.md, samples.png   the export (GITAugment.from_pretrained(out))
    <out>/fit_config.json      the FitConfig of the run
    <out>/log.jsonl            averaged losses every ``log_every`` iterations
    <out>/samples/step-*.png   sample grids during training
    <out>/checkpoints/step-*.pt full training state (both networks, optimizers, RNGs, sampler)

Checkpoints are written with ``torch.save`` to a temporary file and renamed;
they are read back with ``torch.load(weights_only=True)`` (every value in them
is a tensor or a plain Python value) and only from the run's own folder.

Example::

    from gitaug.fit import FitConfig, fit
    out = fit(FitConfig(dataset="digits-bg-lt", out="runs/digits-bg-lt"))
    aug = GITAugment.from_pretrained(out)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..generator import MUNITConfig, MUNITGenerator
from ..hub import CARD_NAME, CONFIG_NAME, SAMPLES_NAME, WEIGHTS_NAME, push_folder_to_hub, save_generator
from .config import RESUMABLE_FIELDS, FitConfig
from .data import BatchSampler, TrainingData, derive_seed, read_training_data, to_model_range
from .discriminator import MultiScaleDiscriminator, lsgan_loss
from .grid import grid_rows, save_sample_grid
from .nuisance_probe import describe_nuisance, learned_nuisance, run_probe, warp_ranges

__all__ = ["fit", "FitInterrupted", "NonFiniteLossError"]

logger = logging.getLogger("gitaug.fit")

CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
LOG_NAME = "log.jsonl"
FIT_CONFIG_NAME = "fit_config.json"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_FORMAT = "gitaug-fit-checkpoint"
CHECKPOINT_VERSION = 1
# Everything a run writes into its folder; --overwrite removes these and nothing else.
RUN_FILES = (FIT_CONFIG_NAME, LOG_NAME, CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME)
RUN_DIRS = (CHECKPOINT_DIR, SAMPLES_DIR, TENSORBOARD_DIR)
LOSS_NAMES = (
    "loss_image",
    "loss_style",
    "loss_content",
    "loss_adv",
    "loss_diversity",
    "loss_warp_diversity",
    "loss_gen",
    "loss_disc",
)
_CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)\.pt$")


class NonFiniteLossError(FloatingPointError):
    """A loss (or a parameter) became NaN or infinite; the run stopped without checkpointing that state."""


class FitInterrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM after writing a checkpoint; ``resume=True`` continues it.

    Attributes:
        step: the last completed iteration.
        checkpoint: the checkpoint written for it.
        signal_number: the signal that stopped the run.
    """

    def __init__(self, step: int, checkpoint: Path, signal_number: int) -> None:
        name = signal.Signals(signal_number).name
        super().__init__(f"stopped by {name} after step {step}; checkpoint written to {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint
        self.signal_number = signal_number


# --------------------------------------------------------------------------- the generator's forward pass


class GeneratorPass(nn.Module):
    """Everything the generator computes in one training step, as a single ``forward``.

    Distributed data parallel synchronizes gradients only for computations
    that run through the wrapped module's ``forward``; gathering every
    encoding, decoding and warp of a step here (including the second draw of
    the mode-seeking terms) lets it see every generator parameter used.
    """

    def __init__(self, generator: MUNITGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(
        self,
        real: torch.Tensor,
        style_rand: torch.Tensor,
        style_other: torch.Tensor | None = None,
        *,
        image_pair: bool = False,
        warp_pair: bool = False,
    ) -> dict[str, torch.Tensor]:
        g = self.generator
        content, style = g.encode_content(real), g.encode_style(real)
        # The content map of a real image holds its geometry, so it is reconstructed without the
        # warp; the warp re-draws geometry only for random styles.
        recon = g.decode(content, style, warp=False)
        unwarped = g.decode(content, style_rand, warp=False)
        fake = g.warp(unwarped, style_rand) if g.warp is not None else unwarped
        # The codes are re-encoded from the draw before its warp. After it, the content encoder
        # would have to give a turned digit the same content map, and the cheapest way to get
        # there is a decoder that draws blobs which look alike at every angle (measured: digit
        # identity kept for 53 % of draws, against 97 % for the unwarped generator). The warp
        # is judged by the discriminator alone.
        content_re, style_re = g.encode_content(unwarped), g.encode_style(unwarped)
        out = {"recon": recon, "fake": fake, "content": content, "content_re": content_re, "style_re": style_re}
        if image_pair:
            # A second draw from the same content, for the mode-seeking term only.
            out["other"] = g.decode(content, style_other)
        if warp_pair:
            # One decoded image, warped by both styles: the warp's own share of a difference between
            # draws, which rewards geometry without rewarding texture changes of the AdaIN path.
            still = unwarped.detach()
            out["turned"], out["turned_other"] = g.warp(still, style_rand), g.warp(still, style_other)
        return out


def diversity_loss(
    fake: torch.Tensor, other: torch.Tensor, style: torch.Tensor, style_other: torch.Tensor, cap: float
) -> torch.Tensor:
    """Mode-seeking term: how far ``mean|fake - other| / mean|style - style_other|`` falls short of ``cap``.

    Zero once two draws differ enough; its gradient pushes the decoder to let
    the style code change the image.
    """
    ratio = (fake.float() - other.float()).abs().mean() / (style - style_other).abs().mean().clamp_min(1e-8)
    return F.relu(cap - ratio)


# --------------------------------------------------------------------------- the run


def fit(config: FitConfig) -> Path:
    """Fit a class-agnostic generator as ``config`` says and export it; returns the export folder.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every
    process takes a disjoint slice of each global batch and gradients are
    averaged with DistributedDataParallel; only rank 0 writes files.

    Raises:
        ValueError, FileNotFoundError: bad data or output folder (the message names it).
        FitInterrupted: SIGINT/SIGTERM arrived; a checkpoint was written first.
        NonFiniteLossError: a loss became NaN/inf; no checkpoint of that state is written.

    Example::

        >>> from gitaug.fit import FitConfig, fit
        >>> out = fit(FitConfig(dataset="digits-bg-lt", out="runs/bg", steps=2000))  # doctest: +SKIP
        >>> GITAugment.from_pretrained(out)                                          # doctest: +SKIP
    """
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
    out = config.output_dir
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ImportError("tensorboard=True (--tensorboard) needs the tensorboard package: pip install 'gitaug[tensorboard]'")

    # ---------------------------------------------------------------- where it runs
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _choose_device(config.device, local_rank, world_size)
    amp_dtype = _choose_amp(config.amp, device)
    if config.batch_size % world_size:
        raise ValueError(
            f"batch_size={config.batch_size} must be divisible by the number of processes ({world_size}): "
            "it is the global batch, split evenly between them"
        )
    per_rank = config.batch_size // world_size
    is_main = rank == 0

    # ---------------------------------------------------------------- data
    data = read_training_data(
        dataset=config.dataset, data=config.data, image_size=config.image_size, channels=config.channels, seed=config.seed
    )
    sampling = config.sampling
    if sampling == "auto":
        sampling = "balanced" if data.labels is not None else "instance"
    elif sampling == "balanced" and data.labels is None:
        raise ValueError(f"sampling='balanced' needs labels, but the images from {data.source!r} have none; use 'instance'")

    # ---------------------------------------------------------------- output folder (checked before anyone writes)
    checkpoint = _check_output_folder(out, config)

    started_here = world_size > 1 and not dist.is_initialized()
    if started_here:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        return _run(config, data, sampling, out, checkpoint, device, amp_dtype, rank, world_size, per_rank, is_main)
    finally:
        if started_here:
            dist.destroy_process_group()


def _run(
    config: FitConfig,
    data: TrainingData,
    sampling: str,
    out: Path,
    checkpoint_path: Path | None,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    rank: int,
    world_size: int,
    per_rank: int,
    is_main: bool,
) -> Path:
    distributed = world_size > 1
    if is_main:
        _prepare_output_folder(out, config, resuming=checkpoint_path is not None)
    _barrier(distributed)

    # ---------------------------------------------------------------- networks, optimizers, schedules
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    torch.manual_seed(config.seed)
    # The nuisance test (warp="auto") runs once; a resumed run takes its ranges from the checkpoint.
    probe = None
    stored_arch = _load_checkpoint(checkpoint_path).get("generator_config") if checkpoint_path is not None else None
    if stored_arch is not None:
        arch = MUNITConfig.from_dict(stored_arch)
    else:
        if config.warp == "auto":
            probe = run_probe(config, data)
            if is_main:
                logger.info("nuisance test: the data does not notice %s", probe.summary())
        arch = _generator_config(config, data, warp_ranges(config, probe))
        if distributed and arch.warp == "affine":
            # Every process ran the test; rank 0's ranges hold for all (float results may differ by thread count).
            shared = torch.tensor([arch.warp_rotation, arch.warp_scale, arch.warp_shift], dtype=torch.float64, device=device)
            dist.broadcast(shared, src=0)
            arch = dataclasses.replace(arch, warp_rotation=float(shared[0]), warp_scale=float(shared[1]), warp_shift=float(shared[2]))
    generator = MUNITGenerator(arch).to(device)
    discriminator = MultiScaleDiscriminator(
        data.channels,
        data.image_size,
        dim=config.resolved_disc_dim,
        n_layers=config.disc_layers,
        n_scales=config.disc_scales,
    ).to(device)
    generator_pass: nn.Module = GeneratorPass(generator)
    discriminator_step: nn.Module = discriminator
    if distributed:
        ddp_args = {"device_ids": [device.index]} if device.type == "cuda" else {}
        generator_pass = nn.parallel.DistributedDataParallel(generator_pass, **ddp_args)
        discriminator_step = nn.parallel.DistributedDataParallel(discriminator, **ddp_args)

    def adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)

    lr_disc = config.lr if config.lr_disc is None else config.lr_disc
    optimizer_g, optimizer_d = adam(generator, config.lr), adam(discriminator, lr_disc)
    scheduler_g = torch.optim.lr_scheduler.StepLR(optimizer_g, step_size=config.lr_step_every, gamma=config.lr_gamma)
    scheduler_d = torch.optim.lr_scheduler.StepLR(optimizer_d, step_size=config.lr_step_every, gamma=config.lr_gamma)
    # Gradient scaling is only needed (and only switched on) for float16.
    scaler_g = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    scaler_d = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    sampler = BatchSampler(len(data), config.batch_size, labels=data.labels, mode=sampling, seed=config.seed)
    # Style codes are drawn for the whole global batch on the CPU, so a run's draws do not
    # depend on the device or on the number of processes.
    style_rng = torch.Generator().manual_seed(derive_seed(config.seed, "styles"))
    images = data.images.to(device)
    rows = grid_rows(data.labels, len(data), max_rows=10, seed=config.seed)
    meter = _LossMeter()
    start_step, seconds_before = 0, 0.0

    # ---------------------------------------------------------------- resume
    if checkpoint_path is not None:
        state = _load_checkpoint(checkpoint_path)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        optimizer_g.load_state_dict(state["optimizer_g"])
        optimizer_d.load_state_dict(state["optimizer_d"])
        scheduler_g.load_state_dict(state["scheduler_g"])
        scheduler_d.load_state_dict(state["scheduler_d"])
        scaler_g.load_state_dict(state["scaler_g"])
        scaler_d.load_state_dict(state["scaler_d"])
        sampler.load_state_dict(state["sampler"])
        style_rng.set_state(state["style_rng"])
        _set_rng_states(state["rng"])
        meter.load_state_dict(state["meter"])
        start_step, seconds_before = int(state["step"]), float(state["seconds"])
        if is_main:
            _truncate_log(out / LOG_NAME, start_step)
            logger.info("resuming %s from step %d (%s)", out, start_step, checkpoint_path.name)

    if is_main:
        _write_json(out / FIT_CONFIG_NAME, config.to_dict())
        logger.info(
            "fitting a %s generator (%s parameters) on %d %dx%dx%d images from %s; %s sampling, batch %d, "
            "%d steps, device %s%s, %d process(es)",
            config.preset,
            f"{generator.num_parameters():,}",
            len(data),
            data.channels,
            data.image_size,
            data.image_size,
            data.source,
            sampling,
            config.batch_size,
            config.steps,
            device,
            f", {str(amp_dtype).replace('torch.', '')} autocast" if amp_dtype else "",
            world_size,
        )
    writer = _tensorboard(out, start_step) if is_main and config.tensorboard else None
    progress = _progress_bar(config, start_step, enabled=is_main and config.progress)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    last_logged: dict[str, float] = {}
    seconds_start = time.perf_counter()
    step = start_step
    generator.train()
    discriminator.train()
    # Which second draws the mode-seeking terms need (none under the paper's objective).
    image_pair, warp_pair = config.weight_diversity > 0, config.weight_warp_diversity > 0

    # ---------------------------------------------------------------- the loop
    with _StopRequests() as stop, _closing(progress, writer):
        while step < config.steps:
            step += 1
            indices = sampler.next_batch()
            style_rand = torch.randn(config.batch_size, arch.style_dim, generator=style_rng)
            real = to_model_range(images[indices[mine].to(device)])
            style_rand = style_rand[mine].to(device)
            style_other = None
            if image_pair or warp_pair:
                style_other = torch.randn(config.batch_size, arch.style_dim, generator=style_rng)[mine].to(device)

            # generator update: the discriminator is a fixed critic here
            discriminator.requires_grad_(False)
            with autocast:
                passed = generator_pass(real, style_rand, style_other, image_pair=image_pair, warp_pair=warp_pair)
                fake = passed["fake"]
                loss_image = F.l1_loss(passed["recon"].float(), real)
                loss_style = F.l1_loss(passed["style_re"].float(), style_rand)
                loss_content = F.l1_loss(passed["content_re"].float(), passed["content"].float())
                loss_adv = lsgan_loss(discriminator(fake), target=1.0)
                loss_gen = (
                    config.weight_image * loss_image
                    + config.weight_style * loss_style
                    + config.weight_content * loss_content
                    + config.weight_adv * loss_adv
                )
                loss_diversity = loss_warp_diversity = loss_gen.new_zeros(())
                if image_pair:
                    loss_diversity = diversity_loss(fake, passed["other"], style_rand, style_other, config.diversity_cap)
                    loss_gen = loss_gen + config.weight_diversity * loss_diversity
                if warp_pair:
                    loss_warp_diversity = diversity_loss(
                        passed["turned"], passed["turned_other"], style_rand, style_other, config.diversity_cap
                    )
                    loss_gen = loss_gen + config.weight_warp_diversity * loss_warp_diversity
            optimizer_g.zero_grad(set_to_none=True)
            scaler_g.scale(loss_gen).backward()
            scaler_g.step(optimizer_g)
            scaler_g.update()
            discriminator.requires_grad_(True)

            # discriminator update: real -> 1, fake -> 0, both in one forward pass
            with autocast:
                scores = discriminator_step(torch.cat([real, fake.detach()]))
                loss_disc = lsgan_loss([s[:per_rank] for s in scores], target=1.0) + lsgan_loss(
                    [s[per_rank:] for s in scores], target=0.0
                )
            optimizer_d.zero_grad(set_to_none=True)
            scaler_d.scale(loss_disc).backward()
            scaler_d.step(optimizer_d)
            scaler_d.update()
            scheduler_g.step()
            scheduler_d.step()

            # bookkeeping: losses averaged over processes, plus whether any process was asked to stop
            step_losses = (
                loss_image, loss_style, loss_content, loss_adv, loss_diversity, loss_warp_diversity, loss_gen, loss_disc
            )
            report = torch.stack([loss.detach().float() for loss in step_losses])
            stop_report = torch.tensor([float(stop.signal_number or 0)], device=device)
            if distributed:
                dist.all_reduce(report)
                report /= world_size
                # MAX, not SUM: every process usually gets the same signal, and a sum of signal
                # numbers is another signal (2 x SIGINT would read as SIGILL).
                dist.all_reduce(stop_report, op=dist.ReduceOp.MAX)
            values = report.tolist()
            losses = dict(zip(LOSS_NAMES, values))
            bad = [name for name, value in losses.items() if not math.isfinite(value)]
            if bad:
                raise NonFiniteLossError(
                    f"{bad[0]} is {losses[bad[0]]} at step {step}; stopping without checkpointing this state. "
                    f"{_last_checkpoint_note(out)} Try a lower lr or amp='none'."
                )
            meter.add(losses, config.batch_size)
            progress.update(1)

            if step % config.log_every == 0 or step == config.steps:
                last_logged = meter.flush()
                record = {
                    "step": step,
                    **last_logged,
                    "lr": scheduler_g.get_last_lr()[0],
                    "seconds": round(seconds_before + time.perf_counter() - seconds_start, 3),
                }
                progress.set_postfix(
                    image=f"{losses['loss_image']:.3f}",
                    adv=f"{losses['loss_adv']:.3f}",
                    disc=f"{losses['loss_disc']:.3f}",
                    img_s=f"{last_logged['images_per_second']:.0f}",
                )
                if is_main:
                    _append_jsonl(out / LOG_NAME, record)
                    if writer is not None:
                        for name, value in record.items():
                            if name != "step":
                                writer.add_scalar(name, value, step)
            if is_main and config.sample_every and step % config.sample_every == 0 and step < config.steps:
                save_sample_grid(
                    out / SAMPLES_DIR / f"step-{step:08d}.png",
                    generator,
                    data.images[rows],
                    variants=config.grid_variants,
                    seed=config.seed,
                )

            stop_signal = int(stop_report.item()) if distributed else stop.signal_number
            checkpoint_due = config.checkpoint_every and step % config.checkpoint_every == 0
            if checkpoint_due or step == config.steps or stop_signal:
                _check_parameters_finite(step, out, generator, discriminator)
                seconds = seconds_before + time.perf_counter() - seconds_start
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "version": CHECKPOINT_VERSION,
                    "step": step,
                    "config": config.to_dict(),
                    "world_size": world_size,
                    "generator": generator.state_dict(),
                    "discriminator": discriminator.state_dict(),
                    "optimizer_g": optimizer_g.state_dict(),
                    "optimizer_d": optimizer_d.state_dict(),
                    "scheduler_g": scheduler_g.state_dict(),
                    "scheduler_d": scheduler_d.state_dict(),
                    "scaler_g": scaler_g.state_dict(),
                    "scaler_d": scaler_d.state_dict(),
                    "sampler": sampler.state_dict(),
                    "style_rng": style_rng.get_state(),
                    "rng": _rng_states(),
                    "meter": meter.state_dict(),
                    "seconds": seconds,
                    "generator_config": arch.to_dict(),
                }
                saved = _save_checkpoint(out, state, config.keep_checkpoints) if is_main else None
                _barrier(distributed)
                if stop_signal:
                    raise FitInterrupted(step, saved or _checkpoint_path(out, step), stop_signal)
    seconds_total = seconds_before + time.perf_counter() - seconds_start

    # ---------------------------------------------------------------- export
    if is_main:
        grid_path = save_sample_grid(
            out / SAMPLES_DIR / f"step-{step:08d}.png",
            generator,
            data.images[rows],
            variants=config.grid_variants,
            seed=config.seed,
        )
        if not last_logged and (out / LOG_NAME).is_file():
            last_logged = _last_log_record(out / LOG_NAME)
        counts = data.class_counts
        metadata = {
            "fitted_with": "gitaug-fit",
            "data_source": data.source,
            "num_images": len(data),
            "skipped_files": data.skipped,
            "image_size": data.image_size,
            "channels": data.channels,
            "class_names": data.class_names,
            "class_counts": counts.tolist() if counts is not None else None,
            "sampling": sampling,
            "steps": step,
            "batch_size": config.batch_size,
            "preset": config.preset,
            "discriminator": {
                "dim": config.resolved_disc_dim,
                "scales": config.disc_scales,
                "layers_per_scale": discriminator.layers_per_scale,
            },
            "optimizer": {
                "lr": config.lr,
                "lr_disc": lr_disc,
                "betas": [config.beta1, config.beta2],
                "weight_decay": config.weight_decay,
                "lr_step_every": config.lr_step_every,
                "lr_gamma": config.lr_gamma,
            },
            "loss_weights": {
                "image": config.weight_image,
                "style": config.weight_style,
                "content": config.weight_content,
                "adversarial": config.weight_adv,
                "diversity": config.weight_diversity,
                "warp_diversity": config.weight_warp_diversity,
            },
            "diversity_cap": config.diversity_cap,
            "nuisance": learned_nuisance(generator, data, probe, seed=config.seed),
            "final_losses": {name: last_logged[name] for name in LOSS_NAMES if name in last_logged},
            "seconds": round(seconds_total, 1),
            "device": str(device),
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "none",
            "processes": world_size,
            "seed": config.seed,
            "torch_version": torch.__version__,
        }
        logger.info("learned nuisance: %s", describe_nuisance(metadata["nuisance"]))
        save_generator(generator, out, metadata=metadata, samples_image=grid_path)
        logger.info("exported the generator to %s (%.0f s of training)", out, seconds_total)
        if config.push_to_hub:
            url = push_folder_to_hub(out, config.push_to_hub)
            logger.info("pushed to the Hub: %s", url)
    _barrier(distributed)
    return out


# --------------------------------------------------------------------------- where it runs


def _choose_device(name: str, local_rank: int, world_size: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        if world_size == 1 and mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but CUDA is not available here")
        if world_size > 1 and device.index is None:
            # One GPU per process under torchrun.
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def _choose_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]


def _barrier(distributed: bool) -> None:
    if distributed:
        dist.barrier()


def _generator_config(config: FitConfig, data: TrainingData, ranges: dict[str, Any] | None = None) -> MUNITConfig:
    try:
        return MUNITConfig.preset(
            config.preset, in_channels=data.channels, image_size=data.image_size, **config.generator_overrides(), **(ranges or {})
        )
    except ValueError as err:
        raise ValueError(f"the generator cannot be built for {data.image_size}x{data.image_size} images: {err}") from err


# --------------------------------------------------------------------------- output folder


def _check_output_folder(out: Path, config: FitConfig) -> Path | None:
    """Refuse to clobber another run; returns the checkpoint to resume from, if any. Writes nothing."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    run_entries = [name for name in entries if name in RUN_FILES or name in RUN_DIRS]
    foreign = [name for name in entries if name not in RUN_FILES and name not in RUN_DIRS]
    if config.overwrite:
        return None
    if config.resume:
        if foreign and not run_entries:
            raise ValueError(
                f"out={str(out)!r} holds files of something else ({', '.join(foreign[:3])}) and no run to resume"
            )
        stored = out / FIT_CONFIG_NAME
        if stored.is_file():
            _check_same_run(json.loads(stored.read_text(encoding="utf-8")), config, out)
        checkpoint = _latest_checkpoint(out)
        if checkpoint is None and run_entries:
            logger.warning("out=%r holds no checkpoint to resume from; starting from step 0", str(out))
        return checkpoint
    if run_entries:
        raise ValueError(
            f"out={str(out)!r} already holds a gitaug-fit run ({', '.join(run_entries)}); pass resume=True "
            "(--resume) to continue it or overwrite=True (--overwrite) to replace it"
        )
    if foreign:
        raise ValueError(
            f"out={str(out)!r} is not empty ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose a new or empty folder, or pass overwrite=True (--overwrite) to write into it anyway"
        )
    return None


def _check_same_run(stored: dict[str, Any], config: FitConfig, out: Path) -> None:
    def comparable(name: str, value: Any) -> Any:
        if name == "data" and value is not None:
            return str(Path(value).resolve())
        return value

    current = config.to_dict()
    changed = [
        name
        for name in current
        if name not in RESUMABLE_FIELDS and comparable(name, stored.get(name)) != comparable(name, current[name])
    ]
    if changed:
        details = ", ".join(f"{name}={stored.get(name)!r} (now {current[name]!r})" for name in changed)
        raise ValueError(
            f"resume: the run in {str(out)!r} was started with {details}; a resumed run must keep them "
            f"(only {', '.join(sorted(RESUMABLE_FIELDS - {'resume', 'overwrite', 'out'}))} may change). "
            "Use overwrite=True (--overwrite) to start a new run there instead"
        )


def _prepare_output_folder(out: Path, config: FitConfig, resuming: bool) -> None:
    if config.overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
    elif not resuming:
        # A fresh start (possibly a --resume that found no checkpoint): no stale log lines.
        (out / LOG_NAME).unlink(missing_ok=True)
    (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    (out / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_path(out: Path, step: int) -> Path:
    return out / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    folder = out / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _latest_checkpoint(out: Path) -> Path | None:
    for _, path in reversed(_checkpoints(out)):
        try:
            _load_checkpoint(path)
        except (OSError, RuntimeError, ValueError, EOFError) as err:
            logger.warning("checkpoint %s cannot be read (%s); trying an older one", path, err)
            continue
        return path
    return None


def _load_checkpoint(path: Path) -> dict[str, Any]:
    # Our own checkpoints hold only tensors and plain values, so the safe loader reads them.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a gitaug-fit checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {state.get('version')!r}, this gitaug reads {CHECKPOINT_VERSION}")
    return state


def _save_checkpoint(out: Path, state: dict[str, Any], keep: int) -> Path:
    path = _checkpoint_path(out, int(state["step"]))
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    for _, old in _checkpoints(out)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _last_checkpoint_note(out: Path) -> str:
    found = _checkpoints(out)
    if not found:
        return "No checkpoint was written yet."
    return f"The last good checkpoint is {found[-1][1]} (step {found[-1][0]})."


def _check_parameters_finite(step: int, out: Path, *modules: nn.Module) -> None:
    for module in modules:
        for name, param in module.named_parameters():
            if not torch.isfinite(param).all():
                raise NonFiniteLossError(
                    f"parameter {type(module).__name__}.{name} became non-finite at step {step}; stopping without "
                    f"checkpointing this state. {_last_checkpoint_note(out)}"
                )


def _rng_states() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        # numpy's state as tensors and numbers, which the safe checkpoint loader accepts
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------- logs


class _LossMeter:
    """Averages losses over a logging interval and measures throughput."""

    def __init__(self) -> None:
        self.sums = {name: 0.0 for name in LOSS_NAMES}
        self.count = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, float], images: int) -> None:
        for name in LOSS_NAMES:
            self.sums[name] += losses[name]
        self.count += 1
        self.images += images

    def flush(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        record = {name: value / max(self.count, 1) for name, value in self.sums.items()}
        record["images_per_second"] = self.images / elapsed
        self.__init__()  # type: ignore[misc]
        return record

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A checkpoint written before a loss existed has no sum for it.
        self.sums = {name: float(state["sums"].get(name, 0.0)) for name in LOSS_NAMES}
        self.count = int(state["count"])
        # Throughput restarts with the resumed process.
        self.images = 0
        self.started = time.perf_counter()


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step``: a killed run may have logged steps its last checkpoint does not hold."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by the kill
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(temporary, path)


def _last_log_record(path: Path) -> dict[str, Any]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _tensorboard(out: Path, start_step: int) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events a killed run wrote past its last checkpoint.
    return SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=start_step + 1 if start_step else None)


def _progress_bar(config: FitConfig, start_step: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=config.steps,
        initial=start_step,
        disable=not enabled,
        unit="step",
        dynamic_ncols=True,
        desc="gitaug-fit",
    )


@contextlib.contextmanager
def _closing(progress: Any, writer: Any) -> Any:
    try:
        yield
    finally:
        progress.close()
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------- signals


class _StopRequests(contextlib.AbstractContextManager):
    """Turns SIGINT and SIGTERM into a request to stop after the current step.

    A second SIGINT aborts at once (as Ctrl-C normally does), without a checkpoint.
    Handlers can only be installed from the main thread; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        if self.signal_number is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal_number is None:
            self.signal_number = number
            logger.warning("received %s: stopping after this step and writing a checkpoint", signal.Signals(number).name)

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
