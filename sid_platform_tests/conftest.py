"""Shared fixtures: an isolated data home per test, the synthetic dataset, and the real data when present."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sid_platform.data.synthetic import generate
from sid_platform.loopback import free_port, stop, wait_for_port
from sid_platform.settings import DATA_DIR_ENV, HOME_ENV

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes under its own temporary data home, Dagster home and MLflow store, never into the checkout."""
    home = tmp_path / "sid_home"
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow too: the embedded store under the data home
    return home


@pytest.fixture(scope="session")
def synthetic():
    return generate(n_users=800, n_items=320, seed=0)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared public data; CI always sets SID_DATA_DIR, a bare checkout skips these tests."""
    value = os.environ.get(DATA_DIR_ENV)
    if not value or not (Path(value) / "amazon2014").is_dir():
        pytest.skip(f"{DATA_DIR_ENV} does not point at the shared Amazon 2014 data")
    return Path(value)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode (``moto[server]``, a dev dependency) on a free loopback port: DynamoDB for the tests."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, grace=10)


@pytest.fixture(scope="session")
def aws_session():
    """A boto3 session with moto's dummy credentials, so no test reads (or needs) real ones."""
    import boto3

    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
