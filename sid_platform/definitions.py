"""The code location: assets, checks, jobs and resources, gathered; nothing else lives here."""

from __future__ import annotations

import os

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from sid_platform.assets import baselines, evaluation, ingest, semantic_ids, splits
from sid_platform.assets.resources import DatasetResource, EvaluationProtocol, io_manager_for
from sid_platform.automation.jobs import all_jobs

ASSET_MODULES = [ingest, splits, baselines, semantic_ids, evaluation]

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
    jobs=all_jobs,
    resources={
        "io_manager": io_manager_for(os.environ.get("SID_DEPLOYMENT", "local")),
        "dataset": DatasetResource(),
        "evaluation_protocol": EvaluationProtocol(),
    },
)
