"""Padding, length-bucketed batching, history exclusion and ranking depth: one module for every model."""

import numpy as np

from sid_platform.sequences import exclude_seen, length_bucketed_batches, pad_left, ranking_depth


def test_pad_left_keeps_the_most_recent_items_with_either_padding_value():
    seqs = [np.array([1, 2, 3, 4]), np.array([5]), np.array([], dtype=np.int64)]
    assert pad_left(seqs, 3, pad=0).tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]  # SASRec: tokens are item + 1
    assert pad_left(seqs, 3).tolist() == [[2, 3, 4], [-1, -1, 5], [-1, -1, -1]]  # the router: item indices
    assert pad_left(seqs, 3).dtype == np.int64


def test_length_buckets_cover_every_sequence_once_and_group_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 30, size=1000)
    batches = length_bucketed_batches(lengths, 64, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 2  # batches hold similar lengths, so little compute goes to padding


def test_exclude_seen_drops_history_and_padding_and_keeps_order():
    ranked = np.array([[5, 1, 2, -1, 3], [7, 8, 9, 4, 6]])
    histories = [np.array([1, 3]), np.array([8])]
    assert exclude_seen(ranked, histories, 3).tolist() == [[5, 2, -1], [7, 9, 4]]


def test_ranking_depth_leaves_k_items_after_exclusion():
    histories = [np.array([1, 2, 3]), np.array([4])]
    assert ranking_depth(10, histories, exclude_history=False) == 10
    assert ranking_depth(10, histories, exclude_history=True) == 13
    assert ranking_depth(10, [], exclude_history=True) == 10
