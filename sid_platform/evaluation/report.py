"""Turning metric rows into what people read: a markdown table and a JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sid_platform.tables import markdown_table

__all__ = ["METRIC_COLUMNS", "markdown_table", "json_bytes", "metrics_table"]  # markdown_table: its old home

METRIC_COLUMNS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def metrics_table(results: dict[str, dict[str, float]], columns: Sequence[str] = METRIC_COLUMNS) -> str:
    """One row per model, in insertion order."""
    return markdown_table(
        ["model", *columns], [[name, *(m.get(c, float("nan")) for c in columns)] for name, m in results.items()]
    )


def json_bytes(document: dict[str, Any]) -> bytes:
    """The evaluation document as the JSON file a run stores beside its assets."""
    return json.dumps(document, indent=2, sort_keys=False).encode()
