"""Two gloo replicas on the CPU train the router and the reranker to what one process trains (same seed, data).

The replicas are started with ``torch.multiprocessing.spawn`` on a free loopback port; each rebuilds the same
synthetic data, trains through the ordinary ``train_router`` / ``train_reranker`` and, on rank 0 only,
writes its weights (safetensors) and log (JSON) for this process to compare with its own single-process run.
The batch sizes leave uneven shards and a batch of one row, so the shard weights and the zero-weight
replica are exercised, not only the even split.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from sid_platform.artifacts import write_artifact
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.data.synthetic import generate
from sid_platform.distributed import Replicas, process_group, replicas
from sid_platform.distributed_train import main as train_main
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.loopback import free_port
from sid_platform.reranking import RerankerConfig, preference_pairs, train_reranker
from sid_platform.retrieval import RouterCheckpoint, RouterConfig, SidTrie
from sid_platform.retrieval.training import train_router
from sid_platform.semantic_ids import CodebooksCheckpoint, RQVAEConfig
from sid_platform.semantic_ids.usid import build_usid_table
from sid_platform.storage import LocalBlobStore

WORLD = 2
REPO = Path(__file__).resolve().parent.parent
# Dropout 0: each replica draws its own masks (distributed.py), so only without dropout is the result
# the single process's up to float rounding.
ROUTER = RouterConfig(
    hidden_dim=16, num_layers=1, num_heads=2, max_len=8, dropout=0.0, lr=5e-3, batch_size=61, epochs=2,
    patience=None, num_negatives=0, n_prefixes=3, beam_size=10,
)  # fmt: skip
RERANKER = RerankerConfig(epochs=3, batch_size=64, lr=5e-3, hidden_dim=16)


def router_assets():
    """The router's upstream assets, as the graph would store them: sequences, the USID table, codebooks, vectors."""
    synthetic = generate(n_users=200, n_items=80, seed=0)
    vocab = ItemVocab.from_catalog(synthetic.items)
    sequences = UserSequences.from_splits(leave_one_out(synthetic.interactions), vocab)
    codes = np.random.default_rng(0).integers(0, 6, size=(len(vocab), 2))
    usid = build_usid_table(vocab.item_ids, codes, "v-test")
    codebooks = CodebooksCheckpoint(
        "rqvae",
        RQVAEConfig(levels=2, codebook_size=6, latent_dim=3),
        {"codebooks": torch.zeros(2, 6, 3)},
        "v-test",
        "e",
    )
    vectors = np.random.default_rng(1).normal(size=(len(vocab), 4)).astype(np.float32)
    embeddings = ItemEmbeddings(list(vocab.item_ids), vectors, ["test"], "e", {})
    return {"user_sequences": sequences, "usid_table": usid, "codebooks": codebooks, "item_embeddings": embeddings}


def router_data():
    assets = router_assets()
    sids = assets["usid_table"].select(["c1", "c2", "suffix"]).to_numpy()
    trie = SidTrie.from_sids(sids, [6, 6, int(sids[:, -1].max()) + 1])
    return assets["user_sequences"], trie, sids


def reranker_data():
    """The toy problem of the DPO tests: 4·64+1 training pairs, so the last batch holds one pair."""
    rng = np.random.default_rng(0)
    keys = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(40, 8)).astype(np.float32)), dim=-1)
    queries = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(150, 8)).astype(np.float32)), dim=-1)
    targets = rng.choice(keys[:, 0].argsort(descending=True)[:5].numpy(), size=150)
    pools = np.argsort(-(queries @ keys.T).numpy(), axis=1)[:, :20]
    pairs = preference_pairs(pools, targets, keys.shape[0], "hard", 4, rng)
    train = pairs.subset(np.arange(len(pairs)) < 4 * RERANKER.batch_size + 1)
    return queries, keys, train, pairs.subset(pairs.user >= 120)


def train_both() -> dict[str, tuple[dict[str, torch.Tensor], list[dict]]]:
    sequences, trie, sids = router_data()
    router, router_log = train_router(sequences.train, sequences.valid, trie, sids, ROUTER)
    reranker, reranker_log = train_reranker(*reranker_data(), RERANKER)
    return {
        "router": (router.state_dict(), router_log.epochs, router_log.chosen),
        "reranker": (reranker.state_dict(), reranker_log.epochs, {}),
    }


def _replica(rank: int, port: int, out: str) -> None:
    """One spawned replica: join the group, train both models, rank 0 writes what it got."""
    torch.set_num_threads(1)
    with process_group(rank=rank, world_size=WORLD, init_method=f"tcp://127.0.0.1:{port}") as group:
        trained = train_both()
        if group.is_main:
            for name, (weights, epochs, chosen) in trained.items():
                save_file({k: v.contiguous() for k, v in weights.items()}, f"{out}/{name}.safetensors")
                Path(f"{out}/{name}.json").write_text(json.dumps({"epochs": epochs, "chosen": chosen}))


def test_two_gloo_replicas_train_what_one_process_trains(tmp_path: Path):
    mp.spawn(_replica, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    torch.set_num_threads(1)
    single = train_both()
    for name, (weights, epochs, chosen) in single.items():
        stored = load_file(tmp_path / f"{name}.safetensors")
        figures = json.loads((tmp_path / f"{name}.json").read_text())
        assert stored.keys() == weights.keys()
        for key, tensor in weights.items():
            theirs, ours = stored[key], tensor
            if key.endswith("self_attn.in_proj_bias"):
                theirs, ours = _without_key_bias(theirs), _without_key_bias(ours)
            torch.testing.assert_close(theirs, ours, rtol=1e-3, atol=1e-5, msg=f"{name}.{key}")
        assert len(figures["epochs"]) == len(epochs)
        for theirs, ours in zip(figures["epochs"], epochs, strict=True):
            for key, value in ours.items():
                if key not in ("seconds", "epoch"):
                    assert theirs[key] == pytest.approx(value, rel=1e-3, abs=1e-4), (
                        f"{name} epoch {ours['epoch']} {key}"
                    )
        if chosen:  # the router's fusion weight, chosen on rank 0 and broadcast
            assert figures["chosen"]["fusion_weight"] == chosen["fusion_weight"]
            assert figures["chosen"]["valid_recall@10_by_fusion_weight"] == pytest.approx(
                chosen["valid_recall@10_by_fusion_weight"], abs=1e-3
            )


def _without_key_bias(bias: torch.Tensor) -> torch.Tensor:
    """Attention's query and value biases. The key bias has a gradient of zero in exact arithmetic (softmax
    ignores a constant added to every key's score), so its float-rounding gradient differs between one and
    two processes and Adam, which divides by its size, turns that noise into steps of either sign."""
    third = bias.shape[0] // 3
    return torch.cat([bias[:third], bias[2 * third :]])


def test_one_process_is_a_single_replica_whose_shard_is_the_whole_batch():
    assert replicas() == Replicas(0, 1)
    rows = np.array([5, 3, 9])
    picked, weight = replicas().shard(rows, np.array([2, 1, 4]))
    assert picked.tolist() == rows.tolist() and weight == 1.0
    assert replicas().from_main(lambda: {"a": 1.0}) == {"a": 1.0}


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_shard_weights_make_the_replica_average_the_global_mean(size: int):
    """Σ_r weight_r · (mean of shard r) / world = the global mean, for any batch size and row counts."""
    rows = np.arange(size) * 10
    counts = np.arange(1, size + 1, dtype=np.float64)
    per_position = np.random.default_rng(size).normal(size=size)  # each row's summed loss over its positions
    total, seen = 0.0, []
    for rank in range(3):
        picked, weight = Replicas(rank, 3).shard(rows, counts)
        mine = picked // 10
        if weight:
            seen += picked.tolist()
            total += weight * per_position[mine].sum() / counts[mine].sum() / 3
    assert sorted(seen) == rows.tolist()
    assert total == pytest.approx(per_position.sum() / counts.sum())


def test_the_entry_point_trains_from_stored_assets_under_torchrun(tmp_path: Path):
    """``torchrun -m sid_platform.distributed_train router``: two replicas, one checkpoint and log from rank 0."""
    store = LocalBlobStore(tmp_path / "assets")
    for name, value in router_assets().items():
        write_artifact(store, name, value)
    out, config = tmp_path / "out", json.dumps({**ROUTER.__dict__, "epochs": 1})
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", f"--nproc_per_node={WORLD}", "-m", "sid_platform.distributed_train"]
    command += ["router", "--out", str(out), "--assets", str(store.root), "--config", config]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    log = json.loads((out / "router_log.json").read_text())
    assert log["world_size"] == WORLD and len(log["epochs"]) == 1
    assert RouterCheckpoint.load(out / "router_checkpoint.safetensors").tokenizer_version == "v-test"
    assert not list(out.glob("*.resume.pt"))  # finished: rank 0 removed its resume file
    assert result.stdout.count("router: finished after 1 epochs") == 1  # rank 0 speaks for both


def test_the_entry_point_runs_in_one_process_too(tmp_path: Path):
    store = LocalBlobStore(tmp_path / "assets")
    for name, value in router_assets().items():
        write_artifact(store, name, value)
    config = json.dumps({**ROUTER.__dict__, "epochs": 1})
    assert train_main(["router", "--out", str(tmp_path / "out"), "--assets", str(store.root), "--config", config]) == 0
    assert json.loads((tmp_path / "out" / "router_log.json").read_text())["world_size"] == 1
