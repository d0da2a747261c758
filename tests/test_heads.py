"""Fixed classifier heads: exact frame geometry, PSD boundary, cosine loss."""

import pytest
import torch
import torch.nn.functional as F

from gitaug.heads import (
    PSD_TOLERANCE,
    ETFHead,
    HAFrameCosineLoss,
    HAFrameHead,
    class_vectors_from_similarity,
    most_separated_min_similarity,
    similarity_from_distance,
    simplex_etf_similarity,
)
from gitaug.hierarchy import distance_matrix_from_tree

# Three-level tree over 6 classes: {0,1} and {2} under A, {3,4,5} under B.
TREE = {"A": {"a1": [0, 1], "a2": [2]}, "B": {"b1": [3, 4, 5]}}


@pytest.fixture
def tree_distance():
    return distance_matrix_from_tree(TREE)


def _pairwise_cosines(vectors):
    unit = F.normalize(vectors.double(), dim=1)
    return unit @ unit.T


# ---------------------------------------------------------------- ETF


@pytest.mark.parametrize("num_classes, feature_dim", [(2, 1), (5, 4), (10, 32)])
def test_etf_vectors_have_exact_pairwise_cosines(num_classes, feature_dim):
    head = ETFHead(feature_dim, num_classes, seed=3)
    weight = head.weight.double()
    assert weight.shape == (num_classes, feature_dim)
    assert torch.allclose(weight.norm(dim=1), torch.ones(num_classes, dtype=torch.float64), atol=1e-6)
    gram = weight @ weight.T
    expected = torch.full((num_classes, num_classes), -1.0 / (num_classes - 1), dtype=torch.float64)
    expected.fill_diagonal_(1.0)
    assert torch.allclose(gram, expected, atol=1e-6)
    # The simplex is centred: the class vectors sum to zero.
    assert weight.sum(dim=0).abs().max() < 1e-5


def test_etf_is_fixed_and_seeded():
    head = ETFHead(16, 6, seed=0)
    assert list(head.parameters()) == []
    assert set(dict(head.named_buffers())) == {"weight", "target_similarity"}
    assert torch.equal(head.weight, ETFHead(16, 6, seed=0).weight)
    assert not torch.allclose(head.weight, ETFHead(16, 6, seed=1).weight)


def test_etf_forward_is_features_times_class_vectors():
    head = ETFHead(8, 4)
    features = torch.randn(5, 8, dtype=torch.float64)
    logits = head(features)
    assert logits.dtype == torch.float64 and logits.shape == (5, 4)
    assert torch.allclose(logits, features @ head.weight.double().T)
    # A feature equal to a class vector is classified as that class.
    assert head(head.weight).argmax(dim=1).tolist() == [0, 1, 2, 3]


def test_etf_rejects_too_small_feature_dim():
    with pytest.raises(ValueError, match=r"feature_dim must be >= num_classes - 1 = 9 to hold the frame, got 5"):
        ETFHead(feature_dim=5, num_classes=10)
    with pytest.raises(ValueError, match=r"num_classes must be >= 2, got 1"):
        ETFHead(feature_dim=5, num_classes=1)


def test_head_forward_rejects_wrong_feature_size():
    head = ETFHead(8, 4)
    with pytest.raises(ValueError, match=r"features must have shape \(\.\.\., 8\), got \(2, 7\)"):
        head(torch.randn(2, 7))
    with pytest.raises(TypeError, match=r"features must be a floating-point tensor"):
        head(torch.ones(2, 8, dtype=torch.long))


# ---------------------------------------------------------------- HAFrame


def test_haframe_vectors_reproduce_target_similarity(tree_distance):
    head = HAFrameHead(tree_distance, feature_dim=10, gamma=2.0, seed=1)
    weight = head.weight.double()
    assert torch.allclose(weight.norm(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(weight @ weight.T, head.target_similarity.double(), atol=1e-6)
    expected = similarity_from_distance(tree_distance, 2.0, head.min_similarity)
    assert torch.allclose(head.target_similarity.double(), expected, atol=1e-6)


def test_haframe_similarity_decreases_with_hierarchical_distance(tree_distance):
    s = HAFrameHead(tree_distance, feature_dim=8).target_similarity
    # Siblings (d=1) > cousins (d=2) > different top-level branches (d=3).
    assert s[0, 1] > s[0, 2] > s[0, 3]
    assert s[3, 4] > s[3, 0]


@pytest.mark.parametrize("gamma", [0.5, 2.0, 8.0])
def test_haframe_min_similarity_sits_on_psd_boundary(tree_distance, gamma):
    s_min = most_separated_min_similarity(tree_distance, gamma)
    eigenvalues = torch.linalg.eigvalsh(similarity_from_distance(tree_distance, gamma, s_min))
    assert eigenvalues.min() >= -PSD_TOLERANCE
    assert eigenvalues.min() <= PSD_TOLERANCE  # on the boundary: one zero eigenvalue
    # Slightly more negative is infeasible; slightly less stays feasible.
    below = torch.linalg.eigvalsh(similarity_from_distance(tree_distance, gamma, s_min - 1e-4))
    above = torch.linalg.eigvalsh(similarity_from_distance(tree_distance, gamma, s_min + 1e-4))
    assert below.min() < -1e-6
    assert above.min() > 1e-7


def test_haframe_closed_form_agrees_with_bisection(tree_distance):
    gamma = 1.5

    def feasible(s_min):
        matrix = similarity_from_distance(tree_distance, gamma, s_min)
        return torch.linalg.eigvalsh(matrix).min() >= -1e-12

    low, high = -20.0, 0.5
    assert not feasible(low) and feasible(high)
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (low, middle) if feasible(middle) else (middle, high)
    assert most_separated_min_similarity(tree_distance, gamma) == pytest.approx(high, abs=1e-6)


@pytest.mark.parametrize("num_classes, gamma", [(2, 1.0), (4, 0.3), (7, 2.0), (7, 10.0)])
def test_flat_hierarchy_gives_the_etf(num_classes, gamma):
    flat = 3.0 * (1.0 - torch.eye(num_classes))
    head = HAFrameHead(flat, feature_dim=num_classes + 2, gamma=gamma)
    expected = simplex_etf_similarity(num_classes)
    assert torch.allclose(head.target_similarity.double(), expected, atol=1e-6)
    assert torch.allclose(_pairwise_cosines(head.weight), expected, atol=1e-6)


def test_haframe_fits_in_num_classes_minus_one_dimensions(tree_distance):
    head = HAFrameHead(tree_distance, feature_dim=5)
    assert torch.allclose(head.weight.double() @ head.weight.double().T, head.target_similarity.double(), atol=1e-6)


def test_haframe_buffers_and_forward(tree_distance):
    head = HAFrameHead(tree_distance, feature_dim=12)
    assert list(head.parameters()) == []
    assert set(dict(head.named_buffers())) == {"weight", "target_similarity", "distance_matrix"}
    features = torch.randn(3, 12)
    assert torch.allclose(head(features), features @ head.weight.T)


def test_haframe_rejects_bad_distance_matrices():
    with pytest.raises(ValueError, match=r"distance_matrix must be square \(C, C\), got shape \(2, 3\)"):
        HAFrameHead(torch.zeros(2, 3), feature_dim=4)
    asymmetric = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 3.0, 0.0]])
    with pytest.raises(ValueError, match=r"distance_matrix must be symmetric, got 2.0 at \(1, 2\) but 3.0 at \(2, 1\)"):
        HAFrameHead(asymmetric, feature_dim=4)
    with pytest.raises(ValueError, match=r"distance_matrix must have a zero diagonal, got 1.0 at \(1, 1\)"):
        HAFrameHead(torch.tensor([[0.0, 1.0], [1.0, 1.0]]), feature_dim=4)
    with pytest.raises(ValueError, match=r"distance_matrix must be positive between distinct classes, got 0.0"):
        HAFrameHead(torch.zeros(3, 3), feature_dim=4)
    with pytest.raises(ValueError, match=r"feature_dim must be >= num_classes - 1 = 5 to hold the frame, got 3"):
        HAFrameHead(distance_matrix_from_tree(TREE), feature_dim=3)
    with pytest.raises(ValueError, match=r"gamma must be in \(0.0, inf\], got 0.0"):
        HAFrameHead(distance_matrix_from_tree(TREE), feature_dim=8, gamma=0.0)


def test_non_tree_distances_are_refused():
    # Classes 0 and 2 are far apart but both next to class 1: no tree gives
    # this, and exp(-gamma * d / d_max) is indefinite (det < 0).
    distance = torch.tensor([[0.0, 0.01, 1.0], [0.01, 0.0, 0.01], [1.0, 0.01, 0.0]])
    with pytest.raises(ValueError, match=r"not positive definite"):
        most_separated_min_similarity(distance, gamma=1.0)


def test_class_vectors_from_similarity_rejects_indefinite_matrix():
    indefinite = torch.tensor([[1.0, -0.9, -0.9], [-0.9, 1.0, -0.9], [-0.9, -0.9, 1.0]])
    with pytest.raises(ValueError, match=r"similarity must be positive semi-definite"):
        class_vectors_from_similarity(indefinite, feature_dim=3)


# ---------------------------------------------------------------- cosine loss


def test_cosine_loss_is_zero_on_class_vectors_and_positive_elsewhere(tree_distance):
    head = HAFrameHead(tree_distance, feature_dim=8)
    loss_fn = HAFrameCosineLoss.from_head(head)
    labels = torch.tensor([0, 2, 3, 5, 5])
    on_target = 3.0 * head.weight[labels]  # scale does not change cosines
    assert loss_fn(on_target, labels).item() < 1e-10
    assert loss_fn(torch.randn(5, 8), labels).item() > 1e-3
    # The class vector of a different class is also a mistake.
    assert loss_fn(head.weight[torch.tensor([1, 2, 3, 5, 5])], labels).item() > 1e-3


def test_cosine_loss_matches_formula(tree_distance):
    head = HAFrameHead(tree_distance, feature_dim=8)
    features = torch.randn(4, 8, dtype=torch.float64)
    labels = torch.tensor([1, 4, 0, 2])
    weight = head.weight.double()
    expected = 0.0
    for feature, label in zip(features, labels):
        for c in range(6):
            cosine = feature @ weight[c] / (feature.norm() * weight[c].norm())
            expected += (cosine - head.target_similarity.double()[label, c]) ** 2
    expected /= len(labels)
    got = HAFrameCosineLoss(head.weight, head.target_similarity)(features, labels)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(float(expected), rel=1e-5)


def test_cosine_loss_pulls_features_to_their_class_vector(tree_distance):
    head = HAFrameHead(tree_distance, feature_dim=8)
    loss_fn = HAFrameCosineLoss.from_head(head)
    labels = torch.arange(6)
    features = torch.randn(6, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    optimizer = torch.optim.SGD([features], lr=0.5)
    start = loss_fn(features, labels).item()
    for _ in range(100):
        optimizer.zero_grad()
        loss_fn(features, labels).backward()
        optimizer.step()
    assert loss_fn(features, labels).item() < 0.05 * start
    assert head(features.detach()).argmax(dim=1).tolist() == labels.tolist()


def test_cosine_loss_validates_inputs():
    head = ETFHead(8, 4)
    loss_fn = HAFrameCosineLoss.from_head(head)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\), got 4 at index 1"):
        loss_fn(torch.randn(2, 8), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"labels must have length N=2"):
        loss_fn(torch.randn(2, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"target_similarity must have shape \(4, 4\), got \(3, 3\)"):
        HAFrameCosineLoss(head.weight, torch.eye(3))


def test_cosine_head_gives_cosines_and_trains():
    from gitaug.heads import CosineHead

    torch.manual_seed(0)
    head = CosineHead(feature_dim=6, num_classes=4)
    features = torch.randn(5, 6)
    expected = torch.nn.functional.cosine_similarity(features[:, None, :], head.weight[None, :, :], dim=2)
    assert torch.allclose(head(features), expected, atol=1e-6)
    # scale-invariant in the features, and its class vectors are trainable
    assert torch.allclose(head(3 * features), head(features), atol=1e-6)
    head(features).sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="feature_dim must be a positive integer, got 0"):
        CosineHead(0, 4)
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        CosineHead(4, 1)
