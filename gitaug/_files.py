"""File-writing helpers shared by the modules that write user-facing files."""

from __future__ import annotations

import os

__all__ = ["give_default_permissions"]


def give_default_permissions(path: str | os.PathLike) -> None:
    """Give a file made by ``tempfile.mkstemp`` (always 0600) the mode a plain ``open`` would have.

    Exported generators and datasets are meant to be shared; after the
    atomic rename they should be as readable as any other file the user writes.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
