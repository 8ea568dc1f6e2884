"""Every model measured on the held-out users under one protocol: the document the ``evaluation`` asset stores.

The baselines rank the full catalog through the harness; the router's rankings come from the stored
``candidates`` (one retrieval per materialization) through the same functions the bundle serves with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import polars as pl

from sid_platform.baselines.sasrec import SASRec
from sid_platform.data.split import EvalCases, UserSequences
from sid_platform.evaluation.harness import Protocol, Scorer, evaluate_scorers
from sid_platform.evaluation.metrics import CHOSEN_ON, ranking_metrics
from sid_platform.evaluation.report import markdown_table
from sid_platform.progress import LogLine
from sid_platform.reranking.dpo import Reranker
from sid_platform.retrieval.blend import ScoreBlend, blend_ranking
from sid_platform.retrieval.stored import Candidates
from sid_platform.serving.models import Codebooks
from sid_platform.serving.rankers import BLEND_RANKING, RANKERS, router_rankings, sasrec_blend_scores

SPLITS = ("test", "valid")
BASELINE = "sasrec"  # the ranking a serving ranking must beat on validation (the gate refuses it otherwise)


@dataclass(frozen=True)
class SasrecBlend:
    """What the blended ranking needs beside the candidates: SASRec, the chosen weight, the router's logit scale."""

    sasrec: SASRec
    blend: ScoreBlend
    router_scale: float


def evaluate_retrieval(
    candidates: Candidates,
    cases: EvalCases,
    protocol: Protocol,
    reranker: Reranker,
    on_progress: LogLine | None = None,
    blend: SasrecBlend | None = None,
) -> dict:
    """The router's rankings (generative, hybrid + cosine, fused, fused + DPO, and blended with SASRec when
    ``blend`` is given), channel coverage, candidates, cost."""
    k = max(protocol.ks)
    candidates.check(k, protocol.exclude_history)
    found = candidates.retrieval(protocol.split, cases)
    histories = cases.histories if protocol.exclude_history else None
    phase = f"evaluation ({protocol.split} users): router_fused_dpo reranking"
    rankings = router_rankings(found, reranker, k, histories, on_progress, phase)
    users, extra = max(len(cases), 1), {}
    if blend is not None:
        started, weight = time.perf_counter(), blend.blend.sasrec_weight
        scores = sasrec_blend_scores(found, blend.sasrec, cases.histories, weight, blend.router_scale)
        rankings[BLEND_RANKING] = blend_ranking(found, scores, k, histories)
        extra["blend_ms_per_user"] = 1000 * (time.perf_counter() - started) / users  # on top of the retrieval
    return {
        "metrics": {name: ranking_metrics(ranked, cases.targets, protocol.ks) for name, ranked in rankings.items()},
        "channels": candidates.split(protocol.split).report.as_dict(),
        "retrieval_ms_per_user": {name: 1000 * s / users for name, s in found.seconds.items()},
        **extra,
        "prefix_channel": dict(candidates.prefix_channel),
        "ann_channel": dict(candidates.ann_channel),
    }


def evaluation_document(
    scorers: dict[str, Scorer],
    candidates: Candidates,
    reranker: Reranker,
    sequences: UserSequences,
    protocol: Protocol,
    codebooks: Codebooks,
    usid_table: pl.DataFrame,
    on_progress: LogLine | None = None,
    blend: SasrecBlend | None = None,
) -> dict:
    """Per split (test, then validation) every model's metrics; the codebooks' utilization; the serving figures.

    ``serving`` names the model the platform would serve from this run with its test figures: what the
    promotion gate and the sensors read. ``on_progress`` receives the scoring and reranking progress lines.
    """
    if candidates.tokenizer_version != codebooks.version:
        raise ValueError("candidates were retrieved with another codebook version; rematerialize candidates")
    document: dict = {}
    for split in SPLITS:
        cases = sequences.test if split == "test" else sequences.valid
        split_protocol = replace(protocol, split=split)
        result = evaluate_scorers(scorers, cases, len(sequences.vocab), split_protocol, on_progress)
        retrieval = evaluate_retrieval(candidates, cases, split_protocol, reranker, on_progress, blend)
        result.metrics.update(retrieval.pop("metrics"))
        document[split] = {**result.as_dict(), **retrieval}
    utilization = codebooks.utilization(usid_table)
    document["semantic_ids"] = {"tokenizer_version": codebooks.version, "utilization_per_level": utilization}
    model = serving_model(document["valid"]["metrics"])
    document["serving"] = {
        "model": model,
        "split": "test",
        **{metric: document["test"]["metrics"][model][metric] for metric in ("recall@10", "ndcg@10")},
        "chosen_on": f"validation {', then '.join(CHOSEN_ON)} among {', '.join(sorted(RANKERS))}",
        "valid_recall@10": document["valid"]["metrics"][model]["recall@10"],
        "baseline": BASELINE,
        "baseline_valid_recall@10": document["valid"]["metrics"].get(BASELINE, {}).get("recall@10"),
        "min_codebook_utilization": min(utilization),
    }
    if blend is not None:
        document["serving"]["sasrec_blend_weight"] = blend.blend.sasrec_weight
    return document


def serving_model(valid_metrics: dict[str, dict[str, float]]) -> str:
    """The servable ranking with the best validation figures (``CHOSEN_ON``, in order); ties by name."""
    servable = sorted(name for name in valid_metrics if name in RANKERS)
    if not servable:
        raise ValueError(f"no servable ranking among {', '.join(valid_metrics)}")
    return max(servable, key=lambda name: tuple(valid_metrics[name].get(m, float("-inf")) for m in CHOSEN_ON))


def summary_line(document: dict) -> str:
    """One line saying what the test table measures: users, items, ranking and the history setting."""
    test = document["test"]
    setting = "history excluded from ranking" if test["protocol"]["exclude_history"] else "history not masked"
    return f"Test users: {test['users']}, items: {test['n_items']}, full-catalog ranking, {setting}."


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
