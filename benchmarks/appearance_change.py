"""Where does the decoder's appearance change go wrong? A detector for it, and class-conditional style draws.

On the clothing the draw a fit recommends most often is a residual draw with
the data's styles: ``x + s * (decode(c, drawn) - decode(c, own))``, then the
warp, with the drawn style from a normal fitted to the training images' style
codes. It keeps fewer predictions of the benchmarks' reference classifier
than the true nuisance does on the background and turned sets, mostly on
shirts and coats (``preservation_control.py``), and on dilated clothing it
gives less accuracy than the oracle however strongly it is drawn
(``appearance_strength.py``). This benchmark asks two questions of fitted
generators, nothing fitted or trained but small networks:

* ``detector``: can the change be told from the data, the way the fit's
  nuisance test tells a rotation or a contrast change (its detector, steps,
  batch, held-out split and threshold)? The detector is trained on pairs
  (untouched, changed at a strength s drawn uniformly in 0..2) and its power
  read per strength on held-out images; the "appearance range" is where the
  power first reaches the test's threshold, as the test reads a family's
  range. Both images get half a grey level of jitter, as the contrast test's do.
  If the change were what the data varies, the range would be large on the
  sets whose nuisance is an appearance (dilated clothing) and small elsewhere.
* ``class styles``: is it the style's class content that loses the class? A
  style code carries some of the class (the between-class share of its
  variance is printed). The same draw with its style from a normal around the
  input's own class mean, with the pooled within-class spread (what varies
  inside a class: the nuisance, if the code holds it), against the data's
  styles and the true nuisance, under the benchmarks' reference classifier
  (``reproduce_digits.reference_classifier``), class by class.

    python benchmarks/appearance_change.py --datasets fmnist-bg-lt fmnist-dil-lt --seeds 2 3 \\
        --generators benchmarks/_work_fmnist_contrast

Resumable (a measured (set, seed) is kept). Output: ``results/appearance_change.json``
and the ``appearance_change`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

import reproduce_digits as shared
from _report import command_line, update_section
from gitaug._files import write_json
from gitaug.datasets.fashion_mnist import FASHION_MNIST_CLASSES

ROOT = shared.ROOT
#: The largest strength the detector is trained and read at (twice the recommended draw's).
MAX_STRENGTH = 2.0
#: Strengths at which the detector's power is read: the nuisance test's eight evenly spread levels.
LEVELS = tuple(MAX_STRENGTH * (k + 0.5) / 8 for k in range(8))
DRAWS = ("true nuisance", "data styles", "class styles")


def _find(generators: list[Path], dataset: str, seed: int) -> Path | None:
    """The first of the work folders that holds a fit of ``dataset`` and ``seed``."""
    for work in generators:
        folder = shared.generator_dir(work, dataset, seed)
        if folder.exists():
            return folder
    return None


def detector_power(generator: torch.nn.Module, images: torch.Tensor, styles: tuple[torch.Tensor, torch.Tensor],
                   seed: int) -> dict:
    """The nuisance test's detector trained on (untouched, changed at strength U(0, 2)) pairs; power per level. The
    change is the appearance part of a residual draw (:meth:`gitaug.MUNITGenerator.appearance_change`, no warp),
    its style drawn from a normal with the per-component ``styles`` (mean, std)."""
    from gitaug._seeding import derive_seed
    from gitaug.fit.nuisance_probe import (DETECTION_THRESHOLD, _auc, _held_out_split, _jitter, _range_from_power,
                                           _train_detector)

    rng = torch.Generator().manual_seed(derive_seed(seed, "probe"))  # the nuisance test's split
    held_out, train = _held_out_split(images, 256, rng)

    def pair(batch: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = generator.data_style(batch.shape[0], generator=rng, statistics=styles)
        with torch.no_grad():
            change = generator.appearance_change(batch, code)
        return _jitter(batch, rng), _jitter((batch + strength[:, None, None, None] * change).clamp(-1, 1), rng)

    detector = _train_detector(train, lambda b: pair(b, torch.rand(b.shape[0], generator=rng) * MAX_STRENGTH),
                               steps=200, batch_size=64, seed=seed, generator=rng)
    detector.eval()
    power = []
    with torch.no_grad():
        for level in LEVELS:
            untouched, changed = pair(held_out, torch.full((held_out.shape[0],), level))
            power.append(round(max(0.0, 2 * _auc(detector(changed), detector(untouched)) - 1), 3))
    return {"power": dict(zip((f"{v:g}" for v in LEVELS), power)),
            "range": round(_range_from_power(list(LEVELS), power, MAX_STRENGTH, DETECTION_THRESHOLD), 3)}


def measure(dataset: str, seed: int, folder: str) -> dict:
    """Both questions for the fit in ``folder`` (one thread)."""
    from gitaug import GITAugment
    from gitaug.datasets import load, nuisance_of
    from gitaug.evaluation.diagnostics import class_preservation
    from gitaug.fit.data import to_model_range

    torch.set_num_threads(1)
    started = time.time()
    aug = GITAugment.from_pretrained(folder, residual=True, styles="data", appearance_scale=1.0, warp_extent=1.0)
    generator = aug.generator.eval()
    train = load(dataset, split="train", seed=seed)
    images = to_model_range(train.images)
    labels, classes = train.targets, train.num_classes
    with torch.no_grad():
        codes = torch.cat([generator.style_encoder(images[i:i + 512]) for i in range(0, len(images), 512)]).float()
    means = torch.stack([codes[labels == c].mean(0) for c in range(classes)])
    within = codes - means[labels]
    between_share = float(1 - within.var(0).sum() / codes.var(0).sum())
    data_styles = (aug.style_mean.float(), aug.style_std.float())
    result: dict = {"draw": "residual, data styles, strength 1, warp extent 1",
                    "style variance between classes": round(between_share, 3),
                    "detector": detector_power(generator, images, data_styles, seed)}

    reference = shared.reference_classifier(dataset, seed)
    true = nuisance_of(dataset)
    pooled = within.std(0)
    keep: dict[str, list[float]] = {name: [] for name in DRAWS}
    for c in range(classes):  # one class at a time, so that the class-conditional draw knows its class
        members = labels == c

        def rate(transform) -> float:
            return round(float(class_preservation(transform, reference, train.images[members], labels[members],
                                                  classes, m_per_input=10, seed=seed).per_class[c]), 4)

        keep["true nuisance"].append(rate(true))
        aug.style_mean, aug.style_std = data_styles
        keep["data styles"].append(rate(lambda batch, generator=None: aug(batch, generator=generator)))
        aug.style_mean, aug.style_std = means[c], pooled
        keep["class styles"].append(rate(lambda batch, generator=None: aug(batch, generator=generator)))
    result["keep"] = keep
    result["seconds"] = round(time.time() - started, 1)
    return result


def markdown(results: dict[str, dict[str, dict]], command: str) -> str:
    lines = [
        "## What in the decoder's appearance change is unlike the data",
        "",
        f"Produced by `{command}` (one thread per (set, seed)). Fitted generators of the current default; the "
        "appearance part of their recommended residual draw, `decode(c, drawn) - decode(c, own)` with the data's "
        "styles, applied at strength s (the recommended draw: s = 1).",
        "",
        "Detector: the fit's nuisance test run on that change as if it were a family (its detector, 200 steps, "
        "held-out split and 0.2 threshold; trained on strengths drawn in 0..2). Power `2 AUC - 1` at the "
        "strengths shown and the range read off as the test reads a family's. Class preservation: the share of "
        "draws on which the benchmarks' reference keeps its prediction (10 draws of 40 training images per "
        "class, class by class), for the true nuisance, the draw with the data's styles, and the same draw with "
        "its style drawn around the input's class mean with the pooled within-class spread (class styles). "
        "Between-class share: how much of the style codes' variance lies between class means.",
        "",
        "| set | seed | power at s = " + " / ".join(f"{s:g}" for s in LEVELS) + " | appearance range | "
        "between-class share | keep: true / data styles / class styles | shirts: true / data / class |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, seeds in results.items():
        for seed, entry in sorted(seeds.items(), key=lambda item: int(item[0])):
            power = entry["detector"]["power"]
            keep = {name: sum(v) / len(v) for name, v in entry["keep"].items()}
            shirt = FASHION_MNIST_CLASSES.index("Shirt")
            lines.append(
                f"| `{dataset}` | {seed} | " + " / ".join(f"{power[f'{s:g}']:.2f}" for s in LEVELS)
                + f" | {entry['detector']['range']:.2f} | {100 * entry['style variance between classes']:.0f} % | "
                + " / ".join(f"{100 * keep[name]:.1f} %" for name in DRAWS) + " | "
                + (" / ".join(f"{100 * entry['keep'][name][shirt]:.0f} %" for name in DRAWS)
                   if dataset.startswith("fmnist") else "") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--generators", nargs="+", type=Path, required=True,
                        help="reproduction runs' --work folders; each (set, seed) uses the first that holds its fit")
    parser.add_argument("--workers", type=int, default=1, help="(set, seed) pairs measured at once, one thread each")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "appearance_change.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    stored = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = stored.get("results", {})
    jobs = [(d, s, str(folder)) for d in args.datasets for s in args.seeds
            if str(s) not in results.get(d, {}) and (folder := _find(args.generators, d, s)) is not None]
    started = time.time()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(measure, *job): job for job in jobs}
        for future, (dataset, seed, _) in futures.items():
            results.setdefault(dataset, {})[str(seed)] = entry = future.result()
            print(f"{dataset} seed {seed}: range {entry['detector']['range']}, power {entry['detector']['power']}, "
                  + ", ".join(f"{k} {sum(v) / len(v):.3f}" for k, v in entry["keep"].items())
                  + f" ({entry['seconds']:.0f} s)", flush=True)
            write_json(args.output, {**stored, "results": results})  # after every entry: resumable
    command = command_line("appearance_change.py", sys.argv[1:] if argv is None else argv)
    commands = sorted({*stored.get("commands", []), command})
    write_json(args.output, {"results": results, "commands": commands, "seconds": round(time.time() - started, 1)})
    update_section(args.report, "appearance_change", markdown(results, "`, `".join(commands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
