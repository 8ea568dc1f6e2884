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
    # Ingest checks: a table fails when more of its source rows than this were quarantined ...
    max_quarantined_rows: int = 10
    # ... and a larger share of them than this: both, so 1 bad row in 15 passes while 60,000 in a million fail.
    max_quarantined_fraction: float = 0.05
    # The K of every Recall@K and NDCG@K the platform reports.
    ks: tuple[int, ...] = (5, 10, 20)


POLICY = QualityPolicy()


@dataclass(frozen=True)
class QuarantineLimits:
    """When the blocking ingest checks stop a run: more quarantined rows than both limits allow. A count
    alone would block a large source for a handful of bad rows; a share alone, a small one for one row."""

    # A table may lose this many rows to quarantine, whatever its size.
    max_quarantined_rows: int = POLICY.max_quarantined_rows
    # A table may lose this share of its rows (0.05 is 5 %), however many that is.
    max_quarantined_fraction: float = POLICY.max_quarantined_fraction

    def exceeded(self, quarantined: int, total: int) -> bool:
        """Whether ``quarantined`` of ``total`` source rows is over both limits."""
        return quarantined > self.max_quarantined_rows and quarantined > self.max_quarantined_fraction * total

    def describe(self) -> str:
        return f"more than {self.max_quarantined_rows:,} rows and more than {self.max_quarantined_fraction:.0%}"
