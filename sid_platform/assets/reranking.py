"""Reranking stage: ``dpo_checkpoint``, the bounded DPO reranker, with its diagnostics in the metadata."""

from dataclasses import replace

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from sid_platform.data.split import ItemVocab, UserSequences
from sid_platform.evaluation.plots import twin_line_plot
from sid_platform.evaluation.report import markdown_table
from sid_platform.reranking.dpo import RerankerCheckpoint, RerankerConfig
from sid_platform.reranking.study import run_study, with_deltas
from sid_platform.resources import EvaluationProtocol, MlflowResource, config_class
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.retrieval.trie import SidTrie
from sid_platform.semantic_ids import CodebooksCheckpoint, utilization_per_level
from sid_platform.semantic_ids.usid import code_columns, table_levels

GROUP = "reranking"


class DpoAssetConfig(config_class("RerankerFields", RerankerConfig)):  # type: ignore[misc]
    """Reranker knobs; fields and defaults come from ``RerankerConfig`` (α = 0.05, hard negatives)."""


def study_table(rows: list[dict]) -> str:
    headers = ["variant", "users", "R@10", "ΔR@10", "N@10", "ΔN@10", "coverage", "candidates", "valid pref. acc."]
    body = [
        (
            r["variant"],
            r["users"],
            r["recall@10"],
            f"{r['delta_recall@10']:+.1%}",
            r["ndcg@10"],
            f"{r['delta_ndcg@10']:+.1%}",
            r["coverage"],
            round(r["candidates_per_user"], 1),
            "" if r["valid_preference_accuracy"] is None else round(r["valid_preference_accuracy"], 4),
        )
        for r in rows
    ]
    return markdown_table(headers, body)


@asset(
    group_name=GROUP,
    description="Bounded DPO reranker over the router's candidates (score = base + α·tanh(δ)), "
    "with bounded-vs-unbounded and hard-vs-random diagnostics.",
)
def dpo_checkpoint(
    context: AssetExecutionContext,
    config: DpoAssetConfig,
    evaluation_protocol: EvaluationProtocol,
    mlflow: MlflowResource,
    data_splits: pl.DataFrame,
    item_catalog: pl.DataFrame,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    router_checkpoint: RouterCheckpoint,
    faiss_index: AnnIndex,
) -> Output[RerankerCheckpoint]:
    vocab = ItemVocab.from_catalog(item_catalog)
    sequences = UserSequences.from_splits(data_splits, vocab)
    router = router_checkpoint.model()
    trie = SidTrie.for_catalog(usid_table, vocab.item_ids, codebooks.codebook_size)
    k = max(evaluation_protocol.ks)
    exclude = evaluation_protocol.exclude_history
    found_valid = retrieve(router, trie, faiss_index, sequences.valid.histories, k, faiss_index.top_n, exclude)
    found_test = retrieve(router, trie, faiss_index, sequences.test.histories, k, faiss_index.top_n, exclude)
    keys = found_valid.keys
    cfg = RerankerConfig(**config.model_dump())
    study = run_study(found_valid, found_test, keys, sequences.valid, sequences.test, cfg, exclude)
    rows = with_deltas(study.table)
    # Carried from upstream so the report reads as one page: codebook utilization and channel coverage.
    codes = usid_table.select(code_columns(table_levels(usid_table))).to_numpy()
    utilization = utilization_per_level(codes, codebooks.codebook_size)
    channels = ChannelReport.measure(found_test.prefix, found_test.ann, found_test.candidates, sequences.test.targets)
    upstream = markdown_table(
        ["codebook utilization per level", "prefix coverage", "ANN coverage", "union coverage", "candidates"],
        [
            (
                ", ".join(f"{u:.1%}" for u in utilization),
                channels.coverage_prefix,
                channels.coverage_ann,
                channels.coverage_union,
                round(channels.candidates_union, 1),
            )
        ],
    )
    table = f"{study_table(rows)}\n\nUpstream (test users):\n\n{upstream}"
    context.log.info(f"DPO reranking study\n{table}")
    curve = study.curves["bounded, hard negatives"]
    plot = twin_line_plot(
        [e["epoch"] for e in curve],
        [e["train_accuracy"] for e in curve],
        [e["valid_accuracy"] for e in curve],
        "epoch",
        "train preference accuracy",
        "validation preference accuracy",
    )
    main = {(r["variant"], r["users"]): r for r in rows}
    figures = {
        f"{users}_{metric}_{variant}".replace(" ", "_").replace(",", "").replace("(", "").replace(")", ""): round(
            main[(name, label)][key], 4
        )
        for name, variant in (("base (cosine)", "base"), ("bounded, hard negatives", "dpo"))
        for label, users in (("test", "test"), ("validation (held-out users)", "valid"))
        for key, metric in (("recall@10", "recall10"), ("ndcg@10", "ndcg10"))
    }
    accuracy = {
        name.replace(", ", "_").replace(" ", "_"): round(main[(name, "test")]["valid_preference_accuracy"], 4)
        for name in study.curves
    }
    mlflow_run = mlflow.log_training_run(
        context,
        params={**config.model_dump(), "router_tokenizer_version": router_checkpoint.tokenizer_version},
        metrics={**figures, **{f"valid_pref_acc_{k}": v for k, v in accuracy.items()}},
        curves={key: [e[key] for e in curve] for key in ("loss", "train_accuracy", "valid_accuracy")},
        plots={"preference_accuracy": plot},
    )
    checkpoint = replace(
        RerankerCheckpoint.of(study.model, int(keys.shape[1]), study.log),
        tokenizer_version=router_checkpoint.tokenizer_version,
        study=rows,
        curves=study.curves,
        users={"train": study.train_users, "held_out": study.holdout_users},
        upstream={"utilization_per_level": utilization, "channels": channels.as_dict()},
    )
    return Output(
        checkpoint,
        metadata={
            "study": MetadataValue.md(table),
            "preference_accuracy_plot": MetadataValue.md(plot),
            "train_users": study.train_users,
            "held_out_users": study.holdout_users,
            "alpha": cfg.alpha,
            "best_epoch": study.log.best_epoch,
            "mlflow_run_id": mlflow_run,
            **figures,
            **{f"valid_preference_accuracy_{k}": v for k, v in accuracy.items()},
        },
    )
