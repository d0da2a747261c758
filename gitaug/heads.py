"""Moved to :mod:`gitaug.longtail.heads`; importing it from here gives the same module."""

import sys

from .longtail import heads as _module

sys.modules[__name__] = _module
