"""Moved to :mod:`gitaug.evaluation.invariance`; importing it from here gives the same module."""

import sys

from .evaluation import invariance as _module

sys.modules[__name__] = _module
