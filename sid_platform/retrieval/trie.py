"""The trie of every Semantic ID that exists, as dense child tables a batched beam search can gather from.

Level ``l`` holds one node per distinct prefix of length ``l`` (level 0 is the root). ``children[l]`` is
``[nodes at l, vocab of token l]``: the node the prefix extends to, or -1 where no item has that prefix.
The last level's nodes are full IDs (codes + collision suffix), one per item, so ``leaf_item`` maps them
back to item indices. A token that is -1 in the table can never be emitted, so decoding never yields an
ID with no item behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from sid_platform.semantic_ids.usid import code_columns, table_levels


def aligned_sids(table: pl.DataFrame, item_ids: list[str]) -> np.ndarray:
    """[n_items, L+1] codes and suffix, row i for ``item_ids[i]``; fails if the table lacks any of them."""
    ordered = pl.DataFrame({"item_id": item_ids}).join(table, on="item_id", how="left", maintain_order="left")
    columns = [*code_columns(table_levels(table)), "suffix"]
    if ordered.select(columns).null_count().sum_horizontal().item():
        raise ValueError("the usid_table lacks items of the catalog; rematerialize the semantic-ID assets")
    return ordered.select(columns).to_numpy()


@dataclass
class SidTrie:
    children: list[torch.Tensor]  # children[l]: [n_nodes(l), vocab(l)] int64, -1 = absent
    leaf_item: torch.Tensor  # [n_leaves] item index of each full ID
    vocab_sizes: list[int]  # tokens per level: codebook sizes, then the suffix range
    node_of_item: list[np.ndarray]  # node_of_item[l][i]: item i's prefix node at depth l (l = 0 … depth)

    @property
    def depth(self) -> int:
        """Tokens per full ID (code levels + 1 suffix)."""
        return len(self.children)

    @classmethod
    def from_sids(cls, sids: np.ndarray, vocab_sizes: list[int] | None = None) -> SidTrie:
        """``sids``: [n_items, depth] non-negative tokens, row i = item i; rows must be unique."""
        sids = np.asarray(sids, dtype=np.int64)
        if sids.ndim != 2 or not len(sids):
            raise ValueError(f"sids must be a non-empty [n_items, depth] array, got shape {sids.shape}")
        depth = sids.shape[1]
        sizes = (
            list(vocab_sizes) if vocab_sizes is not None else [int(sids[:, level].max()) + 1 for level in range(depth)]
        )
        if len(sizes) != depth or (sids.max(axis=0) >= np.asarray(sizes)).any():
            raise ValueError(f"tokens out of range for vocab sizes {sizes}")
        node_of_item = [np.zeros(len(sids), dtype=np.int64)]
        for length in range(1, depth + 1):
            _, inverse = np.unique(sids[:, :length], axis=0, return_inverse=True)
            node_of_item.append(inverse.ravel().astype(np.int64))
        if node_of_item[-1].max() + 1 != len(sids):
            raise ValueError("two items share a full Semantic ID; the suffix must make every ID unique")
        children = []
        for level in range(depth):
            table = np.full((int(node_of_item[level].max()) + 1, sizes[level]), -1, dtype=np.int64)
            table[node_of_item[level], sids[:, level]] = node_of_item[level + 1]
            children.append(torch.from_numpy(table))
        leaf_item = np.empty(len(sids), dtype=np.int64)
        leaf_item[node_of_item[-1]] = np.arange(len(sids))
        return cls(children, torch.from_numpy(leaf_item), sizes, node_of_item)

    @classmethod
    def from_usid_table(cls, table: pl.DataFrame, codebook_size: int) -> SidTrie:
        """Rows in table order are item indices; tokens are c1 … cL then the suffix."""
        sids = table.select([*code_columns(table_levels(table)), "suffix"]).to_numpy()
        levels = sids.shape[1] - 1
        return cls.from_sids(sids, [codebook_size] * levels + [int(sids[:, -1].max()) + 1])

    @classmethod
    def for_catalog(cls, table: pl.DataFrame, item_ids: list[str], codebook_size: int) -> SidTrie:
        """The trie with item index i = ``item_ids[i]`` (catalog order), whatever the table's row order."""
        sids = aligned_sids(table, item_ids)
        levels = sids.shape[1] - 1
        return cls.from_sids(sids, [codebook_size] * levels + [int(sids[:, -1].max()) + 1])

    def contains(self, sid: np.ndarray) -> bool:
        node = 0
        for level, token in enumerate(np.asarray(sid).tolist()):
            if not 0 <= token < self.vocab_sizes[level]:
                return False
            node = int(self.children[level][node, token])
            if node < 0:
                return False
        return True

    def members(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR of depth ``level``: items sorted by prefix node, and each node's start offset (n_nodes + 1)."""
        cache = self.__dict__.setdefault("_members", {})
        if level not in cache:
            owner = self.node_of_item[level]
            order = np.argsort(owner, kind="stable")
            cache[level] = (order, np.searchsorted(owner[order], np.arange(int(owner.max()) + 2)))
        return cache[level]

    def items_under(self, level: int, nodes: np.ndarray) -> np.ndarray:
        """The items whose ID starts with any of the given prefix nodes at depth ``level`` (-1 nodes skipped)."""
        order, bounds = self.members(level)
        nodes = np.asarray(nodes).ravel()
        nodes = nodes[nodes >= 0]
        if not len(nodes):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([order[bounds[n] : bounds[n + 1]] for n in nodes.tolist()])
