"""The fitting objective: what the generator computes in one step, and every loss term with its weight.

One iteration on a batch of real images ``x`` (the paper's single-domain MUNIT):

1. encode ``x`` into its content ``c`` (a spatial map) and style ``s`` (a vector);
2. reconstruct ``x`` from ``(c, s)``;
3. draw a random style ``s_rand ~ N(0, I)`` and decode ``x_fake = G(c, s_rand)``;
4. re-encode ``x_fake`` into ``(c', s')``;
5. generator loss
   ``w_image |G(c, s) - x| + w_style |s' - s_rand| + w_content |c' - c| + w_adv LSGAN(D(x_fake) -> 1)``
   (+ the optional mode-seeking terms below);
6. discriminator loss ``LSGAN(D(x) -> 1) + LSGAN(D(x_fake) -> 0)`` on the detached ``x_fake``.

The mode-seeking terms (not in the paper; off unless their weight is positive)
decode a second style ``s_other`` from the same content and reward draws that
differ, up to a cap: ``diversity`` on the whole image, ``warp_diversity`` on
the style-driven warp alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..generator import MUNITGenerator
from .discriminator import lsgan_loss

__all__ = ["GeneratorOutputs", "GeneratorPass", "LossWeights", "LossTerms", "generator_losses", "discriminator_loss", "diversity_loss"]


class GeneratorOutputs(NamedTuple):
    """Everything one generator pass produces (a named tuple, so DDP can traverse it).

    ``other`` is the second draw of the image diversity term; ``turned`` and
    ``turned_other`` are one unwarped draw warped by both styles, for the warp
    diversity term. Each is ``None`` when its term is off.
    """

    recon: torch.Tensor
    fake: torch.Tensor
    content: torch.Tensor
    content_re: torch.Tensor
    style_re: torch.Tensor
    other: torch.Tensor | None = None
    turned: torch.Tensor | None = None
    turned_other: torch.Tensor | None = None


class GeneratorPass(nn.Module):
    """Everything the generator computes in one training step, as a single ``forward``.

    Distributed data parallel synchronizes gradients only for computations
    that run through the wrapped module's ``forward``; gathering every
    encoding, decoding and warp of a step here (including the second draw of
    the mode-seeking terms) lets it see every generator parameter used.
    """

    def __init__(self, generator: MUNITGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(
        self,
        real: torch.Tensor,
        style_rand: torch.Tensor,
        style_other: torch.Tensor | None = None,
        *,
        image_pair: bool = False,
        warp_pair: bool = False,
    ) -> GeneratorOutputs:
        g = self.generator
        content, style = g.encode_content(real), g.encode_style(real)
        # The content map of a real image holds its geometry, so it is reconstructed without the
        # warp; the warp re-draws geometry only for random styles.
        recon = g.decode(content, style, warp=False)
        unwarped = g.decode(content, style_rand, warp=False)
        fake = g.warp(unwarped, style_rand) if g.warp is not None else unwarped
        # The codes are re-encoded from the draw before its warp. After it, the content encoder
        # would have to give a turned digit the same content map, and the cheapest way to get
        # there is a decoder that draws blobs which look alike at every angle (measured: digit
        # identity kept for 53 % of draws, against 97 % for the unwarped generator). The warp
        # is judged by the discriminator alone.
        content_re, style_re = g.encode_content(unwarped), g.encode_style(unwarped)
        other = turned = turned_other = None
        if image_pair:
            other = g.decode(content, style_other)
        if warp_pair:
            # One decoded image, warped by both styles: the warp's own share of a difference between
            # draws, which rewards geometry without rewarding texture changes of the AdaIN path.
            still = unwarped.detach()
            turned, turned_other = g.warp(still, style_rand), g.warp(still, style_other)
        return GeneratorOutputs(recon, fake, content, content_re, style_re, other, turned, turned_other)


@dataclass(frozen=True)
class LossWeights:
    """The weight of each generator loss term, and the cap of the mode-seeking terms."""

    image: float = 10.0
    style: float = 1.0
    content: float = 1.0
    adv: float = 1.0
    diversity: float = 0.0
    warp_diversity: float = 0.0
    diversity_cap: float = 0.2

    @property
    def image_pair(self) -> bool:
        """Whether a step needs the second whole-image draw."""
        return self.diversity > 0

    @property
    def warp_pair(self) -> bool:
        """Whether a step needs the two warped copies."""
        return self.warp_diversity > 0


@dataclass(frozen=True)
class LossTerms:
    """One step's losses; ``gen`` and ``disc`` are what the two optimizers minimize.

    The log and the progress bar name each field ``loss_<field>`` (see :meth:`as_log`).
    """

    image: torch.Tensor
    style: torch.Tensor
    content: torch.Tensor
    adv: torch.Tensor
    diversity: torch.Tensor
    warp_diversity: torch.Tensor
    gen: torch.Tensor
    disc: torch.Tensor

    @classmethod
    def log_names(cls) -> tuple[str, ...]:
        return tuple(f"loss_{field.name}" for field in fields(cls))

    def stacked(self) -> torch.Tensor:
        """Every term as one detached float vector, in :meth:`log_names` order (one all-reduce under DDP)."""
        return torch.stack([getattr(self, field.name).detach().float() for field in fields(self)])


def diversity_loss(
    fake: torch.Tensor, other: torch.Tensor, style: torch.Tensor, style_other: torch.Tensor, cap: float
) -> torch.Tensor:
    """Mode-seeking term: how far ``mean|fake - other| / mean|style - style_other|`` falls short of ``cap``.

    Zero once two draws differ enough; its gradient pushes the decoder to let
    the style code change the image.
    """
    ratio = (fake.float() - other.float()).abs().mean() / (style - style_other).abs().mean().clamp_min(1e-8)
    return F.relu(cap - ratio)


def generator_losses(
    out: GeneratorOutputs,
    real: torch.Tensor,
    style_rand: torch.Tensor,
    style_other: torch.Tensor | None,
    critic: nn.Module,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """The generator's terms and their weighted sum ``gen``; ``critic`` is the (frozen) discriminator."""
    terms = {
        "image": F.l1_loss(out.recon.float(), real),
        "style": F.l1_loss(out.style_re.float(), style_rand),
        "content": F.l1_loss(out.content_re.float(), out.content.float()),
        "adv": lsgan_loss(critic(out.fake), target=1.0),
    }
    zero = terms["image"].new_zeros(())
    terms["diversity"] = (
        diversity_loss(out.fake, out.other, style_rand, style_other, weights.diversity_cap)
        if out.other is not None
        else zero
    )
    terms["warp_diversity"] = (
        diversity_loss(out.turned, out.turned_other, style_rand, style_other, weights.diversity_cap)
        if out.turned is not None
        else zero
    )
    terms["gen"] = sum(getattr(weights, name) * value for name, value in terms.items())
    return terms


def discriminator_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN: real images scored 1, generated ones 0, in one forward pass over both."""
    scores = critic(torch.cat([real, fake.detach()]))
    count = real.shape[0]
    return lsgan_loss([s[:count] for s in scores], target=1.0) + lsgan_loss([s[count:] for s in scores], target=0.0)
