"""Training the router on the generator's data: it learns, its checkpoint round-trips, a crash resumes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.evaluation.metrics import recall_at_k
from sid_platform.retrieval import RouterCheckpoint, RouterConfig, SemanticRouter, SidTrie, constrained_beam_search
from sid_platform.retrieval.training import SELECTION, train_router
from sid_platform.semantic_ids.usid import build_usid_table
from sid_platform.storage import LocalBlobStore, StoredFile

CFG = RouterConfig(
    hidden_dim=32, num_layers=1, num_heads=2, max_len=10, dropout=0.1, lr=5e-3, batch_size=64, epochs=5,
    patience=10, num_negatives=0, n_prefixes=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def setup(synthetic):
    vocab = ItemVocab.from_catalog(synthetic.items)
    sequences = UserSequences.from_splits(leave_one_out(synthetic.interactions), vocab)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 8, size=(len(vocab), 2))
    table = build_usid_table(vocab.item_ids, codes, "v-test")
    sids = table.select(["c1", "c2", "suffix"]).to_numpy()
    trie = SidTrie.from_sids(sids, [8, 8, int(sids[:, -1].max()) + 1])
    return sequences, trie, sids


def test_the_router_learns_and_beats_chance(setup):
    sequences, trie, sids = setup
    lines: list[str] = []
    model, log = train_router(sequences.train, sequences.valid, trie, sids, CFG, on_progress=lines.append)
    assert log.epochs[-1]["loss"] < log.epochs[0]["loss"]
    assert lines[0] == f"router: up to {CFG.epochs} epochs, patience {CFG.patience}"
    assert lines[-2].startswith(f"router: {CFG.epochs}/{CFG.epochs} epochs") and "valid_recall@10_cosine" in lines[-2]
    assert lines[-1].startswith(f"router: finished after {CFG.epochs} epochs")
    states = model.user_states(sequences.test.histories)
    beams = constrained_beam_search(model, states, trie, beam_size=10)
    chance = 10 / len(sids)
    assert recall_at_k(beams.items, sequences.test.targets, 10) > 3 * chance


@pytest.mark.parametrize("use_content", [True, False])
def test_checkpoint_round_trip_gives_the_same_scores(setup, tmp_path: Path, use_content: bool):
    sequences, trie, sids = setup
    cfg = RouterConfig(**{**CFG.__dict__, "epochs": 1})
    content = np.random.default_rng(1).normal(size=(len(sids), 5)).astype(np.float32) if use_content else None
    model, log = train_router(sequences.train, sequences.valid, trie, sids, cfg, content=content)
    assert log.selection == SELECTION
    item_ids = [str(i) for i in range(len(sids))]
    path = RouterCheckpoint.of(model, item_ids, "v-test", log).save(tmp_path / "router.safetensors")
    checkpoint = RouterCheckpoint.load(path)
    restored = checkpoint.model()
    histories = sequences.test.histories[:20]
    assert np.array_equal(model.cosine_scores(histories), restored.cosine_scores(histories))
    assert checkpoint.tokenizer_version == "v-test" and checkpoint.config == cfg and checkpoint.item_ids == item_ids
    assert checkpoint.log == log and (restored.content_proj is not None) == use_content


def test_a_crashed_run_resumes_from_its_last_epoch(setup, tmp_path: Path):
    sequences, trie, sids = setup
    resume = StoredFile(LocalBlobStore(tmp_path), "checkpoints/router.resume.pt")
    cfg = RouterConfig(**{**CFG.__dict__, "epochs": 2})

    def crash(entry: dict) -> None:
        if entry["epoch"] == 1:
            raise KeyboardInterrupt  # the process dies after epoch 0 was saved

    with pytest.raises(KeyboardInterrupt):
        train_router(sequences.train, sequences.valid, trie, sids, cfg, resume=resume, on_epoch=crash)
    assert resume.read() is not None
    model, log = train_router(sequences.train, sequences.valid, trie, sids, cfg, resume=resume)
    assert log.resumed_from_epoch == 1
    assert [e["epoch"] for e in log.epochs] == [0, 1]
    assert resume.read() is None  # a finished run leaves no resume file behind
    # A file left by another run (other config, data or codebooks) is not picked up.
    with pytest.raises(KeyboardInterrupt):
        train_router(sequences.train, sequences.valid, trie, sids, cfg, resume=resume, on_epoch=crash)
    one_epoch = RouterConfig(**{**CFG.__dict__, "epochs": 1})
    _, fresh = train_router(sequences.train, sequences.valid, trie, sids, one_epoch, resume=resume)
    assert fresh.resumed_from_epoch is None


def test_item_id_dropout_leaves_ids_out_in_training_only_and_never_touches_the_random_stream_when_off():
    sids = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]])
    content = torch.randn(4, 6)
    model = SemanticRouter(RouterConfig(hidden_dim=8, num_heads=2, item_id_dropout=1.0), sids, [2, 2, 1], content)
    torch.nn.init.normal_(model.item_emb.weight)
    with torch.no_grad():
        model.eval()
        with_ids = model.item_tokens()
        model.item_id_known[:] = False
        without_ids = model.item_tokens()  # a new item's token: codes and content alone
        model.item_id_known[:] = True
        model.train()
        assert torch.equal(model.item_tokens(), without_ids) and not torch.equal(with_ids, without_ids)
        off = SemanticRouter(RouterConfig(hidden_dim=8, num_heads=2), sids, [2, 2, 1], content).train()
        torch.manual_seed(0)
        off.item_tokens()
        after = torch.rand(1)
        torch.manual_seed(0)
        assert torch.equal(torch.rand(1), after)  # p = 0 draws nothing: earlier runs reproduce


def test_the_token_ablations_leave_out_their_part_and_an_item_needs_one_part():
    sids = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]])
    content = torch.randn(4, 6)
    torch.manual_seed(0)
    full = SemanticRouter(RouterConfig(hidden_dim=8, num_heads=2), sids, [2, 2, 1], content).eval()
    torch.manual_seed(0)
    no_codes = SemanticRouter(RouterConfig(hidden_dim=8, num_heads=2, use_codes=False), sids, [2, 2, 1], content)
    with torch.no_grad():
        codes = full.token_emb[0](sids[:, 0]) + full.token_emb[1](sids[:, 1])
        assert torch.allclose(no_codes.eval().item_tokens(), full.item_tokens() - codes, atol=1e-6)
    cfg = RouterConfig(hidden_dim=8, num_heads=2, use_codes=False, use_item_embedding=False)
    assert SemanticRouter(cfg, sids, [2, 2, 1], content).item_tokens().shape == (4, 8)  # content alone
    with pytest.raises(ValueError, match="all are switched off"):
        SemanticRouter(cfg, sids, [2, 2, 1], None)
