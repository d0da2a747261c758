"""Fitting a class-agnostic generator on your own images (the ``gitaug-fit`` command).

:class:`FitConfig` holds every setting; :func:`fit` trains a single-domain
MUNIT generator with a multi-scale LSGAN discriminator on all training
images pooled together and exports a folder that
:meth:`gitaug.GITAugment.from_pretrained` loads.

The package, top to bottom: :mod:`~gitaug.fit.config` (the settings),
:mod:`~gitaug.fit.data` (reading images, drawing batches),
:mod:`~gitaug.fit.state` (networks, optimizers and random streams with one
``state_dict``), :mod:`~gitaug.fit.objective` (one step's computation and
every loss term), :mod:`~gitaug.fit.trainer` (the loop),
:mod:`~gitaug.fit.run_folder` (what a run writes, checkpoints, signals),
:mod:`~gitaug.fit.trackers` (TensorBoard, Weights & Biases, MLflow),
:mod:`~gitaug.fit.export` (the exported generator) and
:mod:`~gitaug.fit.cli` (the command line).

Example::

    from gitaug import GITAugment
    from gitaug.fit import FitConfig, fit

    exported = fit(FitConfig(dataset="digits-bg-lt", out="runs/digits-bg-lt"))  # runs/digits-bg-lt/generator
    aug = GITAugment.from_pretrained(exported)

The same run from a shell: ``gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt``.

By default the fit finds the data's nuisance itself: a detection test sets
the ranges of rotation, scaling and shift the generator draws within
(:mod:`gitaug.fit.nuisance_probe`), and a bounded mode-seeking term makes the
style code vary the appearance.
"""

from typing import TYPE_CHECKING, Any

from .config import FitConfig

__all__ = ["FitConfig", "fit", "FitInterrupted", "NonFiniteLossError"]

if TYPE_CHECKING:
    from .trainer import FitInterrupted, NonFiniteLossError, fit


def __getattr__(name: str) -> Any:
    # The trainer (and torch) loads on first use, so that ``gitaug fit --help`` answers at once.
    if name in ("fit", "FitInterrupted", "NonFiniteLossError"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
