"""The served ranking path: loading stored models, encoding histories, the reranked ranking, the evaluation of
the router's rankings, and the package's place below the registry and the assets."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import sid_platform.serving
from sid_platform.baselines.sasrec import SASRec, SASRecCheckpoint, SASRecConfig
from sid_platform.data.split import EvalCases, ItemVocab, UserSequences
from sid_platform.evaluation.harness import Protocol
from sid_platform.evaluation.metrics import ranking_metrics
from sid_platform.reranking.dpo import Reranker, RerankerConfig, rerank
from sid_platform.retrieval.blend import ScoreBlend, blend_ranking, blended_scores
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.retrieval.stored import retrieve_users
from sid_platform.semantic_ids import RQKMeansConfig, RQKMeansTokenizer, build_usid_table
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.sequences import exclude_seen
from sid_platform.serving import (
    RANKERS,
    ItemIndex,
    RouterRanking,
    ServingRouter,
    dpo_ranking,
    encode_histories,
    item_lists,
    load_codebooks,
    load_router,
    load_sasrec,
    sasrec_logits,
)
from sid_platform.serving.evaluation import SasrecBlend, evaluate_retrieval, serving_model
from sid_platform_tests.retrieval.test_pipeline import HISTORIES, TARGETS, toy

ITEMS = [f"i{i}" for i in range(5)]


def test_histories_are_encoded_in_the_models_vocabulary_and_rankings_decoded_back():
    encoded = encode_histories(["a", "b", "c"], [["c", "a"], ["zz", "b"], []])
    assert [h.tolist() for h in encoded] == [[2, 0], [1], []] and encoded[2].dtype == np.int64
    assert item_lists(np.array([[2, 0, -1], [-1, -1, -1]]), ["a", "b", "c"]) == [["c", "a"], []]
    assert set(RANKERS) == {
        "sasrec",
        "router_generative",
        "router_hybrid_cosine",
        "router_fused",
        "router_fused_dpo",
        "router_sasrec_blend",
    }


def test_the_serving_model_is_the_best_servable_ranking_on_validation():
    valid = {
        "popularity": {"recall@10": 0.9, "ndcg@10": 0.9},  # not servable by the bundle
        "sasrec": {"recall@10": 0.08, "ndcg@10": 0.04},
        "router_fused": {"recall@10": 0.09, "ndcg@10": 0.03},
        "router_fused_dpo": {"recall@10": 0.09, "ndcg@10": 0.05},  # same recall, better NDCG
    }
    assert serving_model(valid) == "router_fused_dpo"
    assert serving_model({**valid, "sasrec": {"recall@10": 0.1, "ndcg@10": 0.0}}) == "sasrec"
    with pytest.raises(ValueError, match="no servable ranking"):
        serving_model({"popularity": {"recall@10": 1.0}})


def test_stored_models_are_refused_when_they_do_not_fit_the_data():
    sasrec = SASRec(3, SASRecConfig(hidden_dim=8, num_layers=1, num_heads=1, max_len=4))
    blob = SASRecCheckpoint.of(sasrec, ["a", "b", "c"])
    assert load_sasrec(blob, ["a", "b", "c"]).item_ids == ["a", "b", "c"]
    with pytest.raises(ValueError, match="different item catalog"):
        load_sasrec(blob, ["a", "b"])
    router, _, _ = toy()
    stored = load_router(RouterCheckpoint.of(router, ITEMS, "v1"), ITEMS, "v1")
    assert stored.tokenizer_version == "v1" and stored.item_ids == ITEMS
    with pytest.raises(ValueError, match="codebook version"):
        load_router(RouterCheckpoint.of(router, ITEMS, "v1"), ITEMS, "v2")


def test_codebooks_give_the_trie_and_the_utilization_of_the_usid_table():
    codes = np.array([[0, 1], [0, 2], [3, 0], [3, 0]])
    table = build_usid_table(["a", "b", "c", "d"], codes, "v1")
    tokenizer = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=4))
    tokenizer.fit(np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32))
    codebooks = load_codebooks(CodebooksCheckpoint.of(tokenizer, "embeddings-v1"))
    assert codebooks.utilization(table) == [0.5, 0.75]
    trie = codebooks.trie(table, ["d", "a", "c", "b"])  # rows follow the given item order
    first = trie.node_of_item[1]  # d and c start with code 3, a and b with code 0
    assert trie.depth == 3 and first[0] == first[2] != first[1] == first[3]


def _candidates(exclude_history: bool):
    router, trie, index = toy(n_prefixes=2, top_n=3)
    valid = EvalCases(["a", "b", "c", "d"], [h[:-1] for h in HISTORIES], np.array([3, 1, 2, 2]))
    test = EvalCases(["a", "b", "c", "d"], HISTORIES, TARGETS)
    sequences = UserSequences([np.array([0, 1, 2])], valid, test, ItemVocab(ITEMS))
    return retrieve_users(router, trie, index, sequences, 3, exclude_history, "v1"), test


def test_the_reranked_ranking_drops_seen_items_when_asked():
    candidates, test = _candidates(exclude_history=False)
    found = candidates.retrieval("test", test)
    torch.manual_seed(0)
    reranker = Reranker(found.keys.shape[1], RerankerConfig(pool_size=3)).eval()
    top, _ = rerank(reranker, found.queries, found.keys, found.candidates, found.base_scores, 3)
    lines: list[str] = []
    assert np.array_equal(dpo_ranking(reranker, found, 3, on_progress=lines.append, phase="toy reranking"), top)
    assert len(lines) == 1 and lines[0].startswith("toy reranking: 4/4 users") and lines[0].endswith("done")
    masked = dpo_ranking(reranker, found, 2, HISTORIES)
    deep, _ = rerank(reranker, found.queries, found.keys, found.candidates, found.base_scores, 2 + 3)
    assert np.array_equal(masked, exclude_seen(deep, HISTORIES, 2)) and masked.shape == (4, 2)


@pytest.mark.parametrize("exclude_history", [False, True])
def test_the_routers_rankings_are_evaluated_from_the_stored_candidates(exclude_history: bool):
    candidates, test = _candidates(exclude_history)
    torch.manual_seed(0)
    reranker = Reranker(candidates.keys.shape[1], RerankerConfig(pool_size=3)).eval()
    protocol = Protocol(exclude_history=exclude_history, ks=(1, 3), split="test")
    lines: list[str] = []
    result = evaluate_retrieval(candidates, test, protocol, reranker, on_progress=lines.append)
    assert [line.split(":")[0] for line in lines] == ["evaluation (test users)"] and "router_fused_dpo" in lines[0]
    found = candidates.retrieval("test", test)
    histories = HISTORIES if exclude_history else None
    assert result["metrics"] == {
        "router_generative": ranking_metrics(found.generative, TARGETS, (1, 3)),
        "router_hybrid_cosine": ranking_metrics(found.hybrid_cosine, TARGETS, (1, 3)),
        "router_fused": ranking_metrics(found.fused, TARGETS, (1, 3)),
        "router_fused_dpo": ranking_metrics(dpo_ranking(reranker, found, 3, histories), TARGETS, (1, 3)),
    }
    assert result["channels"] == candidates.test.report.as_dict()
    torch.manual_seed(1)
    sasrec = SASRec(len(ITEMS), SASRecConfig(hidden_dim=8, num_layers=1, num_heads=1, max_len=8)).eval()
    blend = SasrecBlend(sasrec, ScoreBlend(0.3, (0.3,), (0.0,), (0.0,), 4), router_scale=1.0)
    with_blend = evaluate_retrieval(candidates, test, protocol, reranker, blend=blend)
    blended = with_blend["metrics"]
    assert with_blend["blend_ms_per_user"] > 0 and "blend_ms_per_user" not in result
    scores = blended_scores(found, sasrec_logits(sasrec, HISTORIES, found.candidates), 0.3, 1.0)
    expected = ranking_metrics(blend_ranking(found, scores, 3, histories), TARGETS, (1, 3))
    assert blended == {**result["metrics"], "router_sasrec_blend": expected}
    assert result["retrieval_ms_per_user"] == {k: 1000 * s / 4 for k, s in candidates.test.seconds.items()}
    assert result["prefix_channel"] == {"depth": 1, "prefixes": 2} and result["ann_channel"]["top_n"] == 3
    with pytest.raises(ValueError, match="rematerialize candidates"):
        evaluate_retrieval(candidates, test, Protocol(exclude_history=not exclude_history, ks=(1, 3)), reranker)


FORBIDDEN = ("sid_platform.registry", "sid_platform.assets", "sid_platform.automation", "sid_platform.definitions")


def test_serving_stays_below_the_registry_the_assets_and_dagster():
    for path in Path(sid_platform.serving.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.split(".")[0] == "dagster" or n.startswith(FORBIDDEN)]
            assert not bad, f"{path.name} imports {bad}"


def test_a_router_ranking_is_the_retrieval_it_was_opened_on_and_its_trace_is_that_retrieval():
    router, trie, index = toy(n_prefixes=2, top_n=3)
    with torch.no_grad():
        tokens = router.item_tokens()
        opened = ServingRouter(router, ItemIndex(ITEMS), trie, index, tokens, router.item_keys(tokens))
    histories = [[ITEMS[i] for i in h] for h in HISTORIES]
    expected = retrieve(router, trie, index, HISTORIES, 3, 3)
    for name, ranked in (("router_fused", expected.fused), ("router_generative", expected.generative)):
        ranking = RouterRanking(name, opened, None)
        lists, found = ranking.traced(histories, 3)
        assert lists == ranking(histories, 3) == item_lists(ranked, ITEMS)
        assert all(np.array_equal(a, b) for a, b in zip(found.candidates, expected.candidates, strict=True))
        assert (found.log_probs is not None) == (name == "router_generative")  # read by its explanation only
