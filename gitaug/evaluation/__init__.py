"""Measuring GIT: per-class invariance (eKLD) of a classifier and diagnostics of a fitted generator.

* :mod:`~gitaug.evaluation.invariance` -- eKLD under a nuisance or a generator, Spearman summaries, plots;
* :mod:`~gitaug.evaluation.diagnostics` -- how far draws of one input differ, and whether they keep the class.

The old paths (``gitaug.invariance``, ``gitaug.diagnostics``) still import the same modules.
"""

from . import diagnostics, invariance

__all__ = ["invariance", "diagnostics"]
