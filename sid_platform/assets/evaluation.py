"""``evaluation``: every model present, one protocol, a markdown table and a JSON document."""

import polars as pl
from dagster import AssetExecutionContext, Output, asset

from sid_platform.assets.reporting import evaluation_metadata
from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.data.split import UserSequences
from sid_platform.evaluation.harness import Protocol
from sid_platform.evaluation.report import json_bytes, metrics_table
from sid_platform.reranking.dpo import RerankerCheckpoint
from sid_platform.resources import EvaluationProtocol, SideFileStorage
from sid_platform.retrieval.stored import Candidates
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.serving import load_codebooks, load_reranker, load_sasrec
from sid_platform.serving.evaluation import evaluation_document, summary_line


@asset(
    group_name="evaluation", description="Recall@K / NDCG@K of every model on the held-out users (test and validation)."
)
def evaluation(
    context: AssetExecutionContext,
    evaluation_protocol: EvaluationProtocol,
    storage: SideFileStorage,
    user_sequences: UserSequences,
    popularity_model: PopularityModel,
    sasrec_model: SASRecCheckpoint,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    candidates: Candidates,
    dpo_checkpoint: RerankerCheckpoint,
) -> Output[dict]:
    sasrec = load_sasrec(sasrec_model, user_sequences.vocab.item_ids)
    scorers = {"popularity": popularity_model.score, "sasrec": sasrec.model.score}
    protocol = Protocol(exclude_history=evaluation_protocol.exclude_history, ks=tuple(evaluation_protocol.ks))
    reranker, stored_codebooks = load_reranker(dpo_checkpoint), load_codebooks(codebooks)
    document = {
        "run_id": context.run_id,
        **evaluation_document(scorers, candidates, reranker, user_sequences, protocol, stored_codebooks, usid_table),
    }
    path = storage.store().write(f"runs/{context.run_id}/evaluation.json", json_bytes(document))
    context.log.info(f"{summary_line(document)}\n{metrics_table(document['test']['metrics'])}")
    return Output(document, metadata=evaluation_metadata(document, str(path)))
