"""Which way of drawing keeps the item? Class preservation of six GIT draws from one fitted generator.

For each generator folder (a reproduction benchmark's, by default the seed-0
default fits in ``benchmarks/_work_fmnist``), a classifier trained with the
dataset's *true* nuisance on balanced images (``reproduce_digits.reference_classifier``)
judges 600 training images and two draws of each, made six ways:

* ``decode``: the generator's picture, N(0, I) style (the GIT paper's draw);
* ``residual``: ``x + G(c, s) - G(c, s_x)``, then the warp (``GITAugment(residual=True)``);
* ``residual_data``: the same with the style code from the training images'
  style distribution (``GITAugment(residual=True, styles="data")``);
* ``decode_data``: the decoder's picture with a data style code;
* ``warp_only``: ``x`` warped, nothing else (a generator that learned only the geometry);
* ``reconstruction_warp``: the generator's reconstruction of ``x`` (own style), warped.

``keep`` is the share of draws on which the classifier's prediction stays what it
is on ``x``; ``spread`` the mean absolute pixel difference (in [0, 1]) between the
two draws of one image. Generators without stored style statistics get them from
their training images first (``MUNITGenerator.style_statistics``, not written back).

    python benchmarks/draw_variants.py                                     # the three Fashion-MNIST-LT sets, seed 0
    python benchmarks/draw_variants.py --datasets digits-rot-lt --work benchmarks/_work

Output: ``benchmarks/results/draw_variants.json`` and the ``draw_variants`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import reproduce_digits as shared
from _report import command_line, update_section

VARIANTS = ("decode", "residual", "residual_data", "decode_data", "warp_only", "reconstruction_warp")


def measure(generator_dir: Path, dataset: str, seed: int, images: int = 600) -> dict:
    from gitaug import MUNITGenerator
    from gitaug.datasets import load
    from gitaug.fit.data import to_model_range

    reference = shared.reference_classifier(dataset, seed)
    g = MUNITGenerator.from_pretrained(generator_dir).eval()
    train = load(dataset, "train", seed=seed)
    if "styles" not in g.training_metadata:
        g.training_metadata["styles"] = g.style_statistics(to_model_range(train.images))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:images]
    x01 = train.images[pick].float() / 255
    x = x01 * 2 - 1
    rng = torch.Generator().manual_seed(seed + 1)
    draws: dict[str, list[torch.Tensor]] = {name: [] for name in VARIANTS}
    with torch.no_grad():
        before = reference(x01).argmax(1)
        rebuilt = g(x)  # the reconstruction, own style, no warp
        for _ in range(2):
            style = g.random_style(x.shape[0], generator=rng)
            data = g.data_style(x.shape[0], generator=rng)
            warp = (lambda im: g.warp(im, style)) if g.warp is not None else (lambda im: im)  # noqa: B023
            made = {
                "decode": g.redraw(x, style), "residual": g.redraw(x, style, residual=True),
                "residual_data": g.redraw(x, style, residual=True, appearance=data),
                "decode_data": g.redraw(x, style, appearance=data),
                "warp_only": warp(x), "reconstruction_warp": warp(rebuilt),
            }
            for name in VARIANTS:
                draws[name].append((made[name] + 1) / 2)
        result = {}
        for name, (first, second) in draws.items():
            keep = torch.cat([reference(d.clamp(0, 1)).argmax(1) == before for d in (first, second)]).float().mean()
            result[name] = {"keep": float(keep), "spread": float((first - second).abs().mean())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["fmnist-rot-lt", "fmnist-bg-lt", "fmnist-dil-lt"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=shared.ROOT / "benchmarks" / "_work_fmnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=shared.ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=shared.ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = command_line("draw_variants.py", sys.argv[1:])
    table = {}
    for dataset in args.datasets:
        started = time.time()
        table[dataset] = measure(shared.generator_dir(args.work, dataset, args.seed) / "generator", dataset, args.seed)
        print(f"{dataset} (seed {args.seed}, {time.time() - started:.0f} s): " + ", ".join(
            f"{n} {v['keep'] * 100:.1f} % / {v['spread']:.3f}" for n, v in table[dataset].items()), flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "draw_variants.json").write_text(json.dumps({"command": command, "seed": args.seed, "table": table}, indent=2) + "\n")
    lines = [f"Command: `{command}` (seed {args.seed}; 600 training images, 2 draws each; judged by a classifier "
             "trained with the true nuisance). Share of draws keeping the prediction / spread between two draws:", "",
             "| draw | " + " | ".join(f"`{d}`" for d in table) + " |", "|---|" + "---|" * len(table)]
    lines += [f"| {name} | " + " | ".join(f"{t[name]['keep'] * 100:.1f} % / {t[name]['spread']:.3f}" for t in table.values()) + " |"
              for name in VARIANTS]
    update_section(args.report, "draw_variants", "\n".join(lines))


if __name__ == "__main__":
    main()
