"""The category tree grades pairs as documented and the batch sampler puts positives in every batch."""

from __future__ import annotations

import numpy as np
import torch

from sid_platform.semantic_ids import Taxonomy, hierarchical_batches
from sid_platform.semantic_ids.rqvae import taxonomy_contrastive
from sid_platform.semantic_ids.taxonomy import pair_weights
from sid_platform_tests.semantic_ids.conftest import tree_catalog


def test_root_is_cut_and_pairs_are_graded():
    taxonomy = Taxonomy.from_categories(
        [
            ["Beauty", "Makeup", "Nails", "Polish"],
            ["Beauty", "Makeup", "Nails", "Polish"],
            ["Beauty", "Makeup", "Nails", "Remover"],
            ["Beauty", "Makeup", "Eyes", "Liner"],
            ["Beauty", "Skin", "Face", "Cream"],
            None,
            ["Beauty"],
        ]
    )
    assert taxonomy.root == ("Beauty",)
    assert taxonomy.labels(1) == ["Makeup"] * 4 + ["Skin", None, None]
    positive, negative = pair_weights(taxonomy.leaf, taxonomy.parent, taxonomy.top)
    assert positive[0].tolist() == [0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert negative[0].tolist() == [False, False, False, False, True, False, False]
    assert not negative[3, :4].any() and positive[3, :4].sum() == 0  # same top only: neutral
    assert not positive[5:].any() and not negative[5:].any()  # uncategorized: no pairs


def _same_leaf_pairs(batch: np.ndarray, leaf: np.ndarray) -> int:
    _, counts = np.unique(leaf[batch], return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def test_hierarchical_batches_cover_every_item_and_hold_same_leaf_pairs():
    # 2 000 items over 1 000 leaves: a random batch of 32 rarely holds two items of one leaf.
    catalog = tree_catalog(n=2000, branching=10, seed=1)
    taxonomy = Taxonomy.from_categories(catalog.categories)
    rng = np.random.default_rng(0)
    batches = hierarchical_batches(taxonomy, batch_size=32, group_size=4, rng=rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(2000))
    assert all(_same_leaf_pairs(batch, taxonomy.leaf) > 0 for batch in batches)
    random_order = rng.permutation(2000)
    random_pairs = sum(_same_leaf_pairs(random_order[s : s + 32], taxonomy.leaf) for s in range(0, 2000, 32))
    assert sum(_same_leaf_pairs(batch, taxonomy.leaf) for batch in batches) > 5 * random_pairs
    _, negative = pair_weights(*(getattr(taxonomy, f)[batches[0]] for f in ("leaf", "parent", "top")))
    assert negative.any()  # groups from across the catalog: negatives too


def test_contrastive_loss_prefers_prefixes_that_follow_the_tree():
    taxonomy = Taxonomy.from_categories([["A", "x", "1"]] * 2 + [["A", "x", "2"]] + [["B", "y", "3"]] * 2)
    positive, negative = (torch.from_numpy(m) for m in pair_weights(taxonomy.leaf, taxonomy.parent, taxonomy.top))
    aligned = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.9, 0.3], [0.0, 1.0], [0.05, 1.0]]).unsqueeze(1)
    crossed = aligned[[0, 3, 2, 1, 4]]
    good = taxonomy_contrastive(aligned, positive, negative, temperature=0.1)
    bad = taxonomy_contrastive(crossed, positive, negative, temperature=0.1)
    assert 0 < good < bad
    assert taxonomy_contrastive(aligned, torch.zeros_like(positive), negative, 0.1) == 0
