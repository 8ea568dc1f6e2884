"""Ablation of the router's item token on a stored main-job run: each variant trained on the same Semantic IDs,
content vectors and sequences, every ranking measured on validation and test users.

    SID_DATA_DIR=../shared/data SID_HOME=<home of a main-job run> .venv/bin/python -m benchmarks.ablation \
        [--epochs 8] [--variants full,no_codes,no_content,no_item_id]

Variants: ``full`` (the default token: code embeddings + item-id embedding + projected content), ``no_codes``
(``use_codes=False``), ``no_content`` (``use_content=False``), ``no_item_id`` (``use_item_embedding=False``).
Each router is trained with the defaults but ``--epochs`` as its cap (patience still applies; capped by epochs,
never wall clock), its FAISS index built, and the validation and test users retrieved as the ``candidates``
asset does. Rankings: generative (beam search alone), dense (the candidates by the dense head), fused (dense +
the fusion weight chosen in training · log p), and the blend with the run's stored SASRec (weight chosen on
the validation users, as the ``score_blend`` asset does). The bounded DPO reranker is not retrained per
variant. Writes ``benchmarks/results/ablation_<epochs>_epochs.json``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace

import torch

from benchmarks.results_file import write_result
from sid_platform.artifacts import read_artifact
from sid_platform.evaluation.metrics import ranking_metrics
from sid_platform.evaluation.report import markdown_table
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.blend import blend_ranking
from sid_platform.retrieval.router import RouterConfig
from sid_platform.retrieval.stored import retrieve_users
from sid_platform.retrieval.training import train_router
from sid_platform.retrieval.trie import aligned_sids
from sid_platform.serving import load_codebooks, load_sasrec, sasrec_blend, sasrec_blend_scores
from sid_platform.settings import data_home
from sid_platform.storage import LocalBlobStore

VARIANTS = {
    "full": {},
    "no_codes": {"use_codes": False},
    "no_content": {"use_content": False},
    "no_item_id": {"use_item_embedding": False},
}
K = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8, help="each variant's epoch cap")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    assets = LocalBlobStore(data_home() / "assets")  # as the IO manager stored them; nothing is unpickled
    sequences = read_artifact(assets, "user_sequences")
    table = read_artifact(assets, "usid_table")
    codebooks = load_codebooks(read_artifact(assets, "codebooks"))
    item_ids = sequences.vocab.item_ids
    trie, sids = codebooks.trie(table, item_ids), aligned_sids(table, item_ids)
    content = read_artifact(assets, "item_embeddings").aligned(item_ids)
    sasrec = load_sasrec(read_artifact(assets, "sasrec_model"), item_ids).model
    figures: dict[str, dict] = {}
    for variant in args.variants.split(","):
        cfg = replace(RouterConfig(**VARIANTS[variant]), epochs=args.epochs)
        model, log = train_router(sequences.train, sequences.valid, trie, sids, cfg, content=content, on_epoch=print)
        started = time.perf_counter()
        with torch.no_grad():
            index = AnnIndex.build(model.item_keys().numpy(), AnnIndexConfig())
        stored = retrieve_users(model, trie, index, sequences, K, False, codebooks.version)
        valid, test = stored.retrieval("valid", sequences.valid), stored.retrieval("test", sequences.test)
        blend = sasrec_blend(valid, sasrec, model.score_scale, sequences.valid, exclude_history=False)
        rankings = {}
        for split, found, cases in (("valid", valid, sequences.valid), ("test", test, sequences.test)):
            weight, scale = blend.sasrec_weight, model.score_scale
            scores = sasrec_blend_scores(found, sasrec, cases.histories, weight, scale)
            ranked = {
                "generative": found.generative,
                "dense": found.hybrid_cosine,
                "fused": found.fused,
                "blend": blend_ranking(found, scores, K),
            }
            rankings[split] = {name: ranking_metrics(r, cases.targets) for name, r in ranked.items()}
        figures[variant] = {
            "overrides": VARIANTS[variant],
            "train_seconds": round(log.seconds, 1),
            "epochs_run": len(log.epochs),
            "best_epoch": log.best_epoch,
            "stopped_by": log.stopped_by,
            "fusion_weight": float(model.fusion_weight),
            "sasrec_weight": blend.sasrec_weight,
            "evaluation_seconds": round(time.perf_counter() - started, 1),
            "candidates_per_user": stored.test.report.as_dict()["candidates_union"],
            **rankings,
        }
        print(variant, {s: {n: round(m["recall@10"], 4) for n, m in r.items()} for s, r in rankings.items()})
    rows = [
        (variant, ranking, *(f[split][ranking][m] for split in ("valid", "test") for m in ("recall@10", "ndcg@10")))
        for variant, f in figures.items()
        for ranking in ("generative", "dense", "fused", "blend")
    ]
    print(markdown_table(["variant", "ranking", "valid R@10", "valid N@10", "test R@10", "test N@10"], rows))
    payload = {"epochs": args.epochs, "tokenizer_version": codebooks.version, "router": asdict(RouterConfig())}
    print(f"wrote {write_result(f'ablation_{args.epochs}_epochs', payload | {'variants': figures})}")


if __name__ == "__main__":
    main()
