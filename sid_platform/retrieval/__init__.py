"""Generative retrieval: the router (a transformer that writes Semantic IDs), the SID trie that keeps its
beam search on codes that exist, the FAISS index of the ANN channel, and the hybrid candidate set.

Pure torch/numpy/faiss; no Dagster here. The assets in ``sid_platform.assets.retrieval`` wire it up.
"""

from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.beam_search import BeamResult, constrained_beam_search
from sid_platform.retrieval.candidates import ChannelReport, hybrid_candidates, rank_candidates
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig, SemanticRouter
from sid_platform.retrieval.trie import SidTrie

__all__ = [
    "AnnIndex",
    "AnnIndexConfig",
    "BeamResult",
    "ChannelReport",
    "RouterCheckpoint",
    "RouterConfig",
    "SemanticRouter",
    "SidTrie",
    "constrained_beam_search",
    "hybrid_candidates",
    "rank_candidates",
]
