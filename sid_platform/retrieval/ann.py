"""The FAISS index of the ANN channel: exact inner product for small catalogs, HNSW or IVF-PQ beyond.

Item vectors and user queries are L2-normalized, so inner product is cosine. The IO manager and the bundle
store it as FAISS's own serialization (``faiss.serialize_index``) with its kind and channel size, through
``sid_platform/artifacts.py``; it is never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

KINDS = ("auto", "flat", "hnsw", "ivfpq")


@dataclass(frozen=True)
class AnnIndexConfig:
    kind: str = "auto"  # auto: flat below exact_below items, HNSW from there
    exact_below: int = 100_000
    top_n: int = 500  # candidates the ANN channel contributes per user
    hnsw_m: int = 32
    hnsw_ef_search: int = 512
    ivf_lists: int = 0  # 0: about 4·sqrt(n)
    pq_m: int = 16  # sub-quantizers; must divide the dimension
    nprobe: int = 32


class AnnIndex:
    """A FAISS index over item vectors (row i = item index i) with the kind it was built as."""

    def __init__(self, index: faiss.Index, kind: str, top_n: int) -> None:
        self.index = index
        self.kind = kind
        self.top_n = top_n  # the ANN channel's size, served with the index

    @classmethod
    def build(cls, vectors: np.ndarray, cfg: AnnIndexConfig) -> AnnIndex:
        if cfg.kind not in KINDS:
            raise ValueError(f"unknown index kind {cfg.kind!r}; choose one of {', '.join(KINDS)}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        kind = cfg.kind if cfg.kind != "auto" else ("flat" if n < cfg.exact_below else "hnsw")
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = cfg.hnsw_ef_search
        else:
            if dim % cfg.pq_m:
                raise ValueError(f"pq_m={cfg.pq_m} must divide the vector dimension {dim}")
            lists = cfg.ivf_lists or max(1, int(4 * np.sqrt(n)))
            index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, lists, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
            index.nprobe = cfg.nprobe
        index.add(vectors)
        return cls(index, kind, cfg.top_n)

    def with_vectors(self, vectors: np.ndarray) -> AnnIndex:
        """A copy of this index with ``vectors`` added as the next item indices (cold start); this one is untouched.

        The trained structure (HNSW graph, IVF lists and codebooks) is kept: new items are inserted, not re-indexed.
        """
        index = faiss.clone_index(self.index)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors):
            index.add(vectors)
        return AnnIndex(index, self.kind, self.top_n)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, item indices) [users, k], best first; -1 where the index returns fewer than k."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        return self.index.search(queries, min(k, self.size))
