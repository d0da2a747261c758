"""Moved to :mod:`gitaug.longtail.hierarchy`; importing it from here gives the same module."""

import sys

from .longtail import hierarchy as _module

sys.modules[__name__] = _module
