"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest

from sid_platform.evaluation.metrics import (
    candidates_per_user,
    coverage,
    hit_ranks,
    ndcg_at_k,
    rank_with_scorer,
    ranking_metrics,
    recall_at_k,
    top_k_from_scores,
)

RANKED = np.array([[3, 1, 2, 0], [0, 1, 2, 3], [2, 3, 0, 1]])
TARGETS = np.array([1, 3, 9])  # hit at rank 1, hit at rank 3, miss


def test_hit_ranks():
    assert hit_ranks(RANKED, TARGETS).tolist() == [1, 3, -1]


def test_recall_by_hand():
    assert recall_at_k(RANKED, TARGETS, 1) == 0.0
    assert recall_at_k(RANKED, TARGETS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, TARGETS, 4) == pytest.approx(2 / 3)


def test_ndcg_by_hand():
    assert ndcg_at_k(RANKED, TARGETS, 2) == pytest.approx((1 / math.log2(3)) / 3)
    assert ndcg_at_k(RANKED, TARGETS, 4) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 3)
    assert ndcg_at_k(np.array([[7, 8]]), np.array([7]), 2) == 1.0


def test_ranking_metrics_keys_and_k_check():
    out = ranking_metrics(RANKED, TARGETS, ks=(2, 4))
    assert set(out) == {"recall@2", "ndcg@2", "recall@4", "ndcg@4"}
    with pytest.raises(ValueError):
        ranking_metrics(RANKED, TARGETS, ks=(5,))


def test_coverage_and_candidates():
    cands = [np.array([1, 2, 2]), np.array([5]), np.array([], dtype=np.int64)]
    assert coverage(cands, np.array([2, 4, 1])) == pytest.approx(1 / 3)
    assert candidates_per_user(cands) == pytest.approx((2 + 1 + 0) / 3)


def test_coverage_and_candidates_count_as_sets_do():
    rng = np.random.default_rng(0)
    lists = [np.unique(rng.integers(0, 50, 20)) for _ in range(30)]  # sorted and distinct, as a union is
    lists += [rng.integers(0, 50, 20) for _ in range(30)]  # in any order, with repeats
    lists += [np.zeros(0, dtype=np.int64), np.array([7]), np.array([3, 3])]
    targets = rng.integers(0, 50, len(lists))
    as_sets = [set(c.tolist()) for c in lists]
    assert coverage(lists, targets) == float(np.mean([t in c for c, t in zip(as_sets, targets, strict=True)]))
    assert candidates_per_user(lists) == float(np.mean([len(c) for c in as_sets]))


def test_top_k_and_history_exclusion():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]])
    assert top_k_from_scores(scores, 2).tolist() == [[1, 3], [0, 3]]
    assert top_k_from_scores(scores, 2, [np.array([1]), np.array([0, 3])]).tolist() == [[3, 2], [2, 1]]


def test_rank_with_scorer_batches_agree_with_one_pass():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(7, 20))
    histories = [np.array([i % 20]) for i in range(7)]

    def scorer(batch):
        return table[[int(h[0]) % 7 for h in batch]]

    one = rank_with_scorer(scorer, histories, 5, exclude_history=True, batch_size=100)
    many = rank_with_scorer(scorer, histories, 5, exclude_history=True, batch_size=2)
    assert (one == many).all()
    assert all(h[0] not in row for h, row in zip(histories, one, strict=True))
