"""Baselines trained in the same run: ``popularity_model`` and ``sasrec_model``."""

from dagster import AssetExecutionContext, Output, asset

from sid_platform.assets.reporting import Column, EpochPlot, EpochReport, training_report
from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint, SASRecConfig, train_sasrec
from sid_platform.data.split import UserSequences
from sid_platform.resources import EvaluationProtocol, MlflowResource, config_class

GROUP = "baselines"


class SASRecAssetConfig(config_class("SASRecFields", SASRecConfig)):  # type: ignore[misc]
    """SASRec hyperparameters; fields and defaults come from ``SASRecConfig``."""


SASREC_REPORT = EpochReport(
    curves=("loss", "valid_recall@10"),
    plot=EpochPlot("loss", "valid_recall@10", "train loss", "valid Recall@10"),
    table=(
        Column("epoch", "epoch"),
        Column("loss", "loss"),
        Column("valid R@10", "valid_recall@10"),
        Column("seconds", "seconds", 1),
    ),
)


@asset(group_name=GROUP, description="Most-popular items in the training split.")
def popularity_model(user_sequences: UserSequences) -> Output[PopularityModel]:
    vocab = user_sequences.vocab
    model = PopularityModel.fit(user_sequences.train, len(vocab))
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
    user_sequences: UserSequences,
) -> Output[SASRecCheckpoint]:
    sequences = user_sequences
    model, log = train_sasrec(
        sequences.train,
        sequences.valid,
        len(sequences.vocab),
        SASRecConfig(**config.model_dump()),
        exclude_history=evaluation_protocol.exclude_history,
        on_epoch=lambda e: context.log.info(
            f"sasrec epoch {e['epoch']}: loss {e['loss']:.4f}, valid R@10 {e['valid_recall@10']:.4f}, {e['seconds']:.0f}s"
        ),
    )
    figures = {
        "best_epoch": log.best_epoch,
        "epochs_run": len(log.epochs),
        "best_valid_recall@10": log.best_score,
        "train_seconds": round(log.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    params = {**config.model_dump(), "exclude_history": evaluation_protocol.exclude_history}
    report = training_report(context, mlflow, log.epochs, SASREC_REPORT, params=params, figures=figures)
    return Output(SASRecCheckpoint.of(model, sequences.vocab.item_ids, log), metadata=report)
