"""Exact generative log-probabilities of given items, and their fusion with the dense score.

Beam search finds the IDs the router would write; the candidate set holds many more items (the ANN
channel's), most of which the beams never reached. To rank the union on the router's generative belief,
each candidate's full ID is scored exactly: the sum over levels of the trie-constrained log-softmax, the
same quantity beam search accumulates. The decoder state of a prefix does not depend on the item below
it, so each distinct (user, prefix) pair gets ONE decoder pass per level, however many candidates share it.

The fused score (LIGER's hybrid) is ``dense + weight · log p(ID) / scale``: the dense head's softmax logit is
``dense · scale`` (``scale`` = 1 / temperature for cosine, 1 for a dot product), so ``weight`` trades the two
log-probabilities on one scale and the result stays in the dense score's units (the bounded reranker's α
keeps its meaning). ``weight`` is chosen on validation users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie

USER_CHUNK = 64  # users whose candidates are scored in one pass (bounds the [pairs, vocab] logits)


@torch.no_grad()
def generative_log_probs(
    router: SemanticRouter, states: torch.Tensor, trie: SidTrie, candidates: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per user, log p(ID) of each of its candidates (aligned with ``candidates``), as beam search scores IDs.

    ``states``: [users, d] from ``router.user_states``; ``candidates``: per user, item indices.
    """
    if len(states) != len(candidates):
        raise ValueError(f"{len(states)} user states for {len(candidates)} candidate lists")
    was_training = router.training
    router.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(candidates), USER_CHUNK):
        part = candidates[start : start + USER_CHUNK]
        out.extend(_score_chunk(router, states[start : start + USER_CHUNK], trie, part))
    router.train(was_training)
    return out


def _score_chunk(
    router: SemanticRouter, states: torch.Tensor, trie: SidTrie, candidates: Sequence[np.ndarray]
) -> list[np.ndarray]:
    lengths = [len(c) for c in candidates]
    users = torch.from_numpy(np.repeat(np.arange(len(candidates)), lengths))  # [pairs]
    items = torch.from_numpy(np.concatenate([np.asarray(c, dtype=np.int64) for c in candidates]))  # [pairs]
    sids = router.item_sids[items]  # [pairs, depth]
    total = torch.zeros(len(items))
    dec = states[users]  # [pairs, d] the decoder state under each pair's prefix, built as beam search builds it
    for level in range(trie.depth):
        node = torch.from_numpy(trie.node_of_item[level])[items]  # [pairs] the prefix each pair is under
        key = users * (int(node.max()) + 1 if len(node) else 1) + node
        _, first, inverse = _unique_first(key)
        logits = router.level_logits(dec[first], level)  # [distinct, vocab]: one pass per (user, prefix)
        absent = trie.children[level][node[first]] < 0  # [distinct, vocab] tokens with no item below
        logp = torch.log_softmax(logits.masked_fill(absent, float("-inf")), dim=-1)
        total += logp[inverse, sids[:, level]]
        dec = router.next_state(dec, level, sids[:, level])
    return [t.numpy() for t in torch.split(total, lengths)]


def _unique_first(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct keys, the first position of each, and each position's distinct index."""
    uniq, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), len(key), dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(len(key)), reduce="amin"
    )
    return uniq, first, inverse


def fused_scores(dense: np.ndarray, log_probs: np.ndarray, weight: float, scale: float) -> np.ndarray:
    """``dense + weight · log p / scale``: the two heads' log-probabilities on the dense score's scale."""
    return (np.asarray(dense, dtype=np.float32) + np.float32(weight / scale) * log_probs).astype(np.float32)
