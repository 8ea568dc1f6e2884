"""The category tree as integer ids: what the contrastive regularizer, its sampler and the audits compare.

The root is the longest path prefix shared by every categorized item (Amazon Beauty's ``["Beauty"]``):
it says nothing about any pair, so it is cut off and the *top level* is the first element that differs
across the catalog. An item whose path is empty, missing, or nothing but the root counts as
uncategorized (id -1 everywhere) and never forms a pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sid_platform.semantic_ids.base import Categories

LEAF_WEIGHT = 1.0  # same full path below the root
SIBLING_WEIGHT = 0.5  # same parent, different leaf


def _ids(keys: list[tuple[str, ...] | None]) -> np.ndarray:
    """Dense ids in order of first appearance; None ↦ -1."""
    seen: dict[tuple[str, ...], int] = {}
    return np.array([-1 if key is None else seen.setdefault(key, len(seen)) for key in keys], dtype=np.int64)


@dataclass(frozen=True)
class Taxonomy:
    root: tuple[str, ...]
    paths: list[tuple[str, ...]]  # below the root; () = uncategorized
    leaf: np.ndarray  # [n] id of the full path
    parent: np.ndarray  # [n] id of the path minus its last element; -1 when that is the root
    top: np.ndarray  # [n] id of the first element below the root

    @classmethod
    def from_categories(cls, categories: Categories) -> Taxonomy:
        raw = [tuple(str(c) for c in path) if path else () for path in categories]
        known = [path for path in raw if path]
        root: tuple[str, ...] = ()
        if known:
            depth = min(len(path) for path in known)
            while len(root) < depth and all(path[len(root)] == known[0][len(root)] for path in known):
                root = known[0][: len(root) + 1]
        paths = [path[len(root) :] if path[: len(root)] == root else () for path in raw]
        return cls(
            root=root,
            paths=paths,
            leaf=_ids([path or None for path in paths]),
            parent=_ids([path[:-1] if len(path) >= 2 else None for path in paths]),
            top=_ids([path[:1] or None for path in paths]),
        )

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self, depth: int) -> list[str | None]:
        """Each item's path below the root cut to ``depth`` elements, joined with ' > '; None if uncategorized."""
        return [" > ".join(path[:depth]) if path else None for path in self.paths]


def pair_weights(leaf: np.ndarray, parent: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items of one batch: graded positive weights [B, B] and the negative mask [B, B].

    Same leaf = 1.0, siblings (same parent) = 0.5, no shared top-level category = negative; pairs that
    share only a higher ancestor, pairs with an uncategorized item, and the diagonal are neither.
    """
    same_leaf = (leaf[:, None] == leaf[None, :]) & (leaf[:, None] >= 0)
    sibling = (parent[:, None] == parent[None, :]) & (parent[:, None] >= 0) & ~same_leaf
    positive = LEAF_WEIGHT * same_leaf + SIBLING_WEIGHT * sibling
    np.fill_diagonal(positive, 0.0)
    negative = (top[:, None] != top[None, :]) & (top[:, None] >= 0) & (top[None, :] >= 0)
    return positive.astype(np.float32), negative


def hierarchical_batches(
    taxonomy: Taxonomy, batch_size: int, group_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of batches over every item once, built from groups of items of one leaf.

    Random batches of a catalog with thousands of leaves rarely hold two items of the same leaf, so a
    contrastive loss would see almost no positives. Here items are ordered parent by parent and leaf by
    leaf (both in a fresh random order each epoch), cut into groups of ``group_size`` consecutive items
    (a group at a leaf boundary holds siblings), and the groups are shuffled across the catalog before
    being cut into batches, so every batch mixes many top-level categories (the negatives) too.
    """
    n = len(taxonomy)
    n_parents = int(taxonomy.parent.max()) + 1
    n_leaves = int(taxonomy.leaf.max()) + 1
    # Items without a parent group by their leaf; uncategorized items are groups of their own.
    group = np.where(
        taxonomy.parent >= 0,
        taxonomy.parent,
        np.where(taxonomy.leaf >= 0, n_parents + taxonomy.leaf, n_parents + n_leaves + np.arange(n)),
    )
    group_rank = rng.permutation(n_parents + n_leaves + n)[group]
    leaf_rank = rng.permutation(n_leaves + 1)[taxonomy.leaf + 1]
    order = np.lexsort((rng.random(n), leaf_rank, group_rank))
    units = [order[start : start + group_size] for start in range(0, n, group_size)]
    shuffled = np.concatenate([units[i] for i in rng.permutation(len(units))])
    return [shuffled[start : start + batch_size] for start in range(0, n, batch_size)]
