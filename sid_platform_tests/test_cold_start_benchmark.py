"""The pieces of ``benchmarks/cold_start.py`` on generated data with tiny models (the benchmark itself runs on Beauty):
the held-out items leave training entirely, come back through ``add_items``, and only the SID path can rank them."""

import json

import numpy as np
import polars as pl
import pytest

from benchmarks.cold_start import cold_table, hold_out, run
from sid_platform.baselines.sasrec import SASRecConfig
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.data.synthetic import generate
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.retrieval.ann import AnnIndexConfig
from sid_platform.retrieval.router import RouterConfig
from sid_platform.semantic_ids.spec import TokenizerSpec


@pytest.fixture(scope="module")
def data() -> tuple[UserSequences, pl.DataFrame, ItemEmbeddings]:
    """Synthetic logs and content vectors that follow the category tree (what a text encoder would see)."""
    loaded = generate(n_users=500, n_items=120, seed=3)
    catalog = loaded.items
    sequences = UserSequences.from_splits(leave_one_out(loaded.interactions), ItemVocab.from_catalog(catalog))
    rng = np.random.default_rng(0)
    paths = [tuple(path) for path in catalog["categories"].to_list()]
    leaves = {path: rng.normal(size=16) for path in sorted(set(paths))}
    vectors = np.stack([leaves[path] + 0.1 * rng.normal(size=16) for path in paths]).astype(np.float32)
    return sequences, catalog, ItemEmbeddings(catalog["item_id"].to_list(), vectors, ["minilm"], "synthetic-v1")


def test_held_out_items_leave_training_and_validation_and_keep_their_test_cases(data):
    sequences, _, _ = data
    split = hold_out(sequences, 0.1, seed=0)
    n = len(sequences.vocab)
    assert split.n_kept == n - 12 and sorted(split.item_ids) == sorted(sequences.vocab.item_ids)
    assert all((s < split.n_kept).all() for s in split.train)
    assert all((h < split.n_kept).all() for h in split.valid.histories) and (split.valid.targets < split.n_kept).all()
    assert all((h < split.n_kept).all() for h in split.known("test")) and len(split.valid_all) == len(sequences.valid)
    assert len(split.test) == len(sequences.test) and 0 < split.cold("test").sum() < len(split.test)
    assert split.cold("valid").sum() == len(sequences.valid) - len(split.valid)
    index = {item: i for i, item in enumerate(split.item_ids)}
    full_ids = sequences.vocab.item_ids
    for history, full in zip(split.test.histories, sequences.test.histories, strict=True):
        assert [split.item_ids[i] for i in history] == [full_ids[i] for i in full]  # same items, new indices
    assert [split.item_ids[t] for t in split.test.targets] == [full_ids[t] for t in sequences.test.targets]
    interactions = sum(len(s) for s in sequences.train)
    held = {index[item] for item in split.held_ids}
    removed = sum(int(np.isin([index[full_ids[i]] for i in s], list(held)).sum()) for s in sequences.train)
    assert sum(len(s) for s in split.train) == interactions - removed


def test_only_the_sid_path_ranks_items_it_never_trained_on(data):
    sequences, catalog, embeddings = data
    lines: list[str] = []
    payload = run(
        sequences,
        catalog,
        embeddings,
        share=0.1,
        seed=0,
        spec=TokenizerSpec(tokenizer="rqkmeans", levels=2, codebook_size=8, kmeans_niter=10),
        router_cfg=RouterConfig(hidden_dim=32, num_layers=1, max_len=10, dropout=0.1, epochs=15, patience=15, n_prefixes=3),
        sasrec_cfg=SASRecConfig(hidden_dim=32, max_len=10, dropout=0.1, epochs=5, patience=5),
        ann=AnnIndexConfig(top_n=20),
        on_progress=lines.append,
    )  # fmt: skip
    json.dumps(payload)  # what write_result stores
    figures = payload["figures"]
    assert payload["held_out_items"] == 12 and payload["add_items"]["added"] == 12
    assert figures["sasrec"]["cold"]["recall@10"] == 0.0 and figures["popularity"]["cold"]["recall@10"] == 0.0
    assert payload["cold_target_coverage"]["union"] > 0  # the channels reach held-out targets
    assert max(figures[name]["cold"]["recall@10"] for name in ("router_fused", "router_hybrid_cosine")) > 0
    assert figures["sasrec"]["warm"]["recall@10"] > 0 and set(figures["router_fused"]) == {"cold", "warm", "all"}
    table = cold_table(payload)
    assert table.count("\n") == 1 + len(figures) and "| sasrec | 0.0000 |" in table
    # With vectors borrowed through the Semantic-ID prefix, SASRec ranks the new items too.
    assert set(payload["valid_figures"]) == set(figures) and "sasrec+borrowed" in figures
    assert figures["sasrec+borrowed"]["cold"]["recall@10"] > 0


def test_a_work_dir_keeps_the_trained_models_and_a_rerun_measures_the_same_figures(data, tmp_path):
    sequences, catalog, embeddings = data
    kwargs = dict(
        share=0.1,
        seed=1,
        spec=TokenizerSpec(tokenizer="rqkmeans", levels=2, codebook_size=8, kmeans_niter=5),
        router_cfg=RouterConfig(hidden_dim=16, num_layers=1, max_len=10, epochs=2, patience=2, n_prefixes=3),
        sasrec_cfg=SASRecConfig(hidden_dim=16, max_len=10, epochs=1, patience=1),
        ann=AnnIndexConfig(top_n=20),
        on_progress=None,
        work_dir=tmp_path,
    )
    first = run(sequences, catalog, embeddings, **kwargs)
    (folder,) = tmp_path.iterdir()
    assert {p.name for p in folder.iterdir()} >= {"router.safetensors", "sasrec.safetensors", "codebooks.safetensors"}
    again = run(sequences, catalog, embeddings, **kwargs)  # loads: nothing trains
    assert again["figures"] == first["figures"] and again["train_seconds"] == first["train_seconds"]
    other = run(sequences, catalog, embeddings, **{**kwargs, "seed": 2})
    assert len(list(tmp_path.iterdir())) == 2 and other["held_out_items"] == 12
