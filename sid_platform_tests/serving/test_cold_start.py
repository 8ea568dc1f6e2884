"""Cold start on a tiny bundle: new items get unique IDs from the stored codebooks, join the USID table, the trie,
the prefix index and the FAISS index, leave every existing item as it was, and come back from retrieval."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from sid_platform.baselines.sasrec import SASRec, SASRecCheckpoint, SASRecConfig
from sid_platform.embed.pipeline import EmbeddingSpec, ItemEmbeddings, embed_like
from sid_platform.retrieval import AnnIndex, AnnIndexConfig, RouterConfig, SemanticRouter, SidTrie
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.semantic_ids import CodebooksCheckpoint, PrefixIndex, RQKMeansConfig, RQKMeansTokenizer, UsidLookup
from sid_platform.semantic_ids.usid import build_usid_table, extend_usid_table
from sid_platform.serving import BlendRanking
from sid_platform.serving.cold_start import add_items, borrowed_rows

N_OLD, N_NEW, DIM, CODES = 48, 8, 8, 4


def bundle(seed: int = 0) -> tuple[dict, np.ndarray]:
    """A tiny servable bundle over 48 items (4 clusters) and the vectors of 8 more from the same clusters."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, DIM)) * 3
    vectors = (centers[np.arange(N_OLD + N_NEW) % 4] + rng.normal(size=(N_OLD + N_NEW, DIM))).astype(np.float32)
    ids = [f"I{i:03d}" for i in range(N_OLD)]
    tokenizer = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=CODES, niter=10))
    tokenizer.fit(vectors[:N_OLD])
    codebooks = CodebooksCheckpoint.of(tokenizer, "emb-v1")
    table = build_usid_table(ids, tokenizer.encode(vectors[:N_OLD]), codebooks.version)
    trie = SidTrie.for_catalog(table, ids, CODES)
    torch.manual_seed(seed)
    cfg = RouterConfig(hidden_dim=16, num_layers=1, num_heads=2, max_len=8, dropout=0.0, beam_size=64, n_prefixes=CODES)
    sids = torch.from_numpy(table.select("c1", "c2", "suffix").to_numpy())
    router = SemanticRouter(cfg, sids, trie.vocab_sizes, torch.from_numpy(vectors[:N_OLD])).eval()
    with torch.no_grad():
        index = AnnIndex.build(router.item_keys().numpy(), AnnIndexConfig(kind="flat", top_n=N_OLD + N_NEW))
    components = {
        "codebooks": codebooks,
        "usid_table": table,
        "router_checkpoint": RouterCheckpoint.of(router, ids, codebooks.version),
        "faiss_index": index,
        "item_embeddings": ItemEmbeddings(ids, vectors[:N_OLD], ["minilm"], "emb-v1"),
        "item_titles": pl.DataFrame({"item_id": ids, "title": [f"item {i}" for i in range(N_OLD)]}),
    }
    return components, vectors


def new_rows(n: int = N_NEW) -> pl.DataFrame:
    return pl.DataFrame({"item_id": [f"N{i:03d}" for i in range(n)], "title": [f"new {i}" for i in range(n)]})


def test_new_items_get_unique_ids_from_the_stored_codebooks_and_old_ids_stay():
    components, vectors = bundle()
    out, report = add_items(components, new_rows(), vectors[N_OLD:])
    table, old = out["usid_table"], components["usid_table"]
    assert table.head(N_OLD).equals(old)  # every existing row, so every existing ID, unchanged
    assert table["sid"].n_unique() == table.height == N_OLD + N_NEW
    UsidLookup(table)  # refuses duplicate full IDs
    codes = components["codebooks"].tokenizer().encode(vectors[N_OLD:])
    assert np.array_equal(table.tail(N_NEW).select("c1", "c2").to_numpy(), codes)
    assert list(report.added) == new_rows()["item_id"].to_list() and report.items_after == N_OLD + N_NEW
    assert report.added == dict(zip(table.tail(N_NEW)["item_id"], table.tail(N_NEW)["sid"], strict=True))
    assert set(table["tokenizer_version"]) == {components["codebooks"].version}
    assert out["item_titles"].tail(N_NEW)["title"].to_list() == new_rows()["title"].to_list()
    embeddings = out["item_embeddings"]
    assert embeddings.base_version == "emb-v1" != embeddings.version and len(embeddings.item_ids) == N_OLD + N_NEW


def test_a_new_item_with_an_existing_items_codes_takes_the_next_free_suffix():
    components, vectors = bundle()
    table = components["usid_table"]
    twin = table.row(0, named=True)
    same = table.filter((pl.col("c1") == twin["c1"]) & (pl.col("c2") == twin["c2"]))
    codes = np.array([[twin["c1"], twin["c2"]]] * 2)
    extended = extend_usid_table(table, ["X1", "X2"], codes, twin["tokenizer_version"])
    assert extended.tail(2)["suffix"].to_list() == [same.height, same.height + 1]
    with pytest.raises(ValueError, match="not in the table"):
        extend_usid_table(table, [twin["item_id"]], codes[:1], twin["tokenizer_version"])
    with pytest.raises(ValueError, match="tokenizer"):
        extend_usid_table(table, ["X1"], codes[:1], "another")


def test_new_items_join_the_trie_the_prefix_index_and_faiss_and_old_vectors_do_not_move():
    components, vectors = bundle()
    out, _ = add_items(components, new_rows(), vectors[N_OLD:])
    router, table = out["router_checkpoint"], out["usid_table"]
    assert router.item_ids == [*components["router_checkpoint"].item_ids, *new_rows()["item_id"]]
    trie = SidTrie.for_catalog(table, router.item_ids, CODES)
    prefixes = PrefixIndex.from_frame(out["prefix_index"])
    index, old_index = out["faiss_index"], components["faiss_index"]
    assert index.size == N_OLD + N_NEW and old_index.size == N_OLD  # the given index is untouched
    keys = router.model().item_keys().detach().numpy()
    for row in range(N_OLD, N_OLD + N_NEW):
        sid = table.row(row, named=True)
        assert trie.contains(np.array([sid["c1"], sid["c2"], sid["suffix"]]))
        assert row in prefixes.items_under([sid["c1"]]) and row in prefixes.items_under([sid["c1"], sid["c2"]])
        assert np.allclose(index.index.reconstruct(row), keys[row])
    old_keys = np.stack([old_index.index.reconstruct(row) for row in range(N_OLD)])
    assert np.array_equal(np.stack([index.index.reconstruct(row) for row in range(N_OLD)]), old_keys)


def test_trained_items_keep_their_tokens_and_new_items_have_no_item_id_embedding_unless_borrowed():
    components, vectors = bundle()
    before = components["router_checkpoint"].model()
    out, _ = add_items(components, new_rows(), vectors[N_OLD:], borrow_id_vectors=False)
    after = out["router_checkpoint"].model()
    with torch.no_grad():
        assert torch.equal(after.item_tokens()[:N_OLD], before.item_tokens())
        assert after.item_id_known.tolist() == [True] * N_OLD + [False] * N_NEW
        new = torch.arange(N_OLD, N_OLD + N_NEW)
        sids = after.item_sids[new]
        codes_and_content = sum(after.token_emb[level](sids[:, level]) for level in range(2))
        expected = codes_and_content + after.content_proj(torch.from_numpy(vectors[N_OLD:]))
        assert torch.allclose(after.item_tokens(new), expected, atol=1e-6)
        # The id rows of new items are zero as well, so nothing trained leaks in even without the mask.
        assert not after.item_emb.weight[N_OLD:].any()


def test_the_routers_retrieval_returns_new_items_through_prefixes_beams_and_the_ann_channel():
    components, vectors = bundle()
    out, _ = add_items(components, new_rows(), vectors[N_OLD:])
    router = out["router_checkpoint"]
    model, trie = router.model(), SidTrie.for_catalog(out["usid_table"], router.item_ids, CODES)
    histories = [np.array([0, 5]), np.array([N_OLD + 1]), np.array([3, N_OLD, 7])]  # a new item in a history too
    found = retrieve(model, trie, out["faiss_index"], histories, k=N_OLD + N_NEW, ann_top_n=5)
    new = set(range(N_OLD, N_OLD + N_NEW))
    for user in range(len(histories)):
        assert new <= set(found.prefix[user].tolist())  # every first code's prefix is among the top 4
        assert new <= set(found.generative[user].tolist())  # beams of 64 reach every ID, new ones included
        assert new <= set(found.hybrid_cosine[user].tolist()) and new <= set(found.fused[user].tolist())
    # The ANN channel searches the new keys like the old ones: FAISS gives what brute force gives.
    keys = model.item_keys().detach().numpy()
    queries = found.queries.numpy()
    _, nearest = out["faiss_index"].search(queries, 5)
    assert np.array_equal(nearest, np.argsort(-(queries @ keys.T), axis=1, kind="stable")[:, :5])
    _, self_hits = out["faiss_index"].search(keys[N_OLD:], N_OLD + N_NEW)
    assert all(row in hits for row, hits in zip(range(N_OLD, N_OLD + N_NEW), self_hits, strict=True))


def test_a_full_code_tuple_grows_the_suffix_vocabulary_without_touching_trained_rows():
    components, vectors = bundle()
    before = components["router_checkpoint"]
    twin = int(np.argmax(components["usid_table"]["suffix"].to_numpy()))  # the most crowded code tuple
    extra = before.vocab_sizes[-1] + 1
    rows = pl.DataFrame({"item_id": [f"T{i}" for i in range(extra)], "title": ["twin"] * extra})
    out, report = add_items(components, rows, np.repeat(vectors[twin : twin + 1], extra, axis=0))
    grown = out["router_checkpoint"]
    assert report.suffix_vocab == (before.vocab_sizes[-1], grown.vocab_sizes[-1]) and report.shared_full_codes == extra
    assert grown.vocab_sizes[-1] > before.vocab_sizes[-1]
    last = len(before.vocab_sizes) - 1
    for name in (f"out.{last}.weight", f"out.{last}.bias", f"written.{last}.weight"):
        assert torch.equal(grown.weights[name][: before.vocab_sizes[-1]], before.weights[name])
    trie = SidTrie.for_catalog(out["usid_table"], grown.item_ids, CODES)
    assert trie.vocab_sizes == grown.vocab_sizes
    found = retrieve(grown.model(), trie, out["faiss_index"], [np.array([twin])], k=len(grown.item_ids), ann_top_n=3)
    assert set(range(N_OLD, N_OLD + extra)) <= set(found.generative[0].tolist())


def test_known_ids_are_skipped_and_nothing_new_changes_nothing():
    components, vectors = bundle()
    rows = pl.DataFrame({"item_id": ["I000", "N000", "N000"], "title": ["old", "new", "again"]})
    out, report = add_items(components, rows, vectors[[0, N_OLD, N_OLD]])
    assert list(report.added) == ["N000"] and report.skipped == ["I000", "N000"]
    same, nothing = add_items(components, rows.head(1), vectors[:1])
    assert nothing.added == {} and same["usid_table"] is components["usid_table"]


def test_the_grown_router_round_trips_and_an_older_checkpoint_still_loads(tmp_path: Path):
    components, vectors = bundle()
    out, _ = add_items(components, new_rows(), vectors[N_OLD:])
    grown = out["router_checkpoint"]
    back = RouterCheckpoint.load(grown.save(tmp_path / "router"))
    with torch.no_grad():
        assert torch.equal(back.model().item_tokens(), grown.model().item_tokens())
    old = components["router_checkpoint"]
    legacy = RouterCheckpoint(
        old.config, old.tokenizer_version, old.item_ids, old.vocab_sizes,
        {k: v for k, v in old.weights.items() if k != "item_id_known"}, old.log,
    )  # fmt: skip
    with torch.no_grad():
        assert torch.equal(legacy.model().item_tokens(), old.model().item_tokens())


def test_catalogs_embedded_with_collaborative_vectors_cannot_place_a_new_item():
    embeddings = ItemEmbeddings(["a"], np.zeros((1, 4), np.float32), ["minilm", "collaborative"], "v")
    with pytest.raises(ValueError, match="collaborative"):
        embed_like(new_rows(1), embeddings, EmbeddingSpec())


def test_a_borrowed_row_points_along_the_mean_under_the_deepest_shared_prefix_with_its_members_length():
    known = np.array([[0, 0], [0, 0], [0, 1], [1, 2]])
    rows = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 6.0], [9.0, 9.0]])
    new = np.array([[0, 0], [0, 3], [2, 0], [1, 2]])
    out = borrowed_rows(known, rows, new)
    assert out.dtype == np.float32

    def expected(members: list[int]) -> np.ndarray:
        mean = rows[members].mean(0)
        return mean / np.linalg.norm(mean) * np.linalg.norm(rows[members], axis=1).mean()

    assert np.allclose(out[0], [2.0, 0.0])  # the two items with codes (0, 0)
    assert np.allclose(out[1], expected([0, 1, 2]))  # shares only the first code with three items
    assert np.allclose(out[2], expected([0, 1, 2, 3]))  # shares nothing: the whole catalog
    assert np.allclose(out[3], rows[3])
    with pytest.raises(ValueError, match="no known items"):
        borrowed_rows(known[:0], rows[:0], new)


def test_borrowed_id_vectors_let_the_router_and_sasrec_read_new_items_and_trained_rows_stay():
    components, vectors = bundle()
    torch.manual_seed(1)
    sasrec = SASRec(N_OLD, SASRecConfig(hidden_dim=16, max_len=8, num_layers=1)).eval()
    ids = components["router_checkpoint"].item_ids
    components["sasrec_model"] = SASRecCheckpoint.of(sasrec, ids)
    out, _ = add_items(components, new_rows(), vectors[N_OLD:])
    codes = out["usid_table"].select("c1", "c2").to_numpy()
    before, after = components["router_checkpoint"].model(), out["router_checkpoint"].model()
    with torch.no_grad():
        assert torch.equal(after.item_tokens()[:N_OLD], before.item_tokens())
        assert after.item_id_known.tolist() == [True] * (N_OLD + N_NEW)
        expected = borrowed_rows(codes[:N_OLD], before.item_emb.weight.numpy(), codes[N_OLD:])
        assert np.allclose(after.item_emb.weight[N_OLD:].numpy(), expected)
        assert after.item_emb.weight[N_OLD:].any()
    grown = out["sasrec_model"]
    assert grown.item_ids == [*ids, *new_rows()["item_id"]] and components["sasrec_model"].item_ids == ids
    table = grown.weights["item_emb.weight"]
    assert torch.equal(table[: N_OLD + 1], sasrec.item_emb.weight.detach())
    expected = borrowed_rows(codes[:N_OLD], sasrec.item_vectors().detach().numpy(), codes[N_OLD:])
    assert np.allclose(table[N_OLD + 1 :].numpy(), expected)
    scores = grown.model().score([np.array([0, N_OLD + 2])])  # a new item in the history is read too
    assert scores.shape == (1, N_OLD + N_NEW) and np.isfinite(scores).all()
    with pytest.raises(ValueError, match="id_rows"):
        components["router_checkpoint"].with_items(["Z"], np.zeros((1, 3), np.int64), vectors[:1], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="unknown to SASRec"):
        grown.with_items(["I000"], np.zeros((1, 16)))


@pytest.mark.parametrize("borrow", [True, False])
def test_the_blended_ranking_of_an_extended_bundle_ranks_new_items_whether_or_not_sasrec_knows_them(borrow: bool):
    components, vectors = bundle()
    torch.manual_seed(1)
    sasrec = SASRec(N_OLD, SASRecConfig(hidden_dim=16, max_len=8, num_layers=1)).eval()
    components["sasrec_model"] = SASRecCheckpoint.of(sasrec, components["router_checkpoint"].item_ids)
    components["score_blend"] = ScoreBlend(0.5, (0.5,), (0.0,), (0.0,), 1)
    out, report = add_items(components, new_rows(), vectors[N_OLD:], borrow_id_vectors=borrow)
    assert ("sasrec_model" in report.borrowed) is borrow
    ranking = BlendRanking.open(out)
    new = set(new_rows()["item_id"])
    assert bool((ranking.sasrec_rows[N_OLD:] >= 0).all()) is borrow  # else every new item is unknown to SASRec
    assert borrow or (ranking.sasrec_rows[N_OLD:] == -1).all()
    histories = [["I000", "I004"], ["I001"], ["I002", "I006", "I010"]]
    lists = ranking(histories, N_OLD + N_NEW)
    assert all(len(row) == N_OLD + N_NEW and new <= set(row) for row in lists)  # every new item is ranked
    assert lists == [ranking([h], N_OLD + N_NEW)[0] for h in histories]  # a list never depends on the batch
