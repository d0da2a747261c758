"""Sample grids: what a generator does to real inputs, as a PNG.

Each row is one real input (first column) followed by generated variants of
it; the same column uses the same random style code in every row, so a column
shows one nuisance applied across inputs. With labels, the rows are one image
per class, smallest classes first -- the tail classes are the ones GIT is for
-- and :func:`class_row_labels` names each row's class and training count in a
margin on the left.

Example::

    >>> import torch
    >>> from gitaug import MUNITConfig, MUNITGenerator
    >>> generator = MUNITGenerator(MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1))
    >>> images = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8)
    >>> labels = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)
    >>> rows = grid_rows(labels, len(images), max_rows=10, seed=0)
    >>> labels[rows].tolist()            # smallest class first
    [2, 1, 0]
    >>> sample_grid(generator, images[rows], variants=4, seed=0).shape
    torch.Size([3, 200, 332])
    >>> names = class_row_labels(labels, rows, ["cat", "dog", "fox"])
    >>> names
    ['fox\\n2 images', 'dog\\n4 images', 'cat\\n6 images']
    >>> sample_grid(generator, images[rows], variants=4, seed=0, row_labels=names).shape[1:]
    torch.Size([200, 444])
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid, save_image

from ..generator import MUNITGenerator, _check_appearance_scale, _check_warp_extent
from .._seeding import derive_seed
from .data import to_model_range

__all__ = ["grid_rows", "class_row_labels", "sample_grid", "save_sample_grid"]

# Cells are upscaled (nearest neighbour) to at least this side so small images stay legible.
_MIN_CELL = 64
_PADDING = 2
_LABEL_WIDTH = 112  # the left margin that holds each row's label, in pixels


def grid_rows(
    labels: torch.Tensor | None, num_images: int, *, max_rows: int = 10, seed: int = 0,
    class_sizes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Indices of the real inputs shown in a grid.

    With labels: one image per class (drawn with ``seed``), classes ordered
    by size, smallest first, up to ``max_rows`` classes. The size is the
    class's count in ``labels``, or ``class_sizes[c]`` when given (a
    generator's training counts, for a grid of held-out images whose classes
    are balanced). Without labels: ``max_rows`` images drawn with ``seed``.
    """
    rng = torch.Generator().manual_seed(derive_seed(seed, "grid-rows"))
    if labels is None:
        return torch.randperm(num_images, generator=rng)[: min(max_rows, num_images)]
    labels = labels.cpu()
    counts = torch.bincount(labels)
    present = torch.nonzero(counts).flatten()
    if class_sizes is not None:
        if len(class_sizes) < len(counts):
            raise ValueError(f"class_sizes has {len(class_sizes)} entries, but labels go up to class {len(counts) - 1}")
        sizes = torch.as_tensor(list(class_sizes), dtype=torch.long)[present]
    else:
        sizes = counts[present]
    # Stable sort: classes of equal size keep their index order.
    by_size = present[torch.argsort(sizes, stable=True)][:max_rows]
    rows = []
    for cls in by_size.tolist():
        members = torch.nonzero(labels == cls).flatten()
        rows.append(members[torch.randint(len(members), (1,), generator=rng)])
    return torch.cat(rows)


def dataset_rows(data: Any, *, max_rows: int = 10, seed: int = 0) -> tuple[torch.Tensor, list[str] | None]:
    """The grid rows of an :class:`~gitaug.datasets.ImageDataset` and their labels (class name and count)."""
    labels = data.targets if data.labelled else None
    rows = grid_rows(labels, len(data), max_rows=max_rows, seed=seed)
    return rows, class_row_labels(labels, rows, list(data.classes)) if labels is not None else None


def class_row_labels(
    labels: torch.Tensor, rows: torch.Tensor, class_names: list[str] | None = None
) -> list[str]:
    """Row labels for a grid: each row's class name (or index) and how many images the class has in ``labels``."""
    labels = torch.as_tensor(labels).cpu()
    counts = torch.bincount(labels)
    names = []
    for cls in labels[torch.as_tensor(rows).cpu()].tolist():
        name = class_names[cls] if class_names is not None and cls < len(class_names) else str(cls)
        count = int(counts[cls])
        names.append(f"{name}\n{count} image{'s' if count != 1 else ''}")
    return names


def _add_row_labels(grid: torch.Tensor, row_labels: list[str], row_height: int) -> torch.Tensor:
    """The grid with a margin on the left holding each row's label (lines split at newlines)."""
    from PIL import Image, ImageDraw, ImageFont

    picture = TF.to_pil_image(grid)
    labelled = Image.new("RGB", (picture.width + _LABEL_WIDTH, picture.height), (128, 128, 128))
    labelled.paste(picture, (_LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(labelled)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow older than 10.1: a fixed-size bitmap font
        font = ImageFont.load_default()
    line_height = 16
    for row, label in enumerate(row_labels):
        lines = label.split("\n")
        top = _PADDING + row * row_height + (row_height - line_height * len(lines)) // 2
        for number, text in enumerate(lines):
            # Long names are cut to fit the margin rather than spill into the images.
            while len(text) > 1 and draw.textlength(text, font=font) > _LABEL_WIDTH - 6:
                text = text[:-2] + "\u2026"
            draw.text((4, top + number * line_height), text, fill=(255, 255, 255), font=font)
    return TF.to_dtype(TF.pil_to_tensor(labelled), torch.float32, scale=True)


@torch.no_grad()
def sample_grid(
    generator: MUNITGenerator,
    images: torch.Tensor,
    *,
    variants: int = 8,
    seed: int = 0,
    row_labels: list[str] | None = None,
    residual: bool = False,
    styles: str = "prior",
    appearance_scale: float = 1.0,
    warp_extent: float = 1.0,
) -> torch.Tensor:
    """A (3, H, W) float image in [0, 1]: each row a real uint8 input, then ``variants`` generated versions.

    With ``row_labels`` (one string per row, e.g. from :func:`class_row_labels`)
    a margin on the left names each row. ``residual``, ``styles``,
    ``appearance_scale`` and ``warp_extent`` draw as :class:`~gitaug.GITAugment` does with them
    (column ``k`` of every row shares one style code). The generator is run in
    eval mode and left in the mode it was in; no global random state is touched.
    """
    if row_labels is not None and len(row_labels) != len(images):
        raise ValueError(f"row_labels must have one entry per row ({len(images)}), got {len(row_labels)}")
    param = next(generator.parameters())
    was_training = generator.training
    generator.eval()
    try:
        real = to_model_range(images).to(param.device)
        rng = torch.Generator().manual_seed(derive_seed(seed, "grid-styles"))
        codes = torch.randn(variants, generator.config.style_dim, generator=rng).to(param.device)
        if styles not in ("prior", "data"):
            raise ValueError(f"styles must be 'prior' or 'data', got {styles!r}")
        _check_appearance_scale(appearance_scale, residual)
        _check_warp_extent(warp_extent)
        appearance = generator.data_style(variants, generator=rng).to(param.device) if styles == "data" else None
        columns = [real]
        for column in range(variants):
            code = codes[column].expand(len(real), -1)
            look = None if appearance is None else appearance[column].expand(len(real), -1)
            # redraw, as GITAugment draws: a range warp's background change is part of a decoded draw too
            columns.append(generator.redraw(real, code, residual=residual, appearance=look, appearance_scale=appearance_scale,
                                            warp_extent=warp_extent))
    finally:
        generator.train(was_training)
    # (rows, columns, C, H, W) -> row-major list of cells
    cells = torch.stack(columns, dim=1).flatten(0, 1).float().cpu()
    cells = (cells.clamp(-1, 1) + 1) / 2
    side = cells.shape[-1]
    if side < _MIN_CELL:
        cells = F.interpolate(cells, scale_factor=math.ceil(_MIN_CELL / side), mode="nearest")
    grid = make_grid(cells, nrow=variants + 1, padding=_PADDING, pad_value=0.5)
    if row_labels is not None:
        grid = _add_row_labels(grid, list(row_labels), cells.shape[-2] + _PADDING)
    return grid


def save_sample_grid(
    path: str | os.PathLike,
    generator: MUNITGenerator,
    images: torch.Tensor,
    *,
    variants: int = 8,
    seed: int = 0,
    row_labels: list[str] | None = None,
    **draw: Any,
) -> Path:
    """Write :func:`sample_grid` to ``path`` as a PNG (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = sample_grid(generator, images, variants=variants, seed=seed, row_labels=row_labels, **draw)
    temporary = path.with_name(f".{path.name}.tmp.png")
    save_image(grid, temporary)
    os.replace(temporary, path)
    return path
