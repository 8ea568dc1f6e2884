"""One place for paths and the environment: every environment variable the platform reads is read here.

Run-config presets (profiles) live in ``sid_platform/profiles.py``; quality thresholds in ``policy.py``.
Dagster resources that need a secret or a per-deployment value at run time use ``dagster.EnvVar`` with
the names defined here.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SID_DATA_DIR"
HOME_ENV = "SID_HOME"
PROFILE_ENV = "SID_PROFILE"
DEPLOYMENT_ENV = "SID_DEPLOYMENT"  # local (files under the data home) | k8s (S3)
S3_BUCKET_ENV = "SID_S3_BUCKET"
S3_PREFIX_ENV = "SID_S3_PREFIX"  # assets' key prefix
S3_FILES_PREFIX_ENV = "SID_S3_FILES_PREFIX"  # side files' key prefix
S3_ENDPOINT_ENV = "SID_S3_ENDPOINT_URL"  # an S3-compatible server (MinIO); unset = AWS
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
RETRAIN_CRON_ENV = "SID_RETRAIN_CRON"
RETRAIN_SCHEDULE_ENV = "SID_RETRAIN_SCHEDULE"  # running | stopped
TORCH_THREADS_ENV = "SID_TORCH_THREADS"  # N (every stage) or serving=N,training=M; see sid_platform/threads.py
DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # Mondays 03:00 UTC
# Set by torchrun in every process it starts (MASTER_ADDR/MASTER_PORT are read by torch's env:// rendezvous).
RANK_ENV = "RANK"
WORLD_SIZE_ENV = "WORLD_SIZE"
LOCAL_RANK_ENV = "LOCAL_RANK"


def data_home() -> Path:
    """Where the platform writes what it produces (asset files, quarantine, reports, MLflow store)."""
    return Path(os.environ.get(HOME_ENV, Path.cwd() / ".sid_home")).absolute()


def resolve_data_dir(configured: str | None = None) -> Path | None:
    """Config wins over ``SID_DATA_DIR``; ``None`` means no data directory was given at all."""
    value = configured or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser().absolute() if value else None


def profile_name() -> str:
    """The profile of requested runs (sensors, schedule): ``$SID_PROFILE``, default ``default``."""
    return os.environ.get(PROFILE_ENV, "default")


def deployment() -> str:
    """``$SID_DEPLOYMENT``: ``local`` (the default) or ``k8s``; the resources check the value."""
    return os.environ.get(DEPLOYMENT_ENV, "local")


def s3_asset_prefix() -> str:
    return os.environ.get(S3_PREFIX_ENV, "assets")


def s3_files_prefix() -> str:
    return os.environ.get(S3_FILES_PREFIX_ENV, "files")


def s3_endpoint_url() -> str | None:
    return os.environ.get(S3_ENDPOINT_ENV) or None


def tracking_uri() -> str | None:
    """``$MLFLOW_TRACKING_URI`` when set; the tracking code falls back to SQLite under the data home."""
    return os.environ.get(TRACKING_URI_ENV) or None


def dagster_home() -> Path | None:
    """``$DAGSTER_HOME`` when set: where in-process runs are recorded."""
    value = os.environ.get(DAGSTER_HOME_ENV)
    return Path(value).expanduser().absolute() if value else None


def retrain_cron() -> str:
    return os.environ.get(RETRAIN_CRON_ENV, DEFAULT_RETRAIN_CRON)


def retrain_schedule_status() -> str:
    """``running`` (the default) or ``stopped``; anything else is refused."""
    status = os.environ.get(RETRAIN_SCHEDULE_ENV, "running").lower()
    if status not in ("running", "stopped"):
        raise ValueError(f"{RETRAIN_SCHEDULE_ENV}={status!r}: expected running or stopped")
    return status


def torch_threads() -> str | None:
    """``$SID_TORCH_THREADS`` when set: the intra-op thread counts that override ``sid_platform/threads.py``'s."""
    return os.environ.get(TORCH_THREADS_ENV) or None


def torchrun_process() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when torchrun started this process; ``None`` for a plain process."""
    world_size = os.environ.get(WORLD_SIZE_ENV)
    if not world_size:
        return None
    return int(os.environ.get(RANK_ENV, "0")), int(world_size), int(os.environ.get(LOCAL_RANK_ENV, "0"))


def library_defaults(**values: str) -> None:
    """Default environment switches a library reads once at import (analytics off, hub offline).

    Set only where unset, so a user's own setting wins.
    """
    for name, value in values.items():
        os.environ.setdefault(name, value)
