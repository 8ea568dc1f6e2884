"""Thin Dagster assets, one module per stage: read inputs, call one core function, attach metadata."""
