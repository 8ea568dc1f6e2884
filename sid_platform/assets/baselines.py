"""Baselines trained in the same run: ``popularity_model`` and ``sasrec_model``."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint, SASRecConfig, train_sasrec
from sid_platform.data.split import ItemVocab, UserSequences
from sid_platform.evaluation.plots import twin_line_plot
from sid_platform.evaluation.report import markdown_table
from sid_platform.resources import EvaluationProtocol, MlflowResource, config_class

GROUP = "baselines"


class SASRecAssetConfig(config_class("SASRecFields", SASRecConfig)):  # type: ignore[misc]
    """SASRec hyperparameters; fields and defaults come from ``SASRecConfig``."""


@asset(group_name=GROUP, description="Most-popular items in the training split.")
def popularity_model(data_splits: pl.DataFrame, item_catalog: pl.DataFrame) -> Output[PopularityModel]:
    vocab = ItemVocab.from_catalog(item_catalog)
    model = PopularityModel.fit(UserSequences.from_splits(data_splits, vocab).train, len(vocab))
    top = model.counts.argsort()[::-1][:5]
    return Output(model, metadata={"top_items": ", ".join(vocab.item_ids[i] for i in top)})


@asset(
    group_name=GROUP,
    description="SASRec checkpoint (config, item vocabulary, weights), best epoch on validation Recall@10.",
)
def sasrec_model(
    context: AssetExecutionContext,
    config: SASRecAssetConfig,
    evaluation_protocol: EvaluationProtocol,
    mlflow: MlflowResource,
    data_splits: pl.DataFrame,
    item_catalog: pl.DataFrame,
) -> Output[SASRecCheckpoint]:
    vocab = ItemVocab.from_catalog(item_catalog)
    sequences = UserSequences.from_splits(data_splits, vocab)
    model, log = train_sasrec(
        sequences.train,
        sequences.valid,
        len(vocab),
        SASRecConfig(**config.model_dump()),
        exclude_history=evaluation_protocol.exclude_history,
        on_epoch=lambda e: context.log.info(
            f"sasrec epoch {e['epoch']}: loss {e['loss']:.4f}, valid R@10 {e['valid_recall@10']:.4f}, {e['seconds']:.0f}s"
        ),
    )
    epochs = log.epochs
    figures = {
        "best_epoch": log.best_epoch,
        "epochs_run": len(epochs),
        "best_valid_recall@10": log.best_score,
        "train_seconds": round(log.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    plot = twin_line_plot(
        [e["epoch"] for e in epochs],
        [e["loss"] for e in epochs],
        [e["valid_recall@10"] for e in epochs],
        "epoch",
        "train loss",
        "valid Recall@10",
    )
    mlflow_run = mlflow.log_training_run(
        context,
        params={**config.model_dump(), "exclude_history": evaluation_protocol.exclude_history},
        metrics=figures,
        curves={key: [e[key] for e in epochs] for key in ("loss", "valid_recall@10")},
        plots={"training_plot": plot},
    )
    return Output(
        SASRecCheckpoint.of(model, vocab.item_ids, log),
        metadata={
            **figures,
            "training_curve": MetadataValue.md(
                markdown_table(
                    ["epoch", "loss", "valid R@10", "seconds"],
                    [(e["epoch"], e["loss"], e["valid_recall@10"], round(e["seconds"], 1)) for e in epochs],
                )
            ),
            "training_plot": MetadataValue.md(plot),
            "mlflow_run_id": mlflow_run,
        },
    )
