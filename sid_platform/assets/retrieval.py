"""Retrieval stage: ``router_checkpoint`` (the generative router), ``faiss_index`` (the ANN channel) and
``candidates`` (both channels for the evaluated users, retrieved once)."""

import polars as pl
import torch
from dagster import AssetExecutionContext, Output, asset

from sid_platform.assets.reporting import Column, EpochPlot, EpochReport, blend_table, training_report
from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.data.split import UserSequences
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.resources import EvaluationProtocol, MlflowResource, SideFileStorage, config_class
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.candidates import val_at_p
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig
from sid_platform.retrieval.stored import Candidates, retrieve_users
from sid_platform.retrieval.training import SELECTION, train_router
from sid_platform.retrieval.trie import aligned_sids
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.serving import load_codebooks, load_router, load_sasrec, sasrec_blend

GROUP = "retrieval"


class RouterAssetConfig(config_class("RouterFields", RouterConfig)):  # type: ignore[misc]
    """Router hyperparameters; fields and defaults come from ``RouterConfig``."""


class FaissIndexConfig(config_class("FaissIndexFields", AnnIndexConfig)):  # type: ignore[misc]
    """Index kind and search knobs; fields and defaults come from ``AnnIndexConfig``."""


ROUTER_REPORT = EpochReport(
    curves=("loss", "generative_loss", "ann_loss", "valid_recall@10_generative", "valid_recall@10_cosine"),
    plot=EpochPlot("loss", "valid_recall@10_generative", "train loss", "valid Recall@10 (generative)"),
    table=(
        Column("epoch", "epoch"),
        Column("loss", "loss", 3),
        Column("valid R@10 gen", "valid_recall@10_generative"),
        Column("valid R@10 cos", "valid_recall@10_cosine"),
        Column("seconds", "seconds", 0),
    ),
)


@asset(
    group_name=GROUP,
    description="The router: a transformer that writes the next item's Semantic ID (plus an ANN query head); "
    "checkpoint with its config and the codebook version it was trained against.",
)
def router_checkpoint(
    context: AssetExecutionContext,
    config: RouterAssetConfig,
    evaluation_protocol: EvaluationProtocol,
    mlflow: MlflowResource,
    storage: SideFileStorage,
    user_sequences: UserSequences,
    item_embeddings: ItemEmbeddings,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
) -> Output[RouterCheckpoint]:
    sequences, stored, item_ids = user_sequences, load_codebooks(codebooks), user_sequences.vocab.item_ids
    trie, cfg = stored.trie(usid_table, item_ids), RouterConfig(**config.model_dump())
    model, log = train_router(
        sequences.train,
        sequences.valid,
        trie,
        aligned_sids(usid_table, item_ids),
        cfg,
        content=item_embeddings.aligned(item_ids),
        exclude_history=evaluation_protocol.exclude_history,
        # Same data, config and codebooks → same file: a crashed run resumes at its last finished epoch.
        resume=storage.file(f"checkpoints/router_{stored.version}.resume.pt"),
        on_progress=context.log.info,
    )
    best = log.best
    figures = {
        "best_epoch": log.best_epoch,
        "epochs_run": len(log.epochs),
        f"val@{cfg.n_prefixes}": round(val_at_p(model, trie, sequences.valid), 4),
        "best_valid_recall@10_generative": best.get("valid_recall@10_generative", 0.0),
        "best_valid_recall@10_cosine": best.get("valid_recall@10_cosine", 0.0),
        "train_seconds": round(log.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    params = {**config.model_dump(), "tokenizer_version": stored.version}
    report = training_report(context, mlflow, log.epochs, ROUTER_REPORT, params=params, figures=figures)
    resumed = log.resumed_from_epoch if log.resumed_from_epoch is not None else -1
    metadata = {"tokenizer_version": stored.version, "stopped_by": log.stopped_by, "selection": SELECTION}
    return Output(
        RouterCheckpoint.of(model, item_ids, stored.version, log),
        metadata={**report, **metadata, "resumed_from_epoch": resumed},
    )


@asset(group_name=GROUP, description="FAISS index over the router's item vectors (cosine); the ANN channel.")
def faiss_index(config: FaissIndexConfig, router_checkpoint: RouterCheckpoint) -> Output[AnnIndex]:
    router = load_router(router_checkpoint)
    with torch.no_grad():
        keys = router.model.item_keys().numpy()
    index = AnnIndex.build(keys, AnnIndexConfig(**config.model_dump()))
    return Output(
        index,
        metadata={
            "kind": index.kind,
            "items": index.size,
            "dim": int(keys.shape[1]),
            "top_n": config.top_n,
            "tokenizer_version": router.tokenizer_version,
        },
    )


@asset(
    group_name=GROUP,
    description="Retrieval for the validation and test users, run once and read by the reranker and the "
    "evaluation: each user's candidates (prefix channel ∪ ANN channel, with channel flags and base scores), "
    "the generative and hybrid rankings, query vectors, channel coverage and per-stage timings.",
)
def candidates(
    context: AssetExecutionContext,
    evaluation_protocol: EvaluationProtocol,
    user_sequences: UserSequences,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    router_checkpoint: RouterCheckpoint,
    faiss_index: AnnIndex,
) -> Output[Candidates]:
    stored = load_codebooks(codebooks)
    router = load_router(router_checkpoint, user_sequences.vocab.item_ids, stored.version)
    trie = stored.trie(usid_table, router.item_ids)
    k, exclude = max(evaluation_protocol.ks), evaluation_protocol.exclude_history
    found = retrieve_users(
        router.model, trie, faiss_index, user_sequences, k, exclude, router.tokenizer_version, context.log.info
    )
    test, users = found.test, max(len(found.test), 1)
    return Output(
        found,
        metadata={
            "valid_users": len(found.valid),
            "test_users": len(test),
            **{f"test_{key}": round(value, 4) for key, value in test.report.as_dict().items()},
            **{f"{stage}_ms_per_user": round(1000 * s / users, 3) for stage, s in test.seconds.items()},
        },
    )


@asset(
    group_name=GROUP,
    description="SASRec's weight w in the blended ranking of the router's candidates (w · SASRec logit + (1 − w) · "
    "router logit), chosen on validation users among 0, 0.1, ..., 1; the table of every weight tried.",
)
def score_blend(
    evaluation_protocol: EvaluationProtocol,
    user_sequences: UserSequences,
    candidates: Candidates,
    sasrec_model: SASRecCheckpoint,
    router_checkpoint: RouterCheckpoint,
) -> Output[ScoreBlend]:
    k, exclude = max(evaluation_protocol.ks), evaluation_protocol.exclude_history
    candidates.check(k, exclude)
    sasrec = load_sasrec(sasrec_model, user_sequences.vocab.item_ids).model
    found = candidates.retrieval("valid", user_sequences.valid)
    blend = sasrec_blend(found, sasrec, router_checkpoint.config.score_scale, user_sequences.valid, exclude)
    return Output(blend, metadata={"sasrec_weight": blend.sasrec_weight, "validation": blend_table(blend)})
