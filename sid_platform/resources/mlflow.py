"""Where runs and models are tracked: the MLflow store, the registered model, and the gate's thresholds."""

import tempfile
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, ConfigurableResource
from pydantic import Field

from sid_platform.policy import POLICY
from sid_platform.registry import GatePolicy, Tracking, log_run, png_from_markdown
from sid_platform.registry.tracking import DEFAULT_EXPERIMENT
from sid_platform.settings import TRACKING_URI_ENV


class MlflowResource(ConfigurableResource):
    """The MLflow store, the registered model's name, and the thresholds of the promotion gate and the sensors.

    ``tracking_uri`` unset: ``$MLFLOW_TRACKING_URI``, else SQLite under the data home (artifacts beside it).
    """

    tracking_uri: str | None = Field(default=None, description=f"defaults to ${TRACKING_URI_ENV}, then SQLite")
    experiment: str = DEFAULT_EXPERIMENT
    registered_model: str = Field(default="sid-recommender", description="the one name the servable bundle has")
    recall_tolerance: float = Field(
        default=POLICY.recall_tolerance, description="gate: relative Recall@10 drop below the champion still promoted"
    )
    min_utilization: float = Field(
        default=POLICY.min_codebook_utilization, description="gate and sensor: minimum codebook utilization"
    )
    recall_drop_alert: float = Field(
        default=POLICY.recall_drop_alert,
        description="sensor: relative Recall@10 drop below the champion that requests a retrain",
    )

    def tracking(self) -> Tracking:
        return Tracking.resolve(self.tracking_uri, self.experiment)

    def policy(self) -> GatePolicy:
        return GatePolicy(recall_tolerance=self.recall_tolerance, min_utilization=self.min_utilization)

    def log_training_run(
        self,
        context: AssetExecutionContext,
        *,
        params: dict[str, Any],
        metrics: dict[str, Any],
        curves: dict[str, list[float]] | None = None,
        plots: dict[str, str] | None = None,
        files: dict[str, Path] | None = None,
    ) -> str:
        """Log one training asset's run to MLflow, tagged with the Dagster run and asset; returns the MLflow run id.

        ``metrics``: final figures (non-numeric values are skipped); ``curves``: per-epoch series; ``plots``:
        markdown images as made by ``evaluation/plots.py`` (stored as PNG); ``files``: artifact folder → path.
        """
        name = context.asset_key.to_user_string()
        run_id = log_run(
            self.tracking(),
            name,
            params=params,
            metrics=metrics,
            curves=curves,
            images={key: png_from_markdown(value) for key, value in (plots or {}).items()},
            files=files,
            tags={"dagster_run_id": context.run_id, "dagster_job": context.job_name or "", "dagster_asset": name},
        )
        context.log.info(f"MLflow run {run_id} for {name} in {self.tracking().uri}")
        return run_id

    def log_report(
        self, context: AssetExecutionContext, report: bytes, *, metrics: dict[str, Any], name: str = "report.html"
    ) -> str:
        """Log the asset's run with ``report`` as the artifact ``report/<name>`` and its figures; returns the run id."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(report)
            return self.log_training_run(context, params={}, metrics=metrics, files={"report": path})
