"""``retrieve`` on a hand-built five-item trie and a tiny router; its stored form (``candidates``); Val@P."""

import numpy as np
import pytest
import torch

from sid_platform.data.split import EvalCases, ItemVocab, UserSequences, leave_one_out
from sid_platform.retrieval import AnnIndex, AnnIndexConfig, ChannelReport, RouterConfig, SemanticRouter, SidTrie
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.candidates import val_at_p
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.stored import ANN, PREFIX, StoredRetrieval, retrieve_users
from sid_platform.semantic_ids.usid import build_usid_table

SIDS = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [3, 0, 0], [3, 2, 0]])  # two first codes: 0 (items 0-2), 3 (3-4)
VOCAB = [4, 3, 2]
HISTORIES = [np.array([0, 3]), np.array([1]), np.array([4, 2, 0]), np.array([2])]
TARGETS = np.array([1, 4, 3, 0])


def toy(n_prefixes: int = 1, top_n: int = 2, seed: int = 0) -> tuple[SemanticRouter, SidTrie, AnnIndex]:
    torch.manual_seed(seed)
    cfg = RouterConfig(
        hidden_dim=16, num_layers=1, num_heads=2, max_len=8, dropout=0.0, beam_size=3, n_prefixes=n_prefixes
    )
    router = SemanticRouter(cfg, torch.from_numpy(SIDS), VOCAB).eval()
    with torch.no_grad():
        index = AnnIndex.build(router.item_keys().numpy(), AnnIndexConfig(kind="flat", top_n=top_n))
    return router, SidTrie.from_sids(SIDS, VOCAB), index


def test_the_candidates_are_the_union_of_the_top_prefixes_items_and_the_nearest_items():
    router, trie, index = toy()
    found = retrieve(router, trie, index, HISTORIES, k=3, ann_top_n=2)
    beams = constrained_beam_search(router, router.user_states(HISTORIES), trie, 3, 1, 1)
    cosine = (found.queries @ found.keys.T).numpy()
    for user in range(len(HISTORIES)):
        assert sorted(found.prefix[user]) == sorted(trie.items_under(1, beams.prefixes[user]))
        assert set(found.ann[user]) == set(np.argsort(-cosine[user])[:2])
        beam = beams.items[user][beams.items[user] >= 0]
        union = np.union1d(np.union1d(found.prefix[user], found.ann[user]), beam)
        assert np.array_equal(found.candidates[user], union)
        assert np.allclose(found.base_scores[user], cosine[user, found.candidates[user]])
    assert set(found.seconds) == {"encode", "beam_search", "ann_search", "union", "generative_scores", "rank"}


def test_the_hybrid_ranking_orders_the_union_by_cosine_and_the_generative_one_is_the_beam():
    router, trie, index = toy()
    found = retrieve(router, trie, index, HISTORIES, k=4, ann_top_n=2)
    beams = constrained_beam_search(router, router.user_states(HISTORIES), trie, 4, 1, 1)
    assert np.array_equal(found.generative, beams.items[:, :4])
    for user, (items, scores) in enumerate(zip(found.candidates, found.base_scores, strict=True)):
        expected = items[np.argsort(-scores, kind="stable")][:4]
        row = found.hybrid_cosine[user]
        assert np.array_equal(row[: len(expected)], expected) and np.all(row[len(expected) :] == -1)
        gen = found.generative[user][found.generative[user] >= 0]
        assert len(set(gen.tolist())) == len(gen) and all(trie.contains(SIDS[i]) for i in gen)


def test_excluding_the_history_drops_seen_items_and_keeps_the_order_of_the_rest():
    router, trie, index = toy(n_prefixes=2, top_n=5)
    plain = retrieve(router, trie, index, HISTORIES, k=5, ann_top_n=5)  # as deep as exclusion ranks the union
    beam = retrieve(router, trie, index, HISTORIES, k=3, ann_top_n=5)  # the same beam width (beam_size 3)
    masked = retrieve(router, trie, index, HISTORIES, k=2, ann_top_n=5, exclude_history=True)
    for user, seen in enumerate(HISTORIES):
        for ranked, full in ((masked.hybrid_cosine, plain.hybrid_cosine), (masked.generative, beam.generative)):
            kept = [i for i in full[user] if i >= 0 and i not in seen][:2]
            assert ranked[user][ranked[user] >= 0].tolist() == kept
    # Exclusion changes the rankings only, never the channels.
    assert all(np.array_equal(a, b) for a, b in zip(masked.candidates, plain.candidates, strict=True))


def test_the_stored_form_gives_back_the_same_retrieval_and_channel_report():
    router, trie, index = toy()
    found = retrieve(router, trie, index, HISTORIES, k=3, ann_top_n=2)
    cases = EvalCases(["a", "b", "c", "d"], HISTORIES, TARGETS)
    stored = StoredRetrieval.pack(found, cases)
    back = stored.retrieval(found.keys.numpy())
    assert stored.items.dtype == np.int32 and stored.offsets.tolist()[-1] == len(stored.items) == len(stored.channels)
    for name in ("candidates", "base_scores"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(back, name), getattr(found, name), strict=True))
    assert all(np.array_equal(np.sort(a), np.sort(b)) for a, b in zip(back.prefix, found.prefix, strict=True))
    assert all(np.array_equal(np.sort(a), np.sort(b)) for a, b in zip(back.ann, found.ann, strict=True))
    assert torch.equal(back.queries, found.queries) and torch.equal(back.keys, found.keys)
    assert np.array_equal(back.hybrid_cosine, found.hybrid_cosine) and back.candidates[0].dtype == np.int64
    assert stored.report == ChannelReport.measure(back.prefix, back.ann, back.candidates, TARGETS)
    both = stored.channels == (PREFIX | ANN)
    assert both.any() or not any(np.intersect1d(p, a).size for p, a in zip(found.prefix, found.ann, strict=True))


def test_candidates_refuse_other_users_and_another_protocol():
    router, trie, index = toy()
    valid = EvalCases(["a", "b", "c", "d"], [h[:-1] for h in HISTORIES], np.array([3, 1, 2, 2]))
    test = EvalCases(["a", "b", "c", "d"], HISTORIES, TARGETS)
    sequences = UserSequences([np.array([0, 1, 2])], valid, test, ItemVocab([f"i{i}" for i in range(5)]))
    lines: list[str] = []
    candidates = retrieve_users(router, trie, index, sequences, 3, False, "v1", on_progress=lines.append)
    assert [line.split(":")[0] for line in lines] == ["candidates (valid users)", "candidates (test users)"]
    assert lines[-1].startswith("candidates (test users): 4/4 users") and lines[-1].endswith("done")
    assert len(candidates.valid) == len(candidates.test) == 4 and candidates.prefix_channel == {
        "depth": 1,
        "prefixes": 1,
    }
    assert np.array_equal(candidates.retrieval("test", test).hybrid_cosine, candidates.test.hybrid_cosine)
    with pytest.raises(ValueError, match="other test users"):
        candidates.retrieval("test", EvalCases(["a", "b", "c", "x"], HISTORIES, TARGETS))
    with pytest.raises(ValueError, match="other valid users"):
        candidates.retrieval("valid", test)  # same users, other targets
    with pytest.raises(ValueError, match="rematerialize candidates"):
        candidates.check(3, exclude_history=True)
    candidates.check(3, exclude_history=False)


def test_stored_candidates_skip_the_log_probs_only_when_the_fusion_weight_is_zero():
    router, trie, index = toy()
    valid = EvalCases(["a", "b", "c", "d"], [h[:-1] for h in HISTORIES], np.array([3, 1, 2, 2]))
    test = EvalCases(["a", "b", "c", "d"], HISTORIES, TARGETS)
    sequences = UserSequences([np.array([0, 1, 2])], valid, test, ItemVocab([f"i{i}" for i in range(5)]))
    assert float(router.fusion_weight) == 0.0
    lean = retrieve_users(router, trie, index, sequences, 3, False, "v1")
    full = retrieve(router, trie, index, HISTORIES, 3, index.top_n)
    back = lean.retrieval("test", test)
    assert lean.test.log_probs.size == 0 and back.log_probs is None
    assert np.array_equal(back.fused, full.fused) and np.array_equal(back.generative, full.generative)
    assert all(np.array_equal(a, b) for a, b in zip(back.fused_scores, full.fused_scores, strict=True))
    router.fusion_weight.fill_(0.5)
    weighted = retrieve_users(router, trie, index, sequences, 3, False, "v1").retrieval("test", test)
    expected = retrieve(router, trie, index, HISTORIES, 3, index.top_n)
    assert all(np.array_equal(a, b) for a, b in zip(weighted.log_probs, expected.log_probs, strict=True))
    assert np.array_equal(weighted.fused, expected.fused)


def test_val_at_p_is_the_share_of_targets_whose_prefix_is_among_the_top_p():
    router, trie, _ = toy(n_prefixes=1)
    cases = EvalCases(["a", "b", "c", "d"], HISTORIES, TARGETS)
    beams = constrained_beam_search(router, router.user_states(HISTORIES), trie, 1, 1, 1)
    expected = np.mean(beams.prefixes[:, 0] == trie.node_of_item[1][TARGETS])
    assert val_at_p(router, trie, cases) == pytest.approx(expected)
    wide, _, _ = toy(n_prefixes=2)  # two first codes exist: every target's prefix is among the top two
    assert val_at_p(wide, trie, cases) == 1.0
    assert val_at_p(router, trie, EvalCases([], [], np.zeros(0, dtype=np.int64))) == 0.0


@pytest.fixture(scope="module")
def many_users(synthetic) -> tuple[SemanticRouter, SidTrie, AnnIndex, list[np.ndarray]]:
    """The generator's 800 test users before an untrained router over random codes: more than one user batch."""
    vocab = ItemVocab.from_catalog(synthetic.items)
    histories = UserSequences.from_splits(leave_one_out(synthetic.interactions), vocab).test.histories
    codes = np.random.default_rng(0).integers(0, 8, size=(len(vocab), 2))
    sids = build_usid_table(vocab.item_ids, codes, "v-test").select(["c1", "c2", "suffix"]).to_numpy()
    trie = SidTrie.from_sids(sids, [8, 8, int(sids[:, -1].max()) + 1])
    torch.manual_seed(0)
    cfg = RouterConfig(hidden_dim=16, num_layers=1, num_heads=2, max_len=10, dropout=0.0, beam_size=5, n_prefixes=3)
    router = SemanticRouter(cfg, torch.from_numpy(sids), trie.vocab_sizes).eval()
    with torch.no_grad():
        index = AnnIndex.build(router.item_keys().numpy(), AnnIndexConfig(kind="flat", top_n=20))
    return router, trie, index, histories


@pytest.mark.parametrize("exclude_history", [False, True])
def test_retrieval_in_user_batches_is_exactly_one_call_over_all_users(many_users, exclude_history: bool):
    router, trie, index, histories = many_users
    lines: list[str] = []
    batched = retrieve(router, trie, index, histories, 10, 20, exclude_history, lines.append, "toy", batch_size=512)
    whole = retrieve(router, trie, index, histories, 10, 20, exclude_history, batch_size=1024)  # one batch
    assert 512 < len(histories) <= 1024
    for name in ("generative", "hybrid_cosine", "fused"):
        assert np.array_equal(getattr(batched, name), getattr(whole, name)), name
    for name in ("prefix", "ann", "candidates", "base_scores", "log_probs", "fused_scores"):
        pairs = zip(getattr(batched, name), getattr(whole, name), strict=True)
        assert all(np.array_equal(a, b) for a, b in pairs), name
    assert torch.equal(batched.queries, whole.queries) and torch.equal(batched.keys, whole.keys)
    assert list(batched.seconds) == ["encode", "beam_search", "ann_search", "union", "generative_scores", "rank"]
    assert lines[-1].startswith(f"toy: {len(histories)}/{len(histories)} users") and lines[-1].endswith("done")
    with pytest.raises(ValueError, match="multiple of 512"):
        retrieve(router, trie, index, histories, 10, 20, batch_size=100)
