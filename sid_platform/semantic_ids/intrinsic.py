"""Intrinsic quality of a set of Semantic IDs, before any retriever is trained on them.

Codebook health (utilization, perplexity, collisions), whether the code tree follows the embedding
geometry (similarity vs depth of the shared prefix), and whether it follows the catalog's own taxonomy
(top-level agreement of items sharing a first code, and a list of items whose code neighbours carry
another label: candidate mislabels or candidate bad codes, for a person to look at).

Top-level category = the first path element below the catalog-wide root (``Taxonomy``): on Amazon
Beauty every path starts with "Beauty", so "Makeup", "Skin Care", … are the top level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.stats import spearmanr

from sid_platform.semantic_ids.base import Categories
from sid_platform.semantic_ids.taxonomy import Taxonomy
from sid_platform.semantic_ids.usid import check_codes, collision_rate

__all__ = [
    "code_label_audit",
    "collision_rate",
    "intrinsic_report",
    "perplexity_per_level",
    "similarity_depth_spearman",
    "taxonomy_alignment",
    "utilization_per_level",
]


def _level_counts(codes: np.ndarray, codebook_size: int) -> list[np.ndarray]:
    codes = check_codes(codes)
    if codes.size and codes.max() >= codebook_size:
        raise ValueError(f"code {codes.max()} is outside a codebook of {codebook_size}")
    return [np.bincount(codes[:, level], minlength=codebook_size) for level in range(codes.shape[1])]


def utilization_per_level(codes: np.ndarray, codebook_size: int) -> list[float]:
    """Share of the ``codebook_size`` codes that at least one item uses, per level."""
    return [float((counts > 0).sum() / codebook_size) for counts in _level_counts(codes, codebook_size)]


def perplexity_per_level(codes: np.ndarray, codebook_size: int) -> list[float]:
    """exp(entropy) of each level's code distribution: the number of equally used codes it is worth."""
    out = []
    for counts in _level_counts(codes, codebook_size):
        p = counts[counts > 0] / max(counts.sum(), 1)
        out.append(float(np.exp(-(p * np.log(p)).sum())))
    return out


def shared_prefix_depth(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[m, L] × [m, L] codes → [m] number of leading levels on which each pair agrees."""
    return np.cumprod(a == b, axis=1).sum(1)


def similarity_depth_spearman(embeddings: np.ndarray, codes: np.ndarray, n_pairs: int = 20000, seed: int = 0) -> float:
    """Spearman ρ between cosine similarity of item pairs and the depth of their shared code prefix.

    Uniform pairs almost never share a first code in a large catalog, so depth would be 0 nearly
    everywhere; half the pairs are therefore drawn within a shared first code (anchor uniform over the
    items whose first code has at least two items), the other half uniformly. NaN if depth is constant.
    """
    codes = check_codes(codes)
    n = len(codes)
    if n < 2 or len(embeddings) != n:
        raise ValueError(f"need at least two items and one embedding per code row, got {len(embeddings)} and {n}")
    rng = np.random.default_rng(seed)
    half = n_pairs // 2
    left = rng.integers(n, size=half)
    right = rng.integers(n - 1, size=half)
    right += right >= left  # uniform over the other items
    first = codes[:, 0]
    order = np.argsort(first, kind="stable")
    _, starts, inverse, counts = np.unique(first[order], return_index=True, return_inverse=True, return_counts=True)
    group = np.empty(n, dtype=np.int64)
    group[order] = inverse.ravel()
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    eligible = np.flatnonzero(counts[group] >= 2)
    if len(eligible):
        anchor = rng.choice(eligible, size=n_pairs - half)
        g = group[anchor]
        offset = (rng.random(len(anchor)) * (counts[g] - 1)).astype(np.int64)
        offset += offset >= rank[anchor] - starts[g]  # skip the anchor itself
        left = np.concatenate([left, anchor])
        right = np.concatenate([right, order[starts[g] + offset]])
    unit = np.asarray(embeddings, dtype=np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    similarity = (unit[left] * unit[right]).sum(1)
    depth = shared_prefix_depth(codes[left], codes[right])
    if np.unique(depth).size < 2:
        return float("nan")
    return float(spearmanr(similarity, depth).statistic)


def _same_label_pair_share(groups: np.ndarray, labels: np.ndarray) -> float:
    """Among all pairs of items in the same group, the share with the same label (labels ≥ 0 only)."""
    keep = labels >= 0
    frame = pl.DataFrame({"group": groups[keep], "label": labels[keep]})
    pairs = frame.group_by("group").agg(n=pl.len())
    same = frame.group_by("group", "label").agg(n=pl.len())
    total = int((pairs["n"] * (pairs["n"] - 1)).sum() or 0)
    agreeing = int((same["n"] * (same["n"] - 1)).sum() or 0)
    return agreeing / total if total else float("nan")


def taxonomy_alignment(codes: np.ndarray, categories: Categories) -> float:
    """Share of item pairs with the same first code that also share a top-level category (exact, all pairs).

    Compare with ``taxonomy_alignment_chance`` in ``intrinsic_report``: the same share over all pairs.
    Uncategorized items are left out; NaN when no first code holds two categorized items.
    """
    codes = check_codes(codes)
    if len(categories) != len(codes):
        raise ValueError(f"{len(categories)} category paths for {len(codes)} code rows")
    return _same_label_pair_share(codes[:, 0], Taxonomy.from_categories(categories).top)


def code_label_audit(
    codes: np.ndarray,
    categories: Categories,
    item_ids: Sequence[str],
    k: int | None = 100,
    label_depth: int = 2,
    min_neighbours: int = 3,
) -> pl.DataFrame:
    """Items whose code neighbours (other items with the same first two codes) mostly carry another label.

    The label is the category path below the root cut to ``label_depth`` elements. An item is listed
    when it has at least ``min_neighbours`` categorized neighbours, fewer than half of them share its
    label, and the most common neighbour label is another one. Worst agreement first (then item id);
    ``k`` caps the rows (None = all). Columns: item_id, own_category, majority_neighbour_category,
    agreement, n_neighbours.
    """
    codes = check_codes(codes)
    if not (len(categories) == len(codes) == len(item_ids)):
        raise ValueError(f"{len(codes)} code rows, {len(categories)} category paths, {len(item_ids)} item ids")
    _, prefix = np.unique(codes[:, :2], axis=0, return_inverse=True)
    frame = pl.DataFrame(
        {
            "item_id": pl.Series(list(item_ids), dtype=pl.String),
            "own_category": pl.Series(Taxonomy.from_categories(categories).labels(label_depth), dtype=pl.String),
            "prefix": prefix.ravel(),
        }
    ).drop_nulls("own_category")
    label_counts = frame.group_by("prefix", "own_category").agg(n=pl.len())
    sizes = frame.group_by("prefix").agg(size=pl.len())
    items = (
        frame.join(sizes, on="prefix")
        .join(label_counts, on=["prefix", "own_category"])
        .with_columns(n_neighbours=pl.col("size") - 1, agreement=(pl.col("n") - 1) / (pl.col("size") - 1))
        .filter((pl.col("n_neighbours") >= min_neighbours) & (pl.col("agreement") < 0.5))
    )
    # Per flagged item, neighbour counts of every label in its prefix (its own label minus itself).
    majority = (
        items.select("item_id", "prefix", "own_category")
        .join(label_counts.rename({"own_category": "label"}), on="prefix")
        .with_columns(n=pl.col("n") - (pl.col("label") == pl.col("own_category")).cast(pl.Int64))
        .sort(["item_id", "n", "label"], descending=[False, True, False])
        .group_by("item_id", maintain_order=True)
        .first()
        .select("item_id", majority_neighbour_category="label")
    )
    out = (
        items.join(majority, on="item_id")
        .filter(pl.col("majority_neighbour_category") != pl.col("own_category"))
        .select("item_id", "own_category", "majority_neighbour_category", "agreement", "n_neighbours")
        .sort(["agreement", "item_id"])
    )
    return out if k is None else out.head(k)


def intrinsic_report(
    codes: np.ndarray,
    codebook_size: int,
    embeddings: np.ndarray | None = None,
    categories: Categories | None = None,
    n_pairs: int = 20000,
    seed: int = 0,
) -> dict:
    """Every intrinsic figure in one JSON-ready dict; embedding and taxonomy figures need their inputs."""
    codes = check_codes(codes)
    report: dict = {
        "n_items": len(codes),
        "levels": codes.shape[1],
        "codebook_size": codebook_size,
        "utilization": utilization_per_level(codes, codebook_size),
        "perplexity": perplexity_per_level(codes, codebook_size),
        "collision_rate": collision_rate(codes),
    }
    if embeddings is not None:
        report["similarity_depth_spearman"] = similarity_depth_spearman(embeddings, codes, n_pairs, seed)
    if categories is not None:
        top = Taxonomy.from_categories(categories).top
        report["taxonomy_alignment"] = taxonomy_alignment(codes, categories)
        report["taxonomy_alignment_chance"] = _same_label_pair_share(np.zeros(len(codes), dtype=np.int64), top)
        flagged = code_label_audit(codes, categories, [str(i) for i in range(len(codes))], k=None)
        report["label_audit_flagged_share"] = len(flagged) / len(codes) if len(codes) else 0.0
    return report
