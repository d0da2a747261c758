"""gitaug-fit from the command line: flags, config files, errors, torchrun with two processes, SIGKILL and resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gitaug import GITAugment
from gitaug.fit import FitConfig, fit
from gitaug.fit.cli import build_parser, config_from_args, main
from test_fit import read_log, tiny

# Every FitConfig field has a plain default.
DEFAULTS = {field.name: field.default for field in dataclasses.fields(FitConfig)}


def as_argv(config: FitConfig) -> list[str]:
    """The gitaug-fit flags that rebuild ``config``: one per field that differs from its default."""
    argv: list[str] = []
    for field in dataclasses.fields(FitConfig):
        value = getattr(config, field.name)
        if value is None or value == DEFAULTS[field.name]:
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.name in ("progress", "report"):
            argv.append(f"--no-{field.name}")  # the switches that turn a default True off
        elif isinstance(value, bool):
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


def parse(argv: list[str]) -> FitConfig:
    return config_from_args(build_parser().parse_args(argv))


def run_main(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether it returns it or exits through argparse."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code
    finally:
        logging.captureWarnings(False)  # main() routes warnings into logging; give them back to pytest


def subprocess_env() -> dict[str, str]:
    # One thread per process: the tests share a small machine with whatever else runs on it.
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def failure_report(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"


# --------------------------------------------------------------------------- --help and flags


def test_help_documents_every_fitconfig_field_as_a_flag(capsys):
    assert run_main(["--help"]) == 0
    help_text = capsys.readouterr().out

    assert help_text.startswith("usage: gitaug-fit")
    missing = []
    for field in dataclasses.fields(FitConfig):
        flag = f"--no-{field.name}" if field.name in ("progress", "report") else "--" + field.name.replace("_", "-")
        # Whole flags only: --data must not be found inside --dataset.
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text):
            missing.append(flag)
    assert missing == []
    assert "--config FILE" in help_text


def test_every_fitconfig_field_round_trips_through_its_flag(tmp_path):
    # Every field set away from its default (resume and overwrite exclude each other, so two configs).
    everything = FitConfig(
        data=str(tmp_path / "x.npz"), image_size=24, channels=3, sampling="instance", seed=3, out=str(tmp_path / "o"),
        resume=True, preset="paper", dim=12, mlp_dim=20, style_dim=6, n_res=2, disc_dim=16, disc_layers=3,
        disc_scales=1, steps=11, batch_size=6, lr=0.0003, lr_disc=0.002, beta1=0.25, beta2=0.99, weight_decay=0.0, lr_step_every=50,
        lr_gamma=0.25, weight_image=5.0, weight_style=0.5, weight_content=2.0, weight_adv=0.75, warp="rotation",
        weight_diversity=0.5, weight_warp_diversity=3.0, diversity_cap=0.4, device="cpu",
        amp="bf16", checkpoint_every=7, keep_checkpoints=5, sample_every=9, log_every=2, grid_variants=3,
        tensorboard=True, push_to_hub="someone/generator", progress=False, probe_steps=50, report=False,
        tracker="wandb", tracker_project="gitaug", tracker_run_name="first", warp_background="keep", warp_flip="keep",
    )
    # The fixed warp ranges need warp="auto" or "affine", so they are set in another config; contrast too.
    ranges = {"warp_rotation", "warp_scale", "warp_shift"}
    changed = {f.name for f in dataclasses.fields(FitConfig) if getattr(everything, f.name) != DEFAULTS[f.name]}
    assert changed == {f.name for f in dataclasses.fields(FitConfig)} - {"dataset", "overwrite", "warp_contrast"} - ranges
    assert parse(as_argv(everything)) == everything
    contrast = FitConfig(dataset="digits-lt", warp_contrast="keep")
    assert contrast.warp_contrast != DEFAULTS["warp_contrast"] and parse(as_argv(contrast)) == contrast

    other = FitConfig(dataset="digits-bg-lt", overwrite=True, warp="affine", warp_rotation=30.0, warp_scale=1.2, warp_shift=0.1)
    assert {name for name in ranges if getattr(other, name) != DEFAULTS[name]} == ranges
    assert parse(as_argv(other)) == other


# --------------------------------------------------------------------------- config files


def test_json_config_file_is_read_and_flags_override_it(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"data": "images.npz", "steps": 7, "batch-size": 8, "lr": 0.001, "progress": True}))

    config = parse(["--config", str(path), "--steps", "3", "--no-progress"])

    assert (config.steps, config.progress) == (3, False)  # flags win
    assert (config.data, config.batch_size, config.lr) == ("images.npz", 8, 0.001)  # the file's values
    assert config.preset == "small" and config.log_every == 10  # untouched defaults


@pytest.mark.parametrize("table", ["", "[fit]\n"], ids=["top-level", "fit-table"])
def test_toml_config_file_is_read_and_flags_override_it(tmp_path, table):
    path = tmp_path / "fit.toml"
    path.write_text(
        table
        + 'data = "images.npz"\nsteps = 7\nbatch_size = 8\npreset = "paper"\nresume = false\nsampling = "instance"\n'
    )

    config = parse(["--config", str(path), "--batch-size", "16", "--resume"])

    assert (config.batch_size, config.resume) == (16, True)  # flags win
    assert (config.data, config.steps, config.preset, config.sampling) == ("images.npz", 7, "paper", "instance")


@pytest.mark.parametrize(
    "name, text",
    [
        ("fit.json", '{"data": "images.npz", "batchsize": 8}'),
        ("fit.toml", 'data = "images.npz"\nbatchsize = 8\n'),
        ("fit.toml", '[fit]\ndata = "images.npz"\nbatchsize = 8\n'),
    ],
    ids=["json", "toml", "toml-fit-table"],
)
def test_unknown_key_in_a_config_file_is_an_error_naming_it(tmp_path, capsys, name, text):
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(ValueError, match=r"unknown FitConfig field\(s\) \['batchsize'\]"):
        parse(["--config", str(path)])
    assert run_main(["--config", str(path)]) == 2
    assert "unknown FitConfig field(s) ['batchsize']" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad values


BAD_VALUES = [
    (["--batch-size", "0"], "batch_size=0: must be a positive integer"),
    (["--batch-size", "eight"], "argument --batch-size: invalid int value: 'eight'"),
    (["--lr", "-0.1"], "lr=-0.1: must be a positive, finite number"),
    (["--lr-disc", "0"], "lr_disc=0.0: must be a positive, finite number"),
    (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["--channels", "2"], "argument --channels: invalid choice: 2"),
    (["--device", "gpu7"], "device='gpu7'"),
    (["--threads", "0"], "--threads must be a positive integer, got 0"),
    (["--resume", "--overwrite"], "choose one of resume and overwrite"),
    (["--config", "nowhere.toml"], "config file 'nowhere.toml' does not exist"),
]


@pytest.mark.parametrize("argv, message", BAD_VALUES, ids=[" ".join(argv) for argv, _ in BAD_VALUES])
def test_bad_value_exits_with_status_2_naming_it(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # relative paths (nowhere.toml) resolve in an empty folder
    status = run_main(["--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "run"), *argv])

    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert "gitaug-fit: error:" in err
    assert not (tmp_path / "run").exists()  # refused before writing anything


def test_missing_data_exits_with_status_2_naming_the_path(tmp_path, capsys):
    status = run_main(["--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "run"), "--no-progress"])

    assert status == 2
    assert re.search(r"gitaug-fit: error: data=.*missing\.npz.* does not exist", capsys.readouterr().err)


# --------------------------------------------------------------------------- a run through main()


def test_tiny_run_through_main_exits_0_and_exports(digits_npz, tmp_path, capsys):
    out = tmp_path / "run"
    status = run_main(as_argv(tiny(digits_npz, out, steps=3, device="cpu")))

    assert status == 0
    assert (out / "generator" / "config.json").is_file() and (out / "generator" / "model.safetensors").is_file()
    assert f"the generator is in {out / 'generator'}" in capsys.readouterr().out
    meta = GITAugment.from_pretrained(out).metadata
    assert (meta["steps"], meta["batch_size"], meta["processes"]) == (3, 4, 1)


# --------------------------------------------------------------------------- torchrun, two processes on the CPU


def torchrun(argv: list[str], processes: int = 2) -> list[str]:
    # The interpreter running the tests, not whatever torchrun is on PATH.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "gitaug.fit.cli", *argv]


def test_two_process_run_exports_once_and_matches_a_single_process_run(digits_npz, tmp_path):
    # The paper's objective: its losses are means over the batch, so two half batches with averaged
    # gradients are the whole batch. (The bounded mode-seeking term is a ratio per process, which is
    # not the ratio of the whole batch; the warp/diversity test below runs it under torchrun.)
    config = tiny(digits_npz, tmp_path / "two", steps=4, device="cpu", warp="none", weight_diversity=0.0)
    result = subprocess.run(torchrun(as_argv(config)), cwd=tmp_path, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, failure_report(result)

    out = tmp_path / "two"
    # One export, written by rank 0 only: no second folder, no log line written twice.
    assert sorted(tmp_path.rglob("model.safetensors")) == [out / "generator" / "model.safetensors"]
    assert sorted(tmp_path.rglob("config.json")) == [out / "generator" / "config.json"]
    assert [record["step"] for record in read_log(out)] == [1, 2, 3, 4]
    # fp32 inference: the comparison is of the fitted weights, not of bf16 rounding.
    two = GITAugment.from_pretrained(out, dtype=torch.float32)
    assert two.metadata["processes"] == 2 and two.metadata["steps"] == 4

    # Averaged gradients over two half batches equal the gradient of the whole batch, so one process with
    # the same global batch trains the same networks (up to float rounding; without gradient sync the
    # losses differ by ~1e-2 relative and the outputs by ~3e-2 after these four steps).
    one_out = fit(config.replace(out=str(tmp_path / "one"))).parent
    for a, b in zip(read_log(one_out), read_log(out)):
        for name in ("loss_image", "loss_style", "loss_content", "loss_adv", "loss_disc"):
            assert b[name] == pytest.approx(a[name], rel=1e-4), (a["step"], name)
    images = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    one = GITAugment.from_pretrained(one_out, dtype=torch.float32)
    expected = one(images, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(two(images, generator=torch.Generator().manual_seed(1)), expected, atol=1e-3, rtol=0)


def test_two_process_run_with_warp_and_diversity_terms(digits_npz, tmp_path):
    # Every generator parameter a step uses must go through the DDP-wrapped forward, the warp and the
    # second draw included; DDP stops the run with an error otherwise.
    config = tiny(digits_npz, tmp_path / "two", steps=2, device="cpu", warp="rotation", weight_diversity=1.0,
                  weight_warp_diversity=1.0)
    result = subprocess.run(torchrun(as_argv(config)), cwd=tmp_path, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, failure_report(result)
    records = read_log(tmp_path / "two")
    assert [record["step"] for record in records] == [1, 2]
    assert all(record["loss_diversity"] > 0 and record["loss_warp_diversity"] > 0 for record in records)
    assert GITAugment.from_pretrained(tmp_path / "two").generator.config.warp == "rotation"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_to_torchrun_stops_both_processes_with_a_checkpoint(digits_npz, tmp_path):
    # torchrun forwards the signal to each worker; the workers agree to stop after the same step and
    # must report the signal that arrived (their signal numbers once summed to another signal: SIGILL).
    out = tmp_path / "run"
    argv = as_argv(tiny(digits_npz, out, steps=100_000, checkpoint_every=0, device="cpu"))
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen(torchrun(argv), cwd=tmp_path, env=subprocess_env(), stdout=stdout,
                                stderr=stderr)
        try:
            wait_for(lambda: len(logged_steps(out)) >= 2, proc, what="two logged steps")
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr_text = (tmp_path / "stderr").read_text()

    stopped = re.findall(r"gitaug-fit: stopped by (\w+) after step (\d+)", stderr_text)
    assert len(stopped) == 2, stderr_text[-3000:]  # both workers stopped cleanly ...
    assert {name for name, _ in stopped} == {"SIGINT"}  # ... naming the signal that was sent ...
    assert len({step for _, step in stopped}) == 1  # ... after the same step
    step = int(stopped[0][1])
    state = torch.load(out / "checkpoints" / f"step-{step:08d}.pt", map_location="cpu", weights_only=True)
    assert state["step"] == step and state["world_size"] == 2
    assert not (out / "model.safetensors").exists()  # interrupted: no export


# --------------------------------------------------------------------------- SIGKILL, then --resume


def logged_steps(out: Path) -> list[int]:
    """Steps in log.jsonl, skipping a line still being written."""
    path = out / "log.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps


def checkpoint_steps(out: Path) -> list[int]:
    folder = out / "checkpoints"
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("step-*.pt")) if folder.is_dir() else []


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkilled_run_resumes_to_the_end_without_duplicate_log_lines(digits_npz, tmp_path):
    out = tmp_path / "run"
    steps = 40
    argv = as_argv(tiny(digits_npz, out, steps=steps, checkpoint_every=5, keep_checkpoints=2, device="cpu"))
    command = [sys.executable, "-m", "gitaug.fit.cli", *argv]

    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(), stdout=log, stderr=log)
        try:
            # Kill once a checkpoint exists and the log has gone past it, so the resumed run has
            # log lines to drop and steps to redo.
            wait_for(
                lambda: checkpoint_steps(out) and max(logged_steps(out), default=0) > checkpoint_steps(out)[-1],
                proc,
                what="a checkpoint followed by a logged step",
            )
            proc.send_signal(signal.SIGKILL)  # no handler, no final checkpoint
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resume_from = checkpoint_steps(out)[-1]
    assert max(logged_steps(out)) > resume_from
    assert not (out / "generator" / "model.safetensors").exists()

    result = subprocess.run(command + ["--resume"], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 0, failure_report(result)
    assert f"from step {resume_from}" in result.stderr  # it resumed rather than starting over
    assert logged_steps(out) == list(range(1, steps + 1))  # each step once, ending at the last
    assert (out / "generator" / "config.json").is_file() and (out / "generator" / "model.safetensors").is_file()
    assert GITAugment.from_pretrained(out).metadata["steps"] == steps
    assert checkpoint_steps(out)[-1] == steps
    assert sorted(p.name for p in out.rglob("*.tmp")) == []  # no half-written checkpoint (or log, or json)

def test_two_process_default_run_shares_the_tested_ranges(digits_npz, tmp_path):
    # Every process runs the nuisance test; rank 0's ranges are broadcast, and the export holds them.
    config = tiny(digits_npz, tmp_path / "two", steps=2, device="cpu")
    result = subprocess.run(torchrun(as_argv(config)), cwd=tmp_path, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, failure_report(result)
    aug = GITAugment.from_pretrained(tmp_path / "two")
    assert aug.generator.config.warp == "affine"
    assert aug.metadata["nuisance"]["rotation_degrees"] == aug.generator.config.warp_rotation
