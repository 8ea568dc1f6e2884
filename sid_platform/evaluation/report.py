"""Turning metric rows into what people read: a markdown table and a JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sid_platform.tables import markdown_table

__all__ = ["METRIC_COLUMNS", "markdown_table", "metrics_table", "write_json"]  # markdown_table: its old home

METRIC_COLUMNS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def metrics_table(results: dict[str, dict[str, float]], columns: Sequence[str] = METRIC_COLUMNS) -> str:
    """One row per model, in insertion order."""
    return markdown_table(
        ["model", *columns], [[name, *(m.get(c, float("nan")) for c in columns)] for name, m in results.items()]
    )


def write_json(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False))
    return path
