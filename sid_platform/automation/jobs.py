"""Jobs over the asset graph."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

# Materializes every asset (with its checks) on the configured dataset; `make demo` runs it.
main_job = define_asset_job(
    "main_job", selection=AssetSelection.all(), description="The whole graph, data to evaluation."
)

all_jobs = [main_job]
