"""Collaborative vectors: items users take together end up close; items never seen get zeros."""

import numpy as np
import pytest

from sid_platform.embed.collaborative import collaborative_item_vectors, cooccurrence, ppmi


def test_cooccurrence_weights_by_distance_within_each_user_only():
    counts = cooccurrence([np.array([0, 1, 2]), np.array([3, 4])], n_items=5, window=2).toarray()
    expected = np.zeros((5, 5))
    for i, j, w in [(0, 1, 1.0), (1, 2, 1.0), (0, 2, 0.5), (3, 4, 1.0)]:
        expected[i, j] = expected[j, i] = w
    np.testing.assert_allclose(counts, expected)  # 2 and 3 are adjacent only across users: no pair


def test_ppmi_by_hand():
    counts = cooccurrence([np.array([0, 1])], n_items=2).tocsr()
    # p(0,1) = 1/2, p(0) = 1/2, p_α(1) = 1/2 (the two contexts are equally frequent) → log 2.
    np.testing.assert_allclose(ppmi(counts).toarray(), [[0.0, np.log(2)], [np.log(2), 0.0]])


def _two_communities(seed: int = 0) -> list[np.ndarray]:
    """Users shop within {0..4} or within {5..9}; item 10 is in the catalog but never bought."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.arange(5) + 5 * (u % 2))[: rng.integers(3, 6)] for u in range(200)]


def test_co_occurring_items_are_closer_than_unrelated_ones():
    vectors = collaborative_item_vectors(_two_communities(), n_items=11, dim=2, window=2)
    sims = vectors @ vectors.T
    assert vectors.shape == (11, 2) and vectors.dtype == np.float32
    within = [sims[i, j] for i in range(5) for j in range(5) if i != j]
    across = [sims[i, j] for i in range(5) for j in range(5, 10)]
    assert min(within) > max(across) + 0.5
    np.testing.assert_allclose(np.linalg.norm(vectors[:10], axis=1), 1.0, rtol=1e-5)
    assert not vectors[10].any()


def test_deterministic_per_seed():
    first = collaborative_item_vectors(_two_communities(), n_items=11, dim=4)
    np.testing.assert_array_equal(first, collaborative_item_vectors(_two_communities(), n_items=11, dim=4))


def test_no_pairs_gives_all_zeros():
    assert not collaborative_item_vectors([np.array([1]), np.array([], dtype=np.int64)], n_items=4, dim=2).any()


@pytest.mark.parametrize(
    ("sequences", "n_items", "dim", "message"),
    [
        ([np.array([0, 7])], 5, 2, r"0\.\.4"),
        ([np.array([0, 1])], 5, 5, "dim must be"),
    ],
)
def test_invalid_inputs_are_explained(sequences, n_items, dim, message):
    with pytest.raises(ValueError, match=message):
        collaborative_item_vectors(sequences, n_items=n_items, dim=dim)
