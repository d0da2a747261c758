"""The reproduction benchmarks' choice of a draw on validation (git-val): what it weighs, picks and reuses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from gitaug.per_sample import BANK_DRAWS
from gitaug.report import DRAW_CANDIDATES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reproduce_digits as bench  # noqa: E402

KALL = {"threshold": None, "p": 0.5, "rule": "hard"}
K200 = {"threshold": 200, "p": 1.0, "rule": "linear"}


def test_the_benchmark_ladder_trains_the_library_s_draw_candidates_in_order():
    assert len(bench.LADDER) == len(DRAW_CANDIDATES)
    for method, (_, settings) in zip(bench.LADDER, DRAW_CANDIDATES):
        values = bench.flag_values(bench.GIT_DRAWS[method].flags)
        # the ladder's rows draw within the tested ranges, as the transfer test judges the candidates
        trained = {"residual": values["draw"] == "residual", "styles": values["styles"],
                   "appearance_scale": values["appearance_scale"], "warp_extent": 1.0}
        assert trained == settings, method


def _selection(scores: dict[str, float]) -> dict:
    """A selection in which each ladder draw chose K200 except the paper's (Kall), with these validation scores."""
    entry: dict = {"chosen": KALL, "val_balanced_accuracy": {bench.setting_tag(KALL): scores["git"]}}
    for method in bench.LADDER[1:]:
        entry[method] = {"chosen": K200, "val_balanced_accuracy": {bench.setting_tag(K200): scores[method],
                                                                   bench.setting_tag(KALL): 1.0}}
    return {"set": entry}


def test_git_val_takes_the_draw_that_scores_best_on_validation_with_its_own_setting():
    choice = bench.choose_draw(_selection({"git": 0.80, "git-data": 0.79, "git-half": 0.83, "git-warp": 0.82}), "set")
    assert choice["chosen"] == {**K200, "draw": "git-half"}
    assert choice["val_balanced_accuracy"]["git-half"] == 0.83
    # The paper's draw keeps its own setting when it wins.
    choice = bench.choose_draw(_selection({"git": 0.90, "git-data": 0.79, "git-half": 0.83, "git-warp": 0.82}), "set")
    assert choice["chosen"] == {**KALL, "draw": "git"}
    # A tie goes to the more varied draw.
    choice = bench.choose_draw(_selection({"git": 0.80, "git-data": 0.83, "git-half": 0.83, "git-warp": 0.83}), "set")
    assert choice["chosen"]["draw"] == "git-data"
    # A draw with no choice of its own (skipped): nothing to choose between.
    selection = _selection({"git": 0.80, "git-data": 0.83, "git-half": 0.83, "git-warp": 0.83})
    del selection["set"]["git-warp"]
    assert bench.choose_draw(selection, "set") is None


def _run(path: Path, setting: dict, flags: tuple[str, ...], bank: int | None = None) -> None:
    """A finished run's JSON as examples/train_longtail.py writes it (by default with the bank its draw gets)."""
    values = bench.flag_values(flags)
    draw = {"residual": values["draw"] == "residual", "styles": values["styles"], "appearance_scale": values["appearance_scale"]}
    if bank is None:
        bank = 0  # the example's default: live draws
    args = {"threshold": None if setting["threshold"] is None else float(setting["threshold"]), "p": setting["p"],
            "rule": setting["rule"], "bank_draws": bank, **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": args, "draw": draw, "test_balanced_accuracy": 0.5}))


def test_a_run_made_with_another_draw_or_setting_is_stale(tmp_path):
    out = tmp_path / "run.json"
    setting = {**K200, "draw": "git-half"}
    _run(out, K200, bench.GIT_DRAWS["git-half"].flags)
    assert bench.stale(out, "git-val", setting, tmp_path) is None
    assert bench.stale(out, "git-half", K200, tmp_path) is None
    assert "the draw" in bench.stale(out, "git-val", {**K200, "draw": "git-data"}, tmp_path)
    assert "the draw" in bench.stale(out, "git-warp", K200, tmp_path)
    assert "K=None" in bench.stale(out, "git-val", {**KALL, "draw": "git-half"}, tmp_path)
    # An invocation that skips git-val chose no draw for it: its earlier runs are left out, not compared.
    assert "git-val skipped" in bench.stale(out, "git-val", K200, tmp_path)
    # Every draw is drawn live by default: a run served from a bank was made with another command.
    _run(out, K200, bench.GIT_DRAWS["git-warp"].flags, bank=BANK_DRAWS)
    assert "a bank of 8 draws" in bench.stale(out, "git-warp", K200, tmp_path)
    _run(out, K200, bench.GIT_DRAWS["git-half"].flags, bank=BANK_DRAWS)
    assert "a bank of 8 draws" in bench.stale(out, "git-half", K200, tmp_path)
    _run(out, K200, bench.GIT_DRAWS["git-warp"].flags)
    assert bench.stale(out, "git-warp", K200, tmp_path) is None


def test_git_val_reuses_the_chosen_draw_s_run_made_with_its_setting_and_no_other(tmp_path):
    args = argparse.Namespace(work=tmp_path)
    runs = tmp_path / "runs"
    setting = {**K200, "draw": "git-half"}
    # The validation run of the chosen draw and setting: the same command as git-val's.
    _run(runs / f"set-seed0-{bench.select_tag('git-half', K200)}.json", K200, bench.GIT_DRAWS["git-half"].flags)
    bench.reuse_chosen_run(args, "set", 0, setting)
    assert (runs / "set-seed0-git-val.json").read_text() == (runs / "set-seed0-select-git-half-K200-p1.0-linear.json").read_text()
    # On another seed the draw's own run was made with another K: git-val has to train.
    _run(runs / "set-seed1-git-half.json", KALL, bench.GIT_DRAWS["git-half"].flags)
    bench.reuse_chosen_run(args, "set", 1, setting)
    assert not (runs / "set-seed1-git-val.json").exists()
    # Nor is a run of the warp alone drawn from a bank reused for git-val, whose warp is drawn live.
    warp = {**K200, "draw": "git-warp"}
    _run(runs / "set-seed2-git-warp.json", K200, bench.GIT_DRAWS["git-warp"].flags, bank=BANK_DRAWS)
    bench.reuse_chosen_run(args, "set", 2, warp)
    assert not (runs / "set-seed2-git-val.json").exists()
    # A git-val run made from such a run is set aside once a matching run exists to take its place.
    (runs / "set-seed2-git-val.json").write_text((runs / "set-seed2-git-warp.json").read_text())
    _run(runs / f"set-seed2-{bench.select_tag('git-warp', K200)}.json", K200, bench.GIT_DRAWS["git-warp"].flags)
    bench.reuse_chosen_run(args, "set", 2, warp)
    assert json.loads((runs / "set-seed2-git-val.json").read_text())["args"]["bank_draws"] == 0
    assert json.loads((runs / "set-seed2-git-val.other-setting.json").read_text())["args"]["bank_draws"] == BANK_DRAWS


@pytest.mark.parametrize("method", ["git", "git-data", "git-half", "git-warp", "git-auto", "git-residual"])
def test_every_fixed_draw_names_its_flags_and_git_val_takes_the_chosen_one_s(method):
    assert bench.draw_flags("git-val", {**K200, "draw": method}) == bench.GIT_DRAWS[method].flags


def test_the_share_of_the_oracle_s_gain_comes_with_its_standard_error_over_seeds():
    import default_fit

    # GIT gains exactly half of what the oracle gains on every seed: the share is certain.
    assert default_fit.share_error([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(0.0)
    # Half on average, but a full gain on one seed and none on the other: a wide error.
    wide = default_fit.share_error([2.0, 0.0], [2.0, 2.0])
    assert wide == pytest.approx(0.5)  # residuals +1 and -1: std 1.41, / sqrt(2) / mean oracle gain 2
    # One seed, or an oracle that gains nothing on average: no error to give.
    assert default_fit.share_error([1.0], [2.0]) is None
    assert default_fit.share_error([1.0, 1.0], [1.0, -1.0]) is None
    summary = {"seeds": [0, 1], "table": {"set": {
        "drs": {"balanced_accuracy": [0.70, 0.72], "ekld_tail": [0.8, 0.6]},
        "git": {"balanced_accuracy": [0.75, 0.72], "ekld_tail": [0.5, 0.6]},
        "oracle": {"balanced_accuracy": [0.80, 0.82], "ekld_tail": [0.2, 0.4]}}}}
    result = default_fit.compare(summary, "set")
    assert result["accuracy_share"] == pytest.approx(0.25) and result["accuracy_share_error"] == pytest.approx(0.25)
    assert result["ekld_share"] == pytest.approx(0.375) and result["ekld_share_error"] == pytest.approx(0.1875)


def test_git_auto_reuses_the_run_of_the_draw_its_fit_recommends_and_no_other(tmp_path):
    args = argparse.Namespace(work=tmp_path)
    runs = tmp_path / "runs"
    config = tmp_path / "generators" / "set-seed0" / "generator" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"training": {"draw": {"residual": False, "chosen": "a transfer test"}}}))
    # The fit recommends the decoded draws: git-auto's validation run and its own run are the paper draw's.
    select = runs / f"set-seed0-{bench.select_tag('git', K200)}.json"
    _run(select, K200, bench.GIT_DRAWS["git"].flags)
    out = runs / f"set-seed0-{bench.select_tag('git-auto', K200)}.json"
    bench.reuse_recommended_run(args, "set", 0, K200, bench.select_tag("git-auto", K200), out)
    assert out.read_text() == select.read_text() and bench.stale(out, "git-auto", K200, tmp_path / "generators" / "set-seed0") is None
    # The paper draw's own run was made with another K: git-auto has to train.
    _run(runs / "set-seed0-git.json", KALL, bench.GIT_DRAWS["git"].flags)
    bench.reuse_recommended_run(args, "set", 0, K200, "git-auto", runs / "set-seed0-git-auto.json")
    assert not (runs / "set-seed0-git-auto.json").exists()
    # A new recommendation: the earlier reused run is set aside for the recommended draw's, when it exists.
    config.write_text(json.dumps({"training": {"draw": {"residual": True, "styles": "data"}}}))
    data = runs / f"set-seed0-{bench.select_tag('git-data', K200)}.json"
    _run(data, K200, bench.GIT_DRAWS["git-data"].flags)
    bench.reuse_recommended_run(args, "set", 0, K200, bench.select_tag("git-auto", K200), out)
    assert out.read_text() == data.read_text() and out.with_suffix(".other-setting.json").exists()


def test_the_default_fit_table_takes_a_re_run_of_some_datasets_in_place_of_their_rows(tmp_path):
    import default_fit

    def summary(seeds, scale):
        rows = {m: {"balanced_accuracy": [scale * v for v in values][:len(seeds)], "ekld_tail": [0.1] * len(seeds)}
                for m, values in (("drs", [0.90] * 4), ("git-auto", [0.92] * 4), ("oracle", [0.93] * 4))}
        return {"seeds": seeds, "table": {"a": rows, "b": json.loads(json.dumps(rows))},
                "diagnostics": {"a": {"true_keep": [1.0] * len(seeds)}}}

    base, extra = summary([0, 1], 1.0), summary([0, 1, 2, 3], 1.0)
    del extra["table"]["b"]
    extra["table"]["a"]["git-auto"]["balanced_accuracy"] = [0.93, 0.93, 0.90, 0.90]
    default_fit.overlay(base, extra)
    a, b = default_fit.compare(base, "a", "git-auto"), default_fit.compare(base, "b", "git-auto")
    assert a["seeds"] == [0, 1, 2, 3] and a["accuracy_share"] == pytest.approx(0.5)  # the re-run's rows, all its seeds
    assert b["seeds"] == [0, 1] and b["accuracy_share"] == pytest.approx(2 / 3)  # the other dataset keeps its own
    assert base["diagnostics"]["a"]["seeds"] == [0, 1, 2, 3]


def test_the_recommended_draw_s_class_preservation_is_set_against_the_true_nuisance_under_the_same_reference():
    import default_fit

    results = [{"recommended": {"keep_rate": [0.9, 0.7], "true_nuisance_keep_rate": [1.0, 0.8], "spread": [0.1, 0.3]}},
               {"recommended": {"keep_rate": [0.6, 0.6], "true_nuisance_keep_rate": [0.8, 0.8], "spread": [0.2, 0.2]}}]
    diag = bench.recommended_summary(results)
    assert diag["generator_keep_recommended"] == pytest.approx([0.8, 0.6])
    assert diag["true_keep_recommended"] == pytest.approx([0.9, 0.8])
    # A seed whose diagnostic measured no recommended draw (its fit stored none): no figure for any seed.
    assert bench.recommended_summary([results[0], {"recommended": None}]) == {}
    rows = {m: {"balanced_accuracy": [0.90, 0.91], "ekld_tail": [0.2, 0.2]} for m in ("drs", "git-auto", "git", "git-val", "oracle")}
    # The other draws are set against the first reference's true-nuisance figure (here a lower one).
    summary = {"seeds": [0, 1], "table": {"set": rows},
               "diagnostics": {"set": {**diag, "generator_keep": [0.5, 0.5], "true_keep": [0.5, 0.5]}}}
    assert default_fit.compare(summary, "set", "git-auto")["class_preservation_ratio"] == pytest.approx(0.7 / 0.85)
    assert default_fit.compare(summary, "set", "git")["class_preservation_ratio"] == pytest.approx(1.0)
    assert "class_preservation_ratio" not in default_fit.compare(summary, "set", "git-val")  # chosen on validation


def test_the_extent_ablation_repeats_a_recommended_draw_run_with_only_the_extent_added(tmp_path):
    import warp_extent

    args = {"dataset": "digits-scale-lt", "cifar": None, "imbalance": 100.0, "method": "git", "generator": "/elsewhere/g",
            "threshold": 100.0, "p": 0.5, "rule": "hard", "draw": "recommended", "live_draws": False, "epochs": 30,
            "seed": 1, "out": "/elsewhere/run.json", "save_classifier": None}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "digits-scale-lt-seed1-git-auto.json").write_text(json.dumps({"args": args}))
    command, log, out = warp_extent.job(tmp_path, "digits-scale-lt", 1, 2.5)
    flags = command[2:]
    assert out == tmp_path / "runs" / "digits-scale-lt-seed1-git-auto-extent2.5.json" and log.name.endswith("extent2.5.log")
    assert flags[-4:] == ["--warp-extent", "2.5", "--out", str(out)]
    given = dict(zip(flags[:-4:2], flags[1:-4:2]))
    assert given == {"--dataset": "digits-scale-lt", "--method": "git", "--generator": "/elsewhere/g", "--threshold": "100.0",
                     "--p": "0.5", "--rule": "hard", "--draw": "recommended", "--epochs": "30", "--seed": "1"}


def test_the_extent_ablation_trains_again_a_run_that_repeated_a_draw_the_fit_no_longer_recommends(tmp_path):
    import warp_extent

    runs = tmp_path / "runs"
    runs.mkdir()
    residual = {"residual": True, "styles": "data", "appearance_scale": 1.0, "warp_extent": 1.0}
    (runs / "digits-dil-lt-seed0-git-auto.json").write_text(json.dumps({"args": {"seed": 0}, "draw": residual}))
    out = runs / "digits-dil-lt-seed0-git-auto-extent2.5.json"
    out.write_text(json.dumps({"draw": {**residual, "warp_extent": 2.5}}))  # the same draw, wider: kept
    assert warp_extent.job(tmp_path, "digits-dil-lt", 0, 2.5)[2] == out and out.exists()
    decoded = {"residual": False, "styles": "prior", "appearance_scale": 1.0, "warp_extent": 2.5}
    out.write_text(json.dumps({"draw": decoded}))  # made while the fit recommended the decoded draws
    assert warp_extent.job(tmp_path, "digits-dil-lt", 0, 2.5)[2] == out and not out.exists()
    assert json.loads(out.with_suffix(".other-setting.json").read_text())["draw"] == decoded


def test_draw_rules_match_a_run_from_before_a_draw_setting_existed_to_its_default():
    import draw_rules

    old_run = {"draw": {"residual": True, "styles": "data", "appearance_scale": 1.0}}  # no warp_extent recorded
    assert draw_rules.same_draw(old_run, {"residual": True, "styles": "data"})
    assert not draw_rules.same_draw(old_run, {"residual": False})
    assert not draw_rules.same_draw(old_run, {"residual": True, "styles": "data", "appearance_scale": 0.5})
    # the extent a fit recommended is every one of its runs' own: the rules are compared at it
    wide_run = {"draw": {"residual": False, "styles": "prior", "appearance_scale": 1.0, "warp_extent": 2.5}}
    assert draw_rules.same_draw(wide_run, {"residual": False, "styles": "prior", "appearance_scale": 1.0, "warp_extent": 1.0})


def test_draw_rules_measures_only_the_class_preservation_a_work_folder_lacks(tmp_path, monkeypatch):
    import draw_rules
    import gitaug.evaluation.diagnostics as diagnostics
    from gitaug.transfer import TransferTest

    names = ["the decoded draws", "the warp alone"]
    figures = {n: [0.5, 0.6] for n in ["no draw", *names]}
    test = TransferTest(names=names, settings={"the decoded draws": {"residual": False},
                                               "the warp alone": {"residual": True, "appearance_scale": 0.0}},
                        balanced_accuracy=figures, tail_accuracy=figures, head_classes=[0, 1, 2])
    stored = tmp_path / "diagnostics" / "digits-rot-lt-seed0-draws.json"
    stored.parent.mkdir()
    stored.write_text(json.dumps({"true": 0.9, "the decoded draws": 0.8}))
    measured = []

    class Kept:
        mean = 0.85

    def fake_preservation(transform, *args, **kwargs):
        measured.append(transform)
        return Kept()

    monkeypatch.setattr(bench, "reference_classifier", lambda dataset, seed, shift=0: "reference")
    monkeypatch.setattr(diagnostics, "class_preservation", fake_preservation)
    monkeypatch.setattr("gitaug.GITAugment.from_pretrained", classmethod(lambda cls, folder, **kw: ("draw", kw)))
    kept = draw_rules.draw_preservation(tmp_path, "digits-rot-lt", 0, test, extent=2.5)
    # only the warp alone was missing; it is drawn at the extent the fit's runs used, and stored beside the rest
    assert measured == [("draw", {"residual": True, "appearance_scale": 0.0, "warp_extent": 2.5})]
    assert kept == {"true": 0.9, "the decoded draws": 0.8, "the warp alone": 0.85}
    assert json.loads(stored.read_text()) == kept
    # complete: nothing is measured again
    assert draw_rules.draw_preservation(tmp_path, "digits-rot-lt", 0, test, extent=2.5) == kept and len(measured) == 1


def test_a_stored_diagnostic_of_a_draw_the_fit_no_longer_recommends_is_measured_again(tmp_path):
    folder = tmp_path / "generators" / "digits-dil-lt-seed0" / "generator"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    decoded = {"residual": False, "styles": "prior", "appearance_scale": 1.0}
    (folder / "config.json").write_text(json.dumps({"training": {"draw": {**decoded, "chosen": "the test's summary"}}}))
    args = argparse.Namespace(work=tmp_path)
    warp = {"residual": True, "styles": "prior", "appearance_scale": 0.0}
    assert bench.stale_recommendation(args, "digits-dil-lt", 0, {"draw": warp, "keep_rate": [0.9]})
    # the same draw, stored before warp_extent existed: its default, so not stale
    assert not bench.stale_recommendation(args, "digits-dil-lt", 0, {"draw": decoded, "keep_rate": [0.9]})
    assert not bench.stale_recommendation(args, "digits-dil-lt", 0, None)  # a fit that recommends nothing


def test_the_contrast_family_run_repeats_the_recommended_draw_run_with_the_new_generator(tmp_path):
    import contrast_family

    args = {"dataset": "fmnist-contrast-lt", "cifar": None, "imbalance": 100.0, "method": "git", "generator": "/elsewhere/g",
            "threshold": 400.0, "p": 0.5, "rule": "hard", "draw": "recommended", "warp_extent": 2.5, "live_draws": False,
            "epochs": 12, "seed": 1, "out": "/elsewhere/run.json", "save_classifier": None}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "fmnist-contrast-lt-seed1-git-auto.json").write_text(json.dumps({"args": args}))
    folder = contrast_family.contrast_dir(tmp_path, "fmnist-contrast-lt", 1)
    command, log, out = contrast_family.job(tmp_path, "fmnist-contrast-lt", 1, folder)
    assert out.name == "fmnist-contrast-lt-seed1-git-auto-contrast.json" and log.name.endswith("-git-auto-contrast.log")
    given = dict(zip(command[2::2], command[3::2]))
    # the new generator's own recommendation, at its own extent: the old run's generator and extent are not passed
    assert given == {"--dataset": "fmnist-contrast-lt", "--method": "git", "--threshold": "400.0", "--p": "0.5",
                     "--rule": "hard", "--draw": "recommended", "--epochs": "12", "--seed": "1",
                     "--generator": str(folder), "--out": str(out)}


def test_the_contrast_family_compares_with_the_fit_s_recommended_draw_at_extent_one(tmp_path):
    import contrast_family

    generator = tmp_path / "generators" / "digits-contrast-lt-seed0" / "generator"
    generator.mkdir(parents=True)
    residual = {"residual": True, "styles": "data", "appearance_scale": 1.0}
    (generator / "config.json").write_text(json.dumps({"generator": {}, "training": {"draw": {**residual, "warp_extent": 2.5}}}))
    (generator / "model.safetensors").write_bytes(b"")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "digits-contrast-lt-seed0-git-auto.json").write_text(json.dumps({"draw": {**residual, "warp_extent": 2.5}, "n": "wide"}))
    assert contrast_family.baseline(tmp_path, "digits-contrast-lt", 0) is None  # drawn at 2.5: not the default
    (runs / "digits-contrast-lt-seed0-git-auto-extent1.json").write_text(json.dumps({"draw": {**residual, "warp_extent": 1.0}, "n": "one"}))
    assert contrast_family.baseline(tmp_path, "digits-contrast-lt", 0)["n"] == "one"


def test_a_benchmark_records_its_command_without_this_machine_s_folders(tmp_path):
    import _report

    root = _report.ROOT
    other = tmp_path / "second-clone" / "benchmarks" / "_work" / "runs"
    line = _report.command_line("plain_sets.py", [
        "--work", str(root / "benchmarks" / "_work_plain"), f"--results={root / 'benchmarks' / 'results'}",
        "--report", str(other), "--seeds", "0", "1", "--extra", str(tmp_path / "elsewhere"), "--name", "a b"])
    assert line == (f"python benchmarks/plain_sets.py --work benchmarks/_work_plain --results=benchmarks/results "
                    f"--report benchmarks/_work/runs --seeds 0 1 --extra {tmp_path / 'elsewhere'} --name 'a b'")
    assert str(root) not in line


def test_the_contrast_family_takes_fits_whose_background_values_moved_by_a_fraction_of_their_spacing():
    import contrast_family

    found = [[-1.0 + i / 32] for i in range(64)]
    assert contrast_family.background_shift([], []) == 0.0
    assert contrast_family.background_shift(found[::-1], found) == 0.0  # the order is not compared
    near = [[v + 1 / 255] for (v,) in found]  # half a grey level, as the earlier quantile rule gives
    assert contrast_family.background_shift(near, found) == pytest.approx(1 / 255)
    assert contrast_family.background_shift(near, found) <= contrast_family.BACKGROUND_TOLERANCE
    far = [[v + 8 / 255] for (v,) in found]
    assert contrast_family.background_shift(far, found) > contrast_family.BACKGROUND_TOLERANCE
    assert contrast_family.background_shift(found[:10], found) is None  # another number of values: another fit


def paired_contrast_set() -> dict:
    """contrast_family.json's entry for one set: two seeds of CE+DRS, the contrast draw and the oracle, and
    class preservation measured on seed 0."""
    return {"seeds": [0, 1],
            "per_seed": {"drs": {"balanced_accuracy": [0.70, 0.72], "ekld_tail": [0.10, 0.12]},
                         "contrast": {"balanced_accuracy": [0.72, 0.73], "ekld_tail": [0.06, 0.10]},
                         "oracle": {"balanced_accuracy": [0.74, 0.74], "ekld_tail": [0.05, 0.08]}},
            "class_preservation_per_seed": {"0": {"true": 0.8, "default": 0.7, "contrast": 0.72}}}


def test_default_fit_reads_a_paired_benchmark_s_per_seed_figures_as_a_variant():
    import default_fit

    sets = {"fmnist-bg-lt": paired_contrast_set(),
            "digits-lt": {"seeds": [0], "per_seed": {"drs": {"balanced_accuracy": [0.9], "ekld_tail": [0.1]}}}}
    summary = default_fit.variant_of(sets, "contrast")
    assert list(summary["table"]) == ["fmnist-bg-lt"]  # a set without an oracle has no share
    result = default_fit.compare(summary, "fmnist-bg-lt", "git-auto")
    assert result["seeds"] == [0, 1]
    assert result["accuracy_share"] == pytest.approx((0.725 - 0.71) / (0.74 - 0.71))
    assert result["ekld_share"] == pytest.approx((0.11 - 0.08) / (0.11 - 0.065))
    assert result["accuracy_git_minus_drs_per_seed"] == pytest.approx([0.02, 0.01])
    assert result["class_preservation_ratio"] == pytest.approx(0.72 / 0.8)


def test_default_fit_adds_fresh_seeds_of_the_current_default_to_the_paired_benchmark_s_rows():
    import default_fit

    summary = default_fit.variant_of({"fmnist-bg-lt": paired_contrast_set()}, "contrast")
    # A re-run on seeds 1 and 2 (seed 1 fitted anew: its figures replace the paired benchmark's), with a method
    # the variant has no row for, and a dataset it lacks.
    row = {"seeds": [1, 2], "tail_accuracy": [0.5, 0.5]}
    extra = {"table": {
        "fmnist-bg-lt": {"drs": {**row, "balanced_accuracy": [0.72, 0.60], "ekld_tail": [0.12, 0.20]},
                         "git-auto": {**row, "balanced_accuracy": [0.72, 0.64], "ekld_tail": [0.12, 0.10]},
                         "oracle": {**row, "balanced_accuracy": [0.74, 0.64], "ekld_tail": [0.08, 0.10]},
                         "git": {**row, "balanced_accuracy": [0.0, 0.0], "ekld_tail": [9.0, 9.0]}},
        "fmnist-dil-lt": {m: {**row, "balanced_accuracy": [0.7, 0.7], "ekld_tail": [0.1, 0.1]}
                          for m in ("drs", "git-auto", "oracle")}},
        "diagnostics": {"fmnist-bg-lt": {"seeds": [1, 2], "generator_keep_recommended": [0.9, 0.5],
                                         "true_keep_recommended": [1.0, 1.0]}}}
    default_fit.add_seeds(summary, extra)
    result = default_fit.compare(summary, "fmnist-bg-lt", "git-auto")
    assert result["seeds"] == [0, 1, 2]
    assert result["accuracy_git_minus_drs_per_seed"] == pytest.approx([0.02, 0.0, 0.04])
    assert result["accuracy_share"] == pytest.approx((0.06 / 3) / (0.10 / 3))
    assert result["ekld_share"] == pytest.approx((0.04 + 0.0 + 0.10) / (0.05 + 0.04 + 0.10))
    assert result["class_preservation_ratio"] == pytest.approx((0.72 + 0.9 + 0.5) / (0.8 + 1.0 + 1.0))
    assert "git" not in summary["table"]["fmnist-bg-lt"]  # only the rows the variant compares
    assert default_fit.compare(summary, "fmnist-dil-lt", "git-auto")["seeds"] == [1, 2]


def test_the_preservation_control_moves_every_image_by_exactly_one_pixel():
    import torch

    import preservation_control

    images = torch.rand(400, 1, 9, 9)
    moved = preservation_control.one_pixel_shift(images, generator=torch.Generator().manual_seed(0))
    inner = images[:, :, 1:-1, 1:-1]
    found = []
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        # content at (y, x) is found at (y + dy, x + dx)
        found.append((moved[:, :, 1 + dy:8 + dy, 1 + dx:8 + dx] == inner).flatten(1).all(1))
    found = torch.stack(found, 1)
    assert bool((found.sum(1) == 1).all())  # each image moved one way, by exactly one pixel (random pixels)
    assert bool((found.float().mean(0) > 0.15).all())  # every direction drawn
    # the uncovered row or column repeats the edge: nothing from outside the image
    up = found[:, 1]
    assert torch.equal(moved[up][:, :, -1], images[up][:, :, -1])
    markdown = preservation_control.markdown(
        {"fmnist-bg-lt": {"2": {"one-pixel shift": 0.863, "true nuisance": 1.0, "recommended draw": 0.807}}}, "cmd")
    assert "| `fmnist-bg-lt` | 2 | 86.3 % | 100.0 % | 80.7 % | 81 % | 94 % |  |  |" in markdown


def test_random_pixel_shift_moves_each_image_by_whole_pixels_within_the_bound():
    import torch

    import reproduce_digits

    images = torch.rand(300, 1, 12, 12)
    moved = reproduce_digits.random_pixel_shift(images, 2, torch.Generator().manual_seed(0))
    inner = images[:, :, 2:-2, 2:-2]
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    # content at (y, x) is found at (y + dy, x + dx): exactly one offset per image (random pixels)
    found = torch.stack([(moved[:, :, 2 + dy:10 + dy, 2 + dx:10 + dx] == inner).flatten(1).all(1)
                         for dy, dx in offsets], 1)
    assert bool((found.sum(1) == 1).all())
    assert int(found.any(0).sum()) == 25  # every offset within +-2 drawn, none beyond
    assert torch.equal(reproduce_digits.random_pixel_shift(images, 0), images)  # 0: untouched


def test_the_preservation_control_tabulates_a_shift_trained_reference_apart():
    import preservation_control

    plain = {"fmnist-bg-lt": {"2": {"one-pixel shift": 0.863, "true nuisance": 1.0, "recommended draw": 0.807}}}
    shifted = {"2": {"fmnist-bg-lt": {"2": {"one-pixel shift": 0.98, "true nuisance": 1.0, "recommended draw": 0.95,
                                            "warp alone": 0.99, "geometry kept": 0.9}}}}
    markdown = preservation_control.markdown(plain, "cmd", shifted)
    first, second = markdown.split("--reference-shift 2")
    assert "| `fmnist-bg-lt` | 2 | 86.3 % | 100.0 % | 80.7 % | 81 % | 94 % |" in first
    assert "| `fmnist-bg-lt` | 2 | 98.0 % | 100.0 % | 95.0 % | 95 % | 97 % | 99 % | 90 % |" in second
    assert "95.0 %" not in first
    stored = preservation_control._stored({"results": plain}, 2, shifted["2"], shifted)
    assert stored["results"] == plain and stored["shifted"] == shifted  # the plain reference's figures are kept


def test_fits_of_the_current_default_go_to_its_rows_and_not_to_an_earlier_defaults():
    import default_fit

    results = Path("benchmarks/results")
    for name in ("reproduce_fmnist_contrast_seeds.json", "reproduce_fmnist_contrast_seeds_45.json",
                 "reproduce_fmnist_heldout_flip.json", "reproduce_fmnist_flip_family.json",
                 "reproduce_fmnist_flip_family_34.json"):
        assert default_fit.current_default_file(results / name), name
    for name in ("reproduce_fmnist_heldout.json", "reproduce_fmnist_heldout_shift.json", "reproduce_digits_fresh.json"):
        assert not default_fit.current_default_file(results / name), name


def test_keep_class_summary_pairs_each_seed_and_counts_undone_draws_on_the_tail(tmp_path, monkeypatch):
    import keep_class

    monkeypatch.setattr(keep_class, "BENCH", tmp_path)
    runs = tmp_path / "_work" / "runs"
    runs.mkdir(parents=True)
    counts = [500, 100, 10]  # the tail third: class 2

    def write(seed, tag, val, test, tail, per_class, keep=None):
        run = {"class_counts": counts, "val_balanced_accuracy": val, "test_balanced_accuracy": test,
               "ekld_summary": {"tail_mean": tail}, "test_per_class_accuracy": per_class, "draw": {"residual": True}}
        if keep is not None:
            run["keep_class"] = keep
        (runs / f"set-seed{seed}-{tag}.json").write_text(json.dumps(run))

    for seed, shift in ((0, 0.0), (1, 0.02)):
        write(seed, "drs", 0.70, 0.70, 0.30, [0.9, 0.8, 0.4])
        write(seed, "git-auto", 0.72 + shift, 0.73, 0.20, [0.9, 0.6, 0.7])  # GIT costs class 1 most
        write(seed, "git-auto-keep", 0.71, 0.74 + shift, 0.25, [0.9, 0.7, 0.6],
              keep={"drawn_per_class": [0, 100, 50], "undone_per_class": [0, 10, 25]})
        write(seed, "oracle", 0.74, 0.75, 0.15, [0.9, 0.8, 0.6])
    summary = keep_class.summarize([("_work", "set", 0), ("_work", "set", 1)])["set"]
    assert summary["seeds"] == [0, 1]
    # paired differences, keeping minus GIT: val -0.01 and -0.03, test +0.01 and +0.03, tail eKLD +0.05 on both
    assert summary["keep_minus_git"]["val"][0] == pytest.approx(-0.02)
    assert summary["keep_minus_git"]["test"][0] == pytest.approx(0.02)
    assert summary["keep_minus_git"]["tail_ekld"] == pytest.approx((0.05, 0.0))
    row = summary["per_seed"][0]
    assert row["undone_share"] == pytest.approx(35 / 150)
    assert row["undone_share_tail"] == pytest.approx(0.5) and row["undone_share_rest"] == pytest.approx(0.1)
    section = keep_class.report_section({"set": summary}, "python benchmarks/keep_class.py")
    assert "seed 0 class 1: 80 / 60 / 70 / 80" in section


def test_stroke_test_moves_thicken_or_thin_and_its_table_averages_the_seeds():
    import torch

    import stroke_test
    from gitaug.datasets.nuisances import dilate_or_erode

    image = torch.full((1, 1, 8, 8), -1.0)
    image[..., 3:5, 3:5] = 1.0  # a 2x2 white square on black
    batch = image.expand(4, 1, 8, 8).contiguous()
    whole = dilate_or_erode(batch, torch.tensor([0, 3, -2, 2]))
    assert torch.equal(whole[0], image[0])  # kernel 0 leaves the image
    assert int((whole[1] > 0).sum()) == 16 and int((whole[2] > 0).sum()) == 1  # 3-square dilation / 2-square erosion
    sub = stroke_test.sub_pixel(batch, torch.tensor([0, 2, -2, 8]))
    ink = sub.add(1).sum((1, 2, 3))
    assert ink[3] > ink[1] > ink[0] > ink[2]  # more ink the further the dilation, less under erosion
    entry = {"whole kernels": {"-3": 0.5, "-2": 0.4, "2": 0.3, "3": 0.2},
             "sub-pixel": {str(r): r / 10 for r in stroke_test.RADII}, "sub-pixel range": 0.5}
    other = {**entry, "whole kernels": {"-3": 0.7, "-2": 0.6, "2": 0.5, "3": 0.4}, "sub-pixel range": 0.3}
    table = stroke_test.markdown({"fmnist-dil-lt": {"0": entry, "1": other}}, "cmd")
    assert ("| `fmnist-dil-lt` | 0, 1 | 0.60 (0.50, 0.70) | 0.50 (0.40, 0.60) | 0.40 (0.30, 0.50) | 0.30 (0.20, 0.40) "
            "| 0.10 / 0.20 / 0.40 / 0.80 | 0.40 (0.50, 0.30) |") in table


def test_appearance_strength_repeats_only_residual_data_style_runs_and_pairs_them(tmp_path, monkeypatch):
    import appearance_strength

    monkeypatch.setattr(appearance_strength, "BENCH", tmp_path)
    runs = tmp_path / "_work" / "runs"
    runs.mkdir(parents=True)
    residual = dict(appearance_strength.REPEATED_DRAW)

    def write(seed, tag, val, test, tail, draw=residual):
        run = {"val_balanced_accuracy": val, "test_balanced_accuracy": test, "ekld_summary": {"tail_mean": tail},
               "draw": draw, "args": {"dataset": "set", "method": "git", "draw": "recommended", "styles": "prior",
                                       "appearance_scale": 1.0, "warp_extent": 1.0, "seed": seed, "p": 0.5,
                                       "out": "x.json"}}
        (runs / f"set-seed{seed}-{tag}.json").write_text(json.dumps(run))

    for seed, gain in ((0, 0.01), (1, 0.03)):
        write(seed, "drs", 0.70, 0.70, 0.30)
        write(seed, "git-auto", 0.72, 0.72, 0.20)
        write(seed, "git-auto-appearance2", 0.72 + gain, 0.72 - gain, 0.15)
        write(seed, "git-auto-appearance1-extent0", 0.72 - gain, 0.72, 0.25)
        write(seed, "oracle", 0.74, 0.75, 0.10)
    write(2, "git-auto", 0.72, 0.72, 0.20, draw={**residual, "appearance_scale": 0.0})  # the warp alone: not repeated
    listed = [("_work", "set", 0), ("_work", "set", 1), ("_work", "set", 2)]
    assert appearance_strength.repeated(listed) == listed[:2]

    summary = appearance_strength.summarize(listed[:2], 2.0)["set"]
    assert summary["seeds"] == [0, 1]
    assert summary["variant_minus_git"]["val"][0] == pytest.approx(0.02)
    assert summary["variant_minus_git"]["test"][0] == pytest.approx(-0.02)
    assert summary["variant_minus_git"]["tail_ekld"] == pytest.approx((-0.05, 0.0))
    flat = appearance_strength.summarize(listed[:2], 1.0, 0.0)["set"]  # the geometry dropped: its own runs
    assert flat["warp_extent"] == 0.0 and flat["variant_minus_git"]["tail_ekld"] == pytest.approx((0.05, 0.0))
    section = appearance_strength.report_section({"a": {"set": summary}, "b": {"set": flat}}, ["cmd"])
    assert "| set | 2 | 1 | 0 1 | val. bal. acc. (%) |" in section and "(+1.0, +3.0) |" in section
    assert "| set | 1 | 0 | 0 1 | val. bal. acc. (%) |" in section and "(-1.0, -3.0) |" in section

    commands = []
    monkeypatch.setattr(appearance_strength.shared, "run_job", lambda command, log, out: commands.append(command))
    monkeypatch.setattr(appearance_strength, "ROOT", tmp_path)
    appearance_strength.repeat_job(tmp_path / "_work", "set", 0, 2.0)
    appearance_strength.repeat_job(tmp_path / "_work", "set", 0, 1.0, 0.0)
    stronger, flat_command = commands
    assert stronger[stronger.index("--draw") + 1] == "residual" and stronger.count("--draw") == 1
    assert stronger[stronger.index("--appearance-scale") + 1] == "2" and stronger.count("--appearance-scale") == 1
    assert stronger[stronger.index("--styles") + 1] == "data" and stronger.count("--styles") == 1
    assert "--warp-extent" not in stronger  # the finished run's extent 1 is dropped, not passed on
    assert stronger[stronger.index("--out") + 1] == "_work/runs/set-seed0-git-auto-appearance2.json"
    assert flat_command[flat_command.index("--warp-extent") + 1] == "0" and flat_command.count("--warp-extent") == 1
    assert flat_command[flat_command.index("--out") + 1] == "_work/runs/set-seed0-git-auto-appearance1-extent0.json"


def test_appearance_strength_reads_a_results_file_from_before_variants(tmp_path):
    import appearance_strength

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"set": {"scale": 2.0, "seeds": [0]}, "other": {"scale": 2.0, "seeds": [1]}}))
    assert appearance_strength.stored_variants(old) == (
        {"git-auto-appearance2": (2.0, 1.0)}, ["python benchmarks/appearance_strength.py --scale 2"])
    assert appearance_strength.stored_variants(tmp_path / "missing.json") == ({}, [])


def test_probe_strength_tabulates_each_steps_setting_with_the_true_nuisance():
    import probe_strength

    entry = {"rotation_deg": 7.9, "scale": 1.08, "shift": 0.037, "contrast": 1.12, "background_values": 64,
             "flip": False, "seconds": 74.0}
    stronger = {**entry, "rotation_deg": 3.6, "scale": 1.05, "shift": 0.025, "seconds": 261.0}
    table = probe_strength.markdown({"fmnist-bg-lt": {"2": {"800": stronger, "200": entry}},
                                     "fmnist-lt": {"0": {"200": {**entry, "background_values": 0, "flip": True}}}}, "cmd")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `fmnist-lt` | none | 0 | 200 |") and rows[0].endswith("| mirror | 74 |")
    assert rows[1] == ("| `fmnist-bg-lt` | RandomBackground(low=0, high=100) | 2 | 200 | +-7.9 | x1.080 | +-3.7 % "
                       "| x1.120 | 64 backgrounds | 74 |")
    assert rows[2].startswith("| `fmnist-bg-lt` | RandomBackground(low=0, high=100) | 2 | 800 | +-3.6 | x1.050 |")


def test_appearance_change_tabulates_power_ranges_and_keep_rates_with_shirts_on_the_clothing_only():
    import appearance_change

    power = {f"{v:g}": round(v / 4, 3) for v in appearance_change.LEVELS}
    keep = {"true nuisance": [1.0] * 10, "data styles": [0.8] * 6 + [0.4] + [0.8] * 3,
            "class styles": [0.9] * 6 + [0.5] + [0.9] * 3}
    entry = {"detector": {"power": power, "range": 0.8}, "style variance between classes": 0.13, "keep": keep}
    table = appearance_change.markdown({"fmnist-bg-lt": {"2": entry}, "digits-dil-lt": {"0": entry}}, "cmd")
    assert "power at s = 0.125 / 0.375 / 0.625 / 0.875 / 1.125 / 1.375 / 1.625 / 1.875 |" in table
    cells = "0.03 / 0.09 / 0.16 / 0.22 / 0.28 / 0.34 / 0.41 / 0.47 | 0.80 | 13 % | 100.0 % / 76.0 % / 86.0 %"
    assert f"| `fmnist-bg-lt` | 2 | {cells} | 100 % / 40 % / 50 % |" in table
    assert f"| `digits-dil-lt` | 0 | {cells} |  |" in table


def test_class_draws_reports_keep_rates_and_where_the_lost_draws_go():
    import class_draws

    entry = {"dataset": "fmnist-dil-lt", "seed": 2, "class": "shirt", "picture": "p.png",
             "recommended draw": {"kept": 0.57, "changed to": {"pullover": 30, "T-shirt": 90}},
             "true nuisance": {"kept": 0.78, "changed to": {"coat": 12}}}
    section = class_draws.markdown({"fmnist-dil-lt 2 6": entry}, "cmd")
    assert "| `fmnist-dil-lt` | 2 | shirt | 57 %, T-shirt 90, pullover 30 | 78 %, coat 12 |" in section
    assert "![shirt draws, fmnist-dil-lt seed 2](results/p.png)" in section
    assert class_draws.class_name("fmnist-bg-lt", 6) == "shirt" and class_draws.class_name("digits-lt", 6) == "6"
