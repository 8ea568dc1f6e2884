"""The code location: assets, checks, jobs, sensors, schedules and resources, gathered; nothing else lives here."""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from sid_platform.assets import baselines, evaluation, ingest, promotion, reranking, retrieval, semantic_ids, splits
from sid_platform.automation.jobs import all_jobs
from sid_platform.automation.schedules import all_schedules
from sid_platform.automation.sensors import all_sensors
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

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
    jobs=all_jobs,
    sensors=all_sensors,
    schedules=all_schedules,
    resources={
        "io_manager": io_manager_for(deployment()),
        "storage": storage_for(deployment()),
        "dataset": DatasetResource(),
        "evaluation_protocol": EvaluationProtocol(),
        "mlflow": MlflowResource(),
    },
)
