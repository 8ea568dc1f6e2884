"""Scale curve: the Semantic-ID serving path against brute-force scoring, on synthetic catalogs of 10k to 1M items.

    .venv/bin/python -m benchmarks.scale_curve [--sizes 10000,100000,1000000] [--requests 300] [--work-dir DIR]

Why synthetic: no public catalog here has a million items. The generator writes product texts from a small
grammar (adjective, product, form, area, brand: ``--texts`` distinct texts, 50,000 by default), embeds each
distinct text once with the default encoder (MiniLM), and gives item ``i`` the vector of a text drawn for it plus
a little Gaussian noise (``--noise``), so items sharing a text share their coarse codes and differ in the fine
ones: codes that mean something, at any catalog size, for a few minutes of embedding. Catalogs are nested (the
10k items are the first 10k of the 1M).

Per size, the same code as production builds the serving components: the default tokenizer (RQ-VAE, 4 levels of
256 codes) fit on a sample of at most ``--fit-sample`` items and applied to all, the USID table, a router of the
default size (weights at their initialization: cost does not depend on the values, quality is not measured
here), its FAISS index (``AnnIndexConfig()``: exact below 100k items, HNSW from there). A fresh process then opens
them as the service does (``serving.ServingRouter``: checkpoint, trie, every item's token, once) and answers
``--requests`` single-history requests (20 random items, batch 1, one torch thread as the service) twice:

- the SID path, ``router_fused``: router states → constrained beam search over the code vocabulary (the beams
  and the top prefixes) → the items under those prefixes (trie lookup) ∪ the ANN channel → exact generative
  log-probabilities and dense scores of the union → fused top 10; per stage from ``retrieve``'s timers;
- the same SID path with a fusion weight of 1 (the router is stored with 0, as Beauty's chose on validation, and
  then skips the candidates' exact generative log-probabilities; with 1 they are computed and fused);
- brute force: the same router state scored against every item's vector by the same dense head, top 10 (its
  scoring alone, without the shared history encoding, reported beside it).

The prefix channel takes the ``--prefixes`` (10) best prefixes at the shallowest depth whose prefixes hold at
most ``--items-per-prefix`` (64) items on average, so its size does not grow with the catalog (depth 1 for 10k
items, 2 from 100k). Resident memory (VmRSS, and the peak VmHWM) is the measuring process's after it opened the
components. Writes ``benchmarks/results/scale_curve.json`` and the plot ``benchmarks/results/scale_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sid_platform.artifacts import read_artifact, write_artifact
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig, SemanticRouter
from sid_platform.retrieval.trie import SidTrie, aligned_sids
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.semantic_ids.spec import TokenizerSpec
from sid_platform.semantic_ids.usid import build_usid_table
from sid_platform.storage import LocalBlobStore

SIZES = (10_000, 100_000, 1_000_000)
COMPONENTS = ("codebooks", "usid_table", "router_checkpoint", "faiss_index")
HISTORY_LENGTH = 20
K = 10

ADJECTIVES = ["gentle", "bright", "deep", "fresh", "silky", "bold", "pure", "rich", "matte", "sheer", "soothing",
              "firming", "hydrating", "clarifying", "volumizing", "long-lasting", "waterproof", "organic", "vegan",
              "fragrance-free"]  # fmt: skip
PRODUCTS = ["cream", "serum", "balm", "powder", "gel", "oil", "mask", "cleanser", "toner", "lotion", "scrub",
            "mist", "foundation", "concealer", "mascara", "eyeliner", "lipstick", "gloss", "shampoo",
            "conditioner", "spray", "perfume", "polish", "brush"]  # fmt: skip
FORMS = ["tube", "jar", "stick", "pump bottle", "travel size", "refill", "set of three", "palette", "sachet",
         "roller"]  # fmt: skip
AREAS = ["face", "eyes", "lips", "body", "hands", "feet", "hair", "nails", "scalp", "neck", "under-eye area",
         "cheeks"]  # fmt: skip


def synthetic_texts(n_texts: int, seed: int) -> list[str]:
    """``n_texts`` distinct product descriptions drawn from the grammar (seeded)."""
    rng = np.random.default_rng(seed)
    sizes = (len(ADJECTIVES), len(PRODUCTS), len(FORMS), len(AREAS), 400)  # 400 brands
    total = int(np.prod(sizes))
    if n_texts > total:
        raise ValueError(f"the grammar has {total} distinct texts, asked for {n_texts}")
    picks = rng.choice(total, size=n_texts, replace=False)
    adjective, product, form, area, brand = np.unravel_index(picks, sizes)
    return [
        f"{ADJECTIVES[a].capitalize()} {PRODUCTS[p]} for the {AREAS[r]}, {FORMS[f]}. Brand {b:03d}."
        for a, p, f, r, b in zip(adjective, product, form, area, brand, strict=True)
    ]


def text_vectors(texts: list[str], cache: Path) -> tuple[np.ndarray, float]:
    """MiniLM vectors of ``texts`` (cached in ``cache``: the texts are seeded, so the file is reusable)."""
    if cache.exists():
        return np.load(cache), 0.0
    from sid_platform.embed.encoders import build_encoder

    started = time.perf_counter()
    vectors = build_encoder("minilm").encode(texts, batch_size=256).astype(np.float32)
    seconds = time.perf_counter() - started
    np.save(cache, vectors)
    return vectors, seconds


def item_vectors(texts: np.ndarray, n_items: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(text index per item, unit item vectors): item ``i`` takes a text drawn for it, plus Gaussian noise."""
    rng = np.random.default_rng(seed + 1)
    which = rng.integers(len(texts), size=n_items)
    vectors = texts[which] + noise * rng.standard_normal((n_items, texts.shape[1]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return which, vectors


def prefix_depth(trie: SidTrie, items_per_prefix: int) -> int:
    """The shallowest prefix depth (1 … code levels) whose prefixes hold at most ``items_per_prefix`` on average."""
    n_items = len(trie.node_of_item[0])
    for depth in range(1, trie.depth):
        if n_items / (int(trie.node_of_item[depth].max()) + 1) <= items_per_prefix:
            return depth
    return trie.depth - 1


def build(
    vectors: np.ndarray, fit_sample: int, items_per_prefix: int, n_prefixes: int, seed: int, out: Path
) -> dict[str, Any]:
    """Fit the codebooks, assign Semantic IDs, open a router and its FAISS index; store them under ``out``."""
    n = len(vectors)
    item_ids = [f"S{i:07d}" for i in range(n)]
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    spec = TokenizerSpec().resolved(n)
    tokenizer = spec.build()
    sample = np.random.default_rng(seed).choice(n, size=min(n, fit_sample), replace=False)
    tokenizer.fit(vectors[np.sort(sample)], None, None)
    codebooks = CodebooksCheckpoint.of(tokenizer, f"scale-{n}")
    seconds["codebooks_fit"] = time.perf_counter() - started
    started = time.perf_counter()
    codes = np.concatenate([tokenizer.encode(vectors[i : i + 65_536]) for i in range(0, n, 65_536)])
    table = build_usid_table(item_ids, codes, codebooks.version)
    sids = aligned_sids(table, item_ids)
    trie = SidTrie.for_catalog(table, item_ids, codebooks.codebook_size)
    seconds["semantic_ids"] = time.perf_counter() - started
    depth = prefix_depth(trie, items_per_prefix)
    cfg = replace(RouterConfig(), prefix_depth=depth, n_prefixes=n_prefixes, seed=seed)
    torch.manual_seed(seed)
    router = SemanticRouter(cfg, torch.from_numpy(sids), trie.vocab_sizes, torch.from_numpy(vectors)).eval()
    started = time.perf_counter()
    with torch.no_grad():
        index = AnnIndex.build(router.item_keys().numpy(), AnnIndexConfig())
    seconds["ann_index"] = time.perf_counter() - started
    store = LocalBlobStore(out)
    components = {
        "codebooks": codebooks,
        "usid_table": table,
        "router_checkpoint": RouterCheckpoint.of(router, item_ids, codebooks.version),
        "faiss_index": index,
    }
    for name, value in components.items():
        write_artifact(store, name, value)
    prefixes = int(trie.node_of_item[depth].max()) + 1
    return {
        "items": n,
        "codebook_size": int(codebooks.codebook_size),
        "levels": trie.depth - 1,
        "prefix_depth": depth,
        "prefixes_at_depth": prefixes,
        "mean_items_per_prefix": round(n / prefixes, 1),
        "max_suffix": int(sids[:, -1].max()),
        "ann_index": index.kind,
        "build_seconds": {key: round(value, 1) for key, value in seconds.items()},
    }


def _memory_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def _percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {name: round(float(np.percentile(values, q)), 2) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def measure(directory: Path, requests: int, seed: int) -> dict[str, Any]:
    """Open the stored components as the service does and time single-history requests: SID path, brute force."""
    from sid_platform.serving import RouterRanking, ServingRouter
    from sid_platform.threads import use_threads

    use_threads("serving")
    store = LocalBlobStore(directory)
    components = {name: read_artifact(store, name) for name in COMPONENTS}
    started = time.perf_counter()
    router = ServingRouter.open(components)
    ranking = RouterRanking("router_fused", router, None)
    keys = router.keys
    open_seconds = time.perf_counter() - started
    memory = _memory_mb()
    rng = np.random.default_rng(seed)
    item_ids = router.items.item_ids
    histories = [
        [item_ids[i] for i in rng.choice(len(item_ids), HISTORY_LENGTH, replace=False)] for _ in range(requests)
    ]

    score_ms: list[float] = []

    def brute_force(history: list[str]) -> list[str]:
        with torch.no_grad():
            state = router.model.user_states(router.items.encode([history]), tokens=router.tokens)
            started = time.perf_counter()
            scores = router.model.user_queries(state)[0] @ keys.T
            top = scores.topk(K).indices[None, :].numpy()
            score_ms.append(1000 * (time.perf_counter() - started))
            return router.items.lists(top)[0]

    for history in histories[:20]:  # warm-up
        ranking([history], K)
        brute_force(history)
    score_ms.clear()
    sid_ms, brute_ms, overlap, candidates = [], [], [], []
    stages: dict[str, list[float]] = {}
    for history in histories:
        started = time.perf_counter()
        ranking([history], K)
        sid_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        exact = brute_force(history)
        brute_ms.append(1000 * (time.perf_counter() - started))
        found = router.retrieve([history], K)
        for stage, seconds in found.seconds.items():
            stages.setdefault(stage, []).append(1000 * seconds)
        candidates.append(len(found.candidates[0]))
        by_dense = set(router.items.lists(found.hybrid_cosine)[0])
        overlap.append(len(by_dense & set(exact)) / K)
    # The same path with a fusion weight of 1: the exact generative log-probabilities of every candidate are
    # computed (a router whose weight chosen on validation is 0, as Beauty's, skips them).
    with torch.no_grad():
        router.model.fusion_weight.fill_(1.0)
    fused_ms: list[float] = []
    generative_ms: list[float] = []
    for history in histories:
        started = time.perf_counter()
        ranking([history], K)
        fused_ms.append(1000 * (time.perf_counter() - started))
        generative_ms.append(1000 * router.retrieve([history], K).seconds["generative_scores"])
    return {
        "open_seconds": round(open_seconds, 1),
        "memory_mb": memory,
        "requests": requests,
        "sid_path_ms": _percentiles(sid_ms),
        "brute_force_ms": _percentiles(brute_ms),
        "brute_force_scoring_ms": _percentiles(score_ms),
        "sid_path_weight_1_ms": _percentiles(fused_ms),
        "generative_scores_weight_1_ms_mean": round(float(np.mean(generative_ms)), 3),
        "sid_stage_ms_mean": {stage: round(float(np.mean(ms)), 3) for stage, ms in stages.items()},
        "candidates_mean": round(float(np.mean(candidates)), 1),
        "dense_top10_agreement": round(float(np.mean(overlap)), 4),
    }


def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p["items"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (
        ("sid_path_ms", "SID path, fusion weight 0"),
        ("sid_path_weight_1_ms", "SID path, fusion weight 1"),
        ("brute_force_ms", "brute force (same dense head)"),
    ):
        left.plot(sizes, [p[key]["p50"] for p in points], marker="o", label=f"{label}, p50")
        left.plot(sizes, [p[key]["p99"] for p in points], marker="x", linestyle="--", label=f"{label}, p99")
    left.set(xscale="log", yscale="log", xlabel="catalog items", ylabel="ms per request (batch 1, 1 thread)")
    left.set_title("latency per request")
    left.legend(fontsize=7)
    for stage in points[0]["sid_stage_ms_mean"]:
        right.plot(sizes, [p["sid_stage_ms_mean"][stage] for p in points], marker="o", label=stage)
    right.set(xscale="log", xlabel="catalog items", ylabel="mean ms per request")
    right.set_title("SID path by stage")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(points: list[dict[str, Any]]) -> str:
    lines = [
        "| items | SID p50 | SID p99 | SID w=1 p50 | SID w=1 p99 | brute p50 | brute p99 | brute scoring p50 | "
        "candidates | RSS MB | prefix depth |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        sid, full, brute = p["sid_path_ms"], p["sid_path_weight_1_ms"], p["brute_force_ms"]
        lines.append(
            f"| {p['items']:,} | {sid['p50']} | {sid['p99']} | {full['p50']} | {full['p99']} | {brute['p50']} | "
            f"{brute['p99']} | {p['brute_force_scoring_ms']['p50']} | {p['candidates_mean']} | "
            f"{p['memory_mb'].get('VmRSS')} | {p['prefix_depth']} |"
        )
    return "\n".join(lines)


def main() -> None:
    from benchmarks.results_file import RESULTS, write_result

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--texts", type=int, default=50_000, help="distinct product texts")
    parser.add_argument("--noise", type=float, default=0.01, help="per-dimension Gaussian noise on an item's vector")
    parser.add_argument("--fit-sample", type=int, default=20_000, help="items the tokenizer is fit on, at most")
    parser.add_argument("--items-per-prefix", type=int, default=64)
    parser.add_argument("--prefixes", type=int, default=RouterConfig().n_prefixes)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="where the components and the text vectors go")
    parser.add_argument("--name", default="", help="suffix of the result file")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # the measuring child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.requests, args.seed)))
        return
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="sid_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    texts = synthetic_texts(args.texts, args.seed)
    vectors, embed_seconds = text_vectors(texts, work / f"texts_{args.texts}_{args.seed}.npy")
    _, items = item_vectors(vectors, max(sizes), args.noise, args.seed)
    points = []
    for n in sizes:
        print(f"building {n:,} items", flush=True)
        out = work / f"items_{n}"
        point = build(items[:n], args.fit_sample, args.items_per_prefix, args.prefixes, args.seed, out)
        child = [sys.executable, "-m", "benchmarks.scale_curve", "--measure", str(out)]
        child += ["--requests", str(args.requests), "--seed", str(args.seed)]
        measured = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        point.update(json.loads(measured.strip().splitlines()[-1]))
        print(json.dumps(point), flush=True)
        points.append(point)
    name = "scale_curve" + (f"_{args.name}" if args.name else "")
    figure = RESULTS / f"{name}.png"
    plot(points, figure)
    print(table(points))
    payload = {
        "texts": args.texts,
        "noise": args.noise,
        "fit_sample": args.fit_sample,
        "history_length": HISTORY_LENGTH,
        "k": K,
        "embed_seconds": round(embed_seconds, 1),
        "router": asdict(RouterConfig()),
        "tokenizer": asdict(TokenizerSpec()),
        "points": points,
        "plot": figure.name,
    }
    print(f"wrote {write_result(name, payload)} and {figure}")


if __name__ == "__main__":
    main()
