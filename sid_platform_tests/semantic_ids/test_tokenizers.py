"""Both tokenizers: they learn, they are deterministic, and their checkpoint rebuilds the same tokenizer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sid_platform.artifacts import decode, encode
from sid_platform.policy import POLICY
from sid_platform.semantic_ids import (
    CodebooksCheckpoint,
    RQKMeansConfig,
    RQKMeansTokenizer,
    RQVAEConfig,
    RQVAETokenizer,
    SemanticTokenizer,
    utilization_per_level,
)
from sid_platform.semantic_ids.spec import TokenizerSpec, auto_codebook_size

SMALL = RQVAEConfig(levels=3, codebook_size=32, latent_dim=16, hidden_dims=(64,), epochs=12, batch_size=256)


@pytest.fixture(scope="module")
def trained_rqvae(tree) -> tuple[RQVAETokenizer, list[dict]]:
    tokenizer = RQVAETokenizer(SMALL)
    return tokenizer, tokenizer.fit(tree.embeddings).epochs


def test_both_tokenizers_report_their_progress(tree):
    lines: list[str] = []
    RQVAETokenizer(replace(SMALL, epochs=2)).fit(tree.embeddings, on_progress=lines.append)
    assert lines[0].startswith("codebooks (rq-vae): k-means init: 3/3 levels")
    assert lines[-1].startswith("codebooks (rq-vae): 2/2 epochs") and "codes used" in lines[-1]
    lines.clear()
    RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=8)).fit(tree.embeddings, on_progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith("codebooks (rq-kmeans): 2/2 levels")


def test_rqvae_reconstruction_error_falls_over_training(trained_rqvae, tree):
    tokenizer, entries = trained_rqvae
    assert len(entries) == SMALL.epochs
    assert entries[-1]["recon_mse"] < 0.6 * entries[0]["recon_mse"]
    assert entries[-1]["loss"] < entries[0]["loss"]
    # reconstruct() speaks the input's units: better than predicting the catalog mean.
    error = ((tokenizer.reconstruct(tree.embeddings) - tree.embeddings) ** 2).mean()
    assert error < 0.5 * tree.embeddings.var(0).sum() / tree.embeddings.shape[1]


def test_rqvae_encode_is_deterministic_and_training_repeats_given_the_seed(trained_rqvae, tree):
    tokenizer, _ = trained_rqvae
    codes = tokenizer.encode(tree.embeddings)
    assert codes.shape == (len(tree.embeddings), 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 32
    np.testing.assert_array_equal(codes, tokenizer.encode(tree.embeddings))
    np.testing.assert_array_equal(codes[:100], tokenizer.encode(tree.embeddings[:100]))  # no batch dependence
    again = RQVAETokenizer(SMALL)
    again.fit(tree.embeddings)
    assert CodebooksCheckpoint.of(again, "e").version == CodebooksCheckpoint.of(tokenizer, "e").version
    other_seed = RQVAETokenizer(replace(SMALL, seed=1))
    other_seed.fit(tree.embeddings)
    assert CodebooksCheckpoint.of(other_seed, "e").version != CodebooksCheckpoint.of(tokenizer, "e").version


@pytest.mark.parametrize("kind", ["rqvae", "rqkmeans"])
@pytest.mark.parametrize("storage", ["file", "io_manager"])
def test_checkpoint_rebuilds_the_same_codes(kind, storage, trained_rqvae, tree, tmp_path: Path):
    if kind == "rqvae":
        tokenizer = trained_rqvae[0]
    else:
        tokenizer = RQKMeansTokenizer(RQKMeansConfig(levels=3, codebook_size=32))
        tokenizer.fit(tree.embeddings)
    original = CodebooksCheckpoint.of(tokenizer, "emb-v1")
    if storage == "file":  # the bundle's safetensors file
        checkpoint = CodebooksCheckpoint.load(original.save(tmp_path / "codebooks.safetensors"))
    else:  # the IO manager's codec (the same safetensors bytes, through a BlobStore)
        checkpoint = decode(*encode(original))
    rebuilt = checkpoint.tokenizer()
    assert isinstance(rebuilt, SemanticTokenizer) and type(rebuilt) is type(tokenizer)
    assert (rebuilt.levels, rebuilt.codebook_size) == (3, 32) == (checkpoint.levels, checkpoint.codebook_size)
    assert checkpoint.tokenizer_kind == kind and checkpoint.config == tokenizer.config
    assert (checkpoint.version, checkpoint.embeddings_version) == (original.version, "emb-v1")
    assert CodebooksCheckpoint.of(rebuilt, "emb-v1").version == original.version
    np.testing.assert_array_equal(rebuilt.encode(tree.embeddings), tokenizer.encode(tree.embeddings))


def test_a_checkpoint_whose_weights_were_altered_is_refused(trained_rqvae):
    checkpoint = CodebooksCheckpoint.of(trained_rqvae[0], "emb-v1")
    altered = replace(checkpoint, weights={**checkpoint.weights, "codebooks": checkpoint.weights["codebooks"] + 1.0})
    with pytest.raises(ValueError, match="hash to"):
        altered.tokenizer()
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        replace(checkpoint, tokenizer_kind="vq").tokenizer()


def test_unfitted_tokenizers_say_so(tree):
    for tokenizer in (RQVAETokenizer(SMALL), RQKMeansTokenizer()):
        with pytest.raises(RuntimeError, match="fit"):
            tokenizer.encode(tree.embeddings)


def _clustered(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, 16)) * 4
    return (centres[rng.integers(64, size=2500)] + rng.normal(size=(2500, 16))).astype(np.float32)


def test_kmeans_init_reaches_more_first_level_codes_than_random_init():
    # A 2-D latent makes the effect structural: tiny random codes around the origin are reached only
    # when they are corners of the codebook's convex hull, while k-means puts every code on data.
    x = _clustered(0)
    used = {}
    for init in ("kmeans", "random"):
        cfg = RQVAEConfig(
            levels=2,
            codebook_size=64,
            latent_dim=2,
            hidden_dims=(32,),
            epochs=3,
            batch_size=256,
            init=init,
            reseed_dead=False,
        )
        tokenizer = RQVAETokenizer(cfg)
        tokenizer.fit(x)
        used[init] = utilization_per_level(tokenizer.encode(x), 64)[0]
    assert used["kmeans"] >= 0.9
    assert used["kmeans"] > used["random"] + 0.3


def test_dead_code_reseeding_keeps_utilization_up(tree):
    # Without re-seeding this toy collapses to a handful of codes per level within a few epochs.
    used, reseeded = {}, {}
    for reseed in (True, False):
        tokenizer = RQVAETokenizer(replace(SMALL, epochs=8, reseed_dead=reseed))
        log = tokenizer.fit(tree.embeddings)
        used[reseed] = utilization_per_level(tokenizer.encode(tree.embeddings), 32)
        reseeded[reseed] = sum(sum(entry["reseeded"]) for entry in log.epochs)
    assert reseeded[True] > 0 and reseeded[False] == 0
    assert min(used[True]) >= 0.75
    assert np.mean(used[True]) > np.mean(used[False]) + 0.4


def test_taxonomy_regularizer_trains_and_logs_its_term(tree):
    cfg = replace(SMALL, epochs=4, taxonomy_weight=0.01)
    log = RQVAETokenizer(cfg).fit(tree.embeddings, tree.categories)
    contrastive = log.curve("contrastive")
    assert all(np.isfinite(contrastive)) and min(contrastive) > 0
    assert all(np.isfinite(log.curve("loss")))
    with pytest.raises(ValueError, match="categories"):
        RQVAETokenizer(cfg).fit(tree.embeddings)


def test_rqkmeans_levels_explain_more_and_normalize_ignores_scale(tree):
    tokenizer = RQKMeansTokenizer(RQKMeansConfig(levels=3, codebook_size=32, normalize=True))
    log = tokenizer.fit(tree.embeddings)
    residuals = log.curve("residual_mse")
    assert residuals == sorted(residuals, reverse=True) and residuals[-1] < residuals[0]
    np.testing.assert_array_equal(tokenizer.encode(3.0 * tree.embeddings), tokenizer.encode(tree.embeddings))
    with pytest.raises(ValueError, match="codebook"):
        RQKMeansTokenizer(RQKMeansConfig(codebook_size=256)).fit(tree.embeddings[:100])


@pytest.mark.parametrize(
    ("n_items", "size"),
    [(12_101, 256), (18_357, 256), (5_120, 256), (5_119, 128), (320, 16), (319, 8), (40, 2), (3, 2)],
)
def test_the_automatic_codebook_size_follows_the_catalog(n_items, size):
    # Beauty and Sports keep TIGER's 256; a small catalog gets at least 20 items per code.
    assert auto_codebook_size(n_items) == size
    assert TokenizerSpec().resolved(n_items).codebook_size == size
    assert TokenizerSpec(codebook_size=64).resolved(n_items).codebook_size == 64  # an explicit size is kept


def test_the_automatic_size_keeps_every_level_in_use_on_a_small_catalog(tree):
    # The default spec (4 levels, RQ-VAE) on 320 items: the blocking check's 80 % floor holds on every level.
    spec = TokenizerSpec().resolved(320)
    tokenizer = spec.build()
    tokenizer.fit(tree.embeddings[:320])
    utilization = utilization_per_level(tokenizer.encode(tree.embeddings[:320]), spec.codebook_size)
    assert len(utilization) == 4 and min(utilization) >= POLICY.min_codebook_utilization
