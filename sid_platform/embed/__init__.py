"""Item vectors for Semantic IDs: item text, encoders (MiniLM, T5, CLIP), collaborative vectors, fusion, a cache.

Plain Python, numpy and torch; the Dagster assets that use it live in ``sid_platform/assets``.
"""
