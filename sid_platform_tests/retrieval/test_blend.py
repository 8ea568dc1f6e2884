"""The blend of the router's fused score with SASRec's logit over the router's candidates (``retrieval/blend.py``)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from sid_platform.baselines.sasrec import SASRec, SASRecConfig
from sid_platform.retrieval.blend import (
    BLEND_WEIGHTS,
    ScoreBlend,
    blend_ranking,
    blended_scores,
    candidate_logits,
    choose_blend,
)
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.sequences import exclude_seen
from sid_platform.serving import sasrec_logits
from sid_platform_tests.retrieval.test_pipeline import HISTORIES, TARGETS, toy


def _found():
    router, trie, index = toy(n_prefixes=2, top_n=3)
    return retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=3), router.score_scale


def _sasrec() -> SASRec:
    torch.manual_seed(1)
    return SASRec(5, SASRecConfig(hidden_dim=8, num_layers=1, num_heads=1, max_len=8, dropout=0.0)).eval()


def test_candidate_logits_are_dot_products_and_an_unknown_item_gets_the_users_mean():
    users = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    items = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]], np.float32)
    logits = candidate_logits(users, items, [np.array([0, 2]), np.array([1, -1, 2])])
    assert np.allclose(logits[0], [1.0, 0.0]) and np.allclose(logits[1], [0.0, 3.0, 6.0])
    assert logits[1].dtype == np.float32


def test_sasrec_logits_of_the_candidates_equal_its_full_catalog_scores():
    found, _ = _found()
    model = _sasrec()
    full = model.score(HISTORIES)
    logits = sasrec_logits(model, HISTORIES, found.candidates)
    for user, items in enumerate(found.candidates):
        assert np.allclose(logits[user], full[user, items], atol=1e-5)
    alone = [sasrec_logits(model, [h], [c])[0] for h, c in zip(HISTORIES, found.candidates, strict=True)]
    assert all(np.array_equal(a, b) for a, b in zip(alone, logits, strict=True))  # a list never depends on the batch


def test_the_blend_only_reorders_the_candidates_and_its_ends_are_the_two_models():
    found, scale = _found()
    logits = sasrec_logits(_sasrec(), HISTORIES, found.candidates)
    router_only = blend_ranking(found, blended_scores(found, logits, 0.0, scale), 5)
    assert np.array_equal(router_only, found.fused)
    sasrec_only = blend_ranking(found, blended_scores(found, logits, 1.0, scale), 5)
    for user, items in enumerate(found.candidates):
        order = items[np.argsort(-logits[user], kind="stable")][:5]
        assert sasrec_only[user][: len(order)].tolist() == order.tolist()
    for weight in BLEND_WEIGHTS:
        ranked = blend_ranking(found, blended_scores(found, logits, weight, scale), 5)
        for row, items in zip(ranked, found.candidates, strict=True):
            assert set(row[row >= 0].tolist()) <= set(items.tolist())
    masked = blend_ranking(found, blended_scores(found, logits, 0.5, scale), 2, HISTORIES)
    deep = blend_ranking(found, blended_scores(found, logits, 0.5, scale), 2 + 3)
    assert np.array_equal(masked, exclude_seen(deep, HISTORIES, 2))


def test_the_weight_is_the_best_on_the_given_users_and_ties_go_to_the_router():
    found, scale = _found()
    # A second model that puts each user's target first: any weight near 1 wins, and the choice says so.
    oracle = [
        np.where(items == target, 100.0, 0.0).astype(np.float32)
        for items, target in zip(found.candidates, TARGETS, strict=True)
    ]
    blend = choose_blend(found, oracle, scale, TARGETS)
    best = max(blend.valid_recall_at_10)
    assert blend.valid_recall_at_10[blend.weights.index(blend.sasrec_weight)] == best
    assert blend.sasrec_weight > 0 and blend.valid_users == len(TARGETS) and blend.weights == BLEND_WEIGHTS
    flat = [np.zeros(len(items), np.float32) for items in found.candidates]  # no information: every weight ties
    fused_only = choose_blend(replace(found, fused_scores=[s * 0 for s in found.fused_scores]), flat, scale, TARGETS)
    assert fused_only.sasrec_weight == 0.0


def test_a_weight_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ScoreBlend(1.5, (1.5,), (0.0,), (0.0,), 1)
