"""The scripts that complete a generator folder (``scripts/``), run as a user runs them."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitaug.transfer import TransferTest

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "gitaug" / "pretrained"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "recommend_draw.py"), *args],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def run_here(capsys, monkeypatch):
    """The script run in this process (as ``python scripts/recommend_draw.py ARGS`` would run it, without the
    seconds a new interpreter spends importing torch): for the calls after a test's first, real, one."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))

    def run(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", ["recommend_draw.py", *args])
        code = 0
        try:
            runpy.run_path(str(ROOT / "scripts" / "recommend_draw.py"), run_name="__main__")
        except SystemExit as exit:  # what the interpreter would print and return
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            if not isinstance(exit.code, int) and exit.code is not None:
                print(exit.code, file=sys.stderr)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def test_recommend_draw_applies_the_current_rule_to_a_folder_s_stored_test_without_training(tmp_path, run_here):
    folder = tmp_path / "fmnist-rot-lt"
    shutil.copytree(PRETRAINED / "fmnist-rot-lt", folder)
    before = json.loads((folder / "config.json").read_text())["training"]
    expected = TransferTest.from_dict(before["draw_test"])
    done = _run(str(folder), "--stored-test")
    assert done.returncode == 0, done.stderr
    after = json.loads((folder / "config.json").read_text())["training"]
    assert after["draw_test"] == before["draw_test"]  # the figures stay; only the choice is made again
    chosen = expected.recommended()
    assert {k: v for k, v in after["draw"].items() if k != "chosen"} == {**expected.settings[chosen], "warp_extent": 1.0}
    assert after["draw"]["chosen"] == expected.summary()
    # and how far it moves an input: the fitted ranges (extent 1)
    generator = json.loads((folder / "config.json").read_text())["generator"]
    drawn = after["nuisance"]["drawn"]
    assert drawn["extent"] == 1.0 and drawn["rotation_degrees"] == generator["warp_rotation"]
    assert drawn["shift"] == round(generator["warp_shift"], 4)
    assert "stored the recommended draw" in done.stdout
    # Run again: nothing changes, and nothing says it did.
    again = run_here(str(folder), "--stored-test")
    assert again.returncode == 0 and "(was" not in again.stdout
    assert json.loads((folder / "config.json").read_text())["training"] == after
    # The other tie-break on request: the least varied of the draws the test cannot tell from the best (on this
    # fit the warp alone, where the default takes residual draws with data styles).
    least = expected.recommended(prefer="least")
    assert least != chosen
    done = run_here(str(folder), "--stored-test", "--prefer", "least")
    assert done.returncode == 0, done.stderr
    draw = json.loads((folder / "config.json").read_text())["training"]["draw"]
    assert {k: v for k, v in draw.items() if k != "chosen"} == {**expected.settings[least], "warp_extent": 1.0}
    assert "(was" in done.stdout
    # The line names the tie-break only where it picked another draw than the best (on this fit the best is the
    # warp alone itself).
    assert draw["chosen"] == expected.summary(prefer="least")
    assert ("the least varied draw" in draw["chosen"]) == (least != expected.best())
    assert run_here(str(folder), "--stored-test", "--prefer", "medium").returncode == 2


def test_recommend_draw_names_what_is_missing(tmp_path, run_here):
    folder = tmp_path / "digits-rot-lt"
    shutil.copytree(PRETRAINED / "digits-rot-lt", folder)
    # As a generator fitted before the transfer test existed stores it: no figures, no recommended draw.
    stored = json.loads((folder / "config.json").read_text())
    for key in ("draw_test", "draw"):
        del stored["training"][key]
    (folder / "config.json").write_text(json.dumps(stored, indent=2))
    config = (folder / "config.json").read_text()
    done = _run(str(folder), "--stored-test")
    assert done.returncode != 0 and "stores no transfer test" in done.stderr
    assert (folder / "config.json").read_text() == config  # left as it was
    done = run_here(str(folder))
    assert done.returncode == 2 and "--dataset --data is required (or --stored-test)" in done.stderr
    done = run_here(str(tmp_path / "nothing"), "--stored-test")
    assert done.returncode != 0 and "no generator folder" in done.stderr
