"""The package layout: the old module paths import the moved modules themselves, not copies."""

import importlib

import pytest

import gitaug


@pytest.mark.parametrize(
    "old, new",
    [
        ("gitaug.losses", "gitaug.longtail.losses"),
        ("gitaug.heads", "gitaug.longtail.heads"),
        ("gitaug.hierarchy", "gitaug.longtail.hierarchy"),
        ("gitaug.resampling", "gitaug.longtail.resampling"),
        ("gitaug.invariance", "gitaug.evaluation.invariance"),
        ("gitaug.diagnostics", "gitaug.evaluation.diagnostics"),
    ],
)
def test_old_import_paths_give_the_moved_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_from_gitaug_import_losses_still_works():
    from gitaug import losses

    assert losses.LDAMLoss is importlib.import_module("gitaug.longtail.losses").LDAMLoss


def test_the_top_level_names_fit_on_one_screen():
    assert set(gitaug.__all__) >= {"GITAugment", "ClassThresholdSampler", "MUNITGenerator", "MUNITConfig"}
    assert len(gitaug.__all__) <= 20
