"""Experiment trackers for gitaug-fit: W&B and MLflow through their own clients, replaced here by recording fakes."""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path

import pytest

from gitaug.fit import FitConfig, fit, trackers
from gitaug.fit.cli import build_parser, config_from_args, main
from gitaug.fit.run_folder import RunFolder
from test_fit import read_log, tiny


class FakeWandb(types.ModuleType):
    """The part of the ``wandb`` API the tracker uses, recording every call."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.runs: list[FakeWandbRun] = []
        self.fail_log_at: int | None = None

    def init(self, project=None, name=None, config=None):
        run = FakeWandbRun(self, project, name, config)
        self.runs.append(run)
        return run

    class Image:
        def __init__(self, path: str) -> None:
            assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path  # a written PNG
            self.path = path


class FakeWandbRun:
    def __init__(self, module: FakeWandb, project, name, config) -> None:
        self.module, self.project, self.name, self.config = module, project, name, config
        self.logged: list[tuple[dict, int]] = []
        self.summary: dict = {}
        self.finished: list[int] = []

    def log(self, values: dict, step: int) -> None:
        if self.module.fail_log_at is not None and step >= self.module.fail_log_at:
            raise RuntimeError("wandb server unreachable")
        self.logged.append((values, step))

    def finish(self, exit_code: int = 0) -> None:
        self.finished.append(exit_code)


class FakeMlflow(types.ModuleType):
    """The part of the ``mlflow`` fluent API the tracker uses, recording every call."""

    def __init__(self) -> None:
        super().__init__("mlflow")
        self.calls: list[tuple] = []
        self.active = None

    def set_experiment(self, name):
        self.calls.append(("set_experiment", name))

    def active_run(self):
        return self.active

    def start_run(self, run_name=None, nested=False):
        self.calls.append(("start_run", run_name, nested))
        self.active = object()
        return self.active

    def log_params(self, params):
        self.calls.append(("log_params", dict(params)))

    def log_metrics(self, metrics, step=None):
        self.calls.append(("log_metrics", dict(metrics), step))

    def log_artifact(self, local_path, artifact_path=None):
        assert Path(local_path).is_file()
        self.calls.append(("log_artifact", local_path, artifact_path))

    def log_dict(self, dictionary, artifact_file):
        json.dumps(dictionary)  # must be JSON-ready
        self.calls.append(("log_dict", dictionary, artifact_file))

    def end_run(self, status="FINISHED"):
        self.calls.append(("end_run", status))
        self.active = None

    def named(self, name: str) -> list[tuple]:
        return [call for call in self.calls if call[0] == name]


@pytest.fixture
def wandb(monkeypatch) -> FakeWandb:
    module = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


@pytest.fixture
def mlflow(monkeypatch) -> FakeMlflow:
    module = FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", module)
    return module


def exported_report(out: Path) -> dict:
    return json.loads((out / "generator" / "config.json").read_text())["training"]["report"]


def test_wandb_gets_the_log_the_grids_and_the_report(digits_npz, tmp_path, wandb):
    out = tmp_path / "run"
    config = tiny(digits_npz, out, steps=4, sample_every=2, report=True, tracker="wandb", tracker_project="gitaug-tests")
    fit(config)
    [run] = wandb.runs
    assert (run.project, run.name, run.config) == ("gitaug-tests", "run", config.to_dict())
    # Every log.jsonl line, under the same names, at its step.
    scalars = [(values, step) for values, step in run.logged if "samples" not in values]
    assert [step for _, step in scalars] == [1, 2, 3, 4]
    for (values, _), record in zip(scalars, read_log(out)):
        assert values == {name: value for name, value in record.items() if name != "step"}
    # The grid written at step 2, and the final one.
    images = [(values["samples"], step) for values, step in run.logged if "samples" in values]
    assert [step for _, step in images] == [2, 4]
    assert [Path(image.path).name for image, _ in images] == ["step-00000002.png", "step-00000004.png"]
    # The generator report, as the export stores it.
    assert run.summary["report"] == exported_report(out) and "verdict" in run.summary["report"]
    assert run.finished == [0]


def test_mlflow_gets_the_log_the_grids_and_the_report(digits_npz, tmp_path, mlflow):
    out = tmp_path / "run"
    config = tiny(digits_npz, out, steps=3, sample_every=2, report=True, tracker="mlflow",
                  tracker_project="digits", tracker_run_name="first try")
    fit(config)
    assert mlflow.calls[:3] == [("set_experiment", "digits"), ("start_run", "first try", False),
                                ("log_params", {name: str(value) for name, value in config.to_dict().items()})]
    metrics = [(values, step) for _, values, step in mlflow.named("log_metrics")]
    logged = [(values, step) for values, step in metrics if "loss_image" in values]
    assert [step for _, step in logged] == [1, 2, 3]
    assert logged[0][0] == {name: value for name, value in read_log(out)[0].items() if name != "step"}
    assert [(Path(path).name, folder) for _, path, folder in mlflow.named("log_artifact")] == [
        ("step-00000002.png", "samples"), ("step-00000003.png", "samples")]
    report = exported_report(out)
    assert mlflow.named("log_dict") == [("log_dict", report, "report.json")]
    [(report_metrics, step)] = [(values, step) for values, step in metrics if "report/draw_spread" in values]
    assert step == 3 and report_metrics["report/draw_spread"] == report["draw_spread"]
    assert mlflow.calls[-1] == ("end_run", "FINISHED")


@pytest.mark.parametrize("error, status, exit_code", [(OSError("disk full"), "FAILED", 1),
                                                      (KeyboardInterrupt(), "KILLED", 1)])
def test_the_tracker_run_is_ended_when_the_fit_raises(digits_npz, tmp_path, wandb, mlflow, monkeypatch,
                                                      error, status, exit_code):
    def broken_save(self, state, step, keep):
        raise error

    monkeypatch.setattr(RunFolder, "save_checkpoint", broken_save)
    for tracker in ("wandb", "mlflow"):
        with pytest.raises(type(error)):
            fit(tiny(digits_npz, tmp_path / tracker, steps=4, checkpoint_every=2, tracker=tracker))
    [run] = wandb.runs
    assert [step for _, step in run.logged] == [1, 2]  # it logged until the failure
    assert run.finished == [exit_code]
    assert mlflow.calls[-1] == ("end_run", status) and len(mlflow.named("end_run")) == 1


def test_a_tracker_that_stops_working_does_not_stop_the_fit(digits_npz, tmp_path, wandb, caplog):
    wandb.fail_log_at = 3
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="gitaug.fit"):
        fit(tiny(digits_npz, out, steps=4, tracker="wandb"))
    [run] = wandb.runs
    assert [step for _, step in run.logged] == [1, 2]
    assert run.finished == [1]  # closed as failed at once, and not again at the end
    assert "WandbTracker.log_scalars failed (RuntimeError: wandb server unreachable)" in caplog.text
    assert len(read_log(out)) == 4 and (out / "generator" / "model.safetensors").is_file()


def test_tensorboard_is_one_of_the_trackers_and_gets_the_report(digits_npz, tmp_path, wandb):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=2, report=True, tensorboard=True, tracker="wandb"))  # both at once
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    report = exported_report(out)
    assert [e.step for e in events.Scalars("loss_image")] == [1, 2]
    [draw_spread] = events.Scalars("report/draw_spread")
    assert draw_spread.step == 2 and draw_spread.value == pytest.approx(report["draw_spread"])
    assert "report/verdict/text_summary" in events.Tags()["tensors"]
    assert [e.step for e in events.Images("samples")] == [2]
    assert wandb.runs[0].finished == [0] and wandb.runs[0].summary["report"] == report


def test_a_tracker_that_cannot_start_is_named_and_tensorboard_is_closed(digits_npz, tmp_path, wandb, monkeypatch,
                                                                         capsys):
    pytest.importorskip("tensorboard")

    def no_login(**kwargs):
        raise RuntimeError("api_key not configured (no-tty)")

    monkeypatch.setattr(wandb, "init", no_login)
    out = tmp_path / "run"
    closed = []
    original_close = trackers.TensorBoardTracker.close
    monkeypatch.setattr(trackers.TensorBoardTracker, "close",
                        lambda self, status="finished": (closed.append(status), original_close(self, status)))
    argv = ["--data", str(digits_npz), "--out", str(out), "--steps", "2", "--tracker", "wandb", "--tensorboard",
            "--no-progress", "--no-report", "--warp", "none"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "tracker='wandb': its run could not be started (RuntimeError: api_key not configured" in error
    assert "Nothing was trained" in error and closed == ["failed"]
    assert not (out / "checkpoints").exists() or not list((out / "checkpoints").iterdir())


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_a_missing_library_is_named_before_anything_is_written(digits_npz, tmp_path, monkeypatch, capsys, tracker):
    monkeypatch.setitem(sys.modules, tracker, None)  # makes `import <tracker>` raise ImportError
    out = tmp_path / "run"
    with pytest.raises(ImportError, match=rf"tracker='{tracker}' \(--tracker {tracker}\) needs the {tracker} "
                                          rf"package, which is not installed: pip install {tracker}"):
        fit(tiny(digits_npz, out, tracker=tracker))
    assert not out.exists()
    assert main(["--data", str(digits_npz), "--out", str(out), "--tracker", tracker, "--no-progress"]) == 2
    assert f"pip install {tracker}" in capsys.readouterr().err
    assert not out.exists()


def test_tracker_flags_and_their_checks():
    args = build_parser().parse_args(["--dataset", "digits-bg-lt", "--tracker", "mlflow", "--tracker-project", "p",
                                      "--tracker-run-name", "r"])
    config = config_from_args(args)
    assert (config.tracker, config.tracker_project, config.tracker_run_name) == ("mlflow", "p", "r")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--dataset", "digits-bg-lt", "--tracker", "neptune"])
    with pytest.raises(ValueError, match=r"tracker_project='p': needs a tracker"):
        FitConfig(dataset="digits-bg-lt", tracker_project="p")
    with pytest.raises(ValueError, match=r"tracker='comet': must be one of \('wandb', 'mlflow'\)"):
        FitConfig(dataset="digits-bg-lt", tracker="comet")
    with pytest.raises(ValueError, match=r"tracker_run_name='': must be a non-empty string"):
        FitConfig(dataset="digits-bg-lt", tracker="wandb", tracker_run_name="")
