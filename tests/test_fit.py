"""gitaug-fit: data reading, configuration, training, checkpoints and export, on small real digits."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gitaug import GITAugment, MUNITGenerator
from gitaug.fit import FitConfig, FitInterrupted, NonFiniteLossError, fit
from gitaug.fit.data import IndexStream, read_training_data
from gitaug.fit.discriminator import MultiScaleDiscriminator
from gitaug.fit.grid import grid_rows
from gitaug.hub import load_generator
from gitaug.fit.nuisance_probe import DRAW_EXTENT
from gitaug.report import DRAW_CANDIDATES

from helpers import COUNTS, digits_16

PIL = pytest.importorskip("PIL.Image")


def tiny(data: Path, out: Path, **changes) -> FitConfig:
    """A run that takes well under a second per few steps: narrow networks, 16x16 images, small batches."""
    values = dict(
        data=str(data),
        out=str(out),
        dim=8,
        mlp_dim=16,
        n_res=1,
        disc_dim=8,
        disc_layers=2,
        disc_scales=1,
        batch_size=4,
        steps=4,
        log_every=1,
        checkpoint_every=2,
        sample_every=0,
        grid_variants=2,
        progress=False,
        probe_steps=5,
        report=False,  # the generator report is tested on its own (tests/test_report.py, test_nuisance.py)
    )
    values.update(changes)
    return FitConfig(**values)


def fit_run(config: FitConfig) -> Path:
    """Fit, check that the export is the run folder's ``generator/``, and return the run folder."""
    exported = fit(config)
    assert exported == Path(config.out) / "generator"
    return Path(config.out)


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def losses_of(records: list[dict]) -> list[list[float]]:
    names = (
        "loss_image", "loss_style", "loss_content", "loss_adv", "loss_diversity", "loss_warp_diversity", "loss_gen",
        "loss_disc",
    )
    return [[record[name] for name in names] for record in records]


def checkpoint_state(out: Path) -> dict:
    latest = sorted((out / "checkpoints").glob("step-*.pt"))[-1]
    return torch.load(latest, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- an end-to-end run


def test_a_fit_on_labelled_images_stores_the_draw_that_from_pretrained_uses(tmp_path):
    images, labels = digits_16(counts=[40, 30, 25, 5])  # three classes of 20 or more: the transfer test can judge
    np.savez(tmp_path / "digits.npz", images=images, labels=labels)
    out = fit_run(tiny(tmp_path / "digits.npz", tmp_path / "run", steps=2, checkpoint_every=0, report=True))
    aug = GITAugment.from_pretrained(out)
    draw = aug.metadata["draw"]  # the default fit warps and the images have labels: a draw is recommended
    def judged(settings: dict) -> dict:  # the settings the transfer test compares (within the tested ranges)
        return {k: v for k, v in settings.items() if k not in ("chosen", "warp_extent")}

    assert judged(draw) in [judged(s) for _, s in DRAW_CANDIDATES]
    # it draws within the tested ranges (extent 1), and the fit says how far that is
    assert draw["warp_extent"] == 1.0 == aug.warp_extent
    drawn, tested = aug.metadata["nuisance"]["drawn"], aug.generator.config
    assert drawn["extent"] == 1.0
    assert drawn["rotation_degrees"] == pytest.approx(tested.warp_rotation, abs=1e-3)
    assert drawn["shift"] == pytest.approx(tested.warp_shift, abs=1e-4)
    assert GITAugment.from_pretrained(out, warp_extent=DRAW_EXTENT).warp_extent == DRAW_EXTENT  # the caller may reach further
    assert draw["chosen"].startswith("pseudo-tail transfer test")
    figures = aug.metadata["draw_test"]  # the test's figures are stored beside it
    assert figures["head_classes"] == [0, 1, 2] and set(figures["balanced_accuracy"]) == {
        "no draw", *(name for name, _ in DRAW_CANDIDATES)}
    assert aug.residual is draw["residual"] and aug.appearance_scale == draw.get("appearance_scale", 1.0)
    assert aug.styles == draw.get("styles", "prior")
    assert GITAugment.from_pretrained(out, residual=False, appearance_scale=1.0).residual is False  # the caller decides


def test_a_fit_whose_every_draw_teaches_the_pseudo_tail_less_than_no_draw_warns(tmp_path, monkeypatch, caplog):
    import gitaug.report
    from gitaug.transfer import NO_DRAW, TransferTest

    def harmful(generator, images, labels, **options):
        names = [name for name, _ in DRAW_CANDIDATES]
        scores = {NO_DRAW: [0.90, 0.92, 0.91], **{n: [0.60 + 0.01 * i, 0.62, 0.61] for i, n in enumerate(names)}}
        return TransferTest(names=names, settings=dict(DRAW_CANDIDATES), balanced_accuracy=scores,
                            tail_accuracy=scores, tail_probability=scores, head_classes=[0, 1, 2], tail_images=5, steps=1)

    monkeypatch.setattr(gitaug.report, "draw_transfer_test", harmful)
    images, labels = digits_16(counts=[40, 30, 25, 5])
    np.savez(tmp_path / "digits.npz", images=images, labels=labels)
    with caplog.at_level("WARNING", logger="gitaug"):
        out = fit_run(tiny(tmp_path / "digits.npz", tmp_path / "run", steps=2, checkpoint_every=0, report=True))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "no draw of this generator" in r.getMessage()]
    assert len(warned) == 1 and "without a draw" in warned[0] and "91.0%" in warned[0]
    assert "would harm GIT" in GITAugment.from_pretrained(out).metadata["draw"]["chosen"]  # and the stored summary says so


def test_tiny_run_exports_a_folder_that_gitaugment_loads(digits_npz, tmp_path):
    out = fit_run(tiny(digits_npz, tmp_path / "run", steps=4, sample_every=2))

    assert out == tmp_path / "run"
    for name in ("config.json", "model.safetensors", "README.md", "samples.png"):
        assert (out / "generator" / name).is_file(), name
    assert (out / "fit_config.json").is_file() and (out / "gitaug-run.json").is_file()
    assert "![samples](samples.png)" in (out / "generator" / "README.md").read_text()
    assert [p.name for p in sorted((out / "samples").glob("*.png"))] == ["step-00000002.png", "step-00000004.png"]
    assert [record["step"] for record in read_log(out)] == [1, 2, 3, 4]

    aug = GITAugment.from_pretrained(out)
    assert aug.generator.config.image_size == 16 and aug.generator.config.in_channels == 1
    meta = aug.metadata
    assert meta["class_counts"] == COUNTS
    assert meta["steps"] == 4 and meta["batch_size"] == 4 and meta["sampling"] == "balanced"
    assert meta["data_source"] == digits_npz.name  # the base name only: no local path is published
    assert str(digits_npz.parent) not in (out / "generator" / "config.json").read_text() + (out / "generator" / "README.md").read_text()
    assert set(meta["final_losses"]) >= {"loss_image", "loss_adv", "loss_disc"}
    assert all(math.isfinite(v) for v in meta["final_losses"].values())

    images = torch.rand(5, 1, 16, 16)
    generated = aug(images, generator=torch.Generator().manual_seed(0))
    assert generated.shape == images.shape
    assert 0 <= float(generated.min()) and float(generated.max()) <= 1
    assert not torch.equal(generated, images)

    # The exported weights are the trained ones, not the initial ones.
    exported, _ = load_generator(out)
    assert torch.equal(exported.state_dict()["decoder.res_blocks.0.conv1.weight"],
                       checkpoint_state(out)["generator"]["decoder.res_blocks.0.conv1.weight"])


def test_sample_grid_rows_put_the_smallest_classes_first(digits_npz):
    data = read_training_data(data=digits_npz)
    rows = grid_rows(data.targets, len(data), max_rows=4, seed=0)
    assert data.targets[rows].tolist() == [5, 4, 3, 2]
    # Held-out images of balanced classes, ordered by the training counts given (here the reverse of the index).
    balanced = torch.arange(6).repeat(3)
    rows = grid_rows(balanced, len(balanced), max_rows=3, seed=0, class_sizes=[60, 50, 40, 30, 20, 10])
    assert balanced[rows].tolist() == [5, 4, 3]
    assert balanced[grid_rows(balanced, len(balanced), max_rows=3, seed=0)].tolist() == [0, 1, 2]  # all equal: index order
    with pytest.raises(ValueError, match="class_sizes has 2 entries, but labels go up to class 5"):
        grid_rows(balanced, len(balanced), class_sizes=[1, 2])


def test_reconstruction_loss_falls_on_real_digits(digits_npz, tmp_path):
    out = fit_run(tiny(digits_npz, tmp_path / "run", steps=60, batch_size=8, lr=1e-3, checkpoint_every=0))
    image_losses = [record["loss_image"] for record in read_log(out)]
    first, last = np.mean(image_losses[:10]), np.mean(image_losses[-10:])
    assert last < 0.6 * first, (first, last)


def _draw_difference(out: Path, images: torch.Tensor) -> float:
    """Mean |G(x; s1) - G(x; s2)| of an exported generator over two style draws."""
    aug = GITAugment.from_pretrained(out)
    seed = torch.Generator().manual_seed(1)
    with torch.no_grad():
        return float((aug(images, generator=seed) - aug(images, generator=seed)).abs().mean())


def test_diversity_terms_make_the_style_code_matter(digits_npz, tmp_path):
    # The same run three times: the paper's objective, the mode-seeking term, and a rotation warp
    # rewarded by the warp-only term.
    common = dict(steps=40, batch_size=8, lr=1e-3, checkpoint_every=0, diversity_cap=0.5)
    paper = fit_run(tiny(digits_npz, tmp_path / "paper", warp="none", weight_diversity=0.0, **common))
    image = fit_run(tiny(digits_npz, tmp_path / "image", warp="none", weight_diversity=5.0, **common))
    turned = fit_run(tiny(digits_npz, tmp_path / "turned", warp="rotation", weight_diversity=0.0,
                          weight_warp_diversity=5.0, **common))

    for out, name in ((image, "loss_diversity"), (turned, "loss_warp_diversity")):
        records = read_log(out)
        assert all(record[name] >= 0 for record in records)
        values = [record[name] for record in records]
        assert np.mean(values[-10:]) < np.mean(values[:10]), (name, values)
    for record in read_log(paper):  # off: not computed
        assert record["loss_diversity"] == record["loss_warp_diversity"] == 0
    meta = GITAugment.from_pretrained(turned).metadata
    assert meta["loss_weights"]["warp_diversity"] == 5.0 and meta["diversity_cap"] == 0.5
    generator = GITAugment.from_pretrained(turned).generator
    assert generator.config.warp == "rotation"
    torch.manual_seed(0)  # the run's seed: the generator as it was before fitting
    initial = MUNITGenerator(generator.config)
    styles = torch.randn(256, generator.config.style_dim)
    with torch.no_grad():
        before = initial.warp.parameters_from_style(styles)["angle"].std()
        after = generator.warp.parameters_from_style(styles)["angle"].std()
    assert float(after) > 5 * float(before), (float(before), float(after))  # it learned to turn

    images = torch.as_tensor(np.load(digits_npz)["images"][:16], dtype=torch.float32)[:, None] / 255
    baseline = _draw_difference(paper, images)
    assert _draw_difference(image, images) > 2 * baseline
    assert _draw_difference(turned, images) > 2 * baseline


def test_warp_diversity_needs_a_warp():
    with pytest.raises(ValueError, match=r"weight_warp_diversity=1.0: needs a learned warp"):
        FitConfig(dataset="digits-rot-lt", weight_warp_diversity=1.0)


def test_diversity_loss_is_the_shortfall_of_the_ratio_below_the_cap():
    from gitaug.fit.objective import diversity_loss

    fake, other = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.1)
    style, style_other = torch.zeros(2, 8), torch.ones(2, 8)  # mean |s1 - s2| = 1
    assert float(diversity_loss(fake, other, style, style_other, cap=0.3)) == pytest.approx(0.2)
    assert float(diversity_loss(fake, other, style, style_other, cap=0.05)) == 0.0


# --------------------------------------------------------------------------- resuming


@pytest.mark.parametrize(
    "objective",
    [
        {"warp": "none", "weight_diversity": 0.0},
        {"warp": "rotation", "weight_diversity": 1.0, "weight_warp_diversity": 1.0},
        {},
    ],
    ids=["paper", "warp-and-diversity", "default"],
)
def test_resumed_run_equals_uninterrupted_run_bitwise(digits_npz, tmp_path, objective):
    whole = fit_run(tiny(digits_npz, tmp_path / "whole", steps=6, checkpoint_every=3, **objective))
    half = fit_run(tiny(digits_npz, tmp_path / "half", steps=3, checkpoint_every=3, **objective))
    assert checkpoint_state(half)["step"] == 3
    resumed = fit_run(tiny(digits_npz, tmp_path / "half", steps=6, checkpoint_every=3, resume=True, **objective))

    a, b = checkpoint_state(whole), checkpoint_state(resumed)
    assert a["step"] == b["step"] == 6
    for part in ("generator", "discriminator"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name}"
    assert losses_of(read_log(whole)) == losses_of(read_log(resumed))
    assert torch.equal(a["optimizer_g"]["state"][0]["exp_avg"], b["optimizer_g"]["state"][0]["exp_avg"])


def _send_sigint_after(log: Path, lines: int) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.is_file() and len(log.read_text().splitlines()) >= lines:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_sigint_writes_a_checkpoint_and_the_resumed_run_matches(digits_npz, tmp_path):
    out = tmp_path / "interrupted"
    # The handler before the run is what must come back: a background job starts with SIGINT ignored.
    handler_before = signal.getsignal(signal.SIGINT)
    watcher = _send_sigint_after(out / "log.jsonl", lines=2)
    with pytest.raises(FitInterrupted, match=r"stopped by SIGINT after step \d+") as stopped:
        fit(tiny(digits_npz, out, steps=100_000, checkpoint_every=0))
    watcher.join()
    step = stopped.value.step
    assert 2 <= step < 100_000
    assert stopped.value.checkpoint == out / "checkpoints" / f"step-{step:08d}.pt"
    assert stopped.value.checkpoint.is_file()
    assert not (out / "generator" / "model.safetensors").exists()  # interrupted: no export
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers restored

    resumed = fit_run(tiny(digits_npz, out, steps=step + 2, checkpoint_every=0, resume=True))
    whole = fit_run(tiny(digits_npz, tmp_path / "whole", steps=step + 2, checkpoint_every=0))
    a, b = checkpoint_state(whole), checkpoint_state(resumed)
    assert all(torch.equal(t, b["generator"][k]) for k, t in a["generator"].items())
    assert losses_of(read_log(whole)) == losses_of(read_log(resumed))


def test_keeps_only_the_last_checkpoints(digits_npz, tmp_path):
    out = fit_run(tiny(digits_npz, tmp_path / "run", steps=8, checkpoint_every=1, keep_checkpoints=2))
    assert [p.name for p in sorted((out / "checkpoints").glob("*.pt"))] == ["step-00000007.pt", "step-00000008.pt"]
    assert not list((out / "checkpoints").glob(".*"))  # no temporary files left


def test_resume_without_checkpoint_starts_fresh(digits_npz, tmp_path):
    out = fit_run(tiny(digits_npz, tmp_path / "new", steps=2, resume=True))
    assert checkpoint_state(out)["step"] == 2


# --------------------------------------------------------------------------- the output folder


def test_a_folder_holding_another_run_is_refused_unless_resume_or_overwrite(digits_npz, tmp_path):
    out = fit_run(tiny(digits_npz, tmp_path / "run", steps=2))
    with pytest.raises(ValueError, match=r"already holds a gitaug-fit run.*--resume.*--overwrite"):
        fit(tiny(digits_npz, out, steps=2))
    with pytest.raises(ValueError, match=r"started with batch_size=4 \(now 8\)"):
        fit(tiny(digits_npz, out, steps=4, batch_size=8, resume=True))
    fit(tiny(digits_npz, out, steps=3, batch_size=8, overwrite=True))
    assert checkpoint_state(out)["step"] == 3 and [r["step"] for r in read_log(out)] == [1, 2, 3]


def test_a_non_empty_foreign_folder_is_refused(digits_npz, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match=r"out=.*mine.* is not empty \(notes.txt\) and is not a gitaug-fit run"):
            fit(tiny(digits_npz, tmp_path / "mine", **flags))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- failures during training


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_loss(digits_npz, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"(loss_\w+ is (nan|inf|-inf) at step \d+|non-finite at step \d+)"):
        fit(tiny(digits_npz, out, steps=50, lr=1e30, checkpoint_every=1, keep_checkpoints=100))
    # Every checkpoint left behind holds finite weights: the bad state was never saved.
    for path in (out / "checkpoints").glob("*.pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert all(torch.isfinite(t).all() for t in state["generator"].values()), path.name
    assert not (out / "generator" / "model.safetensors").exists()


def test_tensorboard_flag_needs_tensorboard(digits_npz, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        out = fit_run(tiny(digits_npz, tmp_path / "run", steps=2, tensorboard=True))
        assert list((out / "tensorboard").iterdir())
    else:
        with pytest.raises(ImportError, match=r"tensorboard=True .*pip install"):
            fit(tiny(digits_npz, tmp_path / "run", steps=2, tensorboard=True))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(batch_size=0), r"batch_size=0: must be a positive integer"),
        (dict(steps=-5), r"steps=-5: must be a positive integer"),
        (dict(lr=-1.0), r"lr=-1.0: must be a positive, finite number"),
        (dict(lr=float("nan")), r"lr=nan"),
        (dict(beta1=1.5), r"beta1=1.5: must be a number in \[0, 1\)"),
        (dict(sampling="uniform"), r"sampling='uniform': must be one of"),
        (dict(amp="fp8"), r"amp='fp8': must be one of"),
        (dict(preset="huge"), r"preset='huge': must be one of"),
        (dict(image_size=30), r"image_size=30: must be divisible by 4"),
        (dict(image_size=8), r"image_size=8: must be an integer >= 16"),
        (dict(channels=2), r"channels=2: must be 1 \(gray\), 3 \(RGB\)"),
        (dict(device="gpu7"), r"device='gpu7'"),
        (dict(resume=True, overwrite=True), r"choose one of resume and overwrite"),
        (dict(dataset="digits-rot-lt"), r"give exactly one of dataset .* and data"),
        (dict(data=None), r"give exactly one of dataset .* and data"),
        (dict(weight_adv=-1.0), r"weight_adv=-1.0: must be a non-negative"),
        (dict(weight_diversity=-0.5), r"weight_diversity=-0.5: must be a non-negative"),
        (dict(diversity_cap=0.0), r"diversity_cap=0.0: must be a positive"),
        (dict(warp="elastic"), r"warp='elastic': must be one of \('auto', 'none', 'rotation', 'similarity', 'affine'\)"),
        (dict(checkpoint_every=-1), r"checkpoint_every=-1: must be a non-negative integer"),
    ],
)
def test_bad_config_values_are_named(tmp_path, changes, message):
    values = dict(data=str(tmp_path / "x.npz"), out=str(tmp_path / "run"))
    values.update(changes)
    with pytest.raises(ValueError, match=message):
        FitConfig(**values)


def test_every_bad_value_is_listed_at_once():
    with pytest.raises(ValueError, match=r"batch_size=0.*lr=0.0.*amp='x'"):
        FitConfig(dataset="digits-rot-lt", batch_size=0, lr=0.0, amp="x")


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown FitConfig field\(s\) \['batchsize'\]"):
        FitConfig.from_dict({"dataset": "digits-rot-lt", "batchsize": 3})


def test_too_many_discriminator_scales_for_the_image_size(digits_npz, tmp_path):
    with pytest.raises(ValueError, match=r"n_scales=4 is too many for 16x16 images"):
        fit(tiny(digits_npz, tmp_path / "run", disc_scales=4))


def test_balanced_sampling_needs_labels(tmp_path):
    images, _ = digits_16()
    np.savez(tmp_path / "unlabelled.npz", images=images)
    with pytest.raises(ValueError, match=r"sampling='balanced' needs labels"):
        fit(tiny(tmp_path / "unlabelled.npz", tmp_path / "run", sampling="balanced"))


# --------------------------------------------------------------------------- data


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(array).save(path)


def test_image_folder_mixed_sizes_and_modes_become_one_uniform_tensor(tmp_path):
    images, labels = digits_16([4, 2])
    for i, (image, label) in enumerate(zip(images, labels)):
        if i % 2:  # every other image as a larger RGB file
            image = np.asarray(PIL.fromarray(image).resize((20, 20)).convert("RGB"))
        save_png(tmp_path / "folder" / f"digit{label}" / f"{i}.png", image)
    data = read_training_data(data=tmp_path / "folder")
    assert data.images.shape == (6, 1, 16, 16) and data.images.dtype == torch.uint8  # gray RGB counts as gray
    assert data.classes == ["digit0", "digit1"] and data.class_counts.tolist() == [4, 2]

    rgb = read_training_data(data=tmp_path / "folder", channels=3, image_size=24)
    assert rgb.images.shape == (6, 3, 24, 24)


def test_colour_images_are_rgb_and_can_be_made_gray(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
    np.savez(tmp_path / "colour.npz", images=colour)
    assert read_training_data(data=tmp_path / "colour.npz").images.shape == (5, 3, 20, 20)
    gray = read_training_data(data=tmp_path / "colour.npz", channels=1)
    expected = np.round(colour @ np.array([0.299, 0.587, 0.114]))
    assert gray.images.shape == (5, 1, 20, 20)
    assert np.abs(gray.images[:, 0].numpy().astype(float) - expected).max() <= 1


def test_flat_folder_has_no_labels_and_trains_with_instance_sampling(tmp_path):
    images, _ = digits_16([6, 6])
    for i, image in enumerate(images):
        save_png(tmp_path / "flat" / f"{i:02d}.png", image)
    data = read_training_data(data=tmp_path / "flat")
    assert not data.labelled and data.class_counts is None and len(data) == 12
    out = fit_run(tiny(tmp_path / "flat", tmp_path / "run", steps=2))
    meta = GITAugment.from_pretrained(out).metadata
    assert meta["sampling"] == "instance" and meta["class_counts"] is None


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    images, labels = digits_16([3, 3])
    for i, (image, label) in enumerate(zip(images, labels)):
        save_png(tmp_path / "folder" / str(label) / f"{i}.png", image)
    (tmp_path / "folder" / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "folder" / "1" / "empty.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image file\(s\)"):
        data = read_training_data(data=tmp_path / "folder")
    assert data.skipped == 2 and len(data) == 6 and data.class_counts.tolist() == [3, 3]


def test_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"none of the 1 image file\(s\) in data=.*bad.* could be read"):
            read_training_data(data=tmp_path / "bad")


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty" / "class_a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"data=.*empty.* holds no image files"):
        read_training_data(data=tmp_path / "empty")


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data=.*nowhere.* does not exist"):
        read_training_data(data=tmp_path / "nowhere")


def test_npz_without_images_is_an_error(tmp_path):
    np.savez(tmp_path / "x.npz", pictures=np.zeros((2, 16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"data=.*x.npz.* has no 'images' array; it holds \['pictures'\]"):
        read_training_data(data=tmp_path / "x.npz")


def test_npz_labels_that_do_not_match_the_images_are_an_error(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 16, 16), np.uint8), labels=np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"'labels' must have one entry per image \(4\), got shape \(3,\)"):
        read_training_data(data=tmp_path / "x.npz")


def test_npz_float_images_are_an_error(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"'images' must be uint8 .* got dtype float32"):
        read_training_data(data=tmp_path / "x.npz")


def test_an_image_size_the_generator_cannot_use_is_rounded_with_a_warning(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((3, 30, 30), np.uint8))
    with pytest.warns(UserWarning, match=r"resized to 32x32 .*--image-size"):
        data = read_training_data(data=tmp_path / "x.npz")
    assert data.images.shape[-1] == 32
    np.savez(tmp_path / "small.npz", images=np.zeros((3, 8, 8), np.uint8))
    with pytest.warns(UserWarning, match=r"resized to 16x16"):
        assert read_training_data(data=tmp_path / "small.npz").images.shape[-1] == 16


def test_balanced_sampler_draws_classes_equally_and_instance_sampler_covers_an_epoch():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    balanced = IndexStream(100, 300, labels=labels, mode="balanced", seed=0)
    counts = torch.bincount(labels[torch.cat([balanced.next_batch() for _ in range(10)])], minlength=3)
    assert (counts.float() / counts.sum() - 1 / 3).abs().max() < 0.03

    instance = IndexStream(100, 30, mode="instance", seed=0)
    epoch = torch.cat([instance.next_batch() for _ in range(10)])[:100]
    assert sorted(epoch.tolist()) == list(range(100))


def test_discriminator_fits_small_images():
    disc = MultiScaleDiscriminator(1, 28, dim=8, n_layers=4, n_scales=3)
    assert disc.layers_per_scale == [3, 2, 1]
    assert all(min(score.shape[-2:]) >= 2 for score in disc(torch.zeros(2, 1, 28, 28)))


def test_builtin_dataset_is_read_with_its_seed():
    pytest.importorskip("gitaug.datasets")
    pytest.importorskip("sklearn")
    data = read_training_data(dataset="digits-rot-lt", seed=1)
    assert data.images.shape[1:] == (1, 28, 28)
    assert sorted(data.class_counts.tolist(), reverse=True)[0] == 500 and data.class_counts.min() == 5
    other = read_training_data(dataset="digits-rot-lt", seed=2)
    assert not torch.equal(data.class_counts, other.class_counts)
    with pytest.raises(ValueError, match=r"dataset='nope'"):
        read_training_data(dataset="nope")


def test_discriminator_learning_rate_can_differ_from_the_generators(digits_npz, tmp_path):
    out = fit_run(tiny(digits_npz, tmp_path / "run", steps=2, lr=1e-4, lr_disc=4e-4))
    state = checkpoint_state(out)
    assert state["optimizer_g"]["param_groups"][0]["lr"] == 1e-4
    assert state["optimizer_d"]["param_groups"][0]["lr"] == 4e-4
    assert GITAugment.from_pretrained(out).metadata["optimizer"]["lr_disc"] == 4e-4
    # by default the discriminator follows lr
    default = fit_run(tiny(digits_npz, tmp_path / "default", steps=1, lr=2e-4))
    assert checkpoint_state(default)["optimizer_d"]["param_groups"][0]["lr"] == 2e-4
