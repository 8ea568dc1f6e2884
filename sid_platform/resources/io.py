"""Where assets are stored: Parquet and pickles under the data home, or dagster-aws's S3 IO manager in the cluster.

The IO manager writes polars frames as Parquet and anything else (model checkpoints, small model objects)
as pickles. ``SID_DEPLOYMENT=k8s`` swaps it for the S3 IO manager; the asset code does not change.
"""

import pickle
from pathlib import Path
from typing import Any

import polars as pl
from dagster import ConfigurableIOManager, EnvVar, InputContext, OutputContext
from pydantic import Field

from sid_platform.settings import S3_BUCKET_ENV, data_home, s3_asset_prefix, s3_endpoint_url


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


def io_manager_for(deployment: str) -> ConfigurableIOManager:
    """Local Parquet files by default; dagster-aws's S3 IO manager when ``SID_DEPLOYMENT=k8s``."""
    if deployment == "local":
        return LocalParquetIOManager()
    if deployment == "k8s":
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        return S3PickleIOManager(
            s3_resource=S3Resource(endpoint_url=s3_endpoint_url()),
            s3_bucket=EnvVar(S3_BUCKET_ENV),
            s3_prefix=s3_asset_prefix(),
        )
    raise ValueError(f"SID_DEPLOYMENT={deployment!r}: expected 'local' or 'k8s'")
