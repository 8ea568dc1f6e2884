"""The baselines learn: on the generator's data SASRec must beat popularity by a wide margin."""

from pathlib import Path

import numpy as np

from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRec, SASRecCheckpoint, SASRecConfig, train_sasrec
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.evaluation.harness import Protocol, evaluate_scorers

FAST = SASRecConfig(hidden_dim=32, max_len=10, dropout=0.1, lr=5e-3, epochs=40, patience=8, batch_size=64)


def test_popularity_counts_training_items():
    model = PopularityModel.fit([np.array([0, 1]), np.array([1, 2])], 4)
    assert model.counts.tolist() == [1, 2, 1, 0]
    assert model.score([np.array([0])]).shape == (1, 4)


def test_sasrec_learns_the_generator_sequences_and_checkpoint_round_trips(synthetic, tmp_path: Path):
    vocab = ItemVocab.from_catalog(synthetic.items)
    seqs = UserSequences.from_splits(leave_one_out(synthetic.interactions), vocab)
    lines: list[str] = []
    model, log = train_sasrec(seqs.train, seqs.valid, len(vocab), FAST, on_progress=lines.append)
    assert log.best_score == max(log.curve("valid_recall@10")) and log.selection == "valid_recall@10"
    assert lines[0] == f"sasrec: up to {FAST.epochs} epochs, patience {FAST.patience}"
    assert lines[-1].startswith(f"sasrec: finished after {len(log.epochs)} epochs")
    popularity = PopularityModel.fit(seqs.train, len(vocab))
    saved = SASRecCheckpoint.of(model, vocab.item_ids, log).save(tmp_path / "sasrec.safetensors")
    checkpoint = SASRecCheckpoint.load(saved)
    restored = checkpoint.model()
    assert checkpoint.item_ids == vocab.item_ids and checkpoint.config == FAST
    assert checkpoint.log == log and not restored.training
    result = evaluate_scorers(
        {"popularity": popularity.score, "sasrec": restored.score}, seqs.test, len(vocab), Protocol()
    )
    pop, sas = result.metrics["popularity"]["recall@10"], result.metrics["sasrec"]["recall@10"]
    assert sas > 5 * pop and sas > 0.4, result.metrics
    np.testing.assert_array_equal(restored.score(seqs.test.histories[:5]), model.score(seqs.test.histories[:5]))


def test_sasrec_feedforward_width_defaults_to_the_hidden_width():
    narrow = SASRec(10, SASRecConfig(hidden_dim=16, num_layers=1))
    wide = SASRec(10, SASRecConfig(hidden_dim=16, num_layers=1, feedforward_dim=64))
    assert narrow.encoder.layers[0].linear1.out_features == 16 and wide.encoder.layers[0].linear1.out_features == 64
