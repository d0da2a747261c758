"""The ``gitaug`` command, run as a user runs it: in a subprocess, on tiny inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gitaug import __version__
from gitaug.cli import main


ROOT = Path(__file__).resolve().parents[1]


def gitaug(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "gitaug.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)



def test_help_and_version_import_no_torch():
    code = (
        "import sys, contextlib, io\n"
        "from gitaug.cli import main\n"
        "for argv in (['--help'], ['--version'], ['fit', '--help'], ['preview', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as stop:\n"
        "            assert stop.code == 0, (argv, stop.code)\n"
        "    assert out.getvalue(), argv\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_lists_the_subcommands_and_version_prints_it():
    done = gitaug("--help")
    assert done.returncode == 0
    for command in ("fit", "preview", "eval", "push", "list"):
        assert command in done.stdout
    assert gitaug("--version").stdout.strip() == f"gitaug {__version__}"
    fit_help = gitaug("fit", "--help")
    assert fit_help.returncode == 0 and fit_help.stdout.startswith("usage: gitaug fit")
    assert "--weight-diversity" in fit_help.stdout


def test_preview_writes_a_labelled_png(generator_folder, npz, tmp_path):
    out = tmp_path / "grids" / "grid.png"
    done = gitaug("preview", "--generator", str(generator_folder), "--data", str(npz), "--out", str(out),
                  "--variants", "3")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "3 rows" in done.stdout
    picture = np.asarray(Image.open(out).convert("L"))
    # 3 rows (one per class) of 64-pixel cells; 1 real + 3 generated columns, after a 112-pixel label margin.
    assert picture.shape == (3 * 66 + 2, 112 + 4 * 66 + 2)
    margin = picture[:, :112]
    assert (margin > 200).any()  # the labels' white text
    assert not [p for p in out.parent.iterdir() if p.name != "grid.png"]  # no temporary file left


def test_preview_draws_with_a_given_warp_extent_and_names_a_bad_one(generator_folder, npz, tmp_path):
    out = tmp_path / "grid.png"
    done = gitaug("preview", "--generator", str(generator_folder), "--data", str(npz), "--out", str(out),
                  "--variants", "2", "--warp-extent", "0")
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    bad = gitaug("preview", "--generator", str(generator_folder), "--data", str(npz), "--out", str(tmp_path / "b.png"),
                 "--warp-extent", "-1")
    assert bad.returncode != 0 and "--warp-extent" in bad.stderr and "finite number >= 0" in bad.stderr
    assert not (tmp_path / "b.png").exists()


def test_preview_reads_an_image_folder_and_names_its_classes(generator_folder, tmp_path):
    from gitaug.cli import _row_labels, _training_counts
    from gitaug.fit.grid import grid_rows

    root = tmp_path / "folder"
    rng = np.random.default_rng(1)
    for name, count in (("cat", 4), ("dog", 2)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / name / f"{i}.png")
    out = tmp_path / "folder.png"
    done = gitaug("preview", "--generator", str(generator_folder), "--data", str(root), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (112 + 9 * 66 + 2, 2 * 66 + 2)
    # The generator was trained on other classes: the counts come from the data given.
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    rows = grid_rows(labels, 6)
    assert _row_labels(labels, rows, ["cat", "dog"], {"class_names": ["a", "b"], "class_counts": [9, 9]}) == [
        "dog\n2 images", "cat\n4 images"]
    # The same classes as in training: the training counts.
    assert _row_labels(labels, rows, ["cat", "dog"], {"class_names": ["cat", "dog"], "class_counts": [50, 5]}) == [
        "dog\n5 in training", "cat\n50 in training"]
    # Balanced held-out images of the training classes: the rows follow the training counts, smallest first.
    balanced = torch.tensor([0, 0, 1, 1])
    sizes = _training_counts(balanced, ["cat", "dog"], {"class_names": ["cat", "dog"], "class_counts": [50, 5]})
    assert sizes == [50, 5] and balanced[grid_rows(balanced, 4, class_sizes=sizes)].tolist() == [1, 0]
    assert _training_counts(balanced, ["cat", "dog"], {"class_names": ["a", "b"], "class_counts": [50, 5]}) is None


def test_eval_flags_an_untrained_generator_and_writes_json(generator_folder, npz, tmp_path):
    report = tmp_path / "report.json"
    done = gitaug("eval", "--generator", str(generator_folder), "--data", str(npz), "--json", str(report))
    assert done.returncode == 1, done.stderr  # not usable: status 1
    assert "Not ready for GIT" in done.stdout
    saved = json.loads(report.read_text())
    assert saved["status"] != "ok" and saved["warnings"]
    assert saved["num_images"] == 21 and saved["data"] == str(npz)


def test_bad_inputs_are_named(generator_folder, tmp_path, capsys):
    # In-process: the subprocess path is covered above, and each subprocess pays torch's import.
    assert main(["preview", "--generator", str(tmp_path / "nothing"), "--data", "digits-lt"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("gitaug preview: error: --generator") and "nothing" in error
    assert main(["eval", "--generator", str(generator_folder), "--data", str(tmp_path / "missing.npz")]) == 2
    error = capsys.readouterr().err
    assert "missing.npz" in error and "built-in dataset" in error
    assert main(["preview", "--generator", "x", "--data", "y", "--rows", "0"]) == 2
    assert main(["preview", "--generator", "x", "--data", "y", "--out", "grid.jpg"]) == 2
    assert main(["push", str(tmp_path), "me/repo"]) == 2  # not a generator folder


def test_push_uploads_the_folder(generator_folder, monkeypatch, capsys):
    import huggingface_hub

    calls = {}

    class RecordingApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["create"] = (repo_id, private)

        def upload_folder(self, repo_id, folder_path, commit_message, revision=None, **kwargs):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return "https://hub.example/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    assert main(["push", str(generator_folder), "me/gen", "--private", "--token", "t"]) == 0
    assert calls["create"] == ("me/gen", True) and calls["token"] == "t"
    assert {"config.json", "model.safetensors", "README.md"} <= set(calls["files"])
    assert "https://hub.example/commit/1" in capsys.readouterr().out
