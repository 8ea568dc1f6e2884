"""One home for the quality knobs: what the checks, the promotion gate and the retrain sensors hold a run to.

Every module, Dagster config default and description reads these values from ``POLICY``, so changing a
threshold is one edit here (or a run-config override of the field that exposes it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityPolicy:
    """Thresholds and cut-offs; shares and tolerances are fractions (0.02 is 2 %)."""

    # Every codebook level uses at least this share of its codes: the blocking check, the gate and a sensor.
    min_codebook_utilization: float = 0.8
    # Gate: a candidate whose Recall@10 is at most this much (relative) below the champion's is still promoted.
    recall_tolerance: float = 0.02
    # Sensor: a monitoring evaluation this much (relative) below the champion's Recall@10 requests a retrain.
    recall_drop_alert: float = 0.02
    # Ingest checks: a table with a larger share of its source rows quarantined fails.
    max_quarantined_share: float = 0.05
    # The K of every Recall@K and NDCG@K the platform reports.
    ks: tuple[int, ...] = (5, 10, 20)


POLICY = QualityPolicy()
