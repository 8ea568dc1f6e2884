"""Dagster resources: where assets and side files are stored, where data comes from, where runs are tracked.

Resources are the one place Dagster meets the core (besides the assets): each wraps a core object
(``BlobStore``, ``Tracking``, a data loader) so the core never imports Dagster.
"""

from sid_platform.resources.config import config_class
from sid_platform.resources.dataset import DatasetResource
from sid_platform.resources.io import AssetIOManager, LocalAssetIOManager, S3AssetIOManager, io_manager_for
from sid_platform.resources.mlflow import MlflowResource
from sid_platform.resources.protocol import EvaluationProtocol
from sid_platform.resources.storage import LocalStorage, S3Storage, SideFileStorage, storage_for

__all__ = [
    "AssetIOManager",
    "DatasetResource",
    "EvaluationProtocol",
    "LocalAssetIOManager",
    "LocalStorage",
    "MlflowResource",
    "S3AssetIOManager",
    "S3Storage",
    "SideFileStorage",
    "config_class",
    "io_manager_for",
    "storage_for",
]
