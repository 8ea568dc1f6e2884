"""Intrinsic quality of Semantic-ID tokenizers on the real data.

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.semantic_ids

Settings: Beauty content (MiniLM), Beauty content + collaborative (fused), Sports collaborative only
(no item text). Tokenizers: RQ-VAE with k-means init, RQ-VAE with random init, RQ-KMeans, RQ-VAE with
the taxonomy-contrastive term (λ = 0.01; needs category paths, so not on Sports). Prints a table and
writes ``benchmarks/results/semantic_ids.json``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from benchmarks.results_file import write_result
from sid_platform.data.p5 import load_p5
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.embed.pipeline import EmbeddingSpec, embed_items
from sid_platform.evaluation.report import markdown_table
from sid_platform.semantic_ids import RQKMeansConfig, RQKMeansTokenizer, RQVAEConfig, RQVAETokenizer, intrinsic_report
from sid_platform.settings import data_home, resolve_data_dir

SETTINGS = {
    "beauty/content": ("beauty", ("minilm",)),
    "beauty/content+collab": ("beauty", ("minilm", "collaborative")),
    "sports/collab": ("sports", ("collaborative",)),
}
TOKENIZERS = {
    "rqvae-kmeans": lambda e: RQVAETokenizer(RQVAEConfig(epochs=e)),
    "rqvae-random": lambda e: RQVAETokenizer(RQVAEConfig(epochs=e, init="random")),
    "rqkmeans": lambda e: RQKMeansTokenizer(RQKMeansConfig()),
    "rqvae-taxonomy": lambda e: RQVAETokenizer(RQVAEConfig(epochs=e, taxonomy_weight=0.01)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=RQVAEConfig().epochs)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data_dir = resolve_data_dir()
    if data_dir is None:
        raise SystemExit("set SID_DATA_DIR to the shared data folder")
    rows, results = [], []
    for setting in args.settings:
        dataset, encoders = SETTINGS[setting]
        loaded = load_p5(data_dir, dataset)
        vocab = ItemVocab.from_catalog(loaded.items)
        train = UserSequences.from_splits(leave_one_out(loaded.interactions), vocab).train
        started = time.perf_counter()
        embedded = embed_items(loaded.items, train, EmbeddingSpec(encoders=encoders), data_home() / "embedding_cache")
        embed_seconds = time.perf_counter() - started
        categories = loaded.items["categories"].to_list()
        has_taxonomy = any(c for c in categories)
        for name, make in TOKENIZERS.items():
            if name == "rqvae-taxonomy" and not has_taxonomy:
                continue
            tokenizer = make(args.epochs)
            started = time.perf_counter()
            tokenizer.fit(embedded.vectors, categories if has_taxonomy else None)
            codes = tokenizer.encode(embedded.vectors)
            seconds = time.perf_counter() - started
            report = intrinsic_report(
                codes, tokenizer.codebook_size, embedded.vectors, categories if has_taxonomy else None
            )
            results.append(
                {
                    "setting": setting,
                    "tokenizer": name,
                    "fit_seconds": round(seconds, 1),
                    "embed_seconds": round(embed_seconds, 1),
                    **report,
                }
            )
            rows.append(
                [
                    setting,
                    name,
                    " / ".join(f"{u:.1%}" for u in report["utilization"]),
                    report["collision_rate"],
                    report["similarity_depth_spearman"],
                    report.get("taxonomy_alignment", "n/a"),
                    round(seconds, 1),
                ]
            )
            print(rows[-1], flush=True)
    table = markdown_table(
        [
            "setting",
            "tokenizer",
            "utilization per level",
            "collision rate",
            "Spearman ρ",
            "taxonomy alignment",
            "fit s",
        ],
        rows,
    )
    print(table)
    print(f"wrote {write_result('semantic_ids', {'epochs': args.epochs, 'results': results, 'table': table})}")


if __name__ == "__main__":
    main()
