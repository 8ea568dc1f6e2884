"""The shared inputs: ``user_sequences`` built once, and ``candidates`` retrieved once and read by both the
reranker and the evaluation, which must therefore agree with each other and with what the bundle serves."""

import numpy as np

from sid_platform.data.split import ItemVocab, UserSequences
from sid_platform.evaluation.metrics import ranking_metrics
from sid_platform.reranking.study import BASE, SERVED, TEST
from sid_platform.serving import RANKERS, encode_histories, load_codebooks
from sid_platform_tests.assets.conftest import MainRun


def test_user_sequences_are_the_splits_as_catalog_indices(main_run: MainRun):
    stored: UserSequences = main_run.outputs["user_sequences"]
    rebuilt = UserSequences.from_splits(
        main_run.outputs["data_splits"], ItemVocab.from_catalog(main_run.outputs["item_catalog"])
    )
    assert stored.vocab == rebuilt.vocab and len(stored.vocab) == main_run.outputs["item_catalog"].height
    assert all(np.array_equal(a, b) for a, b in zip(stored.train, rebuilt.train, strict=True))
    for split in ("valid", "test"):
        a, b = getattr(stored, split), getattr(rebuilt, split)
        assert a.user_ids == b.user_ids and np.array_equal(a.targets, b.targets)
    splits = main_run.metadata["data_splits"]
    assert len(stored.test) == splits["test"] and len(stored.valid) == splits["valid"]


def test_candidates_hold_every_evaluated_users_retrieval(main_run: MainRun):
    candidates, sequences = main_run.outputs["candidates"], main_run.outputs["user_sequences"]
    k = max(main_run.outputs["evaluation"]["test"]["protocol"]["ks"])
    assert candidates.k == k and candidates.exclude_history is False
    assert candidates.item_ids == sequences.vocab.item_ids
    assert candidates.tokenizer_version == load_codebooks(main_run.outputs["codebooks"]).version
    for split in ("valid", "test"):
        stored, cases = candidates.split(split), getattr(sequences, split)
        found = candidates.retrieval(split, cases)
        assert len(found.candidates) == len(cases) and found.generative.shape == found.hybrid_cosine.shape == (
            len(cases),
            k,
        )
        assert found.queries.shape == (len(cases), candidates.keys.shape[1])
        assert np.all(stored.channels > 0)  # every candidate came from a channel
        for union, prefix, ann in zip(found.candidates, found.prefix, found.ann, strict=True):
            assert np.array_equal(union, np.union1d(prefix, ann))
        assert set(stored.seconds) == {"encode", "beam_search", "ann_search", "union", "rank"}


def test_the_evaluation_and_the_reranker_read_the_same_candidates(main_run: MainRun):
    candidates, document = main_run.outputs["candidates"], main_run.outputs["evaluation"]
    study = main_run.outputs["dpo_checkpoint"]
    assert document["test"]["channels"] == candidates.test.report.as_dict() == study.upstream["channels"]
    assert document["valid"]["channels"] == candidates.valid.report.as_dict()
    targets = main_run.outputs["user_sequences"].test.targets
    metrics = document["test"]["metrics"]
    assert metrics["router_generative"] == ranking_metrics(candidates.test.generative, targets, (5, 10, 20))
    assert metrics["router_hybrid_cosine"] == ranking_metrics(candidates.test.hybrid_cosine, targets, (5, 10, 20))
    # The study's base and served rows on the test users are the evaluation's cosine and reranked rankings.
    rows = {(row["variant"], row["users"]): row for row in study.study}
    for name, model in ((BASE, "router_hybrid_cosine"), (SERVED, "router_hybrid_dpo")):
        for metric in ("recall@10", "ndcg@10"):
            assert rows[(name.label, TEST.label)][metric] == metrics[model][metric], (name, metric)
    ms = document["test"]["retrieval_ms_per_user"]
    assert ms == {stage: 1000 * s / len(targets) for stage, s in candidates.test.seconds.items()}


def test_the_bundle_serves_the_rankings_that_were_measured(main_run: MainRun):
    """Every servable model, given the test users' histories as item ids, scores exactly its evaluation figures."""
    components = {name: main_run.outputs[name] for name in main_run.outputs}
    sequences = main_run.outputs["user_sequences"]
    item_ids = sequences.vocab.item_ids
    histories = [[item_ids[i] for i in h] for h in sequences.test.histories]
    assert all(
        np.array_equal(a, b)
        for a, b in zip(encode_histories(item_ids, histories), sequences.test.histories, strict=True)
    )
    index = {item: i for i, item in enumerate(item_ids)}
    for name, rank in RANKERS.items():
        served = np.asarray([[index[item] for item in row] for row in rank(components, histories, 20)])
        figures = main_run.outputs["evaluation"]["test"]["metrics"][name]
        assert ranking_metrics(served, sequences.test.targets, (5, 10, 20)) == figures, name
