"""Class hierarchies: LCA-height matrices and mistake severity on hand-made trees."""

import math

import pytest
import torch

from gitaug.hierarchy import (
    CIFAR100_COARSE_LABELS,
    CIFAR100_FINE_LABELS,
    CIFAR100_FINE_TO_COARSE,
    CIFAR100_SUPERCLASSES,
    average_hierarchical_distance_topk,
    average_mistake_severity,
    cifar100_distance_matrix,
    distance_matrix_from_parents,
    distance_matrix_from_tree,
    two_level_distance_matrix,
)

# root -> animal -> mammal -> {cat, dog}; animal -> bird -> {owl};
# root -> plant -> {rose, oak}. Heights: mammal 1, bird 1, plant 1, animal 2, root 3.
TREE = {"animal": {"mammal": ["cat", "dog"], "bird": ["owl"]}, "plant": ["rose", "oak"]}
CLASSES = ["cat", "dog", "owl", "rose", "oak"]
EXPECTED = [
    [0, 1, 2, 3, 3],
    [1, 0, 2, 3, 3],
    [2, 2, 0, 3, 3],
    [3, 3, 3, 0, 1],
    [3, 3, 3, 1, 0],
]


@pytest.fixture
def distance():
    return distance_matrix_from_tree(TREE)


# ---------------------------------------------------------------- distance matrices


def test_tree_distances_are_lca_heights(distance):
    assert distance.tolist() == EXPECTED
    assert distance.dtype == torch.get_default_dtype()


def test_tree_class_order_can_be_given():
    order = ["oak", "cat", "owl"]
    d = distance_matrix_from_tree(TREE, classes=order)
    assert d.tolist() == [[0, 3, 3], [3, 0, 2], [3, 2, 0]]


def test_tree_with_integer_leaves_uses_them_as_class_indices():
    # Root has height 3 through the deepest branch, so 0 and 2 are at 3.
    d = distance_matrix_from_tree([[4, 1], [2, [3, 0]]])
    assert d[1, 4].item() == 1  # siblings
    assert d[2, 3].item() == 2  # LCA is the middle node
    assert d[0, 3].item() == 1
    assert d[1, 2].item() == 3  # LCA is the root
    assert d[4, 0].item() == 3


def test_dict_values_may_be_single_classes_or_none():
    # "pet": "cat" is a node with one class; "fish": None makes "fish" a class.
    tree = {"pet": "cat", "wild": ["wolf", "fox"], "fish": None}
    d = distance_matrix_from_tree(tree, classes=["cat", "wolf", "fox", "fish"])
    assert d.tolist() == [[0, 2, 2, 2], [2, 0, 1, 2], [2, 1, 0, 2], [2, 2, 2, 0]]


def test_parent_mapping_matches_nested_tree():
    parents = {
        "cat": "mammal", "dog": "mammal", "owl": "bird", "rose": "plant", "oak": "plant",
        "mammal": "animal", "bird": "animal", "animal": "root", "plant": "root",
    }
    assert distance_matrix_from_parents(parents).tolist() == EXPECTED
    assert distance_matrix_from_parents(parents, classes=["owl", "cat"]).tolist() == [[0, 2], [2, 0]]


def test_parent_list_uses_leaf_indices_in_order():
    # Nodes: 0 root, 1 animal, 2 plant, 3 cat, 4 dog, 5 rose.
    d = distance_matrix_from_parents([-1, 0, 0, 1, 1, 2])
    assert d.tolist() == [[0, 1, 2], [1, 0, 2], [2, 2, 0]]
    assert torch.equal(distance_matrix_from_parents([None, 0, 0, 1, 1, 2]), d)


def test_tree_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"tree must name each leaf once, got 'cat' twice"):
        distance_matrix_from_tree({"a": ["cat", "dog"], "b": ["cat"]})
    with pytest.raises(ValueError, match=r"classes must name leaves of tree, got 'mammal' which is not a leaf"):
        distance_matrix_from_tree(TREE, classes=["cat", "mammal"])
    with pytest.raises(ValueError, match=r"integer leaves must number the classes 0..2, got \[0, 1, 5\]"):
        distance_matrix_from_tree([[0, 1], [5]])
    with pytest.raises(TypeError, match=r"tree nodes must be str, int, list, tuple or dict, got float"):
        distance_matrix_from_tree([["a", 1.5], ["b"]])
    with pytest.raises(TypeError, match=r"tree must be a dict, list or tuple, got str"):
        distance_matrix_from_tree("cat")


def test_parent_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"found a cycle"):
        distance_matrix_from_parents({"cat": "a", "dog": "b", "a": "b", "b": "a"})
    with pytest.raises(ValueError, match=r"single tree, found several roots"):
        distance_matrix_from_parents({"cat": "a", "dog": "b"})
    with pytest.raises(ValueError, match=r"parents must hold indices in \[-1, 3\), got 7 at index 2"):
        distance_matrix_from_parents([-1, 0, 7])


def test_two_level_matrix():
    d = two_level_distance_matrix(torch.tensor([1, 0, 1, 1]))
    assert d.tolist() == [[0, 2, 1, 1], [2, 0, 2, 2], [1, 2, 0, 1], [1, 2, 1, 0]]
    with pytest.raises(TypeError, match=r"coarse_labels must be integers"):
        two_level_distance_matrix(torch.tensor([0.0, 1.0]))


# ---------------------------------------------------------------- CIFAR-100


def test_cifar100_mapping_matches_the_dataset_files():
    # The coarse label of each fine label as stored in the CIFAR-100 files.
    from_dataset = [
        4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
        6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
        5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
        10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
        16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
    ]
    assert list(CIFAR100_FINE_TO_COARSE) == from_dataset
    assert len(CIFAR100_FINE_LABELS) == 100 and len(CIFAR100_COARSE_LABELS) == 20
    assert all(len(members) == 5 for members in CIFAR100_SUPERCLASSES.values())
    assert CIFAR100_FINE_LABELS[:3] == ("apple", "aquarium_fish", "baby")
    assert CIFAR100_COARSE_LABELS[CIFAR100_FINE_TO_COARSE[CIFAR100_FINE_LABELS.index("whale")]] == "aquatic_mammals"


def test_cifar100_distance_matrix_structure():
    d = cifar100_distance_matrix()
    assert d.shape == (100, 100)
    assert torch.equal(d, d.T)
    assert (d.diagonal() == 0).all()
    assert ((d == 1).sum(dim=1) == 4).all()  # four siblings per class
    assert ((d == 2).sum(dim=1) == 95).all()
    tree = {coarse: list(members) for coarse, members in CIFAR100_SUPERCLASSES.items()}
    assert torch.equal(distance_matrix_from_tree(tree, classes=CIFAR100_FINE_LABELS), d)


def test_cifar100_accepts_own_coarse_labels():
    custom = [i % 10 for i in range(100)]
    assert cifar100_distance_matrix(custom)[0, 10].item() == 1
    with pytest.raises(ValueError, match=r"coarse_labels must have 100 entries for CIFAR-100, got shape \(3,\)"):
        cifar100_distance_matrix([0, 1, 2])


# ---------------------------------------------------------------- mistake severity


def test_average_mistake_severity_hand_computed(distance):
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    preds = torch.tensor([1, 0, 3, 0, 4, 4])
    # Mistakes: cat->dog 1, dog->rose 3, owl->cat 2, rose->oak 1; mean 7/4.
    assert average_mistake_severity(preds, labels, distance) == pytest.approx(1.75)
    logits = torch.nn.functional.one_hot(preds, 5).float() * 5.0
    assert average_mistake_severity(logits, labels, distance) == pytest.approx(1.75)


def test_average_mistake_severity_without_mistakes_is_nan(distance):
    labels = torch.tensor([0, 3])
    assert math.isnan(average_mistake_severity(labels.clone(), labels, distance))


def test_topk_hierarchical_distance_hand_computed(distance):
    logits = torch.tensor(
        [
            [5.0, 1.0, 4.0, 0.0, 0.5],  # label cat: ranking cat, owl, dog, oak, rose
            [0.0, 4.0, 1.0, 2.0, 5.0],  # label rose: ranking oak, dog, rose, owl, cat
        ]
    )
    labels = torch.tensor([0, 3])
    # k=1: cat 0, oak 1 -> 0.5. k=2: (0+2)/2, (1+3)/2 -> 1.5. k=5: row means 9/5, 10/5.
    assert average_hierarchical_distance_topk(logits, labels, distance, k=1) == pytest.approx(0.5)
    assert average_hierarchical_distance_topk(logits, labels, distance, k=2) == pytest.approx(1.5)
    assert average_hierarchical_distance_topk(logits, labels, distance, k=5) == pytest.approx(1.9)


def test_metric_errors_name_the_problem(distance):
    logits = torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\], got 6"):
        average_hierarchical_distance_topk(logits, torch.tensor([0, 1]), distance, k=6)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\), got 9 at index 1"):
        average_hierarchical_distance_topk(logits, torch.tensor([0, 9]), distance, k=1)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, 5\), got \(2, 4\)"):
        average_hierarchical_distance_topk(torch.randn(2, 4), torch.tensor([0, 1]), distance, k=1)
    with pytest.raises(ValueError, match=r"labels must have length N=2"):
        average_mistake_severity(torch.tensor([0, 1]), torch.tensor([0]), distance)
    with pytest.raises(ValueError, match=r"logits_or_preds must be in \[0, 5\), got -1 at index 0"):
        average_mistake_severity(torch.tensor([-1, 1]), torch.tensor([0, 1]), distance)
    with pytest.raises(ValueError, match=r"logits_or_preds must have shape \(N, 5\), got \(2, 3\)"):
        average_mistake_severity(torch.randn(2, 3), torch.tensor([0, 1]), distance)
