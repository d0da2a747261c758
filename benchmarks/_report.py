"""One way for every benchmark to write its section of ``benchmarks/RESULTS.md``.

Each benchmark owns one section, delimited by ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``; :func:`update_section` replaces that section and touches
nothing else, so benchmarks run in any order never overwrite each other. A
section not yet in the file is appended at its end. The file is replaced
atomically.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from gitaug._files import write_text

TITLE = "# Benchmarks\n\nEach section below is written by the benchmark it names, with the command that produced it.\n"


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

