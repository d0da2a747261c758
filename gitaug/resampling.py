"""Moved to :mod:`gitaug.longtail.resampling`; importing it from here gives the same module."""

import sys

from .longtail import resampling as _module

sys.modules[__name__] = _module
