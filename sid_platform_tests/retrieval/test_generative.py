"""Exact generative scoring of candidates and the fused ranking, on the toy trie of ``test_pipeline``."""

import numpy as np
import pytest
import torch

from sid_platform.data.split import EvalCases
from sid_platform.retrieval import AnnIndex, AnnIndexConfig, RouterConfig, SemanticRouter, SidTrie
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.curve import candidate_curve
from sid_platform.retrieval.generative import fused_scores, generative_log_probs
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.training import FUSION_WEIGHTS, choose_fusion_weight
from sid_platform_tests.retrieval.test_pipeline import HISTORIES, SIDS, TARGETS, VOCAB, toy


def test_exact_scores_equal_the_beam_search_scores_of_the_ids_both_produce():
    router, trie, _ = toy(seed=3)
    states = router.user_states(HISTORIES)
    beams = constrained_beam_search(router, states, trie, len(SIDS))  # every ID: beam as wide as the catalog
    every = [np.arange(len(SIDS))] * len(HISTORIES)
    exact = generative_log_probs(router, states, trie, every)
    for user in range(len(HISTORIES)):
        found = beams.items[user] >= 0
        assert found.sum() == len(SIDS)
        assert np.allclose(exact[user][beams.items[user][found]], beams.scores[user][found], atol=1e-6)
        assert np.isclose(np.exp(exact[user]).sum(), 1.0, atol=1e-5)  # a distribution over the IDs that exist


def test_scores_of_a_subset_do_not_depend_on_the_other_candidates_or_users():
    router, trie, _ = toy(seed=4)
    states = router.user_states(HISTORIES)
    full = generative_log_probs(router, states, trie, [np.arange(5)] * 4)
    some = generative_log_probs(router, states[1:2], trie, [np.array([4, 0])])
    assert np.allclose(some[0], full[1][[4, 0]], atol=1e-6)


def test_the_fused_ranking_only_reorders_the_candidates_and_weight_zero_is_the_cosine_ranking():
    router, trie, index = toy(n_prefixes=1, top_n=2, seed=5)
    found = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2)
    for user, items in enumerate(found.candidates):
        row = found.fused[user][found.fused[user] >= 0]
        assert set(row.tolist()) <= set(items.tolist()) and len(row) == min(5, len(items))
        expected = fused_scores(found.base_scores[user], found.log_probs[user], float(router.fusion_weight), 20.0)
        assert np.allclose(found.fused_scores[user], expected)
    assert float(router.fusion_weight) == 0.0
    assert all(np.array_equal(a, b) for a, b in zip(found.fused, found.hybrid_cosine, strict=True))
    with torch.no_grad():
        router.fusion_weight.fill_(50.0)  # the generative term dominates: the fused order follows log p
    heavy = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2)
    for user, items in enumerate(heavy.candidates):
        by_log_p = items[np.argsort(-heavy.log_probs[user], kind="stable")][:5]
        assert heavy.fused[user][: len(by_log_p)].tolist() == by_log_p.tolist()


def test_the_fusion_weight_is_chosen_on_the_given_users_from_the_grid():
    router, trie, _ = toy(n_prefixes=1, seed=6)
    recall = choose_fusion_weight(router, trie, EvalCases(list("abcd"), HISTORIES, TARGETS), False, ann_top_n=2)
    assert list(recall) == [f"{w:g}" for w in FUSION_WEIGHTS]
    best = max(recall.values())
    assert recall[f"{float(router.fusion_weight):g}"] == best
    assert float(router.fusion_weight) == min(w for w in FUSION_WEIGHTS if recall[f"{w:g}"] == best)


def test_the_candidate_curve_reaches_the_full_catalog_ranking_when_the_channels_hold_every_item():
    router, trie, _ = toy(n_prefixes=1, seed=7)
    with torch.no_grad():
        router.fusion_weight.fill_(0.5)
    cases = EvalCases(list("abcd"), HISTORIES, TARGETS)
    points = {(p.ann_top_n, p.prefixes): p for p in candidate_curve(router, trie, cases, (0, 1, 5), (0, 2))}
    assert len(points) == 6
    whole = points[(5, 0)]  # the ANN channel alone holds all five items
    assert whole.candidates_per_user == 5 and whole.coverage == 1.0 and whole.relative_loss == 0.0
    assert whole.recall_at_10 == whole.full_catalog_recall_at_10
    assert points[(0, 0)].candidates_per_user <= points[(1, 0)].candidates_per_user <= whole.candidates_per_user
    assert points[(0, 2)].channels == "beams + prefix 2" and points[(1, 2)].channels == "beams + prefix 2 + ANN 1"


def test_a_dot_product_head_serves_its_tied_item_tokens_and_fuses_on_the_logit_scale():
    cfg = RouterConfig(hidden_dim=16, num_layers=1, num_heads=2, max_len=8, dropout=0.0, beam_size=3, dense_score="dot")
    router = SemanticRouter(cfg, torch.from_numpy(SIDS), VOCAB).eval()
    with torch.no_grad():
        assert torch.equal(router.item_keys(), router.item_tokens()) and router.score_scale == 1.0
        states = router.user_states(HISTORIES)
        assert torch.equal(router.user_queries(states), states)
        index = AnnIndex.build(router.item_keys().numpy(), AnnIndexConfig(kind="flat", top_n=2))
        router.fusion_weight.fill_(0.5)
    found = retrieve(router, SidTrie.from_sids(SIDS, VOCAB), index, HISTORIES, k=3, ann_top_n=2)
    dots = (states @ router.item_tokens().T).detach().numpy()
    for user, items in enumerate(found.candidates):
        assert np.allclose(found.base_scores[user], dots[user, items], atol=1e-5)
        assert np.allclose(found.fused_scores[user], found.base_scores[user] + 0.5 * found.log_probs[user], atol=1e-5)
    with pytest.raises(ValueError, match="dense_score must be one of cosine, dot"):
        SemanticRouter(RouterConfig(dense_score="l2"), torch.from_numpy(SIDS), VOCAB)


def test_without_log_probs_a_zero_weight_gives_the_same_rankings_and_a_nonzero_weight_refuses():
    router, trie, index = toy(n_prefixes=1, top_n=2, seed=8)
    full = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2)
    lean = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2, log_probs=False)
    assert lean.log_probs is None and full.log_probs is not None
    for name in ("generative", "hybrid_cosine", "fused"):
        assert np.array_equal(getattr(lean, name), getattr(full, name)), name
    assert all(np.array_equal(a, b) for a, b in zip(lean.fused_scores, full.fused_scores, strict=True))
    with torch.no_grad():
        router.fusion_weight.fill_(0.5)
    with pytest.raises(ValueError, match="needs the generative log-probabilities"):
        retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2, log_probs=False)


def test_precomputed_item_tokens_give_the_retrieval_computed_without_them():
    router, trie, index = toy(n_prefixes=1, top_n=2, seed=9)
    with torch.no_grad():
        tokens = router.item_tokens()
        keys = router.item_keys(tokens)
    given = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2, tokens=tokens, keys=keys)
    computed = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=2)
    for name in ("generative", "hybrid_cosine", "fused"):
        assert np.array_equal(getattr(given, name), getattr(computed, name)), name
    assert torch.equal(given.queries, computed.queries) and torch.equal(given.keys, computed.keys)
