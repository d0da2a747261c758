"""Class hierarchies: LCA-height distance matrices and mistake-severity metrics.

The distance between two classes is the height of their lowest common
ancestor (LCA) in the class tree: 0 for a class and itself, 1 for siblings
under the same parent, and so on; the height of a node is the number of
edges on the longest path from it down to a leaf. Such a matrix feeds
:class:`gitaug.heads.HAFrameHead` and the metrics below.

* :func:`distance_matrix_from_tree`: from nested dicts / lists of leaves.
* :func:`distance_matrix_from_parents`: from a child -> parent mapping or a
  parent list.
* :func:`two_level_distance_matrix` and :func:`cifar100_distance_matrix`:
  the fine -> coarse tree of CIFAR-100 (its 20 superclasses).
* :func:`average_mistake_severity`, :func:`average_hierarchical_distance_topk`.

Example::

    >>> tree = {"animal": {"pet": ["cat", "dog"], "wild": ["wolf"]}, "vehicle": ["car"]}
    >>> distance_matrix_from_tree(tree, classes=["cat", "dog", "wolf", "car"]).tolist()
    [[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 2.0, 3.0], [2.0, 2.0, 0.0, 3.0], [3.0, 3.0, 3.0, 0.0]]
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch

from ._checks import check_labels, check_logits

__all__ = [
    "distance_matrix_from_tree",
    "distance_matrix_from_parents",
    "two_level_distance_matrix",
    "cifar100_distance_matrix",
    "CIFAR100_FINE_LABELS",
    "CIFAR100_COARSE_LABELS",
    "CIFAR100_SUPERCLASSES",
    "CIFAR100_FINE_TO_COARSE",
    "average_mistake_severity",
    "average_hierarchical_distance_topk",
]


# ---------------------------------------------------------------------------
# CIFAR-100 (public facts of the dataset: 100 classes in 20 superclasses of 5;
# label indices follow the alphabetical order of the names)
# ---------------------------------------------------------------------------

CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
"""CIFAR-100's superclasses (coarse labels) and their five classes (fine labels)."""

CIFAR100_COARSE_LABELS: tuple[str, ...] = tuple(sorted(CIFAR100_SUPERCLASSES))
"""The 20 coarse label names, index = coarse label."""

CIFAR100_FINE_LABELS: tuple[str, ...] = tuple(
    sorted(name for members in CIFAR100_SUPERCLASSES.values() for name in members)
)
"""The 100 fine label names, index = fine label."""

CIFAR100_FINE_TO_COARSE: tuple[int, ...] = tuple(
    CIFAR100_COARSE_LABELS.index(coarse)
    for fine in CIFAR100_FINE_LABELS
    for coarse, members in CIFAR100_SUPERCLASSES.items()
    if fine in members
)
"""Coarse label of each fine label (100 entries), as in the dataset's files."""


# ---------------------------------------------------------------------------
# Distance matrices
# ---------------------------------------------------------------------------


def _is_leaf(node: Any) -> bool:
    return isinstance(node, (str, int)) and not isinstance(node, bool)


def _distances_from_paths(paths: Sequence[Sequence[Hashable]]) -> torch.Tensor:
    """LCA heights from each class's root-to-parent path of ancestor nodes.

    All paths start at the same root. A node's height is the longest
    distance from it down to a class, i.e. the maximum of
    ``len(path) - position`` over the paths through it.
    """
    node_ids: dict[Hashable, int] = {}
    heights: list[int] = []
    for path in paths:
        for position, node in enumerate(path):
            node_id = node_ids.setdefault(node, len(node_ids))
            if node_id == len(heights):
                heights.append(0)
            heights[node_id] = max(heights[node_id], len(path) - position)
    num_classes, depth = len(paths), max(len(path) for path in paths)
    # Pad short paths with per-class negative ids so they never match others.
    ancestors = torch.empty(num_classes, depth, dtype=torch.long)
    for index, path in enumerate(paths):
        ancestors[index] = -(index + 1)
        ancestors[index, : len(path)] = torch.tensor([node_ids[node] for node in path])
    same = ancestors.unsqueeze(1) == ancestors.unsqueeze(0)
    shared_depth = same.long().cumprod(dim=2).sum(dim=2)  # >= 1: the common root
    lca = torch.gather(ancestors, 1, shared_depth - 1)
    # A class shares its own padding with itself; its distance is 0 anyway.
    lca.fill_diagonal_(0)
    distance = torch.tensor(heights, dtype=torch.get_default_dtype())[lca]
    distance.fill_diagonal_(0.0)
    return distance


def _order_classes(
    leaves: list[Hashable], classes: Sequence[Hashable] | None, argument: str, ints_are_class_indices: bool = True
) -> list[Hashable]:
    """Picks the class order: ``classes`` if given (checked), else the default."""
    if classes is None:
        if not ints_are_class_indices:
            return leaves
        if all(isinstance(leaf, int) and not isinstance(leaf, bool) for leaf in leaves):
            ordered = sorted(leaves)
            if ordered != list(range(len(ordered))):
                raise ValueError(
                    f"{argument} with integer leaves must number the classes 0..{len(ordered) - 1}, got {ordered}"
                )
            return ordered
        return leaves
    if isinstance(classes, (str, bytes)):
        raise TypeError(f"classes must be a sequence of leaf labels, got {classes!r}")
    classes = list(classes)
    known = set(leaves)
    seen: set[Hashable] = set()
    for label in classes:
        if label not in known:
            raise ValueError(f"classes must name leaves of {argument}, got {label!r} which is not a leaf")
        if label in seen:
            raise ValueError(f"classes must not repeat a label, got {label!r} twice")
        seen.add(label)
    if len(classes) < 2:
        raise ValueError(f"classes must name at least 2 leaves, got {classes!r}")
    return classes


def distance_matrix_from_tree(tree: Mapping | Sequence, classes: Sequence[Hashable] | None = None) -> torch.Tensor:
    """The ``(C, C)`` LCA-height matrix of a class tree given as nested containers.

    A node is a leaf (a class name ``str`` or class index ``int``), a list or
    tuple of child nodes, or a dict mapping child names to child nodes (a
    ``None`` value makes the key itself a leaf). The outermost container is
    the root.

    Args:
        tree: the nested tree.
        classes: class order (leaf labels; a subset of the leaves is allowed).
            Default: when all leaves are ints they must be ``0..C-1`` and give
            the order; otherwise the depth-first order of the leaves.

    Returns:
        A float tensor, 0 on the diagonal.

    Example::

        >>> distance_matrix_from_tree([[0, 1], [2, [3, 4]]]).tolist()[0]
        [0.0, 1.0, 3.0, 3.0, 3.0]
    """
    if not isinstance(tree, (Mapping, list, tuple)):
        raise TypeError(f"tree must be a dict, list or tuple, got {type(tree).__name__}")
    leaf_paths: dict[Hashable, tuple[Hashable, ...]] = {}
    counter = itertools.count()

    def walk(node: Any, path: tuple[Hashable, ...]) -> None:
        if _is_leaf(node):
            if node in leaf_paths:
                raise ValueError(f"tree must name each leaf once, got {node!r} twice")
            leaf_paths[node] = path
            return
        # Internal nodes get private ids: names may repeat across branches.
        here = path + (("node", next(counter)),)
        if isinstance(node, Mapping):
            for name, child in node.items():
                if child is None:
                    walk(name, here)  # the key itself is a class
                elif _is_leaf(child):
                    walk([child], here)  # the key names a node with one class
                else:
                    walk(child, here)  # the child container is the key's node
        elif isinstance(node, (list, tuple)):
            if len(node) == 0:
                raise ValueError("tree must not contain empty lists")
            for child in node:
                walk(child, here)
        else:
            raise TypeError(f"tree nodes must be str, int, list, tuple or dict, got {type(node).__name__}: {node!r}")

    walk(tree, ())
    if len(leaf_paths) < 2:
        raise ValueError(f"tree must have at least 2 leaves, got {list(leaf_paths)}")
    order = _order_classes(list(leaf_paths), classes, "tree")
    return _distances_from_paths([leaf_paths[label] for label in order])


def distance_matrix_from_parents(
    parents: Mapping[Hashable, Hashable | None] | Sequence[int | None],
    classes: Sequence[Hashable] | None = None,
) -> torch.Tensor:
    """The ``(C, C)`` LCA-height matrix of a tree given by each node's parent.

    Args:
        parents: a mapping ``child -> parent`` (the root maps to ``None`` or
            is absent), or a list where ``parents[i]`` is the index of node
            ``i``'s parent (``None`` or ``-1`` for the root). There must be
            exactly one root.
        classes: class order (leaf nodes; a subset is allowed). Default: all
            leaves (nodes that are no node's parent), in increasing index for
            a list, in the mapping's order for a mapping (ints sorted,
            which must then be ``0..C-1``).

    Returns:
        A float tensor, 0 on the diagonal.

    Example::

        >>> parents = {"cat": "pet", "dog": "pet", "wolf": "animal", "pet": "animal"}
        >>> distance_matrix_from_parents(parents, classes=["cat", "dog", "wolf"]).tolist()
        [[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]]
    """
    if isinstance(parents, Mapping):
        parent_of = {child: parent for child, parent in parents.items()}
    elif isinstance(parents, (list, tuple)) or isinstance(parents, torch.Tensor):
        values = parents.tolist() if isinstance(parents, torch.Tensor) else list(parents)
        parent_of = {}
        for child, parent in enumerate(values):
            if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int)):
                raise TypeError(f"parents must hold int indices or None, got {parent!r} at index {child}")
            if parent is not None and not -1 <= parent < len(values):
                raise ValueError(f"parents must hold indices in [-1, {len(values)}), got {parent} at index {child}")
            parent_of[child] = None if parent in (None, -1) else parent
    else:
        raise TypeError(f"parents must be a mapping or a list, got {type(parents).__name__}")

    is_parent = {parent for parent in parent_of.values() if parent is not None}
    leaves = [node for node in parent_of if node not in is_parent]
    if isinstance(parents, Mapping):
        # Parents that never appear as a child are roots.
        for parent in is_parent:
            parent_of.setdefault(parent, None)

    def path_to_root(node: Hashable) -> tuple[Hashable, ...]:
        path: list[Hashable] = []
        current = parent_of[node]
        while current is not None:
            path.append(current)
            if len(path) > len(parent_of):
                raise ValueError(f"parents must describe a tree, found a cycle through {current!r}")
            current = parent_of[current]
        return tuple(reversed(path))

    # In a parent list every node is an int, so leaf indices are not class indices.
    order = _order_classes(leaves, classes, "parents", ints_are_class_indices=isinstance(parents, Mapping))
    paths = [path_to_root(label) for label in order]
    roots = {path[0] if path else label for label, path in zip(order, paths)}
    if len(roots) != 1:
        raise ValueError(f"parents must describe a single tree, found several roots: {sorted(map(repr, roots))}")
    return _distances_from_paths(paths)


def two_level_distance_matrix(coarse_labels: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """LCA heights of a root -> coarse -> fine tree: 0 same class, 1 same coarse, 2 otherwise.

    Args:
        coarse_labels: the coarse label of each fine class, 1-D integer.

    Example::

        >>> two_level_distance_matrix([0, 0, 1]).tolist()
        [[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]]
    """
    coarse = torch.as_tensor(coarse_labels)
    if coarse.dtype == torch.bool or coarse.is_floating_point() or coarse.is_complex():
        raise TypeError(f"coarse_labels must be integers, got dtype {coarse.dtype}")
    if coarse.dim() != 1 or coarse.numel() < 2:
        raise ValueError(f"coarse_labels must be 1-D with at least 2 classes, got shape {tuple(coarse.shape)}")
    same_coarse = coarse.unsqueeze(0) == coarse.unsqueeze(1)
    distance = torch.where(same_coarse, 1.0, 2.0).to(torch.get_default_dtype())
    distance.fill_diagonal_(0.0)
    return distance


def cifar100_distance_matrix(coarse_labels: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """The ``(100, 100)`` LCA-height matrix of CIFAR-100's fine -> coarse tree.

    Uses :data:`CIFAR100_FINE_TO_COARSE` (the dataset's own 20 superclasses)
    unless ``coarse_labels`` gives another 100-entry fine -> coarse mapping.

    Example::

        >>> d = cifar100_distance_matrix()
        >>> apple, pear, bus = (CIFAR100_FINE_LABELS.index(n) for n in ("apple", "pear", "bus"))
        >>> float(d[apple, pear]), float(d[apple, bus])
        (1.0, 2.0)
    """
    if coarse_labels is None:
        coarse_labels = CIFAR100_FINE_TO_COARSE
    coarse = torch.as_tensor(coarse_labels)
    if coarse.shape != (100,):
        raise ValueError(f"coarse_labels must have 100 entries for CIFAR-100, got shape {tuple(coarse.shape)}")
    return two_level_distance_matrix(coarse)


# ---------------------------------------------------------------------------
# Mistake severity
# ---------------------------------------------------------------------------


def _check_metric_distance(distance_matrix: torch.Tensor) -> torch.Tensor:
    if not isinstance(distance_matrix, torch.Tensor):
        distance_matrix = torch.as_tensor(distance_matrix)
    if distance_matrix.dim() != 2 or distance_matrix.shape[0] != distance_matrix.shape[1]:
        raise ValueError(f"distance_matrix must be square (C, C), got shape {tuple(distance_matrix.shape)}")
    return distance_matrix


def average_mistake_severity(
    logits_or_preds: torch.Tensor, labels: torch.Tensor, distance_matrix: torch.Tensor
) -> float:
    """Mean hierarchical distance between prediction and label over the mistakes.

    Args:
        logits_or_preds: ``(N, C)`` scores (the argmax is the prediction) or
            ``(N,)`` integer predictions.
        labels: ``(N,)`` integer true classes.
        distance_matrix: ``(C, C)`` distances, e.g. LCA heights.

    Returns:
        The mean of ``distance[pred, label]`` over samples with
        ``pred != label``; ``nan`` when there is no mistake.

    Example::

        >>> import torch
        >>> d = two_level_distance_matrix([0, 0, 1])
        >>> average_mistake_severity(torch.tensor([1, 2, 2]), torch.tensor([0, 0, 2]), d)
        1.5
    """
    distance = _check_metric_distance(distance_matrix)
    num_classes = distance.shape[0]
    if isinstance(logits_or_preds, torch.Tensor) and logits_or_preds.is_floating_point():
        check_logits(logits_or_preds, num_classes, name="logits_or_preds")
        preds = logits_or_preds.argmax(dim=1)
    else:
        if not isinstance(logits_or_preds, torch.Tensor):
            raise TypeError(f"logits_or_preds must be a torch.Tensor, got {type(logits_or_preds).__name__}")
        preds = logits_or_preds
        if preds.dim() != 1:
            raise ValueError(f"logits_or_preds must be (N, C) logits or (N,) predictions, got {tuple(preds.shape)}")
        check_labels(preds, num_classes, name="logits_or_preds")
    check_labels(labels, num_classes, num_samples=preds.shape[0])
    preds, labels = preds.cpu(), labels.cpu()
    wrong = preds != labels
    if not bool(wrong.any()):
        return float("nan")
    return float(distance.cpu().double()[preds[wrong], labels[wrong]].mean())


def average_hierarchical_distance_topk(
    logits: torch.Tensor, labels: torch.Tensor, distance_matrix: torch.Tensor, k: int
) -> float:
    """Mean distance from the true class to each of the ``k`` top-scoring classes.

    Per sample, the distances ``distance[label, c]`` of the ``k`` classes with
    the highest logits are averaged (a correct class counts 0), then averaged
    over the batch. ``k = 1`` is the mean distance of the prediction over all
    samples, mistakes and hits alike.

    Args:
        logits: ``(N, C)`` scores.
        labels: ``(N,)`` integer true classes.
        distance_matrix: ``(C, C)`` distances, e.g. LCA heights.
        k: number of top classes, in ``[1, C]``.

    Example::

        >>> import torch
        >>> d = two_level_distance_matrix([0, 0, 1])
        >>> logits = torch.tensor([[3.0, 2.0, 1.0]])
        >>> average_hierarchical_distance_topk(logits, torch.tensor([0]), d, k=2)
        0.5
    """
    distance = _check_metric_distance(distance_matrix)
    num_classes = distance.shape[0]
    check_logits(logits, num_classes)
    check_labels(labels, num_classes, num_samples=logits.shape[0])
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be in [1, {num_classes}], got {k}")
    if logits.shape[0] == 0:
        return float("nan")
    top = logits.detach().topk(k, dim=1).indices.cpu()
    rows = distance.cpu().double()[labels.cpu()]
    return float(rows.gather(1, top).mean())
