"""Classifier heads for long-tailed training: fixed frames (simplex ETF, Hierarchy-Aware Frame) and a cosine head.

Both heads hold one unit-norm vector per class in a ``(C, feature_dim)``
buffer ``weight`` and map features to logits ``features @ weight.T``; only
the network before them is trained.

* :class:`ETFHead`: the simplex equiangular tight frame, every pair of class
  vectors at cosine ``-1/(C-1)`` (maximal, equal separation).
* :class:`HAFrameHead`: a Hierarchy-Aware Frame, whose pairwise cosines
  decrease with the classes' hierarchical distance, so that classes close in
  the hierarchy sit close in feature space. :class:`HAFrameCosineLoss`
  pulls penultimate features onto their class vector.

:class:`CosineHead` is trainable: cosine similarities between features and
class vectors, the normalized logits that :class:`~gitaug.losses.LDAMLoss`
(with its ``scale`` of 30) is meant for.

The arithmetic is in plain functions: :func:`simplex_etf_similarity`,
:func:`similarity_from_distance`, :func:`most_separated_min_similarity`,
:func:`class_vectors_from_similarity`.

Example::

    >>> import torch
    >>> head = ETFHead(feature_dim=16, num_classes=5)
    >>> head(torch.randn(3, 16)).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_labels, check_number, check_reduction, reduce_loss

__all__ = [
    "PSD_TOLERANCE",
    "simplex_etf_similarity",
    "similarity_from_distance",
    "most_separated_min_similarity",
    "class_vectors_from_similarity",
    "ETFHead",
    "HAFrameHead",
    "HAFrameCosineLoss",
    "CosineHead",
]

# Eigenvalues of a similarity matrix below -PSD_TOLERANCE make it infeasible;
# those within +-PSD_TOLERANCE count as zero (float64 arithmetic on C x C
# matrices with entries in [-1, 1]).
PSD_TOLERANCE = 1e-8


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return num_classes


def _check_feature_dim(feature_dim: int, num_classes: int) -> int:
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, int):
        raise TypeError(f"feature_dim must be an int, got {feature_dim!r}")
    # C unit vectors summing to zero (the ETF) span C - 1 dimensions, and so
    # does a HAFrame at its most separated s_min.
    if feature_dim < num_classes - 1:
        raise ValueError(
            f"feature_dim must be >= num_classes - 1 = {num_classes - 1} to hold the frame, got {feature_dim}"
        )
    return feature_dim


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return seed


def _check_distance_matrix(distance_matrix: torch.Tensor) -> torch.Tensor:
    """Returns the distances as float64 on the CPU after checking them."""
    try:
        distance = torch.as_tensor(distance_matrix)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"distance_matrix must be a square matrix of numbers, got {distance_matrix!r}") from error
    if distance.dtype == torch.bool or distance.is_complex():
        raise TypeError(f"distance_matrix must hold real numbers, got dtype {distance.dtype}")
    if distance.dim() != 2 or distance.shape[0] != distance.shape[1]:
        raise ValueError(f"distance_matrix must be square (C, C), got shape {tuple(distance.shape)}")
    if distance.shape[0] < 2:
        raise ValueError(f"distance_matrix must cover at least 2 classes, got shape {tuple(distance.shape)}")
    distance = distance.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(distance).all():
        raise ValueError("distance_matrix must be finite, got a non-finite entry")
    if not torch.equal(distance, distance.T):
        i, j = (int(v) for v in torch.nonzero(distance != distance.T)[0])
        raise ValueError(
            f"distance_matrix must be symmetric, got {distance[i, j].item()} at ({i}, {j}) "
            f"but {distance[j, i].item()} at ({j}, {i})"
        )
    if (distance.diagonal() != 0).any():
        i = int(torch.nonzero(distance.diagonal() != 0)[0])
        raise ValueError(f"distance_matrix must have a zero diagonal, got {distance[i, i].item()} at ({i}, {i})")
    off_diagonal = ~torch.eye(distance.shape[0], dtype=torch.bool)
    bad = off_diagonal & (distance <= 0)
    if bad.any():
        i, j = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(
            f"distance_matrix must be positive between distinct classes, got {distance[i, j].item()} at ({i}, {j})"
        )
    return distance


def simplex_etf_similarity(num_classes: int) -> torch.Tensor:
    """The Gram matrix of a simplex ETF: 1 on the diagonal, ``-1/(C-1)`` elsewhere (float64).

    Example::

        >>> simplex_etf_similarity(3)[0].tolist()
        [1.0, -0.5, -0.5]
    """
    num_classes = _check_num_classes(num_classes)
    eye = torch.eye(num_classes, dtype=torch.float64)
    return (num_classes * eye - 1.0) / (num_classes - 1)


def _decay(distance: torch.Tensor, gamma: float) -> torch.Tensor:
    """``exp(-gamma * d / d_max)``: 1 on the diagonal, decreasing with distance."""
    return torch.exp(-gamma * distance / distance.max())


def similarity_from_distance(distance_matrix: torch.Tensor, gamma: float, min_similarity: float) -> torch.Tensor:
    """Maps distances to target cosines ``s(d) = (1 - s_min) exp(-gamma d / d_max) + s_min``.

    ``s(0) = 1`` and ``s`` falls towards ``s_min`` as ``d`` grows; the result
    is float64. Whether it is a valid cosine (Gram) matrix depends on
    ``min_similarity``: see :func:`most_separated_min_similarity`.

    Example::

        >>> d = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
        >>> s = similarity_from_distance(d, gamma=1.0, min_similarity=0.0)
        >>> round(float(s[0, 1]), 4)
        0.3679
    """
    distance = _check_distance_matrix(distance_matrix)
    gamma = check_number(gamma, "gamma", low=0.0, low_inclusive=False)
    min_similarity = check_number(min_similarity, "min_similarity", high=1.0, high_inclusive=False)
    return (1.0 - min_similarity) * _decay(distance, gamma) + min_similarity


def most_separated_min_similarity(distance_matrix: torch.Tensor, gamma: float) -> float:
    """The most negative ``s_min`` for which :func:`similarity_from_distance` is PSD.

    Closed form, no search. Write ``E = exp(-gamma D / d_max)`` and ``J`` the
    all-ones matrix. Then ``S = (1 - s_min) (E + t J)`` with
    ``t = s_min / (1 - s_min)``, increasing in ``s_min``. When ``E`` is
    positive definite, ``E + t J`` (a rank-one update) is PSD exactly when
    ``1 + t * 1^T E^-1 1 >= 0``, so the boundary is
    ``t* = -1 / (1^T E^-1 1)`` and ``s_min = t* / (1 + t*)``; there ``S`` is
    PSD with one zero eigenvalue (rank ``C - 1``). The boundary is exact up to
    float64 rounding; :data:`PSD_TOLERANCE` bounds the accepted negative
    eigenvalue of the resulting matrix.

    ``E`` is positive definite for distances from a tree (LCA heights, path
    lengths), since such metrics are ultrametric or embed in L1; other
    distances raise ``ValueError``. ``s_min`` is not clamped at -1: it is a
    parameter of the mapping, not itself a cosine, and the off-diagonal
    cosines of a PSD matrix with unit diagonal always lie in [-1, 1]. For a
    flat hierarchy this gives the simplex ETF for every ``gamma``.

    Example::

        >>> flat = 1.0 - torch.eye(4)
        >>> s_min = most_separated_min_similarity(flat, gamma=2.0)
        >>> s = similarity_from_distance(flat, 2.0, s_min)
        >>> round(float(s[0, 1]), 6)
        -0.333333
    """
    distance = _check_distance_matrix(distance_matrix)
    gamma = check_number(gamma, "gamma", low=0.0, low_inclusive=False)
    decay = _decay(distance, gamma)
    cholesky, info = torch.linalg.cholesky_ex(decay)
    if int(info) != 0:
        raise ValueError(
            f"distance_matrix gives exp(-gamma * d / d_max) that is not positive definite (gamma={gamma}); "
            "use hierarchical (tree) distances such as LCA heights, or a larger gamma"
        )
    ones = torch.ones(distance.shape[0], 1, dtype=torch.float64)
    quadratic = float((ones.T @ torch.cholesky_solve(ones, cholesky)).squeeze())
    boundary_t = -1.0 / quadratic
    return boundary_t / (1.0 + boundary_t)


def _random_orthonormal(rows: int, cols: int, seed: int) -> torch.Tensor:
    """A ``(rows, cols)`` float64 matrix with orthonormal columns, Haar-distributed, seeded."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(rows, cols, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    # Fixing the signs of R's diagonal makes Q uniform over orthonormal frames.
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs


def class_vectors_from_similarity(similarity: torch.Tensor, feature_dim: int, seed: int = 0) -> torch.Tensor:
    """Unit-norm class vectors in ``feature_dim`` whose Gram matrix is ``similarity``.

    Factorizes ``S = V diag(w) V^T`` (eigenvalues within :data:`PSD_TOLERANCE`
    of zero are dropped), takes ``V sqrt(w)`` as coordinates in ``rank(S)``
    dimensions, and embeds them into ``feature_dim`` with a random orthonormal
    matrix drawn from ``seed``. Returns float64 of shape ``(C, feature_dim)``.

    Example::

        >>> w = class_vectors_from_similarity(simplex_etf_similarity(3), feature_dim=8)
        >>> round(float(w[0] @ w[1]), 6), tuple(w.shape)
        (-0.5, (3, 8))
    """
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, int):
        raise TypeError(f"feature_dim must be an int, got {feature_dim!r}")
    similarity = torch.as_tensor(similarity, dtype=torch.float64).cpu()
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be square (C, C), got shape {tuple(similarity.shape)}")
    if not torch.allclose(similarity.diagonal(), torch.ones(similarity.shape[0], dtype=torch.float64)):
        raise ValueError("similarity must have a unit diagonal (cosines of unit vectors)")
    eigenvalues, eigenvectors = torch.linalg.eigh((similarity + similarity.T) / 2)
    if float(eigenvalues.min()) < -PSD_TOLERANCE:
        raise ValueError(
            f"similarity must be positive semi-definite, got smallest eigenvalue {float(eigenvalues.min()):.3g}"
        )
    keep = eigenvalues > PSD_TOLERANCE
    rank = int(keep.sum())
    if feature_dim < rank:
        raise ValueError(f"feature_dim must be >= the similarity's rank {rank}, got {feature_dim}")
    coordinates = eigenvectors[:, keep] * eigenvalues[keep].sqrt()
    # Dropping near-zero eigenvalues can shift norms by ~1e-8; restore unit norm.
    coordinates = coordinates / coordinates.norm(dim=1, keepdim=True)
    return coordinates @ _random_orthonormal(feature_dim, rank, seed).T


def _check_features(features: torch.Tensor, feature_dim: int) -> None:
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if not features.is_floating_point():
        raise TypeError(f"features must be a floating-point tensor, got dtype {features.dtype}")
    if features.dim() < 1 or features.shape[-1] != feature_dim:
        raise ValueError(f"features must have shape (..., {feature_dim}), got {tuple(features.shape)}")


# ---------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------


class _FixedFrameHead(nn.Module):
    """Shared forward of the fixed heads: ``logits = features @ weight.T``."""

    weight: torch.Tensor
    target_similarity: torch.Tensor

    def __init__(self, vectors: torch.Tensor, similarity: torch.Tensor) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = vectors.shape
        dtype = torch.get_default_dtype()
        # Buffers, not parameters: the frame is fixed, moves with .to(device)
        # and is saved in the state dict.
        self.register_buffer("weight", vectors.to(dtype))
        self.register_buffer("target_similarity", similarity.to(dtype))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.feature_dim)
        return F.linear(features, self.weight.to(device=features.device, dtype=features.dtype))

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, num_classes={self.num_classes}"


class ETFHead(_FixedFrameHead):
    """A fixed simplex-ETF classifier: ``logits = features @ weight.T``.

    The ``C`` class vectors have unit norm and pairwise cosine exactly
    ``-1/(C-1)`` (up to float rounding of the stored buffer); they span
    ``C - 1`` dimensions, placed in the feature space by a random orthonormal
    matrix drawn from ``seed``. Nothing in the head is trainable.

    Args:
        feature_dim: size of the penultimate features, >= ``num_classes - 1``.
        num_classes: number of classes ``C``, >= 2.
        seed: seed of the random embedding.

    Attributes:
        weight: the class vectors, buffer of shape ``(C, feature_dim)``.
        target_similarity: their Gram matrix, buffer of shape ``(C, C)``.

    Example::

        >>> import torch
        >>> head = ETFHead(feature_dim=8, num_classes=4, seed=0)
        >>> round(float(head.weight[0] @ head.weight[1]), 5)
        -0.33333
        >>> sum(p.numel() for p in head.parameters())
        0
    """

    def __init__(self, feature_dim: int, num_classes: int, seed: int = 0) -> None:
        num_classes = _check_num_classes(num_classes)
        feature_dim = _check_feature_dim(feature_dim, num_classes)
        similarity = simplex_etf_similarity(num_classes)
        vectors = class_vectors_from_similarity(similarity, feature_dim, _check_seed(seed))
        super().__init__(vectors, similarity)


class HAFrameHead(_FixedFrameHead):
    """A fixed Hierarchy-Aware Frame classifier: ``logits = features @ weight.T``.

    From a ``C x C`` hierarchical distance matrix (e.g. LCA heights, see
    :mod:`gitaug.hierarchy`), target cosines are
    ``s(d) = (1 - s_min) exp(-gamma d / d_max) + s_min`` with the most negative
    ``s_min`` that keeps the matrix positive semi-definite (closed form, see
    :func:`most_separated_min_similarity`). The matrix is factorized into unit
    class vectors (eigendecomposition), embedded into ``feature_dim`` by a
    seeded random orthonormal matrix. A flat hierarchy gives the simplex ETF.

    Train with cross-entropy on the logits mixed with
    :class:`HAFrameCosineLoss`; the HAFrame paper's CIFAR-100 recipe uses
    ``gamma = 2`` and ``0.6 * CE + 0.4 * cosine loss``.

    Args:
        distance_matrix: symmetric ``(C, C)``, zero diagonal, positive elsewhere.
        feature_dim: size of the penultimate features, >= ``C - 1``.
        gamma: decay rate of similarity with distance, > 0.
        seed: seed of the random embedding.

    Attributes:
        weight: the class vectors, buffer of shape ``(C, feature_dim)``.
        target_similarity: the target cosine matrix, buffer ``(C, C)``.
        distance_matrix: the hierarchical distances, buffer ``(C, C)``.
        min_similarity: the chosen ``s_min`` (a float).

    Example::

        >>> import torch
        >>> distance = torch.tensor([[0., 1., 2.], [1., 0., 2.], [2., 2., 0.]])
        >>> head = HAFrameHead(distance, feature_dim=8, gamma=2.0)
        >>> head(torch.randn(5, 8)).shape
        torch.Size([5, 3])
        >>> bool(head.target_similarity[0, 1] > head.target_similarity[0, 2])
        True
    """

    distance_matrix: torch.Tensor

    def __init__(self, distance_matrix: torch.Tensor, feature_dim: int, gamma: float = 2.0, seed: int = 0) -> None:
        distance = _check_distance_matrix(distance_matrix)
        num_classes = distance.shape[0]
        feature_dim = _check_feature_dim(feature_dim, num_classes)
        gamma = check_number(gamma, "gamma", low=0.0, low_inclusive=False)
        min_similarity = most_separated_min_similarity(distance, gamma)
        similarity = similarity_from_distance(distance, gamma, min_similarity)
        vectors = class_vectors_from_similarity(similarity, feature_dim, _check_seed(seed))
        super().__init__(vectors, similarity)
        self.gamma = gamma
        self.min_similarity = min_similarity
        self.register_buffer("distance_matrix", distance.to(torch.get_default_dtype()))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, min_similarity={self.min_similarity:.4f}"


class HAFrameCosineLoss(nn.Module):
    """Squared error between feature-to-class cosines and the target similarities.

    For a feature ``f`` with label ``y`` the loss is
    ``sum_c (cos(f, w_c) - S[y, c])^2``, summed over classes and averaged over
    the batch (the HAFrame paper's form). It is 0 exactly when ``f`` points
    along its class vector ``w_y`` (as ``S`` is the Gram matrix of the ``w``).
    Mix it with cross-entropy on the head's logits.

    Args:
        class_vectors: the fixed class vectors ``(C, D)``, e.g. ``head.weight``.
        target_similarity: the target cosines ``(C, C)``, e.g.
            ``head.target_similarity``.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"``.

    Example::

        >>> import torch
        >>> head = ETFHead(feature_dim=8, num_classes=4)
        >>> cosine_loss = HAFrameCosineLoss.from_head(head)
        >>> labels = torch.tensor([0, 3])
        >>> float(cosine_loss(2.0 * head.weight[labels], labels)) < 1e-10
        True
    """

    class_vectors: torch.Tensor
    target_similarity: torch.Tensor

    def __init__(self, class_vectors: torch.Tensor, target_similarity: torch.Tensor, reduction: str = "mean") -> None:
        super().__init__()
        if not isinstance(class_vectors, torch.Tensor) or class_vectors.dim() != 2:
            shape = tuple(class_vectors.shape) if isinstance(class_vectors, torch.Tensor) else class_vectors
            raise ValueError(f"class_vectors must be a 2-D tensor (C, D), got {shape!r}")
        num_classes = class_vectors.shape[0]
        if not isinstance(target_similarity, torch.Tensor) or target_similarity.shape != (num_classes, num_classes):
            shape = tuple(target_similarity.shape) if isinstance(target_similarity, torch.Tensor) else target_similarity
            raise ValueError(f"target_similarity must have shape ({num_classes}, {num_classes}), got {shape!r}")
        self.reduction = check_reduction(reduction)
        self.num_classes, self.feature_dim = class_vectors.shape
        self.register_buffer("class_vectors", F.normalize(class_vectors.detach().clone(), dim=1))
        self.register_buffer("target_similarity", target_similarity.detach().clone())

    @classmethod
    def from_head(cls, head: ETFHead | HAFrameHead, reduction: str = "mean") -> HAFrameCosineLoss:
        """The cosine loss for a fixed head's class vectors and target similarities."""
        return cls(head.weight, head.target_similarity, reduction=reduction)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.feature_dim)
        if features.dim() != 2:
            raise ValueError(f"features must have shape (N, {self.feature_dim}), got {tuple(features.shape)}")
        check_labels(labels, self.num_classes, num_samples=features.shape[0])
        vectors = self.class_vectors.to(device=features.device, dtype=features.dtype)
        cosines = F.normalize(features, dim=1) @ vectors.T
        targets = self.target_similarity.to(device=features.device, dtype=features.dtype)[labels]
        per_sample = (cosines - targets).square().sum(dim=1)
        return reduce_loss(per_sample, self.reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feature_dim={self.feature_dim}, reduction={self.reduction!r}"



class CosineHead(nn.Module):
    """A trainable cosine classifier: ``logits[i, c] = cos(features_i, weight_c)``, in [-1, 1].

    Margin losses such as LDAM subtract a margin from the true class's logit
    and scale by a fixed factor (30 by default); that only makes sense on
    bounded, normalized logits like these (the LDAM reference uses this head).

    Args:
        feature_dim: size of the penultimate features.
        num_classes: number of classes ``C``, >= 2.

    Example::

        >>> import torch
        >>> head = CosineHead(feature_dim=8, num_classes=3)
        >>> logits = head(torch.randn(4, 8))
        >>> bool(logits.abs().max() <= 1 + 1e-6)
        True
    """

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        num_classes = _check_num_classes(num_classes)
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive integer, got {feature_dim!r}")
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, feature_dim))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's initialization

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.feature_dim)
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, num_classes={self.num_classes}"
