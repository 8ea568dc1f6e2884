"""Reranking stage: ``dpo_checkpoint``, the bounded DPO reranker, with its diagnostics in the metadata."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from sid_platform.assets.reporting import EpochPlot, EpochReport, training_report
from sid_platform.data.split import UserSequences
from sid_platform.reranking.dpo import RerankerCheckpoint, RerankerConfig
from sid_platform.reranking.study import (
    SERVED,
    preference_accuracies,
    run_study,
    study_checkpoint,
    study_figures,
    study_report,
    with_deltas,
)
from sid_platform.resources import EvaluationProtocol, MlflowResource, config_class
from sid_platform.retrieval.stored import Candidates
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.serving import load_codebooks

GROUP = "reranking"

PREFERENCE_REPORT = EpochReport(
    curves=("loss", "train_accuracy", "valid_accuracy"),
    plot=EpochPlot(
        "train_accuracy",
        "valid_accuracy",
        "train preference accuracy",
        "validation preference accuracy",
        name="preference_accuracy",
        key="preference_accuracy_plot",
    ),
)


class DpoAssetConfig(config_class("RerankerFields", RerankerConfig)):  # type: ignore[misc]
    """Reranker knobs; fields and defaults come from ``RerankerConfig`` (α = 0.05, hard negatives)."""


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
    user_sequences: UserSequences,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    candidates: Candidates,
) -> Output[RerankerCheckpoint]:
    candidates.check(max(evaluation_protocol.ks), evaluation_protocol.exclude_history)
    sequences, cfg = user_sequences, RerankerConfig(**config.model_dump())
    valid, test = candidates.retrieval("valid", sequences.valid), candidates.retrieval("test", sequences.test)
    study = run_study(valid, test, valid.keys, sequences.valid, sequences.test, cfg, candidates.exclude_history)
    rows, channels, version = with_deltas(study.table), candidates.test.report, candidates.tokenizer_version
    utilization = load_codebooks(codebooks).utilization(usid_table)
    table = study_report(rows, utilization, channels)
    context.log.info(f"DPO reranking study\n{table}")
    accuracy = preference_accuracies(rows)
    report = training_report(
        context,
        mlflow,
        study.curves[SERVED.label],
        PREFERENCE_REPORT,
        params={**config.model_dump(), "router_tokenizer_version": version},
        figures=study_figures(rows),
        metrics={f"valid_pref_acc_{k}": v for k, v in accuracy.items()},
    )
    metadata = {"study": MetadataValue.md(table), "train_users": study.train_users, "alpha": cfg.alpha}
    metadata |= {"held_out_users": study.holdout_users, "best_epoch": study.log.best_epoch, **report}
    metadata |= {f"valid_preference_accuracy_{k}": v for k, v in accuracy.items()}
    checkpoint = study_checkpoint(study, rows, int(valid.keys.shape[1]), version, utilization, channels)
    return Output(checkpoint, metadata=metadata)
