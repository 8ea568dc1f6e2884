"""``evaluation``: every model present, one protocol, a markdown table and a JSON document."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.data.split import EvalCases, ItemVocab, UserSequences
from sid_platform.evaluation.harness import Protocol, evaluate_scorers
from sid_platform.evaluation.metrics import ranking_metrics
from sid_platform.evaluation.report import markdown_table, metrics_table, write_json
from sid_platform.reranking.dpo import Reranker, RerankerCheckpoint, rerank
from sid_platform.resources import EvaluationProtocol
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterCheckpoint, SemanticRouter
from sid_platform.retrieval.trie import SidTrie
from sid_platform.semantic_ids import CodebooksCheckpoint, utilization_per_level
from sid_platform.semantic_ids.usid import code_columns, table_levels
from sid_platform.sequences import exclude_seen, ranking_depth
from sid_platform.settings import data_home

# Which ranking the platform serves: the router's hybrid candidates, reordered by the bounded DPO reranker.
SERVING_MODEL = "router_hybrid_dpo"


def evaluate_retrieval(
    router: SemanticRouter, trie: SidTrie, index: AnnIndex, cases: EvalCases, protocol: Protocol, reranker: Reranker
) -> dict:
    """The router's rankings (generative, hybrid + cosine, hybrid + DPO), channel coverage, candidates, cost."""
    k = max(protocol.ks)
    found = retrieve(router, trie, index, cases.histories, k, index.top_n, protocol.exclude_history)
    channels = ChannelReport.measure(found.prefix, found.ann, found.candidates, cases.targets)
    depth = ranking_depth(k, cases.histories, protocol.exclude_history)
    reranked, _ = rerank(reranker, found.queries, found.keys, found.candidates, found.base_scores, depth)
    if protocol.exclude_history:
        reranked = exclude_seen(reranked, cases.histories, k)
    users = max(len(cases), 1)
    return {
        "metrics": {
            "router_generative": ranking_metrics(found.generative, cases.targets, protocol.ks),
            "router_hybrid_cosine": ranking_metrics(found.hybrid_cosine, cases.targets, protocol.ks),
            "router_hybrid_dpo": ranking_metrics(reranked[:, :k], cases.targets, protocol.ks),
        },
        "channels": channels.as_dict(),
        "retrieval_ms_per_user": {name: 1000 * s / users for name, s in found.seconds.items()},
        "prefix_channel": {"depth": router.cfg.prefix_depth, "prefixes": router.cfg.n_prefixes},
        "ann_channel": {"kind": index.kind, "top_n": index.top_n},
    }


def channels_table(split: dict) -> str:
    """Coverage and candidates per channel, as the reference design reports them."""
    c = split["channels"]
    prefix, ann = split["prefix_channel"], split["ann_channel"]
    rows = [
        (f"prefix (top {prefix['prefixes']} at depth {prefix['depth']})", c["coverage_prefix"], c["candidates_prefix"]),
        (f"ANN ({ann['kind']}, top {ann['top_n']})", c["coverage_ann"], c["candidates_ann"]),
        ("union", c["coverage_union"], c["candidates_union"]),
    ]
    return markdown_table(["channel", "coverage", "candidates per user"], rows)


@asset(
    group_name="evaluation", description="Recall@K / NDCG@K of every model on the held-out users (test and validation)."
)
def evaluation(
    context: AssetExecutionContext,
    evaluation_protocol: EvaluationProtocol,
    data_splits: pl.DataFrame,
    item_catalog: pl.DataFrame,
    popularity_model: PopularityModel,
    sasrec_model: SASRecCheckpoint,
    codebooks: CodebooksCheckpoint,
    usid_table: pl.DataFrame,
    router_checkpoint: RouterCheckpoint,
    faiss_index: AnnIndex,
    dpo_checkpoint: RerankerCheckpoint,
) -> Output[dict]:
    vocab = ItemVocab.from_catalog(item_catalog)
    sequences = UserSequences.from_splits(data_splits, vocab)
    sasrec = sasrec_model.model()
    if sasrec_model.item_ids != vocab.item_ids:
        raise ValueError(
            "sasrec_model was trained on a different item catalog; rematerialize it with the current item_catalog"
        )
    scorers = {"popularity": popularity_model.score, "sasrec": sasrec.score}
    if router_checkpoint.item_ids != vocab.item_ids or router_checkpoint.tokenizer_version != codebooks.version:
        raise ValueError("router_checkpoint was trained on another catalog or codebook version; rematerialize it")
    router = router_checkpoint.model()
    reranker = dpo_checkpoint.model()
    trie = SidTrie.for_catalog(usid_table, vocab.item_ids, codebooks.codebook_size)
    document: dict = {"run_id": context.run_id}
    tables = {}
    for split in ("test", "valid"):
        protocol = Protocol(
            exclude_history=evaluation_protocol.exclude_history, ks=tuple(evaluation_protocol.ks), split=split
        )
        cases = sequences.test if split == "test" else sequences.valid
        result = evaluate_scorers(scorers, cases, len(vocab), protocol)
        retrieval = evaluate_retrieval(router, trie, faiss_index, cases, protocol, reranker)
        result.metrics.update(retrieval.pop("metrics"))
        document[split] = {**result.as_dict(), **retrieval}
        tables[split] = metrics_table(result.metrics)
    # The USID table already holds every item's codes; no need to run the tokenizer again.
    codes = usid_table.select(code_columns(table_levels(usid_table))).to_numpy()
    utilization = utilization_per_level(codes, codebooks.codebook_size)
    document["semantic_ids"] = {"tokenizer_version": codebooks.version, "utilization_per_level": utilization}
    # The model the platform would serve from this run; the promotion gate and the sensors read these figures.
    serving = SERVING_MODEL
    document["serving"] = {
        "model": serving,
        "split": "test",
        **{metric: document["test"]["metrics"][serving][metric] for metric in ("recall@10", "ndcg@10")},
        "min_codebook_utilization": min(utilization),
    }
    path = write_json(document, data_home() / "runs" / context.run_id / "evaluation.json")
    setting = "history excluded from ranking" if evaluation_protocol.exclude_history else "history not masked"
    test = document["test"]
    header = f"Test users: {test['users']}, items: {test['n_items']}, full-catalog ranking, {setting}."
    context.log.info(f"{header}\n{tables['test']}")
    return Output(
        document,
        metadata={
            "test_table": MetadataValue.md(f"{header}\n\n{tables['test']}"),
            "valid_table": MetadataValue.md(tables["valid"]),
            "channels_table": MetadataValue.md(channels_table(test)),
            **{f"test_{key}": round(value, 4) for key, value in test["channels"].items()},
            "beam_search_ms_per_user": round(test["retrieval_ms_per_user"]["beam_search"], 3),
            "exclude_history": evaluation_protocol.exclude_history,
            "serving_model": serving,
            "serving_recall@10": document["serving"]["recall@10"],
            "serving_ndcg@10": document["serving"]["ndcg@10"],
            "min_codebook_utilization": round(min(utilization), 4),
            "json": MetadataValue.path(str(path)),
            **{f"{name}_recall@10": m["recall@10"] for name, m in test["metrics"].items()},
            **{f"{name}_ndcg@10": m["ndcg@10"] for name, m in test["metrics"].items()},
            **{f"codebook_utilization_level_{i + 1}": round(u, 4) for i, u in enumerate(utilization)},
        },
    )
