"""Writing files safely: every file gitaug writes for a user goes through :func:`atomic_write`."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "write_text", "write_json", "give_default_permissions"]


def give_default_permissions(path: str | os.PathLike) -> None:
    """Give a file made by ``tempfile.mkstemp`` (always 0600) the mode a plain ``open`` would have.

    Exported generators and datasets are meant to be shared; after the
    atomic rename they should be as readable as any other file the user writes.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Write ``path`` through ``write(temporary_path)`` and a rename: no reader ever sees half a file.

    The temporary file sits next to ``path`` (same file system, so the rename
    is atomic) under a hidden name; it is removed if ``write`` fails for any
    reason, including a full disk, so a failed write leaves the old file (if
    any) untouched and nothing else behind. A full disk is reported as an
    ``OSError`` that names ``path``.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        give_default_permissions(temporary)  # after writing: a writer may replace the file it was given
        os.replace(temporary, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if _is_disk_full(err):
            raise OSError(28, f"no space left on device while writing {path}") from err
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)

    return atomic_write(path, write)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Atomically write ``value`` as indented JSON to ``path``."""
    return write_text(path, json.dumps(value, indent=2) + "\n")


def _is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno == 28:
        return True
    # torch.save reports a full disk as a RuntimeError from its zip writer.
    return isinstance(err, RuntimeError) and ("unexpected pos" in str(err) or "No space left" in str(err))

