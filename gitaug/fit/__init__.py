"""Fitting a class-agnostic generator on your own images (the ``gitaug-fit`` command).

:class:`FitConfig` holds every setting; :func:`fit` trains a single-domain
MUNIT generator with a multi-scale LSGAN discriminator on all training
images pooled together and exports a folder that
:meth:`gitaug.GITAugment.from_pretrained` loads.

Example::

    from gitaug import GITAugment
    from gitaug.fit import FitConfig, fit

    out = fit(FitConfig(dataset="digits-bg-lt", out="runs/digits-bg-lt"))
    aug = GITAugment.from_pretrained(out)

The same run from a shell: ``gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt``.

By default the fit finds the data's nuisance itself: a detection test sets
the ranges of rotation, scaling and shift the generator draws within
(:mod:`gitaug.fit.nuisance_probe`), and a bounded mode-seeking term makes the
style code vary the appearance.
"""

from .config import FitConfig
from .trainer import FitInterrupted, NonFiniteLossError, fit

__all__ = ["FitConfig", "fit", "FitInterrupted", "NonFiniteLossError"]
