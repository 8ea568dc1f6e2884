"""Resources: where assets are stored, where the data comes from, and where runs and models are tracked.

The IO manager writes polars frames as Parquet and anything else (model checkpoints as plain dicts of
tensors, small model objects) as pickles, under the platform's data home. ``deploy/`` swaps it for
dagster-aws's S3 IO manager; the asset code does not change.
"""

import dataclasses
import os
import pickle
import typing
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    Config,
    ConfigurableIOManager,
    ConfigurableResource,
    InputContext,
    OutputContext,
    get_dagster_logger,
)
from pydantic import Field, create_model

from sid_platform.data.amazon_raw import RemoteFile, load_amazon_raw
from sid_platform.data.generic import load_generic
from sid_platform.data.p5 import load_p5
from sid_platform.data.schema import LoadedData
from sid_platform.data.synthetic import generate
from sid_platform.registry import GatePolicy, Tracking, log_run, png_from_markdown
from sid_platform.registry.tracking import DEFAULT_EXPERIMENT, TRACKING_URI_ENV
from sid_platform.settings import DATA_DIR_ENV, data_home, resolve_data_dir


class LocalParquetIOManager(ConfigurableIOManager):
    """Frames → ``<base_dir>/<asset path>.parquet``; other objects → ``.pkl`` beside them."""

    base_dir: str | None = Field(default=None, description="defaults to <data home>/assets, resolved at run time")

    def _path(self, context: InputContext | OutputContext, suffix: str) -> Path:
        return Path(self.base_dir or data_home() / "assets", *context.asset_key.path).with_suffix(suffix)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        is_frame = isinstance(obj, pl.DataFrame)
        path = self._path(context, ".parquet" if is_frame else ".pkl")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        if is_frame:
            obj.write_parquet(tmp)
        else:
            with open(tmp, "wb") as handle:
                pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)  # readers never see a half-written file
        # The other format's file, if an earlier run left one, would shadow this output on load.
        path.with_suffix(".pkl" if is_frame else ".parquet").unlink(missing_ok=True)
        context.add_output_metadata({"path": str(path)})

    def load_input(self, context: InputContext) -> Any:
        parquet = self._path(context, ".parquet")
        if parquet.is_file():
            return pl.read_parquet(parquet)
        with open(self._path(context, ".pkl"), "rb") as handle:
            return pickle.load(handle)


class DatasetResource(ConfigurableResource):
    """Which source feeds the graph, and where its files are.

    ``source="auto"`` reads the P5-format dataset from the data directory (config ``data_dir`` or the
    ``SID_DATA_DIR`` environment variable); when neither is set it falls back to the synthetic
    generator and says so loudly. Any explicit source fails with a clear message when files are missing.
    """

    source: str = Field(default="auto", description="auto | p5 | amazon_raw | generic | synthetic")
    data_dir: str | None = Field(default=None, description=f"folder with the data; defaults to ${DATA_DIR_ENV}")
    dataset: str = Field(default="beauty", description="P5 dataset folder name (beauty, sports)")
    raw_category: str = Field(
        default="Beauty", description="amazon_raw: the <Category> in reviews_<Category>_5.json.gz"
    )
    reviews_url: str | None = None
    reviews_sha256: str | None = None
    meta_url: str | None = None
    meta_sha256: str | None = None
    interactions_path: str | None = Field(default=None, description="generic: CSV, Parquet or JSON lines")
    items_path: str | None = Field(default=None, description="generic: optional catalog file")
    interaction_columns: dict[str, str] = Field(default_factory=dict, description="normalized name -> your column")
    item_columns: dict[str, str] = Field(default_factory=dict, description="normalized name -> your column")
    category_separator: str = ">"
    synthetic_users: int = 800
    synthetic_items: int = 320
    synthetic_seed: int = 0

    def load(self) -> LoadedData:
        data_dir = resolve_data_dir(self.data_dir)
        source = self.source
        if source == "auto":
            if data_dir is None:
                get_dagster_logger().warning(
                    "\n"
                    + "!" * 78
                    + f"\nNO DATA DIRECTORY: neither the dataset resource's data_dir nor ${DATA_DIR_ENV} "
                    "is set.\nRunning on the SYNTHETIC generator; figures from this run say nothing about real data.\n"
                    + "!"
                    * 78
                )
                source = "synthetic"
            else:
                source = "p5"
        if source == "synthetic":
            return generate(self.synthetic_users, self.synthetic_items, seed=self.synthetic_seed)
        if data_dir is None:
            raise ValueError(
                f"source {source!r} needs a data directory: set ${DATA_DIR_ENV} or the dataset resource's data_dir"
            )
        if source == "p5":
            return load_p5(data_dir, self.dataset)
        if source == "amazon_raw":
            reviews = (
                RemoteFile(self.reviews_url, self.reviews_sha256) if self.reviews_url and self.reviews_sha256 else None
            )
            meta = RemoteFile(self.meta_url, self.meta_sha256) if self.meta_url and self.meta_sha256 else None
            return load_amazon_raw(data_dir, self.raw_category, reviews, meta)
        if source == "generic":
            if not self.interactions_path:
                raise ValueError("source 'generic' needs interactions_path in the dataset resource config")
            items = data_dir / self.items_path if self.items_path else None
            return load_generic(
                data_dir / self.interactions_path,
                items,
                self.interaction_columns,
                self.item_columns,
                self.category_separator,
            )
        raise ValueError(f"unknown source {self.source!r}; choose auto, p5, amazon_raw, generic or synthetic")


class EvaluationProtocol(ConfigurableResource):
    """The evaluation setting shared by early stopping and the final table, so every figure uses the same one.

    ``exclude_history``: drop items already in the user's history from the ranking. Off by default,
    as in the published anchors (TIGER, ActionPiece); no item repeats within an Amazon 5-core sequence.
    """

    exclude_history: bool = False
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20])


class MlflowResource(ConfigurableResource):
    """The MLflow store, the registered model's name, and the thresholds of the promotion gate and the sensors.

    ``tracking_uri`` unset: ``$MLFLOW_TRACKING_URI``, else SQLite under the data home (artifacts beside it).
    """

    tracking_uri: str | None = Field(default=None, description=f"defaults to ${TRACKING_URI_ENV}, then SQLite")
    experiment: str = DEFAULT_EXPERIMENT
    registered_model: str = Field(default="sid-recommender", description="the one name the servable bundle has")
    recall_tolerance: float = Field(
        default=0.02, description="gate: relative Recall@10 drop below the champion still promoted"
    )
    min_utilization: float = Field(default=0.8, description="gate and sensor: minimum codebook utilization")
    recall_drop_alert: float = Field(
        default=0.02, description="sensor: relative Recall@10 drop below the champion that requests a retrain"
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


def config_class(name: str, dataclass_type: type) -> type[Config]:
    """A Dagster ``Config`` with the fields and defaults of a core dataclass, so knobs are defined once."""
    hints = typing.get_type_hints(dataclass_type)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(dataclass_type)}
    return create_model(name, __base__=Config, **fields)  # type: ignore[call-overload]


def io_manager_for(deployment: str) -> ConfigurableIOManager:
    """Local Parquet files by default; dagster-aws's S3 IO manager when ``SID_DEPLOYMENT=k8s``."""
    if deployment == "local":
        return LocalParquetIOManager()
    if deployment == "k8s":
        from dagster import EnvVar
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        return S3PickleIOManager(
            s3_resource=S3Resource(endpoint_url=os.environ.get("SID_S3_ENDPOINT_URL")),
            s3_bucket=EnvVar("SID_S3_BUCKET"),
            s3_prefix=os.environ.get("SID_S3_PREFIX", "assets"),
        )
    raise ValueError(f"SID_DEPLOYMENT={deployment!r}: expected 'local' or 'k8s'")
