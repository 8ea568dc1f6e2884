"""Retrieval stage: ``router_checkpoint`` (the generative router) and ``faiss_index`` (the ANN channel)."""

import numpy as np
import polars as pl
import torch
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from sid_platform.data.split import ItemVocab, UserSequences
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.evaluation.plots import twin_line_plot
from sid_platform.evaluation.report import markdown_table
from sid_platform.resources import EvaluationProtocol, MlflowResource, config_class
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig
from sid_platform.retrieval.training import SELECTION, train_router
from sid_platform.retrieval.trie import SidTrie, aligned_sids
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.settings import data_home
from sid_platform.storage import LocalBlobStore, StoredFile

GROUP = "retrieval"


class RouterAssetConfig(config_class("RouterFields", RouterConfig)):  # type: ignore[misc]
    """Router hyperparameters; fields and defaults come from ``RouterConfig``."""


class FaissIndexConfig(config_class("FaissIndexFields", AnnIndexConfig)):  # type: ignore[misc]
    """Index kind and search knobs; fields and defaults come from ``AnnIndexConfig``."""


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
    data_splits: pl.DataFrame,
    item_catalog: pl.DataFrame,
    item_embeddings: ItemEmbeddings,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
) -> Output[RouterCheckpoint]:
    vocab = ItemVocab.from_catalog(item_catalog)
    sequences = UserSequences.from_splits(data_splits, vocab)
    sids = aligned_sids(usid_table, vocab.item_ids)
    trie = SidTrie.for_catalog(usid_table, vocab.item_ids, codebooks.codebook_size)
    content = item_embeddings.aligned(vocab.item_ids)
    cfg = RouterConfig(**config.model_dump())
    model, log = train_router(
        sequences.train,
        sequences.valid,
        trie,
        sids,
        cfg,
        content=content,
        exclude_history=evaluation_protocol.exclude_history,
        # Same data, config and codebooks → same file: a crashed run resumes at its last finished epoch.
        resume=StoredFile(LocalBlobStore(data_home()), f"checkpoints/router_{codebooks.version}.resume.pt"),
        on_epoch=lambda e: context.log.info(
            f"router epoch {e['epoch']}: loss {e['loss']:.3f} (generative {e['generative_loss']:.3f}, "
            f"ann {e['ann_loss']:.3f}), valid R@10 generative {e['valid_recall@10_generative']:.4f} "
            f"cosine {e['valid_recall@10_cosine']:.4f}, {e['seconds']:.0f}s"
        ),
    )
    # Val@P: the validation target's prefix among the user's top-P prefixes at the channel's depth.
    beams = constrained_beam_search(
        model, model.user_states(sequences.valid.histories), trie, 1, cfg.prefix_depth, cfg.n_prefixes
    )
    target_prefix = trie.node_of_item[cfg.prefix_depth][sequences.valid.targets]
    val_at_p = float(np.mean((beams.prefixes == target_prefix[:, None]).any(1))) if len(target_prefix) else 0.0
    epochs = log.epochs
    best = log.best
    plot = twin_line_plot(
        [e["epoch"] for e in epochs],
        [e["loss"] for e in epochs],
        [e["valid_recall@10_generative"] for e in epochs],
        "epoch",
        "train loss",
        "valid Recall@10 (generative)",
    )
    rows = [
        (
            e["epoch"],
            round(e["loss"], 3),
            e["valid_recall@10_generative"],
            e["valid_recall@10_cosine"],
            round(e["seconds"]),
        )
        for e in epochs
    ]
    figures = {
        "best_epoch": log.best_epoch,
        "epochs_run": len(epochs),
        f"val@{cfg.n_prefixes}": round(val_at_p, 4),
        "best_valid_recall@10_generative": best.get("valid_recall@10_generative", 0.0),
        "best_valid_recall@10_cosine": best.get("valid_recall@10_cosine", 0.0),
        "train_seconds": round(log.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    mlflow_run = mlflow.log_training_run(
        context,
        params={**config.model_dump(), "tokenizer_version": codebooks.version},
        metrics=figures,
        curves={
            key: [e[key] for e in epochs]
            for key in ("loss", "generative_loss", "ann_loss", "valid_recall@10_generative", "valid_recall@10_cosine")
        },
        plots={"training_plot": plot},
    )
    return Output(
        RouterCheckpoint.of(model, vocab.item_ids, codebooks.version, log),
        metadata={
            **figures,
            "tokenizer_version": codebooks.version,
            "stopped_by": log.stopped_by,
            "selection": SELECTION,
            "resumed_from_epoch": log.resumed_from_epoch if log.resumed_from_epoch is not None else -1,
            "mlflow_run_id": mlflow_run,
            "training_plot": MetadataValue.md(plot),
            "training_curve": MetadataValue.md(
                markdown_table(["epoch", "loss", "valid R@10 gen", "valid R@10 cos", "seconds"], rows)
            ),
        },
    )


@asset(group_name=GROUP, description="FAISS index over the router's item vectors (cosine); the ANN channel.")
def faiss_index(config: FaissIndexConfig, router_checkpoint: RouterCheckpoint) -> Output[AnnIndex]:
    model = router_checkpoint.model()
    with torch.no_grad():
        keys = model.item_keys().numpy()
    index = AnnIndex.build(keys, AnnIndexConfig(**config.model_dump()))
    return Output(
        index,
        metadata={
            "kind": index.kind,
            "items": index.size,
            "dim": int(keys.shape[1]),
            "top_n": config.top_n,
            "tokenizer_version": router_checkpoint.tokenizer_version,
        },
    )
