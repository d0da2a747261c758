"""The run folder of ``gitaug-fit``: what a run writes, and the promise never to touch anything else.

Layout::

    <out>/gitaug-run.json          the manifest: this folder is a gitaug-fit run, and what the run created
    <out>/generator/               the export: config.json, model.safetensors, README.md, samples.png
                                   (GITAugment.from_pretrained(<out>/generator), or <out> itself)
    <out>/fit_config.json          the FitConfig of the run
    <out>/log.jsonl                averaged losses every ``log_every`` iterations
    <out>/samples/step-*.png       sample grids during training
    <out>/checkpoints/step-*.pt    full training state, each with a ``.sha256`` beside it
    <out>/tensorboard/             TensorBoard events, when asked for

A folder is a run only if it holds the manifest. ``overwrite`` and ``resume``
delete or replace only entries the manifest lists, and inside them only files
of the names gitaug writes; a folder (or a part of one) that is a symbolic
link is never followed for deleting. Checkpoints are written atomically and
verified against their checksum when read; an unreadable newest checkpoint
falls back to the one before it, with a warning naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from .._files import atomic_write, write_json, write_text

__all__ = ["RunFolder", "LossMeter", "StopRequests", "progress_bar", "GENERATOR_DIR"]

logger = logging.getLogger("gitaug.fit")

MANIFEST_NAME = "gitaug-run.json"
MANIFEST_FORMAT = "gitaug-fit-run"
GENERATOR_DIR = "generator"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
LOG_NAME = "log.jsonl"
FIT_CONFIG_NAME = "fit_config.json"
# Inside each folder the run creates, the only names it ever writes (and so may delete).
_OWN_FILES = {
    CHECKPOINT_DIR: re.compile(r"^\.?step-\d+\.pt(\.sha256)?(\..*\.tmp)?$"),
    SAMPLES_DIR: re.compile(r"^\.?step-\d+\.png(\..*\.tmp)?$"),
    TENSORBOARD_DIR: re.compile(r"^events\.out\.tfevents\..*$"),
    GENERATOR_DIR: re.compile(r"^\.?(config\.json|model\.safetensors|README\.md|samples\.png)(\..*\.tmp)?$"),
}
_CHECKPOINT = re.compile(r"^step-(\d+)\.pt$")


class RunFolder:
    """The files of one run, under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.generator_dir = self.root / GENERATOR_DIR
        self.log_path = self.root / LOG_NAME
        self.config_path = self.root / FIT_CONFIG_NAME
        self.manifest_path = self.root / MANIFEST_NAME

    # ------------------------------------------------------------------ ownership

    def is_run(self) -> bool:
        """Whether ``root`` holds a gitaug-fit run (its manifest)."""
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT

    def check(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse a folder that is not ours to write into. Writes nothing."""
        root = self.root
        if root.is_symlink() or (root.exists() and not root.is_dir()):
            raise ValueError(f"out={str(root)!r} exists and is not a folder")
        entries = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        if not entries:
            return
        if self.is_run():
            for name in (GENERATOR_DIR, CHECKPOINT_DIR, SAMPLES_DIR, TENSORBOARD_DIR):
                if (root / name).is_symlink():
                    raise ValueError(
                        f"out={str(root)!r}: {name}/ is a symbolic link; gitaug-fit does not write or delete "
                        "through links. Replace it with a real folder or choose another --out"
                    )
            if not (resume or overwrite):
                raise ValueError(
                    f"out={str(root)!r} already holds a gitaug-fit run; pass resume=True (--resume) to continue "
                    "it or overwrite=True (--overwrite) to replace it"
                )
            return
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(
            f"out={str(root)!r} is not empty ({shown}) and is not a gitaug-fit run, so gitaug-fit will not write "
            "into it (neither --resume nor --overwrite changes that: they act only on a folder a run created). "
            "Choose a new or empty folder"
        )

    def prepare(self, *, overwrite: bool, resuming: bool) -> None:
        """Make the folder a run: clear what a replaced run wrote, write the manifest and the sub-folders."""
        self.root.mkdir(parents=True, exist_ok=True)
        if overwrite and self.is_run():
            self._remove_own(self._manifest_entries())
        elif not resuming:
            # A fresh start (possibly a --resume that found no checkpoint): no stale log lines.
            self._remove_own([LOG_NAME])
        for name in (CHECKPOINT_DIR, SAMPLES_DIR):
            (self.root / name).mkdir(exist_ok=True)
        self._record(CHECKPOINT_DIR, SAMPLES_DIR, LOG_NAME, FIT_CONFIG_NAME, GENERATOR_DIR)

    def record(self, *names: str) -> None:
        """Add top-level entries the run created (e.g. ``tensorboard``) to the manifest."""
        self._record(*names)

    def _manifest_entries(self) -> list[str]:
        try:
            entries = json.loads(self.manifest_path.read_text(encoding="utf-8")).get("entries", [])
        except (OSError, ValueError, AttributeError):
            return []
        return [name for name in entries if isinstance(name, str) and "/" not in name and name not in ("", ".", "..")]

    def _record(self, *names: str) -> None:
        entries = sorted(set(self._manifest_entries()) | set(names))
        write_json(self.manifest_path, {"format": MANIFEST_FORMAT, "version": 1, "entries": entries})

    def _remove_own(self, names: Iterable[str]) -> None:
        for name in names:
            path = self.root / name
            if path.is_symlink() or not path.exists():
                continue  # never follow a link; a missing entry has nothing to remove
            if path.is_file():
                if name in (LOG_NAME, FIT_CONFIG_NAME):
                    path.unlink()
                continue
            pattern = _OWN_FILES.get(name)
            if pattern is None:
                continue
            for child in path.iterdir():
                if pattern.match(child.name) and child.is_file() and not child.is_symlink():
                    child.unlink()
            with contextlib.suppress(OSError):
                path.rmdir()  # only if nothing foreign is left in it

    # ------------------------------------------------------------------ the stored config

    def stored_config(self) -> dict[str, Any] | None:
        """The FitConfig (as a dict) the run was started with, or ``None``."""
        try:
            value = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def write_config(self, values: dict[str, Any]) -> None:
        write_json(self.config_path, values)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_path(self, step: int) -> Path:
        return self.root / CHECKPOINT_DIR / f"step-{step:08d}.pt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        folder = self.root / CHECKPOINT_DIR
        if not folder.is_dir() or folder.is_symlink():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name))]
        return sorted(found)

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write ``state`` atomically with its SHA-256 beside it; keep the newest ``keep`` checkpoints."""
        path = self.checkpoint_path(step)
        atomic_write(path, lambda temporary: torch.save(state, temporary))
        write_text(path.with_name(path.name + ".sha256"), _sha256(path) + "\n")
        for _, old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".sha256").unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """A checkpoint this run wrote, verified; ``ValueError`` names what is wrong with it."""
        checksum = path.with_name(path.name + ".sha256")
        if checksum.is_file():
            expected = checksum.read_text(encoding="utf-8").strip()
            if _sha256(path) != expected:
                raise ValueError(f"{path} does not match its checksum: it is corrupt")
        try:
            # Our own checkpoints hold only tensors and plain values, so the safe loader reads them.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unreadable file: truncated, garbage, unpickling refused
            raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err})") from err
        from .state import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a gitaug-fit checkpoint")
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path} has checkpoint version {state.get('version')!r}, this gitaug reads {CHECKPOINT_VERSION}")
        return state

    def latest_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable checkpoint and its state; unreadable newer ones are reported and skipped."""
        for _, path in reversed(self.checkpoints()):
            try:
                return path, self.load_checkpoint(path)
            except (OSError, ValueError) as err:
                logger.warning("checkpoint %s cannot be used (%s); trying an older one", path, err)
        return None

    def last_checkpoint_note(self) -> str:
        found = self.checkpoints()
        if not found:
            return "No checkpoint was written yet."
        return f"The last checkpoint is {found[-1][1]} (step {found[-1][0]})."

    # ------------------------------------------------------------------ log and samples

    def sample_path(self, step: int) -> Path:
        return self.root / SAMPLES_DIR / f"step-{step:08d}.png"

    def append_log(self, record: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()

    def truncate_log(self, step: int) -> None:
        """Drop log lines past ``step``: a killed run may have logged steps its last checkpoint does not hold."""
        if not self.log_path.is_file():
            return
        kept = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by the kill
        write_text(self.log_path, "".join(line + "\n" for line in kept))

    def last_log_record(self) -> dict[str, Any]:
        if not self.log_path.is_file():
            return {}
        lines = [line for line in self.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else {}

    def tensorboard(self, start_step: int) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        self.record(TENSORBOARD_DIR)
        # purge_step drops events a killed run wrote past its last checkpoint.
        return SummaryWriter(str(self.root / TENSORBOARD_DIR), purge_step=start_step + 1 if start_step else None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- logs


class LossMeter:
    """Averages losses over a logging interval and measures throughput."""

    def __init__(self, names: tuple[str, ...] | None = None) -> None:
        from .objective import LossTerms

        self.names = names or LossTerms.log_names()
        self.reset()

    def reset(self) -> None:
        self.sums = {name: 0.0 for name in self.names}
        self.count = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, float], images: int) -> None:
        for name in self.names:
            self.sums[name] += losses[name]
        self.count += 1
        self.images += images

    def flush(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        record = {name: value / max(self.count, 1) for name, value in self.sums.items()}
        record["images_per_second"] = self.images / elapsed
        self.reset()
        return record

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A checkpoint written before a loss existed has no sum for it.
        self.sums = {name: float(state["sums"].get(name, 0.0)) for name in self.names}
        self.count = int(state["count"])
        # Throughput restarts with the resumed process.
        self.images = 0
        self.started = time.perf_counter()


def progress_bar(total: int, start_step: int, enabled: bool, log_instead: bool = False) -> Any:
    """A tqdm bar; with ``log_instead`` (``--no-progress``) a log line every half minute instead of nothing."""
    if log_instead:
        return _ProgressLog(total, start_step)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start_step, disable=not enabled, unit="step", dynamic_ncols=True, desc="gitaug-fit")


class _ProgressLog:
    """The progress bar's interface, reporting through the ``gitaug.fit`` logger at most every ``every`` seconds.

    For runs without a terminal (batch jobs, ``--no-progress``), which would
    otherwise print nothing for minutes.
    """

    def __init__(self, total: int, start_step: int, every: float = 30.0) -> None:
        self.total, self.step, self.every = total, start_step, every
        self.postfix: dict[str, str] = {}
        self.last = time.perf_counter()

    def __enter__(self) -> "_ProgressLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, steps: int = 1) -> None:
        self.step += steps
        if time.perf_counter() - self.last >= self.every:
            self._report()

    def set_postfix(self, **values: str) -> None:
        self.postfix = values

    def close(self) -> None:
        if self.step >= self.total:
            self._report()

    def _report(self) -> None:
        self.last = time.perf_counter()
        details = ", ".join(f"{name} {value}" for name, value in self.postfix.items())
        logger.info("gitaug-fit: step %d/%d (%.0f %%)%s", self.step, self.total, 100 * self.step / max(self.total, 1),
                    f": {details}" if details else "")


# --------------------------------------------------------------------------- signals


class StopRequests(contextlib.AbstractContextManager):
    """Turns SIGINT and SIGTERM into a request to stop after the current step.

    A second SIGINT aborts at once (as Ctrl-C normally does), without a checkpoint.
    Handlers can only be installed from the main thread; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        if self.signal_number is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal_number is None:
            self.signal_number = number
            logger.warning("received %s: stopping after this step and writing a checkpoint", signal.Signals(number).name)

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
