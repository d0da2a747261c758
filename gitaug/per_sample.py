"""Per-sample GIT: a dataset wrapper that hands each image's label to :class:`~gitaug.GITAugment`.

GIT must know an image's class to decide whether to re-draw it (only the
small classes are re-drawn). A transform inside ``transforms.v2.Compose``
given to ``ImageFolder`` or most other datasets sees the image alone, so it
cannot choose; :class:`GITDataset` wraps the dataset instead and calls
``aug(image, label)`` for each item, in the main process or in DataLoader
workers alike.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from .augment import GITAugment

__all__ = ["GITDataset"]


def _label_as_int(label: Any) -> int:
    """The class index GIT selects by: an int, a 0-d or 1-element tensor, or a one-hot / soft label vector."""
    if isinstance(label, bool):
        raise TypeError(f"the dataset's label must be a class index, got the bool {label!r}")
    if isinstance(label, numbers.Integral):
        return int(label)
    if isinstance(label, torch.Tensor):
        if label.numel() == 1 and not label.is_floating_point():
            return int(label.item())
        if label.dim() == 1 and label.numel() > 1:
            return int(label.argmax())  # one-hot or soft label: its main class
    try:  # numpy integers and 0-d arrays
        import numpy as np

        if isinstance(label, np.ndarray) and label.size == 1 and np.issubdtype(label.dtype, np.integer):
            return int(label.item())
        if isinstance(label, np.ndarray) and label.ndim == 1 and label.size > 1:
            return int(label.argmax())
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass
    raise TypeError(
        f"the dataset's label must be a class index (int) or a one-hot vector, got {type(label).__name__} {label!r}"
    )


class GITDataset(Dataset):
    """Wrap a map-style dataset of ``(image, label)`` so that GIT re-draws its tail-class images.

    Each ``dataset[i]`` goes through ``aug(image, label)``: the sampler of
    ``aug`` decides from the label whether the image is replaced by a
    generated re-draw (tail classes, with probability ``p``); images of the
    other classes come back bit-identical. Then ``transform`` (if given) is
    applied to the image and ``target_transform`` to the label.

    Images may be ``(C, H, W)`` tensors (float in [0, 1], normalized as
    ``aug``'s ``mean``/``std`` say, or uint8) or PIL images; a PIL image comes
    back as a PIL image of the same mode, so the rest of a PIL pipeline
    (``ToTensor``, ``Normalize``, ...) goes in ``transform`` unchanged. Labels
    are class indices (an int or a 0-d tensor) or one-hot / soft vectors
    (selection by the largest entry); they are returned unchanged.

    Works in DataLoader workers under ``fork`` and ``spawn`` (the wrapper and
    ``aug`` pickle). Keep ``aug`` on the CPU there; for a GPU generator call
    ``aug(images, labels)`` on whole batches in the training loop instead.

    Random draws:

    * ``seed=None`` (default): torch's global generator, which the DataLoader
      seeds differently in every worker and every epoch; seed the whole run
      with ``torch.manual_seed`` and ``DataLoader(generator=...)`` as usual.
    * ``seed=int``: item ``i`` in epoch ``e`` is drawn from its own generator
      seeded by ``(seed, e, i)``, so a run gives the same images whatever the
      number of workers. Call :meth:`set_epoch` each epoch (with non-persistent
      workers, as the DataLoader's default) to get new draws.

    Args:
        dataset: any map-style dataset whose items are ``(image, label)``.
        aug: the :class:`~gitaug.GITAugment` to apply, usually with a
            :class:`~gitaug.ClassThresholdSampler`.
        transform: applied to the image after GIT (e.g. ``ToTensor``, normalization).
        target_transform: applied to the label after GIT.
        seed: see above.

    Example::

        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from gitaug import GITAugment, GITDataset, ClassThresholdSampler, MUNITConfig, MUNITGenerator
        >>> images, labels = torch.rand(6, 1, 16, 16), torch.tensor([0, 0, 0, 0, 1, 1])
        >>> generator = MUNITGenerator(MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1))
        >>> aug = GITAugment(generator, ClassThresholdSampler.from_labels(labels, threshold=3, p=1.0))
        >>> train = GITDataset(TensorDataset(images, labels), aug, seed=0)
        >>> image, label = train[0]                  # class 0 has 4 images: kept as it is
        >>> torch.equal(image, images[0]), int(label)
        (True, 0)
        >>> torch.equal(train[5][0], images[5])      # class 1 has 2: re-drawn (p = 1)
        False
    """

    def __init__(
        self,
        dataset: Dataset,
        aug: GITAugment,
        *,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(aug, GITAugment):
            raise TypeError(f"aug must be a GITAugment, got {type(aug).__name__}")
        if not hasattr(dataset, "__getitem__"):
            raise TypeError(f"dataset must be a map-style dataset (with __getitem__), got {type(dataset).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        if target_transform is not None and not callable(target_transform):
            raise TypeError(f"target_transform must be callable or None, got {type(target_transform).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.dataset = dataset
        self.aug = aug
        self.transform = transform
        self.target_transform = target_transform
        self.seed = None if seed is None else int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` (only matters with a ``seed``)."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _item_generator(self, index: int) -> torch.Generator | None:
        if self.seed is None:
            return None
        # A hash rather than seed + index: neighbouring seeds must not share shifted streams.
        digest = hashlib.sha256(f"gitaug-per-sample/{self.seed}/{self.epoch}/{index}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(
                f"dataset[{index}] must be an (image, label) pair, got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
            )
        image, label = item
        image = self._apply(image, _label_as_int(label), self._item_generator(index))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def _apply(self, image: Any, label: int, generator: torch.Generator | None) -> Any:
        if isinstance(image, torch.Tensor):
            if image.dim() != 3:
                raise ValueError(f"images must be single (C, H, W) tensors, got shape {tuple(image.shape)}")
            out, _ = self.aug(image, label, generator=generator)
            return out
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - torchvision needs Pillow
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            from torchvision.transforms.v2 import functional as TF

            mode = image.mode
            # The generator takes the channels it was fitted on: gray or RGB.
            wanted = "L" if self.aug.generator.config.in_channels == 1 else "RGB"
            tensor = TF.pil_to_tensor(image.convert(wanted) if mode != wanted else image)
            out, _ = self.aug(tensor, label, generator=generator)
            if torch.equal(out, tensor):
                return image  # not selected: the very same object, untouched
            result = TF.to_pil_image(out)
            return result.convert(mode) if mode != wanted else result
        raise TypeError(
            f"images must be (C, H, W) tensors or PIL images, got {type(image).__name__}; "
            "convert others with the dataset's own transform first"
        )

    def __repr__(self) -> str:
        return f"GITDataset({self.dataset!r}, aug={self.aug!r}, seed={self.seed})"
