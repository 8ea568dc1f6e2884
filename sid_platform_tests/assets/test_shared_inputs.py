"""The shared inputs: ``user_sequences`` built once, and ``candidates`` retrieved once and read by both the
reranker and the evaluation, which must therefore agree with each other and with what the bundle serves."""

import numpy as np
import pandas as pd

from sid_platform.data.split import ItemVocab, UserSequences
from sid_platform.evaluation.metrics import rank_with_scorer, ranking_metrics
from sid_platform.registry import Tracking, download_version
from sid_platform.registry.bundle import load_bundle
from sid_platform.registry.promotion import champion
from sid_platform.reranking.study import BASE, TEST
from sid_platform.retrieval.blend import blend_ranking, blended_scores
from sid_platform.serving import (
    BLEND_RANKING,
    RANKERS,
    encode_histories,
    load_codebooks,
    load_reranker,
    load_sasrec,
    sasrec_logits,
)
from sid_platform.serving.rankers import router_rankings
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
        for union, prefix, ann in zip(found.candidates, found.prefix, found.ann, strict=True):
            assert set(np.union1d(prefix, ann).tolist()) <= set(union.tolist())  # the beams' IDs join them
        assert np.all(stored.generative[np.isin(stored.generative, stored.items, invert=True)] == -1)
        assert set(stored.seconds) == {"encode", "beam_search", "ann_search", "union", "generative_scores", "rank"}


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
    for name, model in ((BASE, "router_hybrid_cosine"),):
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
    for name, open_ranking in RANKERS.items():
        opened = dict(components)
        ranking = open_ranking(opened)
        opened.clear()  # opened once: a request reads no component
        served = np.asarray([[index[item] for item in row] for row in ranking(histories, 20)])
        figures = main_run.outputs["evaluation"]["test"]["metrics"][name]
        assert ranking_metrics(served, sequences.test.targets, (5, 10, 20)) == figures, name


def test_the_champions_predict_returns_the_evaluated_lists_whatever_the_batch(main_run: MainRun, tmp_path):
    """The registered champion's ``predict`` gives each test user exactly the list the evaluation scored for the
    serving model: all users in one batch, a sample of users alone, and every user in shuffled batches of 7."""
    document = main_run.outputs["evaluation"]
    serving, sequences = document["serving"]["model"], main_run.outputs["user_sequences"]
    item_ids = sequences.vocab.item_ids
    sasrec = load_sasrec(main_run.outputs["sasrec_model"])
    found = main_run.outputs["candidates"].retrieval("test", sequences.test)
    if serving == "sasrec":
        evaluated = rank_with_scorer(sasrec.model.score, sequences.test.histories, 20, exclude_history=False)
    elif serving == BLEND_RANKING:
        weight, scale = main_run.outputs["score_blend"].sasrec_weight, main_run.outputs["router_checkpoint"].config
        logits = sasrec_logits(sasrec.model, sequences.test.histories, found.candidates)  # the pieces, not the helper
        evaluated = blend_ranking(found, blended_scores(found, logits, weight, scale.score_scale), 20)
    else:
        reranker = load_reranker(main_run.outputs["dpo_checkpoint"])
        evaluated = router_rankings(found, reranker, 20)[serving]
    assert ranking_metrics(evaluated, sequences.test.targets, (5, 10, 20)) == document["test"]["metrics"][serving]
    expected = [[item_ids[i] for i in row if i >= 0][:10] for row in evaluated]
    tracking = Tracking.resolve(main_run.outputs["model_promotion"]["tracking_uri"])
    bundle = load_bundle(download_version(tracking, champion(tracking.client, "sid-recommender"), tmp_path / "m"))

    def predict(rows: list[int]) -> list[list[str]]:
        frame = pd.DataFrame({"history": [[item_ids[i] for i in sequences.test.histories[r]] for r in rows]})
        return [list(items) for items in bundle.predict(None, frame, params={"k": 10})["items"]]

    users = list(range(len(sequences.test)))
    assert predict(users) == expected
    for user in users[:: max(1, len(users) // 25)]:
        assert predict([user]) == [expected[user]], user
    order = np.random.default_rng(0).permutation(users).tolist()
    for start in range(0, len(order), 7):
        rows = order[start : start + 7]
        assert predict(rows) == [expected[r] for r in rows], rows
