"""Moved to :mod:`gitaug.longtail.losses`; importing it from here gives the same module."""

import sys

from .longtail import losses as _module

sys.modules[__name__] = _module
