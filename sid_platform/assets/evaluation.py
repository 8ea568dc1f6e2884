"""``evaluation``: every model present, one protocol, a markdown table, a JSON document and the run's report page."""

import polars as pl
from dagster import AssetExecutionContext, Output, asset

from sid_platform.assets.reporting import evaluation_metadata, publish_report, run_report
from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.data.split import UserSequences
from sid_platform.evaluation.harness import Protocol
from sid_platform.evaluation.report import json_bytes, metrics_table
from sid_platform.reranking.dpo import RerankerCheckpoint
from sid_platform.resources import EvaluationProtocol, MlflowResource, SideFileStorage
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.retrieval.stored import Candidates
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.serving import load_codebooks, load_reranker, load_sasrec
from sid_platform.serving.evaluation import SasrecBlend, channels_table, evaluation_document, summary_line

__all__ = ["channels_table", "evaluation"]  # channels_table: `sid-platform demo` imports it from here


@asset(
    group_name="evaluation",
    description="Recall@K / NDCG@K of every model on the held-out users (test and validation), and the run's "
    "one-page HTML report (evaluation, serving model, channels, codebooks, training curves, the reranker's study).",
)
def evaluation(
    context: AssetExecutionContext,
    evaluation_protocol: EvaluationProtocol,
    mlflow: MlflowResource,
    storage: SideFileStorage,
    user_sequences: UserSequences,
    popularity_model: PopularityModel,
    sasrec_model: SASRecCheckpoint,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    router_checkpoint: RouterCheckpoint,
    candidates: Candidates,
    dpo_checkpoint: RerankerCheckpoint,
    score_blend: ScoreBlend,
) -> Output[dict]:
    sasrec = load_sasrec(sasrec_model, user_sequences.vocab.item_ids)
    blend = SasrecBlend(sasrec.model, score_blend, router_checkpoint.config.score_scale)
    scorers = {"popularity": popularity_model.score, "sasrec": sasrec.model.score}
    protocol = Protocol(exclude_history=evaluation_protocol.exclude_history, ks=tuple(evaluation_protocol.ks))
    reranker, stored_codebooks = load_reranker(dpo_checkpoint), load_codebooks(codebooks)
    document = {
        "run_id": context.run_id,
        **evaluation_document(
            scorers,
            candidates,
            reranker,
            user_sequences,
            protocol,
            stored_codebooks,
            usid_table,
            context.log.info,
            blend,
        ),
    }
    path = str(storage.store().write(f"runs/{context.run_id}/evaluation.json", json_bytes(document)))
    context.log.info(f"{summary_line(document)}\n{metrics_table(document['test']['metrics'])}")
    models = {"sasrec": sasrec_model, "router": router_checkpoint, "reranker": dpo_checkpoint}
    report = run_report(context, document, path, codebooks=codebooks, usid_table=usid_table, **models)
    links = publish_report(context, storage, mlflow, document, report)
    return Output(document, metadata={**evaluation_metadata(document, path), **links})
