"""Everything a fit changes as it runs, with one ``state_dict()`` / ``load_state_dict()`` pair.

A checkpoint is ``FitState.state_dict()`` and a resume is
``FitState.load_state_dict(checkpoint)``: the networks, optimizers, learning
rate schedules, gradient scalers, the batch index stream, the style draws,
the global RNGs and the loss meter, so that a resumed run continues exactly as
an uninterrupted one would have (bit for bit on the same machine).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._seeding import derive_seed
from ..datasets import ImageDataset
from ..generator import MUNITConfig, MUNITGenerator
from .config import FitConfig
from .data import IndexStream
from .discriminator import MultiScaleDiscriminator
from .run_folder import LossMeter

__all__ = ["FitState", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "gitaug-fit-checkpoint"
CHECKPOINT_VERSION = 1
# The components with their own state_dict(); the keys are the checkpoint's keys.
_COMPONENTS = (
    "generator",
    "discriminator",
    "optimizer_g",
    "optimizer_d",
    "scheduler_g",
    "scheduler_d",
    "scaler_g",
    "scaler_d",
    "meter",
)


@dataclass
class FitState:
    """The networks, optimizers and random streams of a run, and how far it got."""

    generator: MUNITGenerator
    discriminator: MultiScaleDiscriminator
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    scheduler_g: torch.optim.lr_scheduler.LRScheduler
    scheduler_d: torch.optim.lr_scheduler.LRScheduler
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    stream: IndexStream
    style_rng: torch.Generator
    meter: LossMeter
    step: int = 0
    seconds: float = 0.0

    @classmethod
    def create(
        cls,
        config: FitConfig,
        data: ImageDataset,
        sampling: str,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        *,
        warp_ranges: dict[str, Any] | None = None,
        stored_arch: dict[str, Any] | None = None,
    ) -> "FitState":
        """Fresh networks and optimizers for ``config`` on ``data``, seeded by ``config.seed``.

        ``warp_ranges`` (from the nuisance test) complete the architecture;
        ``stored_arch``, a resumed checkpoint's architecture, replaces it.
        """
        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)
        channels, size = data.images.shape[1], data.images.shape[-1]
        try:
            if stored_arch is not None:
                arch = MUNITConfig.from_dict(stored_arch)
            else:
                arch = MUNITConfig.preset(config.preset, in_channels=channels, image_size=size,
                                          **config.generator_overrides(), **(warp_ranges or {}))
        except ValueError as err:
            raise ValueError(f"the generator cannot be built for {size}x{size} images: {err}") from err
        generator = MUNITGenerator(arch).to(device)
        discriminator = MultiScaleDiscriminator(
            channels, size, dim=config.resolved_disc_dim, n_layers=config.disc_layers, n_scales=config.disc_scales
        ).to(device)

        def adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
            betas = (config.beta1, config.beta2)
            # The fused kernel (one pass over all parameters) where torch has one for the device.
            fused = device.type in ("cuda", "cpu")
            return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, weight_decay=config.weight_decay,
                                    fused=fused)

        def step_lr(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_every, gamma=config.lr_gamma)

        optimizer_g, optimizer_d = adam(generator, config.lr), adam(discriminator, config.resolved_lr_disc)
        # Gradient scaling is only needed (and only switched on) for float16.
        fp16 = amp_dtype == torch.float16
        labels = data.targets if data.labelled else None
        return cls(
            generator=generator,
            discriminator=discriminator,
            optimizer_g=optimizer_g,
            optimizer_d=optimizer_d,
            scheduler_g=step_lr(optimizer_g),
            scheduler_d=step_lr(optimizer_d),
            scaler_g=torch.amp.GradScaler(device.type, enabled=fp16),
            scaler_d=torch.amp.GradScaler(device.type, enabled=fp16),
            stream=IndexStream(len(data), config.batch_size, labels=labels, mode=sampling, seed=config.seed),
            # Style codes are drawn for the whole global batch on the CPU, so a run's draws do not
            # depend on the device or on the number of processes.
            style_rng=torch.Generator().manual_seed(derive_seed(config.seed, "styles")),
            meter=LossMeter(),
        )

    def state_dict(self) -> dict[str, Any]:
        """Every value is a tensor or a plain Python value, so ``torch.load(weights_only=True)`` reads it back."""
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "seconds": self.seconds,
            "sampler": self.stream.state_dict(),
            "style_rng": self.style_rng.get_state(),
            "rng": _global_rng_states(),
            # The architecture, warp ranges included: a resumed run must not test the data again.
            "generator_config": self.generator.config.to_dict(),
        }
        for name in _COMPONENTS:
            state[name] = getattr(self, name).state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The mirror of :meth:`state_dict`."""
        for name in _COMPONENTS:
            getattr(self, name).load_state_dict(state[name])
        self.stream.load_state_dict(state["sampler"])
        self.style_rng.set_state(state["style_rng"])
        _set_global_rng_states(state["rng"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])

    def modules(self) -> tuple[nn.Module, nn.Module]:
        return self.generator, self.discriminator


def _global_rng_states() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        # numpy's state as tensors and numbers, which the safe checkpoint loader accepts
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_global_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
