"""Run-config presets, typed: each profile is the core config of every configurable asset, and the data source.

``test`` (seconds, synthetic data), ``default`` (Amazon Beauty on 2 cores, minutes) and ``full`` (longer
training, a GPU when one is lent). Profiles are built from the same dataclasses the Dagster configs are
generated from, so a renamed or mistyped knob fails where the profile is written, and the test suite
validates every profile's run config against the jobs' config schemas. ``run_config`` is the one function
that turns a profile into the run config of the graph's jobs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sid_platform.baselines.sasrec import SASRecConfig
from sid_platform.embed.pipeline import EmbeddingSpec
from sid_platform.policy import QuarantineLimits
from sid_platform.reranking.dpo import RerankerConfig
from sid_platform.retrieval.ann import AnnIndexConfig
from sid_platform.retrieval.router import RouterConfig
from sid_platform.semantic_ids.spec import TokenizerSpec


@dataclass(frozen=True)
class Profile:
    """One preset. Each config field is named after the asset (op) it configures, or (``CHECK_OPS``) stands
    for the checks it configures; defaults are the ``default`` profile, which is what the Dagster configs
    default to."""

    item_embeddings: EmbeddingSpec = field(default_factory=EmbeddingSpec)
    codebooks: TokenizerSpec = field(default_factory=TokenizerSpec)
    sasrec_model: SASRecConfig = field(default_factory=SASRecConfig)
    router_checkpoint: RouterConfig = field(default_factory=RouterConfig)
    faiss_index: AnnIndexConfig = field(default_factory=AnnIndexConfig)
    dpo_checkpoint: RerankerConfig = field(default_factory=RerankerConfig)
    quarantine_limits: QuarantineLimits = field(default_factory=QuarantineLimits)
    dataset_source: str | None = None  # the dataset resource's source; None: its own default (auto)


# Profile fields that configure asset checks rather than one asset: field -> the check ops (named by
# Dagster ``<asset>_<check>``) that take its config.
CHECK_OPS: dict[str, tuple[str, ...]] = {
    "quarantine_limits": (
        "raw_interactions_raw_interactions_expectations",
        "item_catalog_item_catalog_expectations",
    ),
}


PROFILES: dict[str, Profile] = {
    # Seconds on the synthetic generator: small models, short schedules.
    "test": Profile(
        codebooks=TokenizerSpec(levels=3, codebook_size=16, epochs=30, batch_size=128),
        sasrec_model=SASRecConfig(
            hidden_dim=32, max_len=10, dropout=0.1, lr=0.005, epochs=40, patience=8, batch_size=64, num_negatives=0
        ),
        router_checkpoint=RouterConfig(
            hidden_dim=32,
            num_layers=1,
            num_heads=2,
            max_len=10,
            dropout=0.1,
            lr=0.005,
            epochs=25,
            patience=6,
            batch_size=64,
            num_negatives=0,
            n_prefixes=4,
        ),
        faiss_index=AnnIndexConfig(top_n=30),
        dpo_checkpoint=RerankerConfig(pool_size=20, epochs=5),
        dataset_source="synthetic",
    ),
    "default": Profile(),
    # Longer schedules (a GPU when one is lent); same code, more patience, the reference router size.
    "full": Profile(
        sasrec_model=SASRecConfig(epochs=200, patience=10),
        router_checkpoint=RouterConfig(hidden_dim=256, num_layers=4, num_heads=8, epochs=200, patience=8),
    ),
}
PROFILE_NAMES = tuple(PROFILES)


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]


def _changed(config: Any) -> dict[str, Any]:
    """The fields that differ from the dataclass's defaults, as run-config values (tuples become lists)."""
    default = type(config)()
    return {
        f.name: list(value) if isinstance(value, tuple) else value
        for f in dataclasses.fields(config)
        if (value := getattr(config, f.name)) != getattr(default, f.name)
    }


def run_config(name: str) -> dict[str, Any]:
    """The run config of profile ``name`` for the graph's jobs: every asset's knobs that differ from the
    defaults, and the data source when the profile names one."""
    chosen = profile(name)
    ops = {}
    for f in dataclasses.fields(chosen):
        value = getattr(chosen, f.name)
        if dataclasses.is_dataclass(value) and (changed := _changed(value)):
            for op in CHECK_OPS.get(f.name, (f.name,)):
                ops[op] = {"config": dict(changed)}
    config: dict[str, Any] = {"ops": ops}
    if chosen.dataset_source is not None:
        config["resources"] = {"dataset": {"config": {"source": chosen.dataset_source}}}
    return config
