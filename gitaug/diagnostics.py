"""Moved to :mod:`gitaug.evaluation.diagnostics`; importing it from here gives the same module."""

import sys

from .evaluation import diagnostics as _module

sys.modules[__name__] = _module
