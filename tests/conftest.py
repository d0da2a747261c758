from pathlib import Path

import numpy as np
import pytest

from gitaug import GITAugment

from helpers import digits_16, tiny_generator


@pytest.fixture(autouse=True)
def quick_transfer_test(monkeypatch):
    """Fits with a report run the draw's transfer test; a short one here (its own tests size theirs)."""
    import gitaug.report

    monkeypatch.setattr(gitaug.report, "RECOMMEND_REPEATS", 2)
    monkeypatch.setattr(gitaug.report, "RECOMMEND_STEPS", 20)


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """The command-line entry points set torch's thread count for their process (``--threads``); called
    in-process by a test, that would leak into every later test, whose float results can then differ in the
    last bits from a fresh interpreter's."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def generator_folder(tmp_path) -> Path:
    """A saved tiny generator whose metadata names three classes (30, 8 and 2 training images)."""
    folder = tmp_path / "gen"
    aug = GITAugment(tiny_generator())
    aug.metadata = {"class_names": ["zero", "one", "two"], "class_counts": [30, 8, 2]}
    aug.save_pretrained(folder)
    return folder


@pytest.fixture
def npz(tmp_path) -> Path:
    """A labelled .npz of 21 random 16x16 gray images over those three classes."""
    rng = np.random.default_rng(0)
    path = tmp_path / "held_out.npz"
    labels = np.array([0] * 12 + [1] * 6 + [2] * 3)
    np.savez(path, images=rng.integers(0, 256, (len(labels), 16, 16), dtype=np.uint8), labels=labels)
    return path


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory) -> Path:
    """The long-tailed handful of real digits (``helpers.COUNTS``) as a training .npz, one per test module."""
    images, labels = digits_16()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, images=images, labels=labels)
    return path
