"""Intrinsic metrics read the right thing: collapse, geometry and taxonomy each move them."""

from __future__ import annotations

import numpy as np
import pytest

from sid_platform.semantic_ids import (
    RQKMeansConfig,
    RQKMeansTokenizer,
    code_label_audit,
    intrinsic_report,
    perplexity_per_level,
    similarity_depth_spearman,
    taxonomy_alignment,
    utilization_per_level,
)


@pytest.fixture(scope="module")
def tree_codes(tree) -> np.ndarray:
    tokenizer = RQKMeansTokenizer(RQKMeansConfig(levels=3, codebook_size=16))
    tokenizer.fit(tree.embeddings)
    return tokenizer.encode(tree.embeddings)


def test_a_collapsed_codebook_uses_one_code_in_k():
    collapsed = np.zeros((1000, 3), dtype=np.int64)
    assert utilization_per_level(collapsed, 256) == [1 / 256] * 3
    assert perplexity_per_level(collapsed, 256) == [1.0] * 3
    uniform = np.tile(np.arange(8), 50)[:, None]
    assert utilization_per_level(uniform, 8) == [1.0]
    assert perplexity_per_level(uniform, 8) == [pytest.approx(8.0)]
    with pytest.raises(ValueError, match="outside"):
        utilization_per_level(uniform, 4)


def test_similarity_tracks_prefix_depth_only_when_codes_follow_the_embeddings(tree, tree_codes):
    rho = similarity_depth_spearman(tree.embeddings, tree_codes, n_pairs=6000)
    assert rho > 0.5
    shuffled = np.random.default_rng(0).permutation(tree_codes)
    assert abs(similarity_depth_spearman(tree.embeddings, shuffled, n_pairs=6000)) < 0.1
    assert similarity_depth_spearman(tree.embeddings, tree_codes, n_pairs=6000, seed=1) == pytest.approx(rho, abs=0.05)


def test_taxonomy_alignment_skips_the_shared_root(tree, tree_codes):
    # Every path starts with "Beauty": counted as the top level, any code would look perfectly aligned.
    top = np.array([int(path[1][1:]) for path in tree.categories])
    by_top = np.stack([top, np.zeros_like(top)], axis=1)
    assert taxonomy_alignment(by_top, tree.categories) == 1.0
    random_codes = np.random.default_rng(0).integers(16, size=(len(top), 2))
    chance = sum((top == t).mean() ** 2 for t in np.unique(top))  # two random items share a top
    assert taxonomy_alignment(random_codes, tree.categories) == pytest.approx(chance, abs=0.05)
    assert taxonomy_alignment(tree_codes, tree.categories) > 0.9


def test_label_audit_flags_the_item_whose_neighbours_disagree():
    codes = np.array([[0, 0, i] for i in range(5)] + [[1, 1, i] for i in range(4)])
    categories = [["Beauty", "Makeup", "Nails"]] * 4 + [["Beauty", "Skin", "Face"]]
    categories += [["Beauty", "Skin", "Face"]] * 3 + [["Beauty", "Makeup", "Eyes"]]
    item_ids = [f"i{i}" for i in range(9)]
    audit = code_label_audit(codes, categories, item_ids, min_neighbours=3)
    assert audit.columns == ["item_id", "own_category", "majority_neighbour_category", "agreement", "n_neighbours"]
    assert audit.rows() == [
        ("i4", "Skin > Face", "Makeup > Nails", 0.0, 4),
        ("i8", "Makeup > Eyes", "Skin > Face", 0.0, 3),
    ]
    assert code_label_audit(codes, categories, item_ids, min_neighbours=4)["item_id"].to_list() == ["i4"]
    assert code_label_audit(codes, categories, item_ids, k=1)["item_id"].to_list() == ["i4"]


def test_report_gathers_every_figure(tree, tree_codes):
    report = intrinsic_report(tree_codes, 16, tree.embeddings, tree.categories, n_pairs=4000)
    assert report["utilization"] == utilization_per_level(tree_codes, 16)
    assert report["taxonomy_alignment"] == taxonomy_alignment(tree_codes, tree.categories)
    assert report["taxonomy_alignment"] > report["taxonomy_alignment_chance"] + 0.5
    assert 0.0 <= report["collision_rate"] <= 1.0 and 0.0 <= report["label_audit_flagged_share"] <= 1.0
    assert set(intrinsic_report(tree_codes, 16)) == {
        "n_items",
        "levels",
        "codebook_size",
        "utilization",
        "perplexity",
        "collision_rate",
    }
