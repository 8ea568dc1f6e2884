"""Where side files go (reports, audits, histories, resume files): one resource per kind of storage.

Assets go through the IO manager; everything else a run writes goes through ``storage.store()``, a core
``BlobStore``, so the side files follow the assets: under the local data home by default, in S3 beside the
assets in the cluster (``SID_DEPLOYMENT=k8s``), where a pod's disk would lose them.
"""

from pathlib import Path

import boto3
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from sid_platform.settings import S3_BUCKET_ENV, data_home, s3_endpoint_url, s3_files_prefix
from sid_platform.storage import BlobStore, LocalBlobStore, S3BlobStore, StoredFile


class SideFileStorage(ConfigurableResource):
    """The store side files are written to; a subclass per kind of storage says which."""

    def store(self) -> BlobStore:
        raise NotImplementedError(f"{type(self).__name__} does not say where side files are stored")

    def file(self, key: str) -> StoredFile:
        """One key of the store, read and written whole (a trainer's resume file, a published table)."""
        return StoredFile(self.store(), key)


class LocalStorage(SideFileStorage):
    """Files under ``root``, by default the data home resolved at run time (``$SID_HOME``)."""

    root: str | None = Field(default=None, description="defaults to the data home ($SID_HOME), resolved at run time")

    def store(self) -> LocalBlobStore:
        return LocalBlobStore(Path(self.root) if self.root else data_home())


class S3Storage(SideFileStorage):
    """Objects under ``s3://bucket/prefix/``; credentials come from boto3's default chain (environment, role)."""

    bucket: str = Field(description="the bucket; the assets' bucket in the cluster")
    prefix: str = Field(default="files", description="key prefix of every side file")
    endpoint_url: str | None = Field(default=None, description="an S3-compatible server (MinIO); unset = AWS")

    def store(self) -> S3BlobStore:
        return S3BlobStore(self.bucket, self.prefix, boto3.client("s3", endpoint_url=self.endpoint_url))


def storage_for(deployment: str) -> SideFileStorage:
    """Side files beside the assets: the data home locally, the assets' S3 bucket when ``SID_DEPLOYMENT=k8s``."""
    if deployment == "local":
        return LocalStorage()
    if deployment == "k8s":
        return S3Storage(
            bucket=EnvVar(S3_BUCKET_ENV),
            prefix=s3_files_prefix(),
            endpoint_url=s3_endpoint_url(),
        )
    raise ValueError(f"SID_DEPLOYMENT={deployment!r}: expected 'local' or 'k8s'")
