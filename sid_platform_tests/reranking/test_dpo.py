"""Bounded DPO: the bound, the loss on a learnable toy case, negatives from the pool, reordering only."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sid_platform.reranking import (
    Reranker,
    RerankerCheckpoint,
    RerankerConfig,
    bounded_score,
    dpo_loss,
    preference_pairs,
    rerank,
    train_reranker,
)
from sid_platform.reranking.dpo import preference_accuracy

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(base=finite, delta=finite, alpha=st.floats(0.0, 1.0))
def test_the_bound_holds_for_any_delta(base, delta, alpha):
    score = bounded_score(torch.tensor(base, dtype=torch.float64), torch.tensor(delta, dtype=torch.float64), alpha)
    assert abs(float(score) - base) <= alpha * (1 + 1e-12) + 1e-9


def test_dpo_loss_prefers_a_larger_chosen_margin():
    low = dpo_loss(torch.tensor([0.05]), torch.tensor([-0.05]), beta=1.0, temperature=0.05)
    high = dpo_loss(torch.tensor([-0.05]), torch.tensor([0.05]), beta=1.0, temperature=0.05)
    assert float(low) < float(np.log(2)) < float(high)


def toy_problem(n_users: int = 300, n_items: int = 40, dim: int = 8, seed: int = 0):
    """Targets depend on a direction the base score ignores: learnable only by the correction."""
    rng = np.random.default_rng(seed)
    keys = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(n_items, dim)).astype(np.float32)), dim=-1)
    queries = torch.nn.functional.normalize(
        torch.from_numpy(rng.normal(size=(n_users, dim)).astype(np.float32)), dim=-1
    )
    favourite = keys[:, 0].argsort(descending=True)[:5].numpy()  # items strong on feature 0
    targets = rng.choice(favourite, size=n_users)
    base = (queries @ keys.T).numpy()
    pools = np.argsort(-base, axis=1)[:, :20]
    return queries, keys, targets, pools


def test_the_loss_decreases_and_accuracy_rises_on_a_learnable_toy_case():
    queries, keys, targets, pools = toy_problem()
    rng = np.random.default_rng(0)
    pairs = preference_pairs(pools, targets, keys.shape[0], "hard", 4, rng)
    train, valid = pairs.subset(pairs.user < 240), pairs.subset(pairs.user >= 240)
    cfg = RerankerConfig(epochs=15, batch_size=128, lr=5e-3, hidden_dim=32)
    model, log = train_reranker(queries, keys, train, valid, cfg)
    assert log.epochs[-1]["loss"] < log.epochs[0]["loss"]
    assert preference_accuracy(model, queries, keys, valid) > 0.8
    # No patience: every epoch runs, and the model is the one with the best validation accuracy.
    assert len(log.epochs) == cfg.epochs and log.best_score == max(log.curve("valid_accuracy"))
    assert preference_accuracy(model, queries, keys, valid) == log.best["valid_accuracy"]


def test_checkpoint_round_trip_gives_the_same_reranking(tmp_path: Path):
    queries, keys, targets, pools = toy_problem(n_users=60)
    pairs = preference_pairs(pools, targets, keys.shape[0], "hard", 2, np.random.default_rng(0))
    cfg = RerankerConfig(epochs=2, batch_size=64, hidden_dim=8, pool_size=10)
    model, log = train_reranker(queries, keys, pairs, pairs, cfg)
    checkpoint = replace(
        RerankerCheckpoint.of(model, keys.shape[1], log), tokenizer_version="v0", study=[{"variant": "x"}],
        users={"train": 48, "held_out": 12},
    )  # fmt: skip
    loaded = RerankerCheckpoint.load(checkpoint.save(tmp_path / "reranker.safetensors"))
    assert (loaded.config, loaded.dim, loaded.log, loaded.tokenizer_version) == (cfg, 8, log, "v0")
    assert loaded.study == [{"variant": "x"}] and loaded.users == {"train": 48, "held_out": 12}
    candidates = [np.argsort(-(queries[u] @ keys.T).numpy())[:15] for u in range(20)]
    base = [(keys[torch.from_numpy(c)] @ queries[u]).numpy() for u, c in enumerate(candidates)]
    before, _ = rerank(model, queries, keys, candidates, base, k=10)
    after, _ = rerank(loaded.model(), queries, keys, candidates, base, k=10)
    assert np.array_equal(before, after)


def test_hard_negatives_come_only_from_the_pool_and_never_are_the_target():
    rng = np.random.default_rng(0)
    pools = np.array([[3, 4, 5, -1], [7, 8, 9, 1], [7, 8, 9, 1]])
    targets = np.array([4, 2, 9])  # user 1's target is outside its pool: no pairs for it
    pairs = preference_pairs(pools, targets, 50, "hard", 3, rng)
    assert set(pairs.user.tolist()) == {0, 2}
    for user, chosen, rejected in zip(pairs.user, pairs.chosen, pairs.rejected, strict=True):
        assert rejected in pools[user] and rejected != targets[user] and rejected >= 0
        assert chosen == targets[user]
    random_pairs = preference_pairs(pools, targets, 50, "random", 3, rng)
    assert np.all(random_pairs.rejected != random_pairs.chosen)
    with pytest.raises(ValueError, match="unknown negative kind"):
        preference_pairs(pools, targets, 50, "easy", 3, rng)


@pytest.mark.parametrize("bounded", [True, False])
def test_reranking_never_changes_the_candidate_set(bounded):
    queries, keys, _, _ = toy_problem(n_users=20)
    torch.manual_seed(0)
    model = Reranker(keys.shape[1], RerankerConfig(bounded=bounded, pool_size=7)).eval()
    rng = np.random.default_rng(1)
    candidates = [np.sort(rng.choice(40, size=rng.integers(1, 30), replace=False)) for _ in range(20)]
    base = [(keys[torch.from_numpy(c)] @ queries[i]).numpy() for i, c in enumerate(candidates)]
    top, orders = rerank(model, queries, keys, candidates, base, k=10)
    for before, after, row in zip(candidates, orders, top, strict=True):
        assert sorted(after.tolist()) == before.tolist()
        assert row[row >= 0].tolist() == after[:10].tolist()


def test_the_bounded_reranker_moves_no_score_beyond_alpha():
    queries, keys, _, _ = toy_problem(n_users=5)
    model = Reranker(keys.shape[1], RerankerConfig(alpha=0.05))
    with torch.no_grad():
        for layer in model.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(1000)  # an absurd δ
        base = queries[0] @ keys.T
        moved = model.correction(queries[0], keys, base)
    assert moved.abs().max() <= 0.05 + 1e-6
