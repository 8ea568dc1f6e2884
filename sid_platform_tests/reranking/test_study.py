"""The DPO study: its rows, the names its figures carry, its table, and the checkpoint it hands on."""

import numpy as np
import pytest
import torch

from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import ranking_metrics
from sid_platform.reranking.dpo import RerankerConfig, rerank
from sid_platform.reranking.study import (
    BASE,
    SERVED,
    TEST,
    VALIDATION,
    VARIANTS,
    preference_accuracies,
    run_study,
    study_checkpoint,
    study_figures,
    study_report,
    study_table,
    with_deltas,
)
from sid_platform.retrieval.candidates import ChannelReport, rank_candidates
from sid_platform.retrieval.pipeline import Retrieval
from sid_platform.serving import load_reranker

N_ITEMS, DIM = 40, 8
CFG = RerankerConfig(hidden_dim=16, pool_size=10, negatives_per_user=2, epochs=3, batch_size=64, holdout_share=0.25)


def _normalized(x: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(x.astype(np.float32)), dim=-1)


def toy_split(keys: torch.Tensor, users: int, seed: int) -> tuple[Retrieval, EvalCases]:
    """Queries near their user's target; 25 random candidates plus the target (usually) per user."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, N_ITEMS, users)
    queries = _normalized(keys.numpy()[targets] + 0.8 * rng.normal(size=(users, DIM)))
    candidates = []
    for target in targets:
        picked = rng.choice(N_ITEMS, 25, replace=False)
        candidates.append(np.union1d(picked, [target]) if rng.random() < 0.9 else np.sort(picked))
    ranked, base = rank_candidates(candidates, queries, keys, 20)
    zeros = [np.zeros(len(c), dtype=np.float32) for c in candidates]
    found = Retrieval(ranked, ranked, ranked, candidates, candidates, candidates, base, zeros, base, queries, keys)
    histories = [rng.choice(N_ITEMS, 3, replace=False) for _ in range(users)]
    return found, EvalCases([f"u{i}" for i in range(users)], histories, targets)


@pytest.fixture(scope="module")
def study_inputs():
    keys = _normalized(np.random.default_rng(0).normal(size=(N_ITEMS, DIM)))
    return (*toy_split(keys, 80, 1), *toy_split(keys, 80, 2), keys)


def test_the_study_has_a_base_row_and_one_row_per_variant_for_each_user_group(study_inputs):
    found_valid, valid, found_test, test, keys = study_inputs
    study = run_study(found_valid, found_test, keys, valid, test, CFG)
    labels = [(row["variant"], row["users"]) for row in study.table]
    names = [BASE, *VARIANTS]
    assert labels == [(name.label, users.label) for name in names for users in (VALIDATION, TEST)]
    assert list(study.curves) == [name.label for name in VARIANTS] and len(study.curves[SERVED.label]) == CFG.epochs
    assert study.holdout_users + study.train_users == len(valid) and study.holdout_users > 0
    assert study.model.cfg == CFG  # the served variant is the configured reranker
    rows = {(row["variant"], row["users"]): row for row in study.table}
    base_test = ranking_metrics(found_test.hybrid_cosine, test.targets, (5, 10))
    assert {key: rows[(BASE.label, TEST.label)][key] for key in base_test} == base_test
    # Reranking only reorders each user's candidates: coverage and candidates per user stay the base's.
    for users in (VALIDATION, TEST):
        base = rows[(BASE.label, users.label)]
        for name in VARIANTS:
            row = rows[(name.label, users.label)]
            assert (row["coverage"], row["candidates_per_user"]) == (base["coverage"], base["candidates_per_user"])
            assert row["valid_preference_accuracy"] is not None and base["valid_preference_accuracy"] is None
    lines: list[str] = []
    again = run_study(found_valid, found_test, keys, valid, test, CFG, on_progress=lines.append)
    assert again.table == study.table  # seeded, and reporting progress changes nothing: the same study twice
    starts = [line for line in lines if line.startswith("DPO study, variant")]
    assert [line.split(", ")[1].split(":")[0] for line in starts] == ["variant 1/3", "variant 2/3", "variant 3/3"]
    assert starts[1].startswith("DPO study, variant 2/3: unbounded, hard negatives, ") and "elapsed" in starts[1]
    assert sum(line.startswith("reranker (bounded, random negatives): finished after 3 epochs") for line in lines) == 1
    assert sum(line.startswith("DPO study, bounded, hard negatives: reranking: ") for line in lines) == 1
    assert lines[0].startswith("DPO study: 3 variants on ") and lines[-1].startswith("DPO study: 3 variants trained")


def test_the_served_rows_are_the_served_models_ranking(study_inputs):
    found_valid, valid, found_test, test, keys = study_inputs
    study = run_study(found_valid, found_test, keys, valid, test, CFG)
    top, _ = rerank(study.model, found_test.queries, keys, found_test.candidates, found_test.base_scores, 10)
    served = next(r for r in study.table if (r["variant"], r["users"]) == (SERVED.label, TEST.label))
    assert served["recall@10"] == ranking_metrics(top, test.targets, (10,))["recall@10"]


def _rows() -> list[dict]:
    rows = []
    for i, name in enumerate([BASE, *VARIANTS]):
        for users in (VALIDATION, TEST):
            accuracy = None if name == BASE else 0.6 + 0.1 * i
            value = 0.1 * (i + 1) + (0.01 if users == TEST else 0.0)
            metrics = {"recall@10": value, "ndcg@10": value / 2, "recall@5": value / 2, "ndcg@5": value / 3}
            row = {"variant": name.label, "users": users.label, **metrics, "coverage": 0.5, "candidates_per_user": 30.0}
            rows.append({**row, "valid_preference_accuracy": accuracy})
    return with_deltas(rows)


def test_figures_and_accuracies_carry_metric_safe_names():
    rows = _rows()
    figures = study_figures(rows)
    assert list(figures) == [
        f"{users}_{metric}_{variant}"
        for variant in ("base", "dpo")
        for users in ("test", "valid")
        for metric in ("recall10", "ndcg10")
    ]
    assert figures["test_recall10_base"] == 0.11 and figures["valid_ndcg10_dpo"] == 0.1
    assert preference_accuracies(rows) == {
        "bounded_hard_negatives": 0.7,
        "unbounded_hard_negatives": 0.8,
        "bounded_random_negatives": 0.9,
    }


def test_deltas_are_relative_to_the_base_row_of_the_same_users_and_the_table_shows_them():
    rows = _rows()
    served = next(r for r in rows if (r["variant"], r["users"]) == (SERVED.label, TEST.label))
    assert served["delta_recall@10"] == pytest.approx(0.21 / 0.11 - 1)
    assert all(r["delta_recall@10"] == 0.0 for r in rows if r["variant"] == BASE.label)
    table = study_table(rows)
    assert table.count("\n") == len(rows) + 1 and "+90.9%" in table and "base (cosine) | test" in table
    channels = ChannelReport(0.5, 0.4, 0.6, 10.0, 20.0, 25.0)
    report = study_report(rows, [0.9, 0.85], channels)
    assert report.startswith(table) and "90.0%, 85.0%" in report and "Upstream (test users)" in report


def test_the_checkpoint_holds_the_served_reranker_and_its_study(study_inputs):
    found_valid, valid, found_test, test, keys = study_inputs
    study = run_study(found_valid, found_test, keys, valid, test, CFG)
    rows = with_deltas(study.table)
    channels = ChannelReport(0.5, 0.4, 0.6, 10.0, 20.0, 25.0)
    blob = study_checkpoint(study, rows, DIM, "v1", [0.9], channels)
    assert blob.study == rows and blob.tokenizer_version == "v1" and blob.curves == study.curves
    assert blob.upstream == {"utilization_per_level": [0.9], "channels": channels.as_dict()}
    restored = load_reranker(blob)
    args = (found_test.queries, keys, found_test.candidates, found_test.base_scores, 10)
    assert np.array_equal(rerank(restored, *args)[0], rerank(study.model, *args)[0])
