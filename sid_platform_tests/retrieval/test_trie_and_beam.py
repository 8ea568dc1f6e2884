"""The trie, the constrained beam search and the channel arithmetic, on hand-made and random cases."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sid_platform.artifacts import decode, encode
from sid_platform.retrieval import (
    AnnIndex,
    AnnIndexConfig,
    ChannelReport,
    RouterConfig,
    SemanticRouter,
    SidTrie,
    constrained_beam_search,
    hybrid_candidates,
    rank_candidates,
)
from sid_platform.retrieval.candidates import prefix_channel
from sid_platform.semantic_ids.usid import build_usid_table

SIDS = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [3, 0, 0], [3, 2, 0]])  # 5 items, vocab (4, 3, 2)


def tiny_router(sids: np.ndarray, vocab: list[int], seed: int = 0) -> SemanticRouter:
    torch.manual_seed(seed)
    cfg = RouterConfig(hidden_dim=16, num_layers=1, num_heads=2, max_len=8, dropout=0.0)
    return SemanticRouter(cfg, torch.from_numpy(sids), vocab).eval()


def test_trie_knows_exactly_the_ids_that_exist():
    trie = SidTrie.from_sids(SIDS, [4, 3, 2])
    assert all(trie.contains(sid) for sid in SIDS)
    assert not trie.contains([0, 0, 0]) and not trie.contains([1, 1, 0]) and not trie.contains([3, 0, 1])
    assert not trie.contains([9, 0, 0])
    assert sorted(trie.items_under(1, np.array([0])).tolist()) == [0, 1, 2]
    node = trie.node_of_item[2][0]  # the prefix (0, 1), shared by items 0 and 1
    assert sorted(trie.items_under(2, np.array([node, -1])).tolist()) == [0, 1]  # -1 padding is skipped


def test_trie_refuses_ids_that_are_not_unique():
    with pytest.raises(ValueError, match="unique"):
        SidTrie.from_sids(np.array([[0, 1], [0, 1]]))


def test_trie_from_usid_table_uses_the_suffix():
    codes = np.array([[1, 2], [1, 2], [0, 1]])  # items 0 and 1 collide; the suffix separates them
    table = build_usid_table(["a", "b", "c"], codes, "v1")
    trie = SidTrie.from_usid_table(table, codebook_size=4)
    assert trie.depth == 3 and trie.vocab_sizes == [4, 4, 2]
    sids = table.select(["c1", "c2", "suffix"]).to_numpy()
    assert [int(trie.leaf_item[trie.node_of_item[3][i]]) for i in range(3)] == [0, 1, 2]
    assert all(trie.contains(s) for s in sids)


@settings(max_examples=25, deadline=None)
@given(
    n_items=st.integers(1, 40),
    beam=st.integers(1, 12),
    seed=st.integers(0, 10_000),
)
def test_beam_search_never_yields_an_unknown_id_and_ranks_distinct_items_by_score(n_items, beam, seed):
    rng = np.random.default_rng(seed)
    vocab = [5, 4, 3]
    sids = np.unique(rng.integers(0, vocab, size=(n_items, 3)), axis=0)
    trie = SidTrie.from_sids(sids, vocab)
    router = tiny_router(sids, vocab, seed)
    states = torch.randn(3, 16)
    result = constrained_beam_search(router, states, trie, beam_size=beam, prefix_depth=1, n_prefixes=2)
    for items, scores in zip(result.items, result.scores, strict=True):
        found = items[items >= 0]
        assert len(found) == min(beam, len(sids))  # as many IDs as exist, up to the beam
        assert len(set(found.tolist())) == len(found)
        assert all(trie.contains(sids[i]) for i in found)
        assert np.all(np.diff(scores[: len(found)]) <= 1e-6)  # best first
        assert np.all(np.isfinite(scores[: len(found)])) and np.all(scores[: len(found)] <= 1e-6)


def test_beam_search_is_exact_when_the_beam_covers_every_id():
    vocab = [4, 3, 2]
    router = tiny_router(SIDS, vocab)
    trie = SidTrie.from_sids(SIDS, vocab)
    state = torch.randn(1, 16)
    result = constrained_beam_search(router, state, trie, beam_size=len(SIDS))
    # Brute force: the constrained log-probability of every existing ID.
    with torch.no_grad():
        exact = []
        for sid in SIDS:
            dec, node, total = state[0], 0, 0.0
            for level, token in enumerate(sid):
                logits = router.level_logits(dec, level)
                allowed = trie.children[level][node] >= 0
                logp = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), -1)
                total += float(logp[token])
                node = int(trie.children[level][node, token])
                dec = router.next_state(dec, level, torch.tensor(token))
            exact.append(total)
    order = np.argsort(exact)[::-1]
    assert result.items[0].tolist() == order.tolist()
    assert np.allclose(result.scores[0], np.asarray(exact)[order], atol=1e-5)


def test_prefix_channel_returns_every_item_under_the_top_prefixes():
    vocab = [4, 3, 2]
    trie = SidTrie.from_sids(SIDS, vocab)
    result = constrained_beam_search(
        tiny_router(SIDS, vocab), torch.randn(2, 16), trie, 2, prefix_depth=1, n_prefixes=2
    )
    # Only two first-level codes exist (0 and 3), so the two prefixes hold every item.
    channel = prefix_channel(trie, result.prefixes, depth=1)
    assert all(sorted(c.tolist()) == [0, 1, 2, 3, 4] for c in channel)


def test_coverage_and_candidate_counts_on_a_hand_made_case():
    prefix = [np.array([1, 2, 3]), np.array([4]), np.array([], dtype=np.int64)]
    ann = [np.array([3, 5, -1]), np.array([6, 7]), np.array([9, 8])]
    union = hybrid_candidates(prefix, ann)
    assert [u.tolist() for u in union] == [[1, 2, 3, 5], [4, 6, 7], [8, 9]]
    report = ChannelReport.measure(prefix, ann, union, targets=np.array([5, 4, 0]))
    assert report.coverage_prefix == pytest.approx(1 / 3)  # only user 2's target 4 is in its prefix channel
    assert report.coverage_ann == pytest.approx(1 / 3)  # user 1's target 5
    assert report.coverage_union == pytest.approx(2 / 3)
    assert report.candidates_prefix == pytest.approx(4 / 3)
    assert report.candidates_ann == pytest.approx(2.0)  # padding is not a candidate
    assert report.candidates_union == pytest.approx(3.0)


def test_rank_candidates_orders_by_cosine_and_only_reorders():
    keys = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0], [-1.0, 0]]), dim=-1)
    queries = torch.tensor([[1.0, 0.0]])
    ranked, base = rank_candidates([np.array([3, 1, 2, 0])], queries, keys, k=3)
    assert ranked.tolist() == [[0, 2, 1]]
    assert np.allclose(base[0], [-1.0, 0.0, 2**-0.5, 1.0], atol=1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_ann_index_finds_the_nearest_items_and_survives_storage(kind):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = AnnIndex.build(vectors, AnnIndexConfig(kind=kind, pq_m=8, ivf_lists=8, nprobe=8))
    restored = decode(*encode(index))  # as the IO manager and the bundle store it: FAISS bytes, no pickle
    _, found = restored.search(vectors[:20], 5)
    hit = np.mean([i in row for i, row in enumerate(found)])
    assert hit >= (1.0 if kind == "flat" else 0.8)
    assert restored.kind == kind and restored.size == 600


def test_ann_index_kind_auto_switches_on_size():
    vectors = np.eye(8, dtype=np.float32)
    assert AnnIndex.build(vectors, AnnIndexConfig(kind="auto", exact_below=100)).kind == "flat"
    assert AnnIndex.build(vectors, AnnIndexConfig(kind="auto", exact_below=4)).kind == "hnsw"
    with pytest.raises(ValueError, match="unknown index kind"):
        AnnIndex.build(vectors, AnnIndexConfig(kind="lsh"))
