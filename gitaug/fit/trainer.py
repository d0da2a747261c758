"""Fitting a class-agnostic generator: the training loop behind ``gitaug-fit``.

:func:`fit` reads top to bottom: where it runs, the data, the run folder, the
networks and optimizers (:class:`~gitaug.fit.state.FitState`), resuming, the
loop, the export. What one step computes and every loss term are in
:mod:`gitaug.fit.objective`; what the run writes and may delete is in
:mod:`gitaug.fit.run_folder`.

Example::

    from gitaug.fit import FitConfig, fit
    exported = fit(FitConfig(dataset="digits-bg-lt", out="runs/digits-bg-lt"))
    aug = GITAugment.from_pretrained(exported)
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..datasets import ImageDataset
from .config import RESUMABLE_FIELDS, FitConfig
from .data import read_training_data, to_model_range
from .export import check_push_target, export_generator
from .grid import dataset_rows, save_sample_grid
from .nuisance_probe import run_probe, warp_ranges
from .objective import GeneratorPass, LossTerms, LossWeights, discriminator_loss, generator_losses
from .run_folder import RunFolder, StopRequests, progress_bar
from .state import FitState
from .trackers import Trackers, check_trackers, open_trackers

__all__ = ["fit", "FitInterrupted", "NonFiniteLossError"]

logger = logging.getLogger("gitaug.fit")


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


@dataclass
class _Placement:
    """Where a process runs and which share of each global batch is its own."""

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int
    world_size: int
    per_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _shareable_source(source: str) -> str:
    """The data source as the exported metadata records it: a folder's or file's base name, never a full path.

    ``config.json`` and the model card are uploaded by ``--push-to-hub``; a local
    path would publish the user's directory layout (often their user name).
    """
    if source.startswith("dataset:"):
        return source
    return Path(source).name or source


def fit(config: FitConfig) -> Path:
    """Fit a class-agnostic generator as ``config`` says and export it; returns the export folder.

    The export is ``<out>/generator``; the rest of ``<out>`` is the run
    (checkpoints, log, samples; see :mod:`gitaug.fit.run_folder`). Launched by
    ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every process takes
    a disjoint slice of each global batch and gradients are averaged with
    DistributedDataParallel; only rank 0 writes files.

    Raises:
        ValueError, FileNotFoundError: bad data or output folder (the message names it).
        FitInterrupted: SIGINT/SIGTERM arrived; a checkpoint was written first.
        NonFiniteLossError: a loss became NaN/inf; no checkpoint of that state is written.

    Example::

        >>> from gitaug.fit import FitConfig, fit
        >>> exported = fit(FitConfig(dataset="digits-bg-lt", out="runs/bg", steps=2000))  # doctest: +SKIP
        >>> GITAugment.from_pretrained(exported)                                           # doctest: +SKIP
    """
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
    check_trackers(config)  # a missing tensorboard, wandb or mlflow fails before anything is read or written
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if config.batch_size % world_size:
        raise ValueError(
            f"batch_size={config.batch_size} must be divisible by the number of processes ({world_size}): "
            "it is the global batch, split evenly between them"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _choose_device(config.device, local_rank, world_size)
    where = _Placement(device, _choose_amp(config.amp, device), int(os.environ.get("RANK", "0")), world_size,
                       config.batch_size // world_size)

    # Everything is read and checked before anything is written.
    data = read_training_data(
        dataset=config.dataset, data=config.data, image_size=config.image_size, channels=config.channels, seed=config.seed
    )
    sampling = config.sampling
    if sampling == "auto":
        sampling = "balanced" if data.labelled else "instance"
    elif sampling == "balanced" and not data.labelled:
        raise ValueError(f"sampling='balanced' needs labels, but the images from {data.source!r} have none; use 'instance'")
    run = RunFolder(config.output_dir)
    run.check(resume=config.resume, overwrite=config.overwrite)
    resume_from = _checkpoint_to_resume(run, config) if config.resume else None
    if config.push_to_hub and where.is_main:
        check_push_target(config.push_to_hub)

    # The nuisance test (warp="auto") runs once, before training; a resumed run keeps the ranges it found.
    stored_arch = resume_from[1].get("generator_config") if resume_from is not None else None
    probe = run_probe(config, data) if config.warp == "auto" and stored_arch is None else None
    if probe is not None and where.is_main:
        logger.info("nuisance test: the data does not notice %s", probe.summary())

    started_here = where.distributed and not dist.is_initialized()
    if started_here:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        ranges = warp_ranges(config, probe)
        if where.distributed and ranges:
            ranges = _same_on_every_process(ranges, device)
        state = FitState.create(config, data, sampling, device, where.amp_dtype, warp_ranges=ranges,
                                stored_arch=stored_arch)
        if where.is_main:
            run.prepare(overwrite=config.overwrite, resuming=resume_from is not None)
        where.barrier()
        if resume_from is not None:
            state.load_state_dict(resume_from[1])
            if where.is_main:
                run.truncate_log(state.step)
                logger.info("resuming %s from step %d (%s)", run.root, state.step, resume_from[0].name)
        if where.is_main:
            run.write_config(config.to_dict())
            _log_start(config, data, sampling, state, where)
        # TensorBoard, W&B, MLflow: one run each, open from the first step through the export's report.
        tracker = open_trackers(config, run, state.step) if where.is_main else Trackers()
        status = "failed"
        try:
            _loop(config, data, run, state, where, tracker)
            exported = run.generator_dir
            if where.is_main:
                exported = export_generator(config, data, sampling, run, state, where.device, where.amp_dtype,
                                            world_size, probe, tracker)
            where.barrier()
            status = "finished"
        except (FitInterrupted, KeyboardInterrupt):
            status = "killed"
            raise
        finally:
            tracker.close(status)
        return exported
    finally:
        if started_here:
            dist.destroy_process_group()


def _loop(
    config: FitConfig, data: ImageDataset, run: RunFolder, state: FitState, where: _Placement, tracker: Trackers
) -> None:
    """The training iterations from ``state.step`` to ``config.steps``, with logs, grids and checkpoints."""
    generator, discriminator = state.generator, state.discriminator
    generator_pass: nn.Module = GeneratorPass(generator)
    critic: nn.Module = discriminator
    if where.distributed:
        ddp_args = {"device_ids": [where.device.index]} if where.device.type == "cuda" else {}
        generator_pass = nn.parallel.DistributedDataParallel(generator_pass, **ddp_args)
        critic = nn.parallel.DistributedDataParallel(discriminator, **ddp_args)
    weights = LossWeights(config.weight_image, config.weight_style, config.weight_content, config.weight_adv,
                          config.weight_diversity, config.weight_warp_diversity, config.diversity_cap)
    images = data.images.to(where.device)
    rows, row_labels = dataset_rows(data, max_rows=10, seed=config.seed)
    progress = progress_bar(config.steps, state.step, enabled=where.is_main and config.progress,
                            log_instead=where.is_main and not config.progress)
    autocast = torch.autocast(where.device.type, dtype=where.amp_dtype, enabled=where.amp_dtype is not None)
    mine = slice(where.rank * where.per_rank, (where.rank + 1) * where.per_rank)
    style_dim, started, seconds_before = generator.config.style_dim, time.perf_counter(), state.seconds
    generator.train()
    discriminator.train()
    with StopRequests() as stop, progress:
        while state.step < config.steps:
            state.step += 1
            indices = state.stream.next_batch()
            style_rand = torch.randn(config.batch_size, style_dim, generator=state.style_rng)[mine].to(where.device)
            style_other = None
            if weights.image_pair or weights.warp_pair:
                style_other = torch.randn(config.batch_size, style_dim, generator=state.style_rng)[mine].to(where.device)
            real = to_model_range(images[indices[mine].to(where.device)])

            discriminator.requires_grad_(False)  # a fixed critic for the generator update
            with autocast:
                out = generator_pass(real, style_rand, style_other, image_pair=weights.image_pair,
                                     warp_pair=weights.warp_pair)
                terms = generator_losses(out, real, style_rand, style_other, discriminator, weights)
            _update(state.optimizer_g, state.scaler_g, terms["gen"])
            discriminator.requires_grad_(True)
            with autocast:
                terms["disc"] = discriminator_loss(critic, real, out.fake)
            _update(state.optimizer_d, state.scaler_d, terms["disc"])
            state.scheduler_g.step()
            state.scheduler_d.step()

            losses, stop_signal = _reduce_across_processes(LossTerms(**terms), stop.signal_number, where)
            bad = [name for name, value in losses.items() if not math.isfinite(value)]
            if bad:
                raise NonFiniteLossError(
                    f"{bad[0]} is {losses[bad[0]]} at step {state.step}; stopping without checkpointing this "
                    f"state. {run.last_checkpoint_note()} Try a lower lr or amp='none'."
                )
            state.meter.add(losses, config.batch_size)
            progress.update(1)
            state.seconds = seconds_before + time.perf_counter() - started
            if where.is_main and (state.step % config.log_every == 0 or state.step == config.steps):
                _log(run, state, tracker, progress)
            if where.is_main and config.sample_every and state.step % config.sample_every == 0 and state.step < config.steps:
                grid = save_sample_grid(run.sample_path(state.step), generator, data.images[rows],
                                        variants=config.grid_variants, seed=config.seed, row_labels=row_labels)
                tracker.log_image("samples", grid, state.step)
            checkpoint_due = config.checkpoint_every and state.step % config.checkpoint_every == 0
            if checkpoint_due or state.step == config.steps or stop_signal:
                _check_parameters_finite(state, run)
                saved = run.checkpoint_path(state.step)
                if where.is_main:
                    record = {**state.state_dict(), "config": config.to_dict(), "world_size": where.world_size}
                    saved = run.save_checkpoint(record, state.step, config.keep_checkpoints)
                where.barrier()
                if stop_signal:
                    raise FitInterrupted(state.step, saved, stop_signal)


# --------------------------------------------------------------------------- pieces of a step


def _update(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _reduce_across_processes(
    terms: LossTerms, signal_number: int | None, where: _Placement
) -> tuple[dict[str, float], int]:
    """Losses averaged over processes, and whether any process was asked to stop (one sync per step)."""
    report = terms.stacked()
    stop_report = torch.tensor([float(signal_number or 0)], device=report.device)
    if where.distributed:
        dist.all_reduce(report)
        report /= where.world_size
        # MAX, not SUM: every process usually gets the same signal, and a sum of signal
        # numbers is another signal (2 x SIGINT would read as SIGILL).
        dist.all_reduce(stop_report, op=dist.ReduceOp.MAX)
    return dict(zip(LossTerms.log_names(), report.tolist())), int(stop_report.item())


def _log(run: RunFolder, state: FitState, tracker: Trackers, progress: Any) -> None:
    record = {
        "step": state.step,
        **state.meter.flush(),
        "lr": state.scheduler_g.get_last_lr()[0],
        "seconds": round(state.seconds, 3),
    }
    progress.set_postfix(image=f"{record['loss_image']:.3f}", adv=f"{record['loss_adv']:.3f}",
                         disc=f"{record['loss_disc']:.3f}", img_s=f"{record['images_per_second']:.0f}")
    run.append_log(record)
    tracker.log_scalars({name: value for name, value in record.items() if name != "step"}, state.step)


def _check_parameters_finite(state: FitState, run: RunFolder) -> None:
    for module in state.modules():
        for name, param in module.named_parameters():
            if not torch.isfinite(param).all():
                raise NonFiniteLossError(
                    f"parameter {type(module).__name__}.{name} became non-finite at step {state.step}; stopping "
                    f"without checkpointing this state. {run.last_checkpoint_note()}"
                )


def _same_on_every_process(ranges: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Rank 0's tested warp ranges for every process (the test's float results can differ with thread counts)."""
    names = ("warp_rotation", "warp_scale", "warp_shift", "warp_contrast")
    shared = torch.tensor([ranges[name] for name in names], dtype=torch.float64, device=device)
    dist.broadcast(shared, src=0)
    swaps = [ranges.get("warp_backgrounds", []), ranges.get("warp_flip", False)]
    dist.broadcast_object_list(swaps, src=0)
    return {**ranges, **dict(zip(names, shared.tolist())), "warp_backgrounds": swaps[0], "warp_flip": swaps[1]}


# --------------------------------------------------------------------------- resuming


def _checkpoint_to_resume(run: RunFolder, config: FitConfig) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to continue from, after checking that ``config`` continues the same run."""
    found = run.latest_checkpoint()
    # The checkpoint records the config it was written under; fit_config.json is the fallback.
    stored = found[1].get("config") if found is not None else None
    stored = stored if isinstance(stored, dict) else run.stored_config()
    if stored is not None:
        _check_same_run(stored, config, run.root)
    if found is None and run.is_run():
        logger.warning("out=%r holds no usable checkpoint to resume from; starting from step 0", str(run.root))
    return found


def _check_same_run(stored: dict[str, Any], config: FitConfig, out: Path) -> None:
    def comparable(name: str, value: Any) -> Any:
        if name == "data" and value is not None:
            return str(Path(value).resolve())
        return value

    current = config.to_dict()
    changed = [
        name
        for name in current
        if name not in RESUMABLE_FIELDS and name in stored and comparable(name, stored[name]) != comparable(name, current[name])
    ]
    if changed:
        details = ", ".join(f"{name}={stored.get(name)!r} (now {current[name]!r})" for name in changed)
        raise ValueError(
            f"resume: the run in {str(out)!r} was started with {details}; a resumed run must keep them "
            f"(only {', '.join(sorted(RESUMABLE_FIELDS - {'resume', 'overwrite', 'out'}))} may change). "
            "Use overwrite=True (--overwrite) to start a new run there instead"
        )


# --------------------------------------------------------------------------- where it runs


def _log_start(config: FitConfig, data: ImageDataset, sampling: str, state: FitState, where: _Placement) -> None:
    channels, size = data.images.shape[1], data.images.shape[-1]
    amp = f", {str(where.amp_dtype).replace('torch.', '')} autocast" if where.amp_dtype else ""
    logger.info(
        "fitting a %s generator (%s parameters) on %d %dx%dx%d images from %s; %s sampling, batch %d, %d steps, "
        "device %s%s, %d process(es)",
        config.preset, f"{state.generator.num_parameters():,}", len(data), channels, size, size, data.source,
        sampling, config.batch_size, config.steps, where.device, amp, where.world_size,
    )


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
