"""Where assets are stored: one IO manager over a ``BlobStore``, files under the data home or objects in S3.

Every output goes through the codecs of ``sid_platform/artifacts.py`` (Parquet, safetensors, JSON, npz with a
header naming a registered type), never through pickle: a stored asset is read back without running anything
it holds, whoever could write to the bucket. Local and S3 share all of it and differ only in the store;
``SID_DEPLOYMENT=k8s`` picks S3, and the asset code does not change.
"""

from pathlib import Path
from typing import Any

import boto3
from dagster import ConfigurableIOManager, EnvVar, InputContext, OutputContext
from pydantic import Field

from sid_platform.artifacts import read_artifact, write_artifact
from sid_platform.settings import S3_BUCKET_ENV, data_home, s3_asset_prefix, s3_endpoint_url
from sid_platform.storage import BlobStore, LocalBlobStore, S3BlobStore


class AssetIOManager(ConfigurableIOManager):
    """Asset ``a/b`` → key ``a/b<suffix of its format>`` in ``store()``; a subclass per kind of store says which.

    An output of a type with no stored format fails when it is written, naming the asset and the type.
    """

    def store(self) -> BlobStore:
        raise NotImplementedError(f"{type(self).__name__} does not say where assets are stored")

    @staticmethod
    def _stem(context: InputContext | OutputContext) -> str:
        return "/".join(context.asset_key.path)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        try:
            where = write_artifact(self.store(), self._stem(context), obj)
        except TypeError as error:
            raise TypeError(f"asset {context.asset_key.to_user_string()!r} cannot be stored: {error}") from error
        context.add_output_metadata({"path": where})

    def load_input(self, context: InputContext) -> Any:
        return read_artifact(self.store(), self._stem(context))


class LocalAssetIOManager(AssetIOManager):
    """Files under ``base_dir``, by default ``<data home>/assets`` resolved at run time (``$SID_HOME``)."""

    base_dir: str | None = Field(default=None, description="defaults to <data home>/assets, resolved at run time")

    def store(self) -> LocalBlobStore:
        return LocalBlobStore(Path(self.base_dir) if self.base_dir else data_home() / "assets")


class S3AssetIOManager(AssetIOManager):
    """Objects under ``s3://bucket/prefix/``; credentials come from boto3's default chain (environment, role)."""

    bucket: str = Field(description="the assets' bucket")
    prefix: str = Field(default="assets", description="key prefix of every asset")
    endpoint_url: str | None = Field(default=None, description="an S3-compatible server (MinIO); unset = AWS")

    def store(self) -> S3BlobStore:
        return S3BlobStore(self.bucket, self.prefix, boto3.client("s3", endpoint_url=self.endpoint_url))


def io_manager_for(deployment: str) -> AssetIOManager:
    """Files under the data home by default; the S3 bucket ``$SID_S3_BUCKET`` when ``SID_DEPLOYMENT=k8s``."""
    if deployment == "local":
        return LocalAssetIOManager()
    if deployment == "k8s":
        return S3AssetIOManager(bucket=EnvVar(S3_BUCKET_ENV), prefix=s3_asset_prefix(), endpoint_url=s3_endpoint_url())
    raise ValueError(f"SID_DEPLOYMENT={deployment!r}: expected 'local' or 'k8s'")
