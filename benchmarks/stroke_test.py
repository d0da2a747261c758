"""Could the nuisance test find stroke width the way it finds rotation or contrast? A detection test of it.

The fit's nuisance test (``gitaug.fit.nuisance_probe``) learns a family's
range as the largest move a detector cannot tell from the data. Stroke width
(ink spread or thinned: pens, fonts, scanning, morphological dilation) is one
of the appearance nuisances the generator is meant to cover, and the default
leaves it to the decoder's style. This benchmark asks whether a stroke-width
family would be found by the same test, on the built-in sets, with the test's
own detector, training steps, held-out split and threshold. Two versions:

* ``whole kernels``: grey-scale dilation or erosion (equally likely) with a
  2x2 or 3x3 square, the moves of ``gitaug.datasets.nuisances.RandomDilationErosion``
  (the dilated sets dilate the plain images with a 2- to 4-square, or erode
  them with a 1- or 2-square); power read per signed kernel. A range needs a move below the threshold, and the
  smallest whole move is a pixel;
* ``sub-pixel``: the image upsampled x4 (bilinear), dilated or eroded there
  by r of those quarter pixels (a (2r+1)-square), and area-averaged back, the
  untouched image taken through the same round trip; r = 1..8 (a quarter
  pixel to two pixels). Its range is read as the nuisance test reads one
  (first crossing of the threshold, linear from power 0 at 0).

A dilated set is not closed under a further dilation (a dilation of its most
dilated image is thicker than any it holds), so a detector keeps some power
on it wherever the move is larger than the data's spread allows; the
question is whether the test separates the sets with the nuisance from those
without, by enough to draw with.

    python benchmarks/stroke_test.py --seeds 0 1

Resumable (a measured (set, seed) is kept). Output: ``results/stroke_test.json``
and the ``stroke_test`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import reproduce_digits as shared
from _report import command_line, update_section
from gitaug._files import write_json
from gitaug.datasets.nuisances import dilate_or_erode

ROOT = shared.ROOT
DATASETS = ("digits-lt", "digits-dil-lt", "digits-rot-lt", "digits-bg-lt",
            "fmnist-lt", "fmnist-dil-lt", "fmnist-rot-lt", "fmnist-bg-lt")
#: Signed whole kernels measured (+k: dilation with a k-square, -k: erosion); training draws from the same.
KERNELS = (-3, -2, 2, 3)
#: Sub-pixel moves: the upsampling factor and the radii (in upsampled pixels) measured and trained on.
UP = 4
RADII = tuple(range(1, 9))


def sub_pixel(images: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Each image taken to x:data:`UP`, dilated (radius > 0) or eroded (< 0) there by a (2|r|+1)-square, and
    area-averaged back; radius 0 is the round trip alone."""
    big = F.interpolate(images, scale_factor=UP, mode="bilinear", align_corners=False)
    out = big.clone()
    for value in radius.unique().tolist():
        if value:
            chosen = radius == value
            side = 2 * abs(int(value)) + 1
            part = big[chosen]
            out[chosen] = (F.max_pool2d(part, side, 1, side // 2) if value > 0
                           else -F.max_pool2d(-part, side, 1, side // 2))
    return F.avg_pool2d(out, UP)


def measure(dataset: str, seed: int) -> dict:
    """Detection power per move of both versions on ``dataset``'s training images, and the sub-pixel range."""
    from gitaug._seeding import derive_seed
    from gitaug.fit.data import read_training_data, to_model_range
    from gitaug.fit.nuisance_probe import (DETECTION_THRESHOLD, _auc, _held_out_split, _jitter, _range_from_power,
                                           _train_detector)

    torch.set_num_threads(1)
    images = to_model_range(read_training_data(dataset=dataset, seed=seed).images).float()
    result: dict = {}
    for version in ("whole kernels", "sub-pixel"):
        # the nuisance test's split, detector, steps and batch (``probe_nuisance``'s defaults)
        generator = torch.Generator().manual_seed(derive_seed(seed, "probe"))
        held_out, train = _held_out_split(images, 256, generator)
        moves = KERNELS if version == "whole kernels" else RADII

        def transformed(batch: torch.Tensor, signed: torch.Tensor, version: str = version) -> tuple[torch.Tensor, torch.Tensor]:
            if version == "whole kernels":
                return _jitter(batch, generator), _jitter(dilate_or_erode(batch, signed), generator)
            return sub_pixel(batch, torch.zeros_like(signed)), sub_pixel(batch, signed)

        def make_pair(batch: torch.Tensor, moves: tuple[int, ...] = moves) -> tuple[torch.Tensor, torch.Tensor]:
            n = batch.shape[0]
            pick = torch.tensor(moves)[torch.randint(0, len(moves), (n,), generator=generator)]
            sign = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
            return transformed(batch, pick if version == "whole kernels" else sign * pick)

        detector = _train_detector(train, make_pair, steps=200, batch_size=64, seed=seed, generator=generator)
        detector.eval()
        power = []
        with torch.no_grad():
            for move in moves:
                signed = torch.full((held_out.shape[0],), move)
                if version == "sub-pixel":
                    signed = signed * (torch.randint(0, 2, signed.shape, generator=generator) * 2 - 1)
                untouched, moved = transformed(held_out, signed)
                power.append(round(max(0.0, 2 * _auc(detector(moved), detector(untouched)) - 1), 3))
        result[version] = dict(zip(map(str, moves), power))
    pixels = [r / UP for r in RADII]
    result["sub-pixel range"] = round(_range_from_power(pixels, list(result["sub-pixel"].values()), pixels[-1],
                                                        DETECTION_THRESHOLD), 3)
    return result


def markdown(results: dict[str, dict[str, dict]], command: str) -> str:
    kernels = " | ".join(f"{'dilation' if k > 0 else 'erosion'} {abs(k)}" for k in KERNELS)
    lines = [
        "## A stroke-width family for the nuisance test? Its detection power",
        "",
        f"Produced by `{command}`. Detection power (`2 AUC - 1` on held-out images, the nuisance test's detector, "
        "steps, split and seed) of stroke-width moves: whole grey-scale dilations and erosions (k-square), and "
        "sub-pixel ones (x4 upsampled, moved by r quarter pixels, area-averaged back; the untouched images through "
        "the same round trip). The nuisance test counts a move as seen at power 0.2; the sub-pixel range is where "
        "the power first reaches it. Mean over the seeds, then each seed's figure.",
        "",
        f"| set | seeds | {kernels} | sub-pixel power at 0.25 / 0.5 / 1 / 2 px | sub-pixel range (px) |",
        "|---|---|" + "---|" * len(KERNELS) + "---|---|",
    ]
    for dataset in DATASETS:
        seeds = results.get(dataset, {})
        if not seeds:
            continue
        entries = [seeds[s] for s in sorted(seeds, key=int)]

        def cell(values: list[float], digits: int = 2) -> str:
            mean = sum(values) / len(values)
            return f"{mean:.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in values)})"

        whole = [cell([e["whole kernels"][str(k)] for e in entries]) for k in KERNELS]
        sub = " / ".join(f"{sum(e['sub-pixel'][str(r)] for e in entries) / len(entries):.2f}" for r in (1, 2, 4, 8))
        lines.append(f"| `{dataset}` | {', '.join(sorted(seeds, key=int))} | " + " | ".join(whole)
                     + f" | {sub} | {cell([e['sub-pixel range'] for e in entries])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "stroke_test.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    stored = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = stored.get("results", {})
    started = time.time()
    for dataset in args.datasets:
        for seed in args.seeds:
            if str(seed) in results.get(dataset, {}):
                continue
            begun = time.time()
            results.setdefault(dataset, {})[str(seed)] = entry = measure(dataset, seed)
            print(f"{dataset} seed {seed}: whole {entry['whole kernels']}, sub-pixel {entry['sub-pixel']}, "
                  f"range {entry['sub-pixel range']} px ({time.time() - begun:.0f} s)", flush=True)
            write_json(args.output, {**stored, "results": results})  # after every entry: resumable
    command = command_line("stroke_test.py", sys.argv[1:] if argv is None else argv)
    commands = sorted({*stored.get("commands", []), command})
    write_json(args.output, {"results": results, "commands": commands, "seconds": round(time.time() - started, 1)})
    update_section(args.report, "stroke_test", markdown(results, "`, `".join(commands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
