"""Where a fit reports as it runs: TensorBoard, Weights & Biases or MLflow, behind one small protocol.

A :class:`Tracker` takes four calls, made by the training loop and the export:

* ``log_scalars(values, step)`` -- the averaged losses, learning rate and
  throughput of every ``log.jsonl`` line;
* ``log_image(name, path, step)`` -- each sample grid the run writes;
* ``log_summary(name, values, step)`` -- the final generator report, as a dict;
* ``close(status)`` -- once, with ``"finished"``, ``"failed"`` or ``"killed"``
  (SIGINT/SIGTERM), also when the fit raises.

:func:`open_trackers` opens the ones a :class:`~gitaug.fit.FitConfig` asks
for (``tensorboard=True``, ``tracker="wandb"`` or ``"mlflow"``) as one
:class:`Trackers`. Each library is imported only when asked for; the official
clients do the talking (``wandb.init``, ``mlflow.start_run``), so their own
settings apply as usual (``WANDB_PROJECT``, ``WANDB_MODE=offline``,
``MLFLOW_TRACKING_URI``, a prior ``wandb login``). A resumed fit logs to a new
tracker run, its steps continuing from the checkpoint's.

Example::

    from gitaug.fit import FitConfig, fit
    fit(FitConfig(dataset="digits-bg-lt", tracker="wandb", tracker_project="gitaug"))
"""

from __future__ import annotations

import importlib
import logging
import numbers
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Mapping, Protocol

from .config import FitConfig

__all__ = ["Tracker", "Trackers", "TensorBoardTracker", "WandbTracker", "MLflowTracker", "open_trackers",
           "check_trackers", "STATUSES"]

logger = logging.getLogger("gitaug.fit")

#: How a run ended, as :meth:`Tracker.close` is told.
STATUSES = ("finished", "failed", "killed")
# The pip package each tracker needs, for the error when it is missing.
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


class Tracker(Protocol):
    """What the fit calls on an experiment tracker."""

    def log_scalars(self, values: Mapping[str, float], step: int) -> None: ...

    def log_image(self, name: str, path: Path, step: int) -> None: ...

    def log_summary(self, name: str, values: Mapping[str, Any], step: int) -> None: ...

    def close(self, status: str = "finished") -> None: ...


def _import(library: str, flag: str) -> ModuleType:
    """The tracker's library, or an ImportError naming the flag and the pip package that provides it."""
    package = _PACKAGES[library]
    try:
        return importlib.import_module(library)
    except ImportError as err:
        raise ImportError(
            f"{flag} needs the {package} package, which is not installed: pip install {package} "
            f"(or pip install 'gitaug[{package}]')"
        ) from err


def check_trackers(config: FitConfig) -> None:
    """Import the libraries ``config`` asks for, before anything is trained; ``ImportError`` names the package."""
    if config.tensorboard:
        _import("tensorboard", "tensorboard=True (--tensorboard)")
    if config.tracker is not None:
        _import(config.tracker, f"tracker={config.tracker!r} (--tracker {config.tracker})")


def _flatten(values: Mapping[str, Any], prefix: str) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers and strings of a nested dict under ``prefix/key/...`` names (lists and ``None`` are left out)."""
    numbers_found: dict[str, float] = {}
    texts: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            more_numbers, more_texts = _flatten(value, name)
            numbers_found.update(more_numbers)
            texts.update(more_texts)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            numbers_found[name] = float(value)
        elif isinstance(value, str):
            texts[name] = value
    return numbers_found, texts


class TensorBoardTracker:
    """Scalars, images and the summary's numbers (and texts) in a ``SummaryWriter``."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        from torchvision.io import read_image

        self.writer.add_image(name, read_image(str(path)), step)

    def log_summary(self, name: str, values: Mapping[str, Any], step: int) -> None:
        scalars, texts = _flatten(values, name)
        self.log_scalars(scalars, step)
        for tag, text in texts.items():
            self.writer.add_text(tag, text, step)

    def close(self, status: str = "finished") -> None:
        self.writer.close()


class WandbTracker:
    """A Weights & Biases run: ``wandb.init`` with the fit's config, ``run.log``, ``run.summary``, ``run.finish``."""

    def __init__(self, project: str | None, name: str, config: Mapping[str, Any]) -> None:
        self.wandb = _import("wandb", "tracker='wandb' (--tracker wandb)")
        self.run = self.wandb.init(project=project, name=name, config=dict(config))

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        self.run.log({name: self.wandb.Image(str(path))}, step=step)

    def log_summary(self, name: str, values: Mapping[str, Any], step: int) -> None:
        self.run.summary.update({name: dict(values)})

    def close(self, status: str = "finished") -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


class MLflowTracker:
    """An MLflow run: ``mlflow.start_run`` with the fit's config as parameters, metrics, artifacts, ``end_run``.

    Sample grids are logged as artifacts under ``samples/`` (their file names
    carry the step); the summary as ``<name>.json`` and its numbers as metrics.
    Inside a run the caller already started, the fit's run is nested in it.
    """

    _STATUS: ClassVar[dict[str, str]] = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}

    def __init__(self, experiment: str | None, name: str, config: Mapping[str, Any]) -> None:
        self.mlflow = _import("mlflow", "tracker='mlflow' (--tracker mlflow)")
        if experiment is not None:
            self.mlflow.set_experiment(experiment)
        self.mlflow.start_run(run_name=name, nested=self.mlflow.active_run() is not None)
        try:
            self.mlflow.log_params({key: str(value) for key, value in config.items()})
        except BaseException:
            self.mlflow.end_run(status="FAILED")
            raise

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({name: float(value) for name, value in values.items()}, step=step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        self.mlflow.log_artifact(str(path), artifact_path=name)

    def log_summary(self, name: str, values: Mapping[str, Any], step: int) -> None:
        self.mlflow.log_dict(dict(values), f"{name}.json")
        scalars, _ = _flatten(values, name)
        if scalars:
            self.mlflow.log_metrics(scalars, step=step)

    def close(self, status: str = "finished") -> None:
        self.mlflow.end_run(status=self._STATUS[status])


class Trackers:
    """Several trackers as one (possibly none): each call goes to every one.

    A tracker that fails while logging or closing is reported and left out of
    later calls; the fit goes on, since its own files (``log.jsonl``, the
    grids, the export) are already written.
    """

    def __init__(self, trackers: list[Tracker] | None = None) -> None:
        self.trackers = list(trackers or [])

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as err:  # a tracker's network or server error must not end the fit
                logger.warning("%s.%s failed (%s: %s); it logs nothing more in this run",
                               type(tracker).__name__, method, type(err).__name__, err)
                self.trackers.remove(tracker)
                if method != "close":
                    self._close_quietly(tracker, "failed")

    @staticmethod
    def _close_quietly(tracker: Tracker, status: str) -> None:
        try:
            tracker.close(status)
        except Exception as err:  # the error that brought us here is the one to report
            logger.debug("closing %s failed too (%s: %s)", type(tracker).__name__, type(err).__name__, err)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self._each("log_scalars", values, step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        self._each("log_image", name, Path(path), step)

    def log_summary(self, name: str, values: Mapping[str, Any], step: int) -> None:
        self._each("log_summary", name, values, step)

    def close(self, status: str = "finished") -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._each("close", status)
        self.trackers = []


def open_trackers(config: FitConfig, run: Any, start_step: int) -> Trackers:
    """The trackers ``config`` asks for, opened for the run folder ``run`` starting after ``start_step``.

    If one cannot be opened (a W&B login missing, an MLflow server down), those
    already opened are closed as failed and a ``ValueError`` says which one and
    why; nothing has been trained by then.
    """
    opened: list[Tracker] = []
    try:
        if config.tensorboard:
            opened.append(TensorBoardTracker(run.tensorboard(start_step)))
        name = config.tracker_run_name or config.output_dir.name
        tracker_class = {"wandb": WandbTracker, "mlflow": MLflowTracker}.get(config.tracker or "")
        if tracker_class is not None:
            try:
                opened.append(tracker_class(config.tracker_project, name, config.to_dict()))
            except (ImportError, KeyboardInterrupt):
                raise
            except Exception as err:  # each library has its own errors for a missing login or an unreachable server
                raise ValueError(
                    f"tracker={config.tracker!r}: its run could not be started ({type(err).__name__}: {err}). "
                    "Nothing was trained. Check the library's own settings (wandb login, WANDB_MODE, "
                    "MLFLOW_TRACKING_URI) or fit without --tracker"
                ) from err
    except BaseException:
        for tracker in opened:
            Trackers._close_quietly(tracker, "failed")
        raise
    return Trackers(opened)
