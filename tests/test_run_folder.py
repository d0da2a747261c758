"""The run folder: what gitaug-fit may write and delete, and checkpoints that prove their integrity."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from gitaug.fit import fit
from gitaug.fit.cli import build_parser, config_from_args
from gitaug.hub import is_generator_folder
from test_fit import checkpoint_state, tiny


def test_overwrite_removes_only_what_the_run_wrote(digits_npz, tmp_path):
    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=4))  # checkpoints at steps 2 and 4
    # A user puts their own files into the run folder and its parts.
    foreign = {
        out / "notes.md": b"my notes",
        out / "checkpoints" / "classifier_epoch90.pt": b"not ours",
        out / "samples" / "0-3.png": b"also not ours",
        out / "generator" / "extra.txt": b"kept",
    }
    for path, content in foreign.items():
        path.write_bytes(content)
    fit(tiny(digits_npz, out, steps=3, overwrite=True))
    for path, content in foreign.items():
        assert path.read_bytes() == content, path
    assert checkpoint_state(out)["step"] == 3
    # The old run's step 4 is gone; the new run wrote steps 2 and 3.
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*.pt")) == ["step-00000002.pt", "step-00000003.pt"]
    assert is_generator_folder(out / "generator")


def test_a_symlinked_checkpoint_folder_is_refused(digits_npz, tmp_path):
    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=2))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "step-00000001.pt").write_bytes(b"someone else's")
    for path in (out / "checkpoints").iterdir():
        path.unlink()
    (out / "checkpoints").rmdir()
    (out / "checkpoints").symlink_to(elsewhere)
    for flags in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match="checkpoints/ is a symbolic link"):
            fit(tiny(digits_npz, out, steps=4, **flags))
    assert (elsewhere / "step-00000001.pt").read_bytes() == b"someone else's"


@pytest.mark.parametrize("damage", ["flip", "garbage"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(digits_npz, tmp_path, damage, caplog):
    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=4, checkpoint_every=2, keep_checkpoints=3))
    newest = out / "checkpoints" / "step-00000004.pt"
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    else:
        data = bytearray(b"\x00garbage" * 100)
    newest.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="gitaug.fit"):
        fit(tiny(digits_npz, out, steps=6, checkpoint_every=2, keep_checkpoints=3, resume=True))
    assert "step-00000004.pt cannot be used" in caplog.text
    assert checkpoint_state(out)["step"] == 6


def test_resume_from_the_command_line_reloads_the_stored_settings(digits_npz, tmp_path):
    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=2, batch_size=8, seed=3))
    config = config_from_args(build_parser().parse_args(["--out", str(out), "--resume", "--steps", "4"]))
    assert config.resume and config.steps == 4
    assert config.batch_size == 8 and config.seed == 3 and Path(config.data) == digits_npz
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(config)
    assert checkpoint_state(out)["step"] == 4


def test_resume_checks_the_checkpoints_own_config_when_fit_config_json_is_gone(digits_npz, tmp_path):
    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=2))
    (out / "fit_config.json").unlink()
    with pytest.raises(ValueError, match=r"started with batch_size=4 \(now 8\)"):
        fit(tiny(digits_npz, out, steps=4, batch_size=8, resume=True))


def test_checkpoints_carry_a_checksum(digits_npz, tmp_path):
    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=2))
    checkpoint = out / "checkpoints" / "step-00000002.pt"
    import hashlib

    expected = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert (out / "checkpoints" / "step-00000002.pt.sha256").read_text().strip() == expected
    assert torch.load(checkpoint, weights_only=True)["step"] == 2


def test_without_a_progress_bar_the_fit_still_reports_progress(digits_npz, tmp_path, caplog):
    with caplog.at_level("INFO", logger="gitaug.fit"):
        fit(tiny(digits_npz, tmp_path / "run", steps=3, progress=False))
    assert "gitaug-fit: step 3/3 (100 %)" in caplog.text


def test_print_config_shows_the_settings_and_fits_nothing(digits_npz, tmp_path, capsys):
    import json

    from gitaug.fit.cli import main

    out = tmp_path / "run"
    assert main(["--data", str(digits_npz), "--out", str(out), "--steps", "7", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["steps"] == 7 and printed["warp"] == "auto" and printed["report"] is True
    assert not out.exists()


def test_tensorboard_gets_the_sample_grids(digits_npz, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    fit(tiny(digits_npz, out, steps=2, sample_every=1, tensorboard=True))
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "samples" in events.Tags()["images"]
    assert sorted(image.step for image in events.Images("samples")) == [1, 2]
