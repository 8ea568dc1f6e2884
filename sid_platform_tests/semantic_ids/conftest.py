"""A catalog whose embeddings follow a three-level category tree, the structure Semantic IDs should find."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class TreeCatalog:
    embeddings: np.ndarray  # [n, d] float32: top centre + mid offset + leaf offset + noise, shrinking scales
    categories: list[list[str]]  # ["Beauty", top, mid, leaf]: a shared root, as on Amazon Beauty
    item_ids: list[str]


def tree_catalog(n: int = 2000, d: int = 32, branching: int = 4, seed: int = 0) -> TreeCatalog:
    rng = np.random.default_rng(seed)
    top, mid, leaf = (rng.integers(branching, size=n) for _ in range(3))
    tops = rng.normal(size=(branching, d)) * 4
    mids = rng.normal(size=(branching, branching, d)) * 2
    leaves = rng.normal(size=(branching, branching, branching, d))
    x = tops[top] + mids[top, mid] + leaves[top, mid, leaf] + 0.3 * rng.normal(size=(n, d))
    categories = [["Beauty", f"T{a}", f"T{a}M{b}", f"T{a}M{b}L{c}"] for a, b, c in zip(top, mid, leaf, strict=True)]
    return TreeCatalog(x.astype(np.float32), categories, [f"ITEM{i:05d}" for i in range(n)])


@pytest.fixture(scope="session")
def tree() -> TreeCatalog:
    return tree_catalog()
