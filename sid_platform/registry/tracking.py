"""Where MLflow lives, and one way to log a training run to it.

Embedded by default: a SQLite store at ``<data home>/mlflow/mlflow.db`` with artifacts under
``<data home>/mlflow/artifacts``, so a fresh clone tracks without a server. ``MLFLOW_TRACKING_URI`` or an
explicit URI (the Dagster resource's config) points at a server instead (``deploy/k8s/mlflow-server.yaml``).

Everything goes through an explicit ``MlflowClient``; nothing here calls ``mlflow.set_tracking_uri``,
which would rewrite the process-wide URI (and ``os.environ``) under every other caller.
"""

from __future__ import annotations

import base64
import fcntl
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from sid_platform.settings import data_home, tracking_uri

DEFAULT_EXPERIMENT = "sid-platform"
PARAM_VALUE_LIMIT = 6000


def mlflow_home() -> Path:
    return data_home() / "mlflow"


def default_tracking_uri() -> str:
    return f"sqlite:///{mlflow_home() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """Config wins, then ``MLFLOW_TRACKING_URI``, then the embedded SQLite store under the data home."""
    return configured or tracking_uri() or default_tracking_uri()


def metric_key(name: str) -> str:
    """MLflow names allow letters, digits and ``_ - . / : space``; ``recall@10`` becomes ``recall_at_10``."""
    return re.sub(r"[^\w\-./: ]", "_", name.replace("@", "_at_"))


def png_from_markdown(markdown: str) -> bytes:
    """The PNG inside a ``![alt](data:image/png;base64,...)`` metadata plot (``evaluation/plots.py``)."""
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", markdown)
    if not match:
        raise ValueError("not a markdown image with an inline PNG")
    return base64.b64decode(match.group(1))


@dataclass(frozen=True)
class Tracking:
    """One tracking store and experiment; cheap to build, the client is created on first use."""

    uri: str
    experiment: str = DEFAULT_EXPERIMENT

    @classmethod
    def resolve(cls, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> Tracking:
        return cls(resolve_tracking_uri(uri), experiment)

    @property
    def is_local(self) -> bool:
        return self.uri.startswith(("sqlite:", "file:")) or "://" not in self.uri

    @cached_property
    def client(self) -> MlflowClient:
        if self.uri.startswith("sqlite:///"):
            return _client_of_fresh_sqlite_store(self.uri, Path(self.uri.removeprefix("sqlite:///")))
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    @cached_property
    def experiment_id(self) -> str:
        """Created on first use; a local store keeps its artifacts beside the database, not in ./mlruns."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = None
        if self.is_local and self.uri.startswith("sqlite:///"):
            location = (Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        try:
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except MlflowException:  # another process created it between the lookup and here
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id


def _client_of_fresh_sqlite_store(uri: str, database: Path) -> MlflowClient:
    """Open both stores under an exclusive file lock: MLflow creates and migrates a SQLite schema on first use, and
    two runs doing it at once on a fresh store fail (``table _alembic_tmp_experiments already exists``). The
    second process waits for the first and then finds the schema made."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)  # the first call on each store runs MLflow's migrations
            client.search_registered_models(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return client


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_params(value, f"{name}."))
        else:
            out[metric_key(name)] = str(value)[:PARAM_VALUE_LIMIT]
    return out


def log_run(
    tracking: Tracking,
    run_name: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    curves: Mapping[str, Sequence[float]] | None = None,
    images: Mapping[str, bytes] | None = None,
    files: Mapping[str, Path] | None = None,  # artifact folder → file or folder
    tags: Mapping[str, str] | None = None,
) -> str:
    """One finished MLflow run: params, final metrics, per-step curves, PNG images and files; returns its id.

    Non-finite and non-numeric metric values are skipped rather than failing the run that trained the model.
    """
    client = tracking.client
    run = client.create_run(tracking.experiment_id, run_name=run_name, tags=dict(tags or {}))
    run_id = run.info.run_id
    try:
        now = int(run.info.start_time)
        batch: list[Metric] = []
        for key, value in (metrics or {}).items():
            if isinstance(value, int | float) and math.isfinite(value):
                batch.append(Metric(metric_key(key), float(value), now, 0))
        for key, series in (curves or {}).items():
            batch.extend(
                Metric(metric_key(key), float(v), now, step)
                for step, v in enumerate(series)
                if isinstance(v, int | float) and math.isfinite(v)
            )
        param_list = [Param(k, v) for k, v in _flat_params(params or {}).items()]
        for start in range(0, len(param_list), 100):  # MLflow's per-batch limits: 100 params, 1000 metrics
            client.log_batch(run_id, params=param_list[start : start + 100])
        for start in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[start : start + 1000])
        with tempfile.TemporaryDirectory() as tmp:
            for name, png in (images or {}).items():
                path = Path(tmp) / f"{name}.png"
                path.write_bytes(png)
                client.log_artifact(run_id, str(path), "plots")
        for name, path in (files or {}).items():  # a folder's contents land under ``name``
            if Path(path).is_dir():
                client.log_artifacts(run_id, str(path), name)
            else:
                client.log_artifact(run_id, str(path), name)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
