"""Faults a user meets with gitaug-fit: broken data files, a full disk, an unreachable Hub."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from gitaug._files import atomic_write
from gitaug.fit import FitConfig, fit
from gitaug.fit.data import read_training_data
from test_fit import checkpoint_state, tiny


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _truncated(path: Path) -> Path:
    np.savez(path, images=np.zeros((40, 16, 16), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


IMAGES = np.zeros((4, 16, 16), np.uint8)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: (p.write_bytes(b""), p)[1], r"is not a readable \.npz file \(0 bytes\)"),
        (_truncated, r"is not a readable \.npz file"),
        (lambda p: (p.write_bytes(b"PK\x03\x04 not really a zip"), p)[1], r"is not a readable \.npz file"),
        (lambda p: _write(p, images=IMAGES, labels=np.array([0, 1, 2, 10**9])), r"label 1000000000 is larger than 4 images"),
        (lambda p: _write(p, images=IMAGES, labels=np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64)),
         r"label 18446744073709551615 is larger"),
        (lambda p: _write(p, images=np.zeros((5, 0, 0), np.uint8)), r"are 0x0 pixels"),
        (lambda p: _write(p, images=np.zeros((3, 2048, 2048), np.uint8)), r"2048x2048.*--image-size"),
        (lambda p: _write(p, pictures=IMAGES), r"no 'images' array"),
    ],
    ids=["empty", "truncated", "not-a-zip", "huge-label", "uint64-label", "zero-size", "huge-images", "no-images"],
)
def test_bad_npz_data_is_a_clear_error_and_nothing_is_written(tmp_path, make, message):
    data = make(tmp_path / "data.npz")
    with pytest.raises(ValueError, match=message):
        read_training_data(data=data)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        fit(FitConfig(data=str(data), out=str(out), progress=False))
    assert not out.exists()  # the data is read and checked before anything is written


def test_labels_may_name_classes_without_images_when_names_are_given(tmp_path):
    data = _write(tmp_path / "d.npz", images=IMAGES, labels=np.array([0, 0, 9, 9]),
                  classes=np.array([f"c{i}" for i in range(10)]))
    read = read_training_data(data=data)
    assert read.classes[9] == "c9" and read.class_counts.tolist() == [2] + [0] * 8 + [2]


def test_an_unreachable_hub_fails_before_training(digits_npz, tmp_path):
    out = tmp_path / "run"
    argv = ["--data", str(digits_npz), "--out", str(out), "--steps", "2", "--image-size", "16", "--no-progress",
            "--push-to-hub", "me/unreachable"]
    # Port 9 (discard) refuses connections at once: an endpoint nothing answers on.
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_test", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "gitaug.fit.cli", *argv], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert "push_to_hub='me/unreachable': the Hub repo cannot be reached" in result.stderr
    assert "Nothing was trained" in result.stderr and "gitaug push" in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only; room for two checkpoints of the tiny run); skipped where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_nothing(small_disk):
    target = small_disk / "file.bin"
    target.write_bytes(b"old content")

    def write(temporary: str) -> None:
        with open(temporary, "wb") as file:
            file.write(b"x" * (4 << 20))

    with pytest.raises(OSError, match=r"no space left on device while writing .*file\.bin"):
        atomic_write(target, write)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in small_disk.iterdir()) == ["file.bin"]


def test_a_full_disk_during_a_fit_keeps_the_last_good_checkpoint(digits_npz, small_disk):
    out = small_disk / "run"
    config = tiny(digits_npz, out, steps=500, checkpoint_every=1, keep_checkpoints=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OSError, match=r"no space left on device while writing .*step-\d+\.pt"):
            fit(config)
    checkpoints = out / "checkpoints"
    assert not [p.name for p in checkpoints.iterdir() if p.name.endswith(".tmp")]  # nothing half-written is left
    last_good = checkpoint_state(out)["step"]
    assert last_good >= 1
    # Make room (as a user would) and resume from the last good checkpoint.
    for path in sorted(checkpoints.glob("step-*.pt"))[:-1]:
        path.unlink()
    resumed = config.replace(steps=last_good + 1, keep_checkpoints=1, resume=True)
    fit(resumed)
    assert checkpoint_state(out)["step"] == last_good + 1
