"""One way for every benchmark to write its section of ``benchmarks/RESULTS.md``.

Each benchmark owns one section, delimited by ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``; :func:`update_section` replaces that section and touches
nothing else, so benchmarks run in any order never overwrite each other. A
section not yet in the file is appended at its end. The file is replaced
atomically.
"""

from __future__ import annotations

import os
import platform
import shlex
from pathlib import Path
from typing import Sequence

import torch

from gitaug._files import write_text

TITLE = "# Benchmarks\n\nEach section below is written by the benchmark it names, with the command that produced it.\n"


#: The repository's root: paths under it are written relative to it.
ROOT = Path(__file__).resolve().parents[1]


def portable(argument: str) -> str:
    """``argument`` as a results file should record it: an absolute path made relative to the repository.

    A path under this checkout is written relative to its root; one under another checkout's ``benchmarks/``
    (a benchmark run from a second clone, pointed back at the first one's work folder) from ``benchmarks/`` on.
    ``--flag=PATH`` is handled too. Anything else is kept as it is.
    """
    flag, equals, value = argument.partition("=") if argument.startswith("--") else ("", "", argument)
    if not os.path.isabs(value):
        return argument
    path = Path(value)
    try:
        relative = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        parts = path.parts
        if "benchmarks" not in parts:
            return argument
        relative = Path(*parts[len(parts) - 1 - parts[::-1].index("benchmarks"):]).as_posix()
    return f"{flag}{equals}{relative}"


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command that reran a benchmark, as its results record it: ``python benchmarks/SCRIPT ARGS``, paths
    made portable (:func:`portable`), so that no machine's folders end up in the committed results."""
    return shlex.join(["python", f"benchmarks/{script}", *(portable(argument) for argument in argv)])


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def update_section(path: Path, name: str, markdown: str) -> None:
    """Put ``markdown`` as section ``name`` of the report at ``path`` (created if missing)."""
    start_marker, end_marker = markers(name)
    section = f"{start_marker}\n{markdown.strip()}\n{end_marker}"
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(end_marker):]
    else:
        text = text.rstrip("\n") + f"\n\n{section}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)


def device_name(device: torch.device | str) -> str:
    """A human-readable name of the hardware behind a torch device, for the report's figures."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:  # Linux: the marketing name; elsewhere platform's best guess
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine()
    return device.type

