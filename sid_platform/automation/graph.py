"""The asset graph as runs see it: every stage's assets and checks, the jobs, and the resources per deployment.

The code location (``definitions.py``, which adds the sensors and schedules) and in-process runs
(``automation/run.py``) both build on this, so nothing in ``automation`` imports ``definitions``.
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from sid_platform.assets import baselines, evaluation, ingest, promotion, reranking, retrieval, semantic_ids, splits
from sid_platform.automation.jobs import all_jobs
from sid_platform.resources import DatasetResource, EvaluationProtocol, MlflowResource, io_manager_for, storage_for
from sid_platform.settings import deployment

# One module per stage, in graph order; a new stage is one more entry.
ASSET_MODULES = [
    ingest,
    splits,
    baselines,
    semantic_ids,
    retrieval,
    reranking,
    evaluation,
    promotion,
]


def resources_for(where: str) -> dict[str, Any]:
    """Every resource the graph uses; storage (assets and side files) is chosen per deployment."""
    return {
        "io_manager": io_manager_for(where),
        "storage": storage_for(where),
        "dataset": DatasetResource(),
        "evaluation_protocol": EvaluationProtocol(),
        "mlflow": MlflowResource(),
    }


def graph_definitions() -> Definitions:
    """Assets, checks, jobs and resources (for ``$SID_DEPLOYMENT``): all a run of the graph's jobs needs."""
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=all_jobs,
        resources=resources_for(deployment()),
    )
