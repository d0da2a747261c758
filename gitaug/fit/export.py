"""The end of a fit: a final sample grid, the training metadata and the exported generator folder."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..datasets import ImageDataset
from ..hub import push_folder_to_hub, save_generator
from .config import FitConfig
from .data import to_model_range
from .grid import dataset_rows, save_sample_grid
from .nuisance_probe import NuisanceProbe, describe_drawn, describe_nuisance, drawn_ranges, learned_nuisance
from .objective import LossTerms
from .run_folder import RunFolder
from .state import FitState
from .trackers import Trackers

if TYPE_CHECKING:
    from ..generator import MUNITGenerator
    from ..report import GeneratorReport
    from ..transfer import TransferTest

__all__ = ["export_generator", "training_metadata", "check_push_target"]

logger = logging.getLogger("gitaug.fit")


def export_generator(
    config: FitConfig,
    data: ImageDataset,
    sampling: str,
    run: RunFolder,
    state: FitState,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    processes: int,
    probe: NuisanceProbe | None = None,
    tracker: Trackers | None = None,
) -> Path:
    """Write ``run.generator_dir`` (config, weights, model card, samples) and push it if asked; returns it.

    ``probe`` is the nuisance test the warp ranges came from (``None`` when they were given or resumed);
    ``tracker`` gets the final grid and the generator report.
    """
    rows, row_labels = dataset_rows(data, max_rows=10, seed=config.seed)
    grid = save_sample_grid(run.sample_path(state.step), state.generator, data.images[rows],
                            variants=config.grid_variants, seed=config.seed, row_labels=row_labels)
    metadata = training_metadata(config, data, sampling, state, run.last_log_record(), device, amp_dtype, processes)
    # What the generator learned: its warp ranges, how far its draws differ, and the test behind the ranges.
    metadata["nuisance"] = learned_nuisance(state.generator, data, probe, seed=config.seed)
    # The training images' own style distribution, for GITAugment(styles="data").
    metadata["styles"] = state.generator.style_statistics(to_model_range(data.images))
    logger.info("learned nuisance: %s", describe_nuisance(metadata["nuisance"]))
    # ... and what each draw changes in appearance, beside the data's own variation within a class.
    from ..report import describe_appearance

    metadata["nuisance"]["appearance"] = _appearance(state, data, metadata["styles"], config.seed)
    logger.info("appearance, spread between draws of one input:\n%s", describe_appearance(metadata["nuisance"]["appearance"]))
    if config.report:
        report = _report(state, data, config.seed)
        metadata["report"] = report.to_dict()
        # The draw from_pretrained will use: the most varied one a classifier learns as much from as from
        # the best (report.recommend_draw's pseudo-tail transfer test).
        test = _transfer_test(state, data, metadata["styles"], config.seed)
        if test is not None:
            from ..report import recommendation
            from ..transfer import NO_DRAW

            metadata["draw"] = draw = recommendation(test)
            metadata["draw_test"] = test.to_dict()
            logger.info("draws, pseudo-tail transfer test:\n%s", test)
            logger.info("recommended draw: %s", {k: v for k, v in draw.items() if k != "chosen"})
            if test.harms():
                logger.warning("no draw of this generator taught the pseudo-tail classes as much as their own images "
                               "alone (%s vs %.1f%% without a draw): GIT with it would likely lower accuracy on the "
                               "tail; look at its sample grid, and compare with plain re-sampling on validation "
                               "before training with it", f"{test.mean(test.best()):.1%} for {test.best()}",
                               100 * test.mean(NO_DRAW))
            # How far the recommended draw moves an input: the tested ranges times its warp extent.
            drawn = drawn_ranges(state.generator.warp, draw.get("warp_extent", 1.0))
            if drawn is not None:
                metadata["nuisance"]["drawn"] = drawn
                logger.info("%s", describe_drawn(drawn))
    if tracker is not None:
        tracker.log_image("samples", grid, state.step)
        if "report" in metadata:
            tracker.log_summary("report", metadata["report"], state.step)
    save_generator(state.generator, run.generator_dir, metadata=metadata, samples_image=grid)
    logger.info("exported the generator to %s (%.0f s of training)", run.generator_dir, state.seconds)
    if config.push_to_hub:
        try:
            url = push_folder_to_hub(run.generator_dir, config.push_to_hub)
        except Exception as err:  # network and Hub errors come in many types; the export is safe either way
            raise OSError(
                f"the generator was exported to {run.generator_dir}, but pushing it to the Hub repo "
                f"{config.push_to_hub!r} failed ({type(err).__name__}: {err}); push it later with "
                f"`gitaug push {run.generator_dir} {config.push_to_hub}`"
            ) from err
        logger.info("pushed to the Hub: %s", url)
    return run.generator_dir


def check_push_target(repo_id: str) -> None:
    """Make sure the Hub repo ``repo_id`` exists and can be written to (it is created if needed), before training.

    A fit that can only fail at its very end should fail at its start.
    """
    from huggingface_hub import HfApi

    try:
        HfApi().create_repo(repo_id, exist_ok=True)
    except Exception as err:  # connection, authentication and permission errors all mean the same here
        raise ValueError(
            f"push_to_hub={repo_id!r}: the Hub repo cannot be reached or created ({type(err).__name__}: {err}). "
            "Nothing was trained. Log in (hf auth login) or fix the repo id, or fit without --push-to-hub and "
            f"upload the export later with `gitaug push <out>/generator {repo_id}`"
        ) from err


def _report(state: FitState, data: ImageDataset, seed: int) -> GeneratorReport:
    """The generator report (as ``gitaug eval`` gives it) on the training images, logged with its verdict."""
    from ..report import generator_report

    was_training = state.generator.training
    try:
        report = generator_report(state.generator, data.images, data.targets if data.labelled else None, seed=seed)
    finally:
        state.generator.train(was_training)
    (logger.warning if report.warnings else logger.info)("generator report:\n%s", report)
    return report


@contextlib.contextmanager
def _with_styles(generator: MUNITGenerator, styles: dict[str, Any]) -> Iterator[MUNITGenerator]:
    """``generator`` with the style statistics the export is about to store (for ``styles="data"`` draws), for a while."""
    was_training, stored = generator.training, dict(generator.training_metadata)
    generator.training_metadata = {**stored, "styles": styles}
    try:
        yield generator
    finally:
        generator.training_metadata = stored
        generator.train(was_training)


def _transfer_test(state: FitState, data: ImageDataset, styles: dict[str, Any], seed: int) -> TransferTest | None:
    """:func:`gitaug.report.draw_transfer_test` on the training images (``None`` without labels)."""
    from ..report import draw_transfer_test

    if not data.labelled:
        return None
    with _with_styles(state.generator, styles) as generator:
        return draw_transfer_test(generator, data.images, data.targets, seed=seed)


def _appearance(state: FitState, data: ImageDataset, styles: dict[str, Any], seed: int) -> dict[str, Any]:
    """:func:`gitaug.report.draw_appearance` on the training images."""
    from ..report import draw_appearance

    with _with_styles(state.generator, styles) as generator:
        return draw_appearance(generator, data.images, data.targets if data.labelled else None, seed=seed)


def data_name(config: FitConfig) -> str:
    """What the metadata says the data was: a built-in name, or the data folder's or file's own name.

    Never a full local path: the metadata goes into the model card, which
    ``push_to_hub`` publishes.
    """
    if config.dataset is not None:
        return f"dataset:{config.dataset} (train split, seed {config.seed})"
    return Path(str(config.data)).name


def training_metadata(
    config: FitConfig,
    data: ImageDataset,
    sampling: str,
    state: FitState,
    last_logged: dict[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    processes: int,
) -> dict[str, Any]:
    """What the exported ``config.json`` and model card say about the fit.

    The run's own settings are in ``fit_config.json`` of the run folder; this
    is the part worth publishing with the weights.
    """
    counts = data.class_counts
    return {
        "fitted_with": "gitaug-fit",
        "data_source": data_name(config),
        "num_images": len(data),
        "skipped_files": data.skipped,
        "image_size": int(data.images.shape[-1]),
        "channels": int(data.images.shape[1]),
        "class_names": list(data.classes) if data.labelled else None,
        "class_counts": counts.tolist() if counts is not None else None,
        "sampling": sampling,
        "steps": state.step,
        "batch_size": config.batch_size,
        "preset": config.preset,
        "discriminator": {
            "dim": config.resolved_disc_dim,
            "scales": config.disc_scales,
            "layers_per_scale": state.discriminator.layers_per_scale,
        },
        "optimizer": {
            "lr": config.lr,
            "lr_disc": config.resolved_lr_disc,
            "betas": [config.beta1, config.beta2],
            "weight_decay": config.weight_decay,
            "lr_step_every": config.lr_step_every,
            "lr_gamma": config.lr_gamma,
        },
        "loss_weights": {
            "image": config.weight_image,
            "style": config.weight_style,
            "content": config.weight_content,
            "adversarial": config.weight_adv,
            "diversity": config.weight_diversity,
            "warp_diversity": config.weight_warp_diversity,
        },
        "diversity_cap": config.diversity_cap,
        "final_losses": {name: last_logged[name] for name in LossTerms.log_names() if name in last_logged},
        "seconds": round(state.seconds, 1),
        "device": str(device),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "none",
        "processes": processes,
        "seed": config.seed,
        "torch_version": torch.__version__,
    }
