"""Per-sample GIT: a dataset wrapper that hands each image's label to :class:`~gitaug.GITAugment`.

GIT must know an image's class to decide whether to re-draw it (only the
small classes are re-drawn). A transform inside ``transforms.v2.Compose``
given to ``ImageFolder`` or most other datasets sees the image alone, so it
cannot choose; :class:`GITDataset` wraps the dataset instead and calls
``aug(image, label)`` for each item, in the main process or in DataLoader
workers alike.

By default every re-draw is a generator pass (live draws). Because the
wrapper knows every item's index, it can instead serve the re-draws from a
bank of ``V`` generator draws per tail image (``draws=V``; see
:class:`~gitaug.bank.TailBank`): drawn once, then each replacement is a copy,
faster but with only ``V`` pictures of each tail image.
"""

from __future__ import annotations

import hashlib
import numbers
import warnings
from typing import Any, Callable

import torch
from torch.utils.data import Dataset, TensorDataset, get_worker_info

from .augment import GITAugment, _caller_stacklevel
from .bank import TailBank
from .sampler import ClassThresholdSampler

__all__ = ["GITDataset"]

#: ``draws`` value that turns the bank off: one generator pass per replaced item.
LIVE = "live"
#: ``draws`` value (the default): live draws, whatever the augment draws (see :class:`GITDataset`).
AUTO = "auto"
#: The bank size the docs suggest where speed matters more than variety (``draws=BANK_DRAWS``).
BANK_DRAWS = 8


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


def _seeded_generator(text: str) -> torch.Generator:
    # A hash rather than seed + index: neighbouring seeds must not share shifted streams.
    digest = hashlib.sha256(text.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


class GITDataset(Dataset):
    """Wrap a map-style dataset of ``(image, label)`` so that GIT re-draws its tail-class images.

    Each ``dataset[i]`` goes through GIT with its label: the sampler of
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

    Where the re-draws come from (``draws``):

    * ``draws="auto"`` (the default): live draws, a generator pass for every
      replaced item, so no served draw repeats. A bank of 8 draws per tail
      image, this wrapper's default before, caps what GIT can teach where the
      nuisance is wide: tail images are re-sampled many times an epoch, and
      each then comes back as one of only 8 pictures. On rotated digits
      (``benchmarks/bank_digits.py``, section ``bank_digits_rot`` of
      ``benchmarks/RESULTS.md``) the residual draws with data styles scored
      1.3 to 2.7 points more balanced accuracy on each of 4 seeds drawn live
      than from a bank of 8 (83.6 % against 81.8 %), and lowered tail eKLD to
      0.32 against 0.42; on digit backgrounds the two were alike.
    * ``draws=V`` (a positive int): a bank, for speed. Every image of a class the sampler
      can select gets ``V`` generator draws, made once in batches;
      a selected item is then replaced by one of its ``V`` draws, picked
      uniformly: a copy instead of a generator pass. The selection itself
      (threshold, ``p``, rule) is the sampler's, drawn exactly as with live
      draws. On digits-bg-lt a bank of 8 matched live draws in accuracy
      and tail invariance (the README's performance section).
    * ``draws="live"``: a generator pass for every replaced item, as
      ``aug(image, label)`` does. It is also what the wrapper does when
      ``aug`` has no :class:`~gitaug.ClassThresholdSampler` (a custom rule
      or none does not say which images it can select) and, with a warning,
      when the tail images differ in shape or dtype.

    The bank is drawn from the images the dataset gives when it is drawn,
    so put random augmentation in ``transform`` (applied after GIT, to bank
    draws too), not in the wrapped dataset. Finding the tail images reads
    ``dataset.targets`` when the dataset has one (torchvision's datasets,
    :mod:`gitaug.datasets`) and the tail items only; otherwise every item once.

    Memory: ``V`` x (tail images) x C x H x W values in the dataset's own
    dtype (1 byte for uint8 tensors and PIL images, 4 for float32), plus one
    copy of the tail images to re-draw from; :attr:`bank_nbytes` gives the
    first part. CIFAR-10-LT with K = 500 (891 tail images, 3x32x32): 22 MB
    as uint8, 88 MB as float32.

    When the bank is drawn: by :meth:`build_bank`, by :meth:`set_epoch`
    (when ``aug`` is enabled), or on the first item that needs it. Draw it
    in the main process before iterating a ``DataLoader`` with workers: a
    ``fork`` worker then shares the parent's bank without copying it, a
    ``spawn`` worker receives a copy with the pickled dataset. A bank first
    needed inside a worker is drawn there, by every worker, and again every
    epoch unless ``persistent_workers=True`` (the wrapper warns). With
    ``refresh_every=R`` the bank is re-drawn for every epoch that is a
    multiple of ``R``: :meth:`set_epoch` re-draws it in the main process, and
    non-persistent workers (the DataLoader's default) pick it up.

    Works in DataLoader workers under ``fork`` and ``spawn`` (the wrapper and
    ``aug`` pickle). Keep ``aug`` on the CPU there; for a GPU generator call
    ``aug(images, labels)`` on whole batches in the training loop instead.

    Random draws:

    * ``seed=None`` (default): torch's global generator, which the DataLoader
      seeds differently in every worker and every epoch; seed the whole run
      with ``torch.manual_seed`` and ``DataLoader(generator=...)`` as usual.
    * ``seed=int``: item ``i`` in epoch ``e`` is drawn from its own generator
      seeded by ``(seed, e, i)``, and the bank from one seeded by ``seed``
      and its refresh round, so a run gives the same images whatever the
      number of workers. Call :meth:`set_epoch` each epoch (with non-persistent
      workers, as the DataLoader's default) to get new draws.

    Args:
        dataset: any map-style dataset whose items are ``(image, label)``.
        aug: the :class:`~gitaug.GITAugment` to apply, usually with a
            :class:`~gitaug.ClassThresholdSampler`.
        transform: applied to the image after GIT (e.g. ``ToTensor``, normalization).
        target_transform: applied to the label after GIT.
        seed: see above.
        draws: the bank's draws per tail image (``V``, a positive int),
            ``"live"`` for a generator pass per replaced item, or ``"auto"``
            (see above).
        refresh_every: re-draw the bank every this many epochs (through
            :meth:`set_epoch`); ``None`` keeps the first draws.

    Example::

        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from gitaug import GITAugment, GITDataset, ClassThresholdSampler, MUNITConfig, MUNITGenerator
        >>> images, labels = torch.rand(6, 1, 16, 16), torch.tensor([0, 0, 0, 0, 1, 1])
        >>> generator = MUNITGenerator(MUNITConfig(in_channels=1, image_size=16, dim=8, mlp_dim=16, n_res=1))
        >>> aug = GITAugment(generator, ClassThresholdSampler.from_labels(labels, threshold=3, p=1.0))
        >>> train = GITDataset(TensorDataset(images, labels), aug, seed=0, draws=8)
        >>> train.build_bank()                       # 8 draws of each tail image, once (else on first use)
        >>> image, label = train[0]                  # class 0 has 4 images: kept as it is
        >>> torch.equal(image, images[0]), int(label)
        (True, 0)
        >>> any(torch.equal(train[5][0], draw) for draw in train.bank_versions(5))  # class 1: one of its draws
        True
        >>> train.bank_nbytes                        # 2 tail images x 8 draws x 16 x 16 floats
        16384
    """

    def __init__(
        self,
        dataset: Dataset,
        aug: GITAugment,
        *,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        seed: int | None = None,
        draws: int | str = AUTO,
        refresh_every: int | None = None,
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
        if draws not in (LIVE, AUTO) and (isinstance(draws, bool) or not isinstance(draws, numbers.Integral) or draws < 1):
            raise ValueError(f"draws must be a positive int (bank draws per tail image), 'live' or 'auto', got {draws!r}")
        if refresh_every is not None and draws == LIVE:
            raise ValueError(f"refresh_every={refresh_every!r} re-draws the bank, but draws='live' has none")
        if draws == AUTO:  # live draws are new every time: refresh_every has nothing left to do
            draws = LIVE
        if refresh_every is not None and (
            isinstance(refresh_every, bool) or not isinstance(refresh_every, numbers.Integral) or refresh_every < 1
        ):
            raise ValueError(f"refresh_every must be a positive int (epochs) or None, got {refresh_every!r}")
        self.dataset = dataset
        self.aug = aug
        self.transform = transform
        self.target_transform = target_transform
        self.seed = None if seed is None else int(seed)
        self.draws: int | str = draws if draws == LIVE else int(draws)
        self.refresh_every = None if refresh_every is None else int(refresh_every)
        self.epoch = 0
        self._bank: TailBank | None = None  # the draws, once made
        self._bank_round: int | None = None  # the refresh round they were drawn for
        self._row_of: torch.Tensor | None = None  # dataset index -> bank row (-1: not in the bank)
        self._bank_failed: str | None = None  # why the tail images cannot be banked
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ the bank

    @property
    def uses_bank(self) -> bool:
        """Whether replaced items come from the bank (``draws`` is a number and ``aug`` has a ClassThresholdSampler)."""
        return self.draws != LIVE and isinstance(self.aug.sampler, ClassThresholdSampler) and self._bank_failed is None

    @property
    def bank_nbytes(self) -> int:
        """Bytes the bank's draws take (0 before it is drawn, and with live draws)."""
        return 0 if self._bank is None else self._bank.nbytes

    def bank_versions(self, index: int) -> torch.Tensor:
        """The bank's ``V`` draws of item ``index``, ``(V, C, H, W)``, as the bank stores them.

        That is the dataset's own tensor format, or uint8 in the generator's
        mode for PIL images. Draws the bank if needed; raises if the item is
        not in it (its class is never selected) or the wrapper draws live.
        """
        if not self.uses_bank:
            raise ValueError(f"this GITDataset draws live (draws={self.draws!r}, sampler={self.aug.sampler!r}): it has no bank")
        self._ensure_bank()
        row = self._row(int(index))
        if row < 0:
            raise ValueError(f"dataset[{index}] is not in the bank: its class is never selected for GIT")
        return self._bank.bank[row].clone()

    def build_bank(self) -> None:
        """Draw (or re-draw) the bank for the current epoch in this process (a no-op with live draws).

        Call it (or :meth:`set_epoch`) before iterating a DataLoader with
        workers, so the bank is drawn once, here, and not in every worker.
        """
        if self.uses_bank:
            self._draw_bank(self._wanted_round())

    def _wanted_round(self) -> int:
        return 0 if self.refresh_every is None else self.epoch // self.refresh_every

    def _ensure_bank(self) -> None:
        if self._bank_failed is not None:
            return
        wanted = self._wanted_round()
        if self._row_of is not None and self._bank_round == wanted:
            return
        if get_worker_info() is not None:
            self._warn_once(
                "worker",
                "GITDataset is drawing its bank inside a DataLoader worker: every worker draws its own, and "
                "again every epoch unless persistent_workers=True. Call build_bank() (or set_epoch(epoch)) on "
                "the dataset before iterating the DataLoader to draw it once in the main process.",
            )
        self._draw_bank(wanted)

    def _row(self, index: int) -> int:
        assert self._row_of is not None
        if index < 0:
            index += self._row_of.numel()
        return int(self._row_of[index]) if 0 <= index < self._row_of.numel() else -1

    def _tail_items(self, probabilities: torch.Tensor) -> tuple[list[int], list[torch.Tensor], list[int]]:
        """Indices, images (as tensors) and labels of the items the sampler can select."""
        size = len(self.dataset)  # type: ignore[arg-type]
        targets = getattr(self.dataset, "targets", None)
        if targets is None and isinstance(self.dataset, TensorDataset) and len(self.dataset.tensors) == 2:
            targets = self.dataset.tensors[1]
        candidates: range | list[int] = range(size)
        if targets is not None and len(targets) == size:
            # The attribute says where the tail is; each candidate's own label still decides below.
            candidates = [i for i, t in enumerate(targets) if self._selectable(_label_as_int(t), probabilities, i)]
        indices, images, labels = [], [], []
        for index in candidates:
            image, label = self._item(index)
            label = _label_as_int(label)
            if self._selectable(label, probabilities, index):
                tensor, _ = self._as_tensor(image)
                indices.append(index)
                images.append(tensor)
                labels.append(label)
        return indices, images, labels

    @staticmethod
    def _selectable(label: int, probabilities: torch.Tensor, index: int) -> bool:
        if not 0 <= label < probabilities.numel():
            raise ValueError(f"dataset[{index}] has label {label}, out of range for {probabilities.numel()} classes")
        return bool(probabilities[label] > 0)

    def _draw_bank(self, round_: int) -> None:
        probabilities = self.aug.sampler.probabilities  # type: ignore[union-attr]
        if self._row_of is None:  # the tail images, found once
            indices, images, labels = self._tail_items(probabilities)
            shapes = {(tuple(t.shape), t.dtype) for t in images}
            if len(shapes) > 1:
                self._bank_failed = f"the tail images differ in shape or dtype ({len(shapes)} kinds)"
                self._warn_once(
                    "shapes",
                    f"GITDataset draws live: {self._bank_failed}, so they cannot be stacked into a bank; "
                    "resize them in the dataset to get one",
                )
                return
            row_of = torch.full((len(self.dataset),), -1, dtype=torch.long)  # type: ignore[arg-type]
            row_of[torch.tensor(indices, dtype=torch.long)] = torch.arange(len(indices))
            if images:
                sources = torch.stack(images)
                self.aug._check_images(sources)
                self.aug._check_values(sources)  # a bad image fails here, as it would on its first live draw
                self._bank = TailBank(self.aug, sources, torch.tensor(labels), draws=int(self.draws))
            self._row_of = row_of
        if self._bank is not None:
            generator = None if self.seed is None else _seeded_generator(f"gitaug-bank/{self.seed}/{round_}")
            self._bank.refresh(generator)
        self._bank_round = round_

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=_caller_stacklevel())

    # ------------------------------------------------------------------ items

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch``: the per-item seeds (with a ``seed``) and, when due, a re-drawn bank.

        With the bank and ``aug`` enabled, this draws the bank if it is not
        drawn yet, or re-draws it when ``refresh_every`` says so, here in the
        calling process.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)
        if self.uses_bank and self.aug.enabled:
            self._ensure_bank()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _item_generator(self, index: int) -> torch.Generator | None:
        if self.seed is None:
            return None
        return _seeded_generator(f"gitaug-per-sample/{self.seed}/{self.epoch}/{index}")

    def _item(self, index: int) -> tuple[Any, Any]:
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(
                f"dataset[{index}] must be an (image, label) pair, got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
            )
        return item[0], item[1]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = self._item(index)
        image = self._apply(image, _label_as_int(label), int(index), self._item_generator(index))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def _as_tensor(self, image: Any) -> tuple[torch.Tensor, str | None]:
        """The image as a ``(C, H, W)`` tensor GIT takes, and the PIL mode it came in (``None`` for a tensor)."""
        if isinstance(image, torch.Tensor):
            if image.dim() != 3:
                raise ValueError(f"images must be single (C, H, W) tensors, got shape {tuple(image.shape)}")
            return image, None
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - torchvision needs Pillow
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            from torchvision.transforms.v2 import functional as TF

            # The generator takes the channels it was fitted on: gray or RGB.
            wanted = "L" if self.aug.generator.config.in_channels == 1 else "RGB"
            return TF.pil_to_tensor(image.convert(wanted) if image.mode != wanted else image), image.mode
        raise TypeError(
            f"images must be (C, H, W) tensors or PIL images, got {type(image).__name__}; "
            "convert others with the dataset's own transform first"
        )

    def _apply(self, image: Any, label: int, index: int, generator: torch.Generator | None) -> Any:
        tensor, mode = self._as_tensor(image)
        out, replaced = self._git(tensor, label, index, generator)
        if mode is None:
            return out
        if replaced is None:  # a live draw: replaced unless it came back equal
            replaced = not torch.equal(out, tensor)
        if not replaced:
            return image  # not selected: the very same object, untouched
        from torchvision.transforms.v2 import functional as TF

        wanted = "L" if self.aug.generator.config.in_channels == 1 else "RGB"
        result = TF.to_pil_image(out)
        return result.convert(mode) if mode != wanted else result

    def _git(
        self, image: torch.Tensor, label: int, index: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, bool | None]:
        """GIT on one ``(C, H, W)`` image: the output and whether it was replaced (``None``: not known, live)."""
        aug = self.aug
        if not (self.uses_bank and aug.enabled):
            out, _ = aug(image, label, generator=generator)
            return out, None
        # The live path's checks and selection, in the same order: the same generator selects the same items.
        aug._check_images(image)
        batch = image.unsqueeze(0)
        labels = aug._labels_as_indices(label, image)
        aug._check_values(batch)
        mask = aug._select(labels, 1, generator)
        if not bool(mask[0]):
            return image, False
        self._ensure_bank()
        if not self.uses_bank:  # the tail could not be banked (warned): draw live
            return aug._replace(batch, mask, generator).squeeze(0), True
        row = self._row(index)
        stored = self._bank.bank if self._bank is not None else None
        if row < 0 or stored is None or stored.shape[2:] != image.shape or stored.dtype != image.dtype:
            self._warn_once(
                "missing",
                f"dataset[{index}] (label {label}) is selected for GIT but has no bank draw in its format (its label "
                "or image differs from when the bank was drawn); it is drawn live. Call build_bank() after changing "
                "the dataset or the sampler.",
            )
            return aug._replace(batch, mask, generator).squeeze(0), True
        draw_device = generator.device if generator is not None else torch.device("cpu")
        version = int(torch.randint(stored.shape[1], (1,), generator=generator, device=draw_device))
        return stored[row, version].to(device=image.device, copy=True), True

    def __repr__(self) -> str:
        return (
            f"GITDataset({self.dataset!r}, aug={self.aug!r}, seed={self.seed}, draws={self.draws!r}, "
            f"refresh_every={self.refresh_every}, uses_bank={self.uses_bank}, bank_nbytes={self.bank_nbytes})"
        )
