"""The generator report: figures, thresholds and verdicts on real digits."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from gitaug import GITAugment, MUNITConfig, MUNITGenerator, generator_report
from gitaug.diagnostics import APPEARANCE_STATISTICS
from gitaug.report import DRAW_CANDIDATES, GeneratorReport, describe_appearance, draw_appearance, recommend_draw
from gitaug.transfer import NO_DRAW, TransferTest, transfer_test
from gitaug.datasets import load
from gitaug.report import NEAR_IDENTITY

from helpers import tiny_config, tiny_generator


@pytest.fixture(scope="module")
def digits():
    train = load("digits-rot-lt", split="train", seed=0)
    # A few images of every class keep the test fast; the report uses every image it is given.
    keep = torch.cat([torch.nonzero(train.targets == c).flatten()[:20] for c in range(10)])
    return train.images[keep], train.targets[keep]


def test_a_fitted_generator_passes(digits):
    images, _ = digits
    report = generator_report(GITAugment.from_pretrained("digits-rot-lt"), images, seed=0)
    assert report.status == "ok", report.verdict
    assert report.problems == [] and report.warnings == []
    assert report.relative_spread > 2 * NEAR_IDENTITY
    assert report.relative_reconstruction_error < 0.5
    assert report.input_distinctness > 0.7
    assert report.warp["angle_std_degrees"] > 20  # the rotation generator turns its draws
    assert report.verdict.startswith("Looks usable for GIT")
    assert report.class_preservation is None  # no labels given


def test_an_untrained_generator_is_flagged_near_identity(digits):
    images, _ = digits
    torch.manual_seed(0)
    untrained = MUNITGenerator(MUNITConfig.preset("small", in_channels=1, image_size=28, warp="rotation"))
    report = generator_report(untrained, images, seed=0)
    assert "near-identity" in report.problems and "not-fitted" in report.problems
    assert report.status != "ok"
    assert any(w.startswith("Its draws barely differ") and "GIT will do little" in w for w in report.warnings)
    assert report.relative_spread < NEAR_IDENTITY
    assert report.verdict.startswith("Not ready for GIT")


def test_a_fitted_generator_whose_style_is_ignored_is_near_identity(digits):
    images, _ = digits
    # The paper's draws, as the paper's objective left them on these digits: a style code with no effect on the
    # decoder, and a warp whose ranges are all zero.
    aug = GITAugment.from_pretrained("digits-rot-lt", residual=False, styles="prior", appearance_scale=1.0)
    with torch.no_grad():
        next(m for m in aug.generator.mlp.modules() if isinstance(m, torch.nn.Linear)).weight.zero_()
    warp = aug.generator.warp
    warp.rotation, warp.scale, warp.shift, warp.contrast = 0.0, 1.0, 0.0, 1.0
    report = generator_report(aug, images, seed=0)
    assert report.draw_spread < 1e-6
    assert report.problems == ["near-identity"], report.verdict
    assert report.status == "near-identity"


def test_a_collapsing_generator_is_flagged(digits):
    images, _ = digits
    # the paper's decoded draws: every pixel the decoder's
    aug = GITAugment.from_pretrained("digits-rot-lt", residual=False, styles="prior", appearance_scale=1.0)
    with torch.no_grad():  # a decoder that ignores the content map: every input decodes alike
        aug.generator.content_encoder.apply(lambda m: m.weight.zero_() if isinstance(m, torch.nn.Conv2d) else None)
    report = generator_report(aug, images, seed=0)
    assert "collapsed" in report.problems
    assert any("collapses its inputs" in w for w in report.warnings)


@pytest.mark.slow
def test_class_preservation_with_labels(digits):
    images, labels = digits
    train = load("digits-rot-lt", split="train", seed=0)
    report = generator_report(GITAugment.from_pretrained("digits-rot-lt"), train.images, train.targets, seed=0)
    counts = torch.bincount(train.targets)
    assert report.head_classes == [c for c in range(10) if counts[c] >= 20]
    assert report.reference_accuracy > 0.5
    assert 0.5 < report.class_preservation <= 1
    assert report.status == "ok", report.verdict


class NearestMean(torch.nn.Module):
    """A reference classifier with nothing to train: the nearest class-mean image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        floats = images.float().flatten(1) / 255
        self.register_buffer("means", torch.stack([floats[labels == c].mean(0) for c in range(10)]))
        self.scale = torch.nn.Parameter(torch.ones(()))  # gives the module a device to report

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(images.flatten(1).float(), self.means) * self.scale


def test_class_preservation_catches_a_generator_that_changes_classes():
    plain = load("digits-lt", split="train", seed=0)
    reference = NearestMean(plain.images, plain.targets)
    untrained = tiny_generator(image_size=28)  # its draws are noise: the digits are lost
    report = generator_report(untrained, plain.images, plain.targets, reference=reference, seed=0)
    assert report.head_classes == list(range(10))  # a given reference sees every class
    assert report.reference_accuracy > 0.7
    assert report.class_preservation < 0.5
    assert "changes-classes" in report.problems
    assert len(report.class_preservation_per_class) == 10
    least = report.least_kept_classes()
    assert len(least) == 3 and [v for _, v in least] == sorted(v for _, v in least)
    assert least[0][1] == min(x for x in report.class_preservation_per_class if x is not None)
    assert "least kept classes    " + ", ".join(f"class {c} {v:.0%}" for c, v in least) in str(report)


def test_the_report_names_the_classes_whose_draws_are_kept_least():
    figures = dict(status="ok", verdict="", warnings=[], problems=[], draw_spread=0.1, data_spread=0.2,
                   relative_spread=0.5, reconstruction_error=0.01, relative_reconstruction_error=0.05,
                   input_distinctness=0.6, class_preservation=0.8, reference_accuracy=0.9, head_classes=[1, 2, 3, 4, 6])
    report = GeneratorReport(**figures, class_preservation_per_class=[None, 0.9, 0.55, 0.97, 0.55, float("nan"), 0.6])
    assert report.least_kept_classes() == [(2, 0.55), (4, 0.55), (6, 0.6)]  # unmeasured classes skipped, ties by index
    assert report.least_kept_classes(1) == [(2, 0.55)]
    assert "least kept classes    class 2 55%, class 4 55%, class 6 60%" in str(report)
    # One class measured, or none: nothing to single out, and no line.
    for per_class in ([None, 0.7], None):
        lone = GeneratorReport(**figures, class_preservation_per_class=per_class)
        assert lone.least_kept_classes() == [] and "least kept" not in str(lone)


def test_draws_that_lose_the_class_far_more_than_the_warp_alone_are_flagged_even_by_a_weak_reference():
    plain = load("digits-lt", split="train", seed=0)
    reference = NearestMean(plain.images, plain.targets)
    # Labels partly shuffled: the reference is right on too few of them (< 70 %) for the absolute rule.
    labels = plain.targets.clone()
    shuffled = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[: len(labels) * 2 // 5]
    labels[shuffled] = labels[shuffled[torch.randperm(len(shuffled), generator=torch.Generator().manual_seed(1))]]
    torch.manual_seed(0)  # an untrained decoder (its draws are noise) behind a small, class-keeping warp
    generator = MUNITGenerator(dataclasses.replace(tiny_config(image_size=28), warp="affine", warp_rotation=5.0)).eval()
    report = generator_report(generator, plain.images, labels, reference=reference, seed=0)
    assert report.reference_accuracy < 0.7
    assert report.warp_class_preservation > 0.9 and report.class_preservation < 0.5
    assert "changes-classes" in report.problems
    assert any("warp alone" in w and "appearance_scale" in w for w in report.warnings)
    assert "with the warp alone" in str(report)
    # Measured as the warp alone, the same generator keeps its classes and has no warp-only baseline.
    alone = generator_report(GITAugment(generator, residual=True, appearance_scale=0), plain.images, labels,
                             reference=reference, seed=0)
    assert alone.warp_class_preservation is None and alone.class_preservation > 0.9
    assert "changes-classes" not in alone.problems


class _UpsideDown(MUNITGenerator):
    """A generator whose appearance change turns the image upside down: decoded draws always, residual
    draws when their appearance scale is above ``limit``; ``faithful_decoder`` makes the decoded draws the
    warp alone instead (a decoder that keeps every input's class)."""

    limit = 0.0
    faithful_decoder = False

    def redraw(self, x, style, *, residual=False, appearance=None, appearance_scale=1.0, warp_extent=1.0):
        if not residual and self.faithful_decoder:
            return super().redraw(x, style, residual=True, appearance_scale=0.0, warp_extent=warp_extent)
        drawn = super().redraw(x, style, residual=residual, appearance=appearance, appearance_scale=appearance_scale,
                               warp_extent=warp_extent)
        return drawn.flip(-2) if not residual or appearance_scale > self.limit else drawn


def _warped_tiny_generator(std: float, upside_down: bool = False, limit: float = 0.0, faithful_decoder: bool = False) -> MUNITGenerator:
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(image_size=28), warp="affine", warp_rotation=5.0)
    generator = (_UpsideDown if upside_down else MUNITGenerator)(config).eval()
    if upside_down:
        generator.limit, generator.faithful_decoder = limit, faithful_decoder
    dim = generator.config.style_dim
    generator.training_metadata["styles"] = {"mean": [0.0] * dim, "std": [std] * dim}
    return generator


def _settings(draw: dict) -> dict:
    return {k: v for k, v in draw.items() if k != "chosen"}


def _figures(scores: dict[str, list[float]]) -> TransferTest:
    names = [n for n in scores if n != NO_DRAW]
    return TransferTest(names=names, settings={n: {"name": n} for n in names}, balanced_accuracy=scores,
                        tail_accuracy=scores, head_classes=[0, 1, 2], tail_images=10, steps=1)


def test_the_recommended_draw_is_the_most_varied_one_the_test_cannot_tell_from_the_best():
    base = {NO_DRAW: [0.70, 0.80, 0.75]}
    # The most varied draw falls short of the best by 0.5 points, within one standard error: it is chosen.
    close = _figures({**base, "decoded": [0.815, 0.895, 0.84], "residual": [0.81, 0.91, 0.845],
                      "warp": [0.805, 0.905, 0.84]})
    assert close.best() == "residual" and close.recommended() == "decoded"
    assert "(the most varied draw within one standard error of the best, residual)" in close.summary()
    # Short by 5 points with the same noise: not a tie; here the most varied draw is the best itself.
    far = _figures({**base, "decoded": [0.81, 0.91, 0.845], "residual": [0.815, 0.895, 0.84],
                    "warp": [0.765, 0.845, 0.79]})
    assert far.best() == "decoded" and far.recommended() == "decoded"
    assert far.summary().endswith(": decoded")
    # Preferring the least varied tie: the last within one error of the best (warp in the close case; in the
    # far case warp is 5 points short, so residual).
    assert close.recommended(prefer="least") == "warp" and far.recommended(prefer="least") == "residual"
    assert "(the least varied draw within one standard error of the best, residual)" in close.summary(prefer="least")
    with pytest.raises(ValueError, match="prefer must be one of"):
        far.recommended(prefer="medium")
    assert far.summary(prefer="least").endswith(
        ": residual (the least varied draw within one standard error of the best, decoded)")
    error = far.difference_error()
    assert 0 < error < 0.02
    # A wider tolerance lets the least varied draw back in; one repeat has no error estimate: the best it is.
    assert far.recommended(tolerance=(far.mean("decoded") - far.mean("warp")) / error + 0.1, prefer="least") == "warp"
    one = _figures({NO_DRAW: [0.7], "decoded": [0.81], "residual": [0.8]})
    assert math.isnan(one.difference_error()) and one.recommended() == "decoded"
    # The figures a generator stores give the same test back, and bad ones are named.
    assert TransferTest.from_dict(far.to_dict()).recommended(prefer="least") == "residual"
    with pytest.raises(ValueError, match="lack"):
        TransferTest.from_dict({k: v for k, v in far.to_dict().items() if k != "settings"})
    with pytest.raises(ValueError, match="every draw"):
        TransferTest.from_dict({**far.to_dict(), "names": ["decoded", "missing"]})
    with pytest.raises(ValueError, match="same number"):
        TransferTest.from_dict({**far.to_dict(), "balanced_accuracy": {**far.balanced_accuracy, "warp": [0.8]}})
    with pytest.raises(ValueError, match="unknown keys"):
        TransferTest.from_dict({**far.to_dict(), "tolerance": 2})
    # With the pseudo-tail classes' true-class probability stored, draws are judged by it (older figures
    # have none and are judged by balanced accuracy, as above).
    probability = {NO_DRAW: [0.50, 0.60, 0.55], "decoded": [0.70, 0.78, 0.74], "residual": [0.62, 0.70, 0.66],
                   "warp": [0.60, 0.69, 0.65]}
    judged = TransferTest.from_dict({**far.to_dict(), "tail_probability": probability})
    assert judged.scores is judged.tail_probability and judged.recommended() == "decoded"
    assert "mean probability of the true class on held-out images of the pseudo-tail classes" in judged.summary()
    assert far.scores is far.balanced_accuracy and "held-out balanced accuracy over 3 head classes" in far.summary()
    assert "pseudo-tail true-class prob." in str(judged) and str(far)
    with pytest.raises(ValueError, match="same number"):
        TransferTest.from_dict({**far.to_dict(), "tail_probability": {**probability, "warp": [0.6]}})
    # Every draw well below no draw at all: the summary says the generator would harm GIT.
    harmful = _figures({NO_DRAW: [0.90, 0.91, 0.89], "decoded": [0.60, 0.62, 0.61], "warp": [0.70, 0.71, 0.69]})
    assert "would harm GIT" in harmful.summary() and harmful.harms()
    assert "would harm GIT" not in close.summary() and not close.harms()
    assert not _figures({NO_DRAW: [0.9], "decoded": [0.1]}).harms()  # one repeat: no error, no judgement


class _ClassSwap(MUNITGenerator):
    """Decoded draws that hand each input another input's picture: the batch reversed (class-ordered, so classes swap)."""

    def redraw(self, x, style, *, residual=False, appearance=None, appearance_scale=1.0, warp_extent=1.0):
        drawn = super().redraw(x, style, residual=residual, appearance=appearance, appearance_scale=appearance_scale,
                               warp_extent=warp_extent)
        return drawn if residual else x.flip(0)


def test_the_transfer_test_scores_a_draw_by_what_a_classifier_learns_from_it():
    train = load("digits-rot-lt", split="train", seed=0)
    packaged = GITAugment.from_pretrained("digits-rot-lt").generator
    swapping = _ClassSwap(packaged.config).eval()
    swapping.load_state_dict(packaged.state_dict())
    candidates = [("swapped classes", {"residual": False}), ("rotation", {"residual": True, "appearance_scale": 0.0})]
    options = dict(repeats=3, tail_images=5, head_min_count=30, steps=120, test_per_class=40)
    test = transfer_test(swapping, train.images, train.targets, candidates, seed=0, **options)
    assert all(len(tail) == 2 for tail in test.tail_classes)  # 6 head classes, a third of them cut down
    # The data is rotated: the generator's warp (rotation of any angle) teaches the cut-down classes what
    # their few images cannot show, and draws that hand them another class's pictures teach them wrong labels.
    assert test.mean("rotation") > test.mean(NO_DRAW) + 0.03
    assert sum(test.tail_accuracy["rotation"]) > sum(test.tail_accuracy[NO_DRAW]) + 0.1
    assert sum(test.tail_accuracy["swapped classes"]) < sum(test.tail_accuracy[NO_DRAW]) - 0.1
    assert test.recommended() == "rotation"
    torch.manual_seed(123)  # torch's global generator plays no part
    # Repeats run in turn from one seeded stream, so a one-repeat test must give the first repeat's figures.
    again = transfer_test(swapping, train.images, train.targets, candidates, seed=0, **{**options, "repeats": 1})
    assert again.balanced_accuracy == {name: scores[:1] for name, scores in test.balanced_accuracy.items()}
    assert again.tail_classes == test.tail_classes[:1]
    json.dumps(test.to_dict())  # stored in the generator's config
    # Fewer than two classes with enough images: nothing to tell apart.
    assert transfer_test(swapping, train.images, train.targets, candidates, head_min_count=10**6) is None
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        transfer_test(swapping, train.images, train.targets, candidates, repeats=0)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\], got 1.5"):
        transfer_test(swapping, train.images, train.targets, candidates, p=1.5)
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        transfer_test(swapping, train.images, train.targets[:5], candidates)


def test_recommend_draw_stores_the_chosen_draw_with_the_figures_and_needs_labels_a_warp_and_styles():
    train = load("digits-rot-lt", split="train", seed=0)
    generator = GITAugment.from_pretrained("digits-rot-lt").generator
    generator.training_metadata["styles"] = generator.style_statistics(train.images[:200].float() / 127.5 - 1)
    options = dict(repeats=2, steps=60, test_per_class=30, pool=4)
    draw = recommend_draw(generator, train.images, train.targets, seed=0, **options)
    assert {k: v for k, v in draw.items() if k != "chosen"} in [s for _, s in DRAW_CANDIDATES]
    assert draw["chosen"].startswith("pseudo-tail transfer test (2 repeats")
    assert all(name in draw["chosen"] for name, _ in DRAW_CANDIDATES)
    assert recommend_draw(generator, train.images, train.targets, seed=0, **options) == draw
    # Nothing to judge: no labels, no style statistics, no warp.
    assert recommend_draw(generator, train.images, None) is None
    assert recommend_draw(tiny_generator(image_size=28), train.images, train.targets) is None
    generator.training_metadata.clear()
    assert recommend_draw(generator, train.images, train.targets) is None


def test_the_report_shows_what_the_draws_vary_beside_the_data():
    # The packaged background generator's draws vary the background as much as the data's digits of one
    # class do; neither the rotation generator's draws nor its data vary it.
    for name, low, high in (("digits-bg-lt", 0.7, 1.4), ("digits-rot-lt", 0.0, 0.01)):
        train = load(name, split="train", seed=0)
        keep = torch.cat([torch.nonzero(train.targets == c).flatten()[:20] for c in range(10)])
        report = generator_report(GITAugment.from_pretrained(name), train.images[keep], train.targets[keep], seed=0,
                                  reference_steps=20)
        border = report.appearance["border"]
        if name == "digits-bg-lt":
            assert low < border["draws"] / border["data"] < high
        else:
            assert border["draws"] < high and border["data"] < high
        assert list(report.appearance) == list(APPEARANCE_STATISTICS)
        assert "(spread between images of one class)" in str(report)
        assert report.to_dict()["appearance"]["border"]["data"] == round(border["data"], 4)


def test_draw_appearance_measures_every_draw_the_generator_can_make(digits):
    images, labels = digits
    generator = _warped_tiny_generator(std=1.0)  # an untrained decoder: its appearance changes are noise
    appearance = draw_appearance(generator, images, labels, seed=0, n_per_class=8)
    assert list(appearance) == [name for name, _ in DRAW_CANDIDATES]
    decoded, warp = appearance["the decoded draws"], appearance["the warp alone"]
    assert decoded["contrast"]["draws"] > 3 * warp["contrast"]["draws"]
    assert decoded["brightness"]["data"] == warp["brightness"]["data"] > 0  # one figure for the data
    assert appearance == draw_appearance(generator, images, labels, seed=0, n_per_class=8)  # seeded
    text = describe_appearance(appearance)
    assert text.startswith("within a class, the data varies border") and "the warp alone: border" in text
    # What the generator cannot draw is left out: data styles without stored statistics, the warp alone without a warp.
    generator.training_metadata.clear()
    assert [n for n in draw_appearance(generator, images, None, n_per_class=8)] == ["the decoded draws", "the warp alone"]
    assert list(draw_appearance(tiny_generator(image_size=28), images, labels, n_per_class=8)) == ["the decoded draws"]
    assert set(next(iter(appearance.values()))) == set(APPEARANCE_STATISTICS)


def test_report_round_trips_to_json_and_prints(digits):
    images, labels = digits
    report = generator_report(tiny_generator(image_size=28), images[:50], seed=1)
    again = json.loads(json.dumps(report.to_dict()))
    assert again["status"] == report.status and again["thresholds"]["near_identity"] == NEAR_IDENTITY
    assert "draw spread" in str(report) and report.verdict in str(report)
    assert generator_report(tiny_generator(image_size=28), images[:50], seed=1).to_dict() == report.to_dict()


def test_bad_arguments_are_named(digits):
    images, labels = digits
    with pytest.raises(TypeError, match="aug_or_generator"):
        generator_report("digits-rot-lt", images)
    with pytest.raises(ValueError, match="3-channel"):
        generator_report(tiny_generator(in_channels=3, image_size=28), images)
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        generator_report(tiny_generator(image_size=28), images, labels[:3])
    with pytest.raises(ValueError, match="n_per_class must be a positive integer, got 0"):
        generator_report(tiny_generator(image_size=28), images, n_per_class=0)


def test_the_same_seed_gives_the_same_report_whatever_torch_s_global_generator_did_before():
    plain = load("digits-lt", split="train", seed=0)
    generator = _warped_tiny_generator(std=1.0)  # no reference given: the report trains its own
    reports = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        reports.append(generator_report(generator, plain.images, plain.targets, seed=0, reference_steps=20,
                                       n_per_class=10, max_images=50))
    assert reports[0].class_preservation == reports[1].class_preservation
    assert reports[0].warp_class_preservation == reports[1].warp_class_preservation
    assert reports[0].reference_accuracy == reports[1].reference_accuracy
