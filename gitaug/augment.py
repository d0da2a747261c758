"""GITAugment: the drop-in transform that re-draws tail-class images with a fitted generator."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors

from .generator import MUNITGenerator
from .hub import load_generator, push_folder_to_hub, save_generator
from .sampler import ClassThresholdSampler

__all__ = ["GITAugment"]


def _channel_stats(value: float | Sequence[float] | torch.Tensor, name: str, channels: int) -> torch.Tensor:
    stats = torch.as_tensor(value, dtype=torch.float32).flatten()
    if stats.numel() == 1:
        stats = stats.expand(channels)
    if stats.numel() != channels:
        raise ValueError(f"{name} must have 1 or {channels} values (one per channel), got {stats.numel()}")
    if not torch.isfinite(stats).all():
        raise ValueError(f"{name} must be finite, got {stats.tolist()}")
    return stats.clone().view(1, channels, 1, 1)


class GITAugment(nn.Module):
    """Generative Invariance Transfer as a transform.

    Wraps a fitted class-agnostic :class:`~gitaug.MUNITGenerator`. Called as
    ``aug(images)`` it re-draws every image under a random nuisance; called as
    ``images, labels = aug(images, labels)`` it re-draws only the samples its
    :class:`~gitaug.ClassThresholdSampler` selects (tail-class samples, with
    probability ``p``) and hands the labels back unchanged, like torchvision's
    v2 ``MixUp``/``CutMix``. Unselected samples come back bit-identical; the
    input is never modified in place.

    Images may be a batch ``(N, C, H, W)`` or a single image ``(C, H, W)``:

    * float in [0, 1] (the default),
    * float normalized with ``mean``/``std`` given here (as ``Normalize`` would),
    * ``uint8`` in [0, 255].

    The output has the input's dtype, value range, normalization and device.
    The generator runs on its own device (move it with ``aug.to(device)``),
    without gradients and in eval mode; images of another size than the
    generator's are resized to it and back.

    Args:
        generator: the fitted generator.
        sampler: which samples ``aug(images, labels)`` replaces; ``None``
            replaces every sample.
        mean, std: per-channel normalization of float inputs, if they are
            normalized; both or neither.
        enabled: when ``False`` the transform is the identity (switch it on
            later for delayed GIT: ``aug.enabled = True``).

    Example::

        >>> import torch
        >>> from gitaug import GITAugment, ClassThresholdSampler, MUNITConfig, MUNITGenerator
        >>> generator = MUNITGenerator(MUNITConfig.preset("small", in_channels=1, image_size=28))
        >>> sampler = ClassThresholdSampler([500, 50, 5], threshold=100, p=0.5)
        >>> aug = GITAugment(generator, sampler)
        >>> images, labels = torch.rand(8, 1, 28, 28), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
        >>> out, same_labels = aug(images, labels, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(out[:3], images[:3])   # class 0 is above the threshold
        True
    """

    def __init__(
        self,
        generator: MUNITGenerator,
        sampler: ClassThresholdSampler | None = None,
        *,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(generator, MUNITGenerator):
            raise TypeError(f"generator must be a MUNITGenerator, got {type(generator).__name__}")
        if sampler is not None and not isinstance(sampler, ClassThresholdSampler):
            raise TypeError(f"sampler must be a ClassThresholdSampler or None, got {type(sampler).__name__}")
        if (mean is None) != (std is None):
            raise ValueError(f"give both mean and std or neither, got mean={mean!r}, std={std!r}")
        channels = generator.config.in_channels
        self.generator = generator.eval().requires_grad_(False)
        self.sampler = sampler
        self.enabled = bool(enabled)
        self.normalized = mean is not None
        if self.normalized:
            std_t = _channel_stats(std, "std", channels)
            if (std_t <= 0).any():
                raise ValueError(f"std must be positive, got {std_t.flatten().tolist()}")
            self.register_buffer("mean", _channel_stats(mean, "mean", channels), persistent=False)
            self.register_buffer("std", std_t, persistent=False)
        #: Training metadata of a loaded generator (its config's "training" section).
        self.metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------ Hub / files

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> "GITAugment":
        """Load a fitted generator from a local folder or a Hugging Face Hub repo.

        Args:
            repo_id_or_path: a pretrained name (``gitaug.list_pretrained()``),
                a folder written by :meth:`save_pretrained` or ``gitaug-fit``,
                or a Hub repo id such as ``"org/name"``.
            revision: a Hub branch, tag or commit to pin.
            cache_dir: the Hub cache folder (default: the Hub's own).
            local_files_only: never reach the network; use the cache only
                (``HF_HUB_OFFLINE=1`` does the same for every download).
            token: a Hub token for private repos.
            device: where to put the generator (default CPU).
            **kwargs: ``sampler``, ``mean``, ``std``, ``enabled``, as in the constructor.

        Example::

            aug = GITAugment.from_pretrained("digits-bg-lt", sampler=sampler)
        """
        from .pretrained import resolve_pretrained

        # A registered name loads the generator packaged with gitaug, offline; see gitaug.pretrained.
        repo_id_or_path = resolve_pretrained(repo_id_or_path)
        generator, config = load_generator(
            repo_id_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            device=device,
        )
        aug = cls(generator, **kwargs)
        aug.metadata = dict(config.get("training") or {})
        return aug

    def save_pretrained(self, directory: str | os.PathLike, *, samples_image: str | os.PathLike | None = None) -> None:
        """Write the generator as a folder that :meth:`from_pretrained` loads."""
        save_generator(self.generator, directory, metadata=self.metadata, samples_image=samples_image)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload gitaug generator",
    ) -> str:
        """Upload the generator to a Hub repo (created if needed); returns the commit URL."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return push_folder_to_hub(
                tmp, repo_id, token=token, private=private, revision=revision, commit_message=commit_message
            )

    # ------------------------------------------------------------------ the transform

    def train(self, mode: bool = True) -> "GITAugment":
        # The generator is a fixed, fitted model: it stays in eval mode whatever the wrapper's mode.
        super().train(mode)
        self.generator.eval()
        return self

    def _labels_as_indices(self, labels: Any, batch_size: int) -> torch.Tensor:
        if isinstance(labels, bool) or not isinstance(labels, (int, torch.Tensor)):
            raise TypeError(f"labels must be an int or a tensor, got {type(labels).__name__}")
        indices = torch.as_tensor(labels)
        if indices.dim() == 2 and indices.is_floating_point():
            indices = indices.argmax(dim=1)  # one-hot or mixed (soft) labels: select by the main class
        indices = indices.reshape(-1)
        if indices.numel() != batch_size:
            raise ValueError(f"got {indices.numel()} labels for {batch_size} images")
        return indices

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        labels: Any = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Transform ``images`` (all of them, or those the sampler selects when ``labels`` are given).

        Args:
            images: ``(N, C, H, W)`` or ``(C, H, W)``, float or uint8.
            labels: class indices ``(N,)`` (an int for a single image), or
                one-hot / soft labels ``(N, num_classes)``; returned unchanged.
            generator: a ``torch.Generator`` seeding the selection and style
                draws, for a reproducible call.

        Returns:
            The images, or ``(images, labels)`` when labels were given.
        """
        out = self._transform(images, labels, generator)
        if isinstance(images, tv_tensors.TVTensor) and not isinstance(out, tv_tensors.TVTensor):
            out = tv_tensors.wrap(out, like=images)  # keep v2's image type for the transforms after us
        return out if labels is None else (out, labels)

    def _transform(self, images: torch.Tensor, labels: Any, generator: torch.Generator | None) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() not in (3, 4):
            raise ValueError(f"images must be (N, C, H, W) or (C, H, W), got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"images must be float or uint8, got dtype {images.dtype}")
        if images.dtype == torch.uint8 and self.normalized:
            raise ValueError("mean/std were given but the images are uint8; normalized images must be float")
        expected_channels = self.generator.config.in_channels
        if images.shape[-3] != expected_channels:
            raise ValueError(
                f"the generator takes {expected_channels}-channel images, got {images.shape[-3]} channels "
                f"(shape {tuple(images.shape)})"
            )
        if not self.enabled:
            return images

        batch = images if images.dim() == 4 else images.unsqueeze(0)
        if labels is None or self.sampler is None:
            mask = torch.ones(batch.shape[0], dtype=torch.bool, device=batch.device)
            if labels is not None:
                self._labels_as_indices(labels, batch.shape[0])  # still validate them
        else:
            mask = self.sampler(self._labels_as_indices(labels, batch.shape[0]), generator=generator)
            mask = mask.to(batch.device)
        if not mask.any():
            return images

        generated = self._generate(batch[mask], generator)
        result = batch.clone()
        result[mask] = generated
        return result if images.dim() == 4 else result.squeeze(0)

    def _generate(self, selected: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Run the generator on the selected samples and bring them back to the input's format."""
        param = next(self.generator.parameters())
        size = self.generator.config.image_size
        height, width = selected.shape[-2:]

        x = selected.to(device=param.device, dtype=param.dtype)
        if selected.dtype == torch.uint8:
            x = x / 255.0
        elif self.normalized:
            x = x * self.std.to(x) + self.mean.to(x)
        x = x * 2 - 1
        if (height, width) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

        y = self.generator.sample(x, generator=generator)

        if (height, width) != (size, size):
            y = F.interpolate(y, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        y = (y + 1) / 2
        if selected.dtype == torch.uint8:
            y = (y * 255).round().clamp(0, 255)
        else:
            y = y.clamp(0, 1)
            if self.normalized:
                y = (y - self.mean.to(y)) / self.std.to(y)
        return y.to(device=selected.device, dtype=selected.dtype)

    def extra_repr(self) -> str:
        c = self.generator.config
        return (
            f"image_size={c.image_size}, in_channels={c.in_channels}, sampler={self.sampler!r}, "
            f"normalized={self.normalized}, enabled={self.enabled}"
        )
