"""Batched beam search constrained by the SID trie: every beam of every user expands in one tensor op.

At each level the logits of tokens with no child in the trie are masked before the log-softmax, so the
search only walks prefixes that exist and every finished beam is an item. Scores are the summed
log-probabilities of the constrained (renormalized) distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie

BEAM_CHUNK = 512  # users searched per tensor pass


@dataclass
class BeamResult:
    items: np.ndarray  # [users, beam_size] item indices, best first; -1 where fewer IDs exist
    scores: np.ndarray  # [users, beam_size] log-probability of each full ID
    prefixes: np.ndarray  # [users, n_prefixes] trie nodes at prefix_depth, best first; -1 padding
    prefix_scores: np.ndarray


@torch.no_grad()
def constrained_beam_search(
    router: SemanticRouter,
    states: torch.Tensor,
    trie: SidTrie,
    beam_size: int,
    prefix_depth: int = 0,
    n_prefixes: int = 0,
    batch_size: int = BEAM_CHUNK,
) -> BeamResult:
    """Top ``beam_size`` full IDs per user, and the top ``n_prefixes`` prefixes of length ``prefix_depth``.

    ``states``: [users, d] user states from ``router.user_states``. The beam is ``max(beam_size,
    n_prefixes)`` wide down to ``prefix_depth`` and ``beam_size`` wide below it.
    """
    if len(trie.vocab_sizes) != len(router.vocab_sizes):
        raise ValueError(f"trie has {trie.depth} token levels, the router {len(router.vocab_sizes)}")
    if n_prefixes and not 1 <= prefix_depth <= trie.depth:
        raise ValueError(f"prefix_depth must be in 1..{trie.depth}, got {prefix_depth}")
    was_training = router.training
    router.eval()
    parts = [
        _search_chunk(router, states[start : start + batch_size], trie, beam_size, prefix_depth, n_prefixes)
        for start in range(0, len(states), batch_size)
    ]
    router.train(was_training)
    return BeamResult(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


def _search_chunk(
    router: SemanticRouter, states: torch.Tensor, trie: SidTrie, beam_size: int, prefix_depth: int, n_prefixes: int
) -> tuple[np.ndarray, ...]:
    users = states.shape[0]
    nodes = torch.zeros(users, 1, dtype=torch.long)
    scores = torch.zeros(users, 1)
    dec = states.unsqueeze(1)
    prefixes = torch.full((users, n_prefixes), -1, dtype=torch.long)
    prefix_scores = torch.full((users, n_prefixes), float("-inf"))
    for level in range(trie.depth):
        width = max(beam_size, n_prefixes) if level < prefix_depth else beam_size
        child = trie.children[level][nodes.clamp(min=0)]  # [users, beams, vocab]
        invalid = (child < 0) | (nodes < 0).unsqueeze(-1)
        logp = torch.log_softmax(router.level_logits(dec, level).masked_fill(invalid, float("-inf")), dim=-1)
        total = (scores.unsqueeze(-1) + logp).masked_fill(invalid, float("-inf")).flatten(1)
        top, flat = total.topk(min(width, total.shape[1]), dim=1)
        vocab = child.shape[-1]
        beam, token = flat // vocab, flat % vocab
        nodes = child.flatten(1).gather(1, flat).masked_fill(torch.isinf(top), -1)
        scores = top
        parent = dec.gather(1, beam.unsqueeze(-1).expand(-1, -1, dec.shape[-1]))
        dec = router.next_state(parent, level, token)
        if level + 1 == prefix_depth and n_prefixes:
            take = min(n_prefixes, nodes.shape[1])
            prefixes[:, :take], prefix_scores[:, :take] = nodes[:, :take], scores[:, :take]
    items = torch.where(nodes >= 0, trie.leaf_item[nodes.clamp(min=0)], torch.full_like(nodes, -1))
    if items.shape[1] < beam_size:  # fewer IDs than beams: pad
        pad = beam_size - items.shape[1]
        items = torch.cat([items, torch.full((users, pad), -1, dtype=torch.long)], 1)
        scores = torch.cat([scores, torch.full((users, pad), float("-inf"))], 1)
    return items.numpy(), scores.numpy(), prefixes.numpy(), prefix_scores.numpy()
