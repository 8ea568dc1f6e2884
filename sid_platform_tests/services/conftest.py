"""One PostgreSQL cluster, one moto S3 server and one MLflow server per session, and two runs of the graph on them
as the cluster runs it: the Dagster instance of ``deploy/dagster.yaml`` (Postgres), ``SID_DEPLOYMENT=k8s``
(assets and side files in S3) and ``MLFLOW_TRACKING_URI`` at the server (Postgres store, S3 artifacts).

Every test in this folder reads these two runs, so the whole folder costs one ``test``-profile run, one
two-asset run and the servers' start (about 20 s, most of it MLflow's migrations).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from dagster import ExecuteInProcessResult

from sid_platform.automation.run import run_main_job
from sid_platform.settings import (
    DAGSTER_HOME_ENV,
    DATA_DIR_ENV,
    DEPLOYMENT_ENV,
    HOME_ENV,
    S3_BUCKET_ENV,
    S3_ENDPOINT_ENV,
)
from sid_platform_tests.services.servers import (
    FAKE_AWS,
    Mlflow,
    Postgres,
    ServerUnavailable,
    mlflow_server,
    moto_server,
    postgres_cluster,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BUCKET = "sid-platform"
# The second run: a blocking-checked asset recomputed from stored inputs, and the promotion, which reads every
# bundle component and the evaluation back from the bucket and registers version 2.
SECOND_RUN_ASSETS = ["usid_table", "model_promotion"]


def instance_yaml(s3_endpoint: str) -> dict[str, Any]:
    """``deploy/dagster.yaml`` as run here: its Postgres storage and concurrency pools as they are, its S3
    compute logs pointed at the local server; the K8s run launcher and the queued coordinator left out, since
    an in-process run uses neither (and dagster-k8s is not a dependency)."""
    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    compute_logs = deployed["compute_logs"]
    compute_logs["config"] = {**compute_logs["config"], "endpoint_url": s3_endpoint}
    return {
        "storage": deployed["storage"],
        "compute_logs": compute_logs,
        "concurrency": deployed["concurrency"],
        "telemetry": {"enabled": False},
    }


@dataclass(frozen=True)
class Cluster:
    """The servers, the environment a run pod would have, and the two runs made with it.

    Talking to MLflow needs the platform user's credentials: a test that does takes ``in_cluster``."""

    postgres: Postgres
    s3_endpoint: str
    mlflow: Mlflow
    env: dict[str, str]
    sid_home: Path
    dagster_home: Path
    first: ExecuteInProcessResult
    second: ExecuteInProcessResult

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.uri

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_endpoint, **_boto_credentials())

    def keys(self, prefix: str = "") -> list[str]:
        """Every current key in the bucket under ``prefix``."""
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [entry["Key"] for page in pages for entry in page.get("Contents", [])]

    def query(self, database: str, sql: str, *params: Any) -> list[tuple]:
        connection = self.postgres.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()


def _environment(root: Path, postgres: Postgres, s3_endpoint: str, mlflow: Mlflow) -> tuple[dict[str, str], Path, Path]:
    sid_home, dagster_home = root / "sid_home", root / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(s3_endpoint)))
    env = {
        **FAKE_AWS,
        HOME_ENV: str(sid_home),
        DAGSTER_HOME_ENV: str(dagster_home),
        DEPLOYMENT_ENV: "k8s",
        S3_BUCKET_ENV: BUCKET,
        S3_ENDPOINT_ENV: s3_endpoint,
        **mlflow.client_env(),  # the tracking URI and the platform's MLflow user (basic auth)
        # deploy/dagster.yaml reads its database from these (the chart's Secret gives the password)
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": "dagster",
    }
    return env, sid_home, dagster_home


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The servers, started once, and the two runs; everything stopped and deleted after the session."""
    root = tmp_path_factory.mktemp("cluster")
    try:
        with moto_server() as s3_endpoint, postgres_cluster(["dagster", "mlflow"]) as postgres:
            s3 = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())
            s3.create_bucket(Bucket=BUCKET)
            # Versioned, so a file written and then deleted (the router's resume file) leaves its trace.
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
            backend = postgres.uri("mlflow", driver="postgresql+psycopg2")
            with mlflow_server(backend, f"s3://{BUCKET}/mlflow", s3_endpoint) as mlflow:
                env, sid_home, dagster_home = _environment(root, postgres, s3_endpoint, mlflow)
                with pytest.MonkeyPatch.context() as monkeypatch:
                    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
                    for name, value in env.items():
                        monkeypatch.setenv(name, value)
                    first = run_main_job("test")
                    second = run_main_job("test", assets=SECOND_RUN_ASSETS)
                yield Cluster(postgres, s3_endpoint, mlflow, env, sid_home, dagster_home, first, second)
    except ServerUnavailable as reason:
        pytest.skip(str(reason))


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        "region_name": FAKE_AWS["AWS_DEFAULT_REGION"],
    }


@pytest.fixture
def in_cluster(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """This test runs with the cluster's environment (its instance, bucket and tracking server)."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)
    return cluster
