"""A small synthetic catalog and user logs with structure a sequential model can learn.

Items sit in a three-level category tree (top > mid > leaf). Each leaf's items form a cycle; a user
starts in one leaf and mostly moves to the next item of the cycle, sometimes to another item of the same
mid category, rarely to a globally popular item. Popularity alone therefore does poorly and a
sequence model does well: the gap is what the tests use to show the pipeline learns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from sid_platform.data.schema import (
    INTERACTION_REQUIRED,
    INTERACTION_SCHEMA,
    ITEM_REQUIRED,
    ITEM_SCHEMA,
    LoadedData,
    conform,
)

TOPS = ["Makeup", "Skin Care", "Hair Care", "Fragrance"]
MIDS = ["Face", "Eyes", "Lips", "Body"]
LEAVES = ["Cream", "Serum", "Balm", "Powder"]
ADJECTIVES = ["Gentle", "Bright", "Deep", "Fresh", "Silky", "Bold", "Pure", "Rich"]


def generate(
    n_users: int = 800,
    n_items: int = 320,
    depth: tuple[int, int, int] = (3, 3, 3),
    min_len: int = 5,
    max_len: int = 12,
    p_next: float = 0.75,
    p_sibling: float = 0.15,
    seed: int = 0,
) -> LoadedData:
    rng = np.random.default_rng(seed)
    n_top, n_mid, n_leaf = depth
    n_leaves = n_top * n_mid * n_leaf
    leaf_of = np.arange(n_items) % n_leaves  # round-robin keeps leaves balanced
    items_in_leaf = [np.flatnonzero(leaf_of == leaf) for leaf in range(n_leaves)]
    mid_of_leaf = np.arange(n_leaves) // n_leaf
    items_in_mid = [np.flatnonzero(mid_of_leaf[leaf_of] == mid) for mid in range(n_top * n_mid)]
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    popularity = rng.permutation(popularity / popularity.sum())

    item_ids = [f"SYN{i:05d}" for i in range(n_items)]
    items = []
    for i in range(n_items):
        leaf = int(leaf_of[i])
        top, mid, lf = leaf // (n_mid * n_leaf), (leaf // n_leaf) % n_mid, leaf % n_leaf
        path = [
            TOPS[top % len(TOPS)] + (f" {top}" if top >= len(TOPS) else ""),
            MIDS[mid % len(MIDS)] + (f" {mid}" if mid >= len(MIDS) else ""),
            LEAVES[lf % len(LEAVES)] + (f" {lf}" if lf >= len(LEAVES) else ""),
        ]
        items.append(
            {
                "item_id": item_ids[i],
                "title": f"{ADJECTIVES[i % len(ADJECTIVES)]} {path[1]} {path[2]} no. {i}",
                "brand": f"Brand{top}{mid}",
                "categories": ["Beauty", *path],
                "price": float(np.round(rng.uniform(3, 60), 2)),
                "description": f"A {path[2].lower()} for the {path[1].lower()}, from the {path[0].lower()} range.",
            }
        )

    start = datetime(2014, 1, 1, tzinfo=UTC)
    rows = []
    for u in range(n_users):
        leaf = int(rng.integers(n_leaves))
        cycle = items_in_leaf[leaf]
        k = int(rng.integers(len(cycle)))
        length = int(rng.integers(min_len, max_len + 1))
        seen: set[int] = set()
        t = start + timedelta(days=int(rng.integers(0, 300)))
        item = int(cycle[k])
        for pos in range(length):
            if item in seen:  # no repeats within a sequence, as in Amazon 5-core
                unseen = np.setdiff1d(np.arange(n_items), np.fromiter(seen, int))
                item = int(rng.choice(unseen))
            seen.add(item)
            rows.append({"user_id": f"U{u:06d}", "item_id": item_ids[item], "timestamp": t, "position": pos})
            t += timedelta(hours=int(rng.integers(1, 24 * 14)))
            r = rng.random()
            if r < p_next:
                k = (k + 1) % len(cycle)
                item = int(cycle[k])
            elif r < p_next + p_sibling:
                item = int(rng.choice(items_in_mid[mid_of_leaf[leaf]]))
            else:
                item = int(rng.choice(n_items, p=popularity))
    interactions = pl.DataFrame(rows).with_columns(pl.lit("purchase").alias("event_type"), pl.lit(1.0).alias("weight"))
    interactions, q1 = conform(
        interactions, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="synthetic"
    )
    catalog, q2 = conform(pl.DataFrame(items), ITEM_SCHEMA, ITEM_REQUIRED, table="items", source="synthetic")
    return LoadedData(interactions, catalog, pl.concat([q1, q2]), source=f"synthetic:seed={seed}")
