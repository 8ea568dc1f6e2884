"""Semantic IDs: tokenizers (RQ-VAE, RQ-KMeans) behind one interface, the USID table, the prefix index
and intrinsic metrics. Plain Python, numpy, faiss and torch; the Dagster assets wrap it."""

from sid_platform.semantic_ids.base import SemanticTokenizer
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.semantic_ids.intrinsic import (
    code_label_audit,
    intrinsic_report,
    perplexity_per_level,
    similarity_depth_spearman,
    taxonomy_alignment,
    utilization_per_level,
)
from sid_platform.semantic_ids.prefix_index import PrefixIndex, build_prefix_index
from sid_platform.semantic_ids.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from sid_platform.semantic_ids.rqvae import RQVAEConfig, RQVAETokenizer
from sid_platform.semantic_ids.spec import TokenizerSpec
from sid_platform.semantic_ids.taxonomy import Taxonomy, hierarchical_batches
from sid_platform.semantic_ids.usid import (
    UsidLookup,
    build_usid_table,
    collision_rate,
    extend_usid_table,
    sid_stability,
)

__all__ = [
    "CodebooksCheckpoint",
    "PrefixIndex",
    "RQKMeansConfig",
    "RQKMeansTokenizer",
    "RQVAEConfig",
    "RQVAETokenizer",
    "SemanticTokenizer",
    "Taxonomy",
    "TokenizerSpec",
    "UsidLookup",
    "build_prefix_index",
    "build_usid_table",
    "code_label_audit",
    "collision_rate",
    "extend_usid_table",
    "hierarchical_batches",
    "intrinsic_report",
    "perplexity_per_level",
    "sid_stability",
    "similarity_depth_spearman",
    "taxonomy_alignment",
    "utilization_per_level",
]
