"""Real servers on loopback for the scale-out tests: a throwaway PostgreSQL cluster, moto's S3 server and an
MLflow tracking server. Each is a child process on a free port, stopped (and its files removed) by the caller.

Why real processes rather than mocks: the cluster path (``deploy/``) only earns trust when the same clients
(dagster-postgres, boto3, MLflow's REST client) talk to a server over a socket, as they would in a pod.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from sid_platform.loopback import LOOPBACK, free_port

# moto accepts any credentials; these are not secrets, only what boto3 needs to sign a request.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class ServerUnavailable(RuntimeError):
    """The server cannot be started on this machine (binaries or user missing); the tests skip with this reason."""


def wait_until(
    ready: Callable[[], bool], what: str, process: subprocess.Popen | None, timeout: float, log: Path
) -> None:
    """Poll ``ready`` until it holds; fail with the server's log when the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        with suppress(OSError):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn workers included), SIGKILL after a few seconds: its state
    is thrown away, and a graceful uvicorn shutdown waits for the test process's keep-alive connections."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=5)


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """Debian's PostgreSQL binaries (``apt-get install postgresql``: /usr/lib/postgresql/<major>/bin), else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise ServerUnavailable("PostgreSQL is not installed (no initdb/pg_ctl); .ci/install-services installs it")


@dataclass(frozen=True)
class Postgres:
    """A running cluster: connect as ``user`` with ``password`` on ``host:port``."""

    host: str
    port: int
    user: str
    password: str

    def uri(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def connect(self, database: str):  # -> psycopg2 connection
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname=database)

    def create_database(self, name: str) -> None:
        connection = self.connect("postgres")
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def _as_cluster_owner() -> tuple[list[str], int | None, int | None]:
    """The command prefix and owner ids to run PostgreSQL with: ``initdb`` refuses root, so as root the cluster
    belongs to the ``postgres`` user Debian's package creates."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError as error:
        raise ServerUnavailable(
            "running as root and no 'postgres' user to own the cluster (initdb refuses root)"
        ) from error
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServerUnavailable("running as root and no runuser to drop to the 'postgres' user")
    return [runuser, "-u", "postgres", "--"], owner.pw_uid, owner.pw_gid


@contextmanager
def postgres_cluster(databases: Sequence[str]) -> Iterator[Postgres]:
    """``initdb`` + ``pg_ctl start`` a cluster on a free loopback port, password auth (SCRAM), with ``databases``;
    stopped and deleted on exit. Durability is off (fsync, full-page writes): it lives for one test session."""
    bin_dir = postgres_bin_dir()
    prefix, uid, gid = _as_cluster_owner()
    root = Path(tempfile.mkdtemp(prefix="sid-pg-"))
    data, log, password_file = root / "data", root / "server.log", root / "password"
    password = secrets.token_urlsafe(16)
    password_file.write_text(password)
    if uid is not None:
        for path in (root, password_file):
            os.chown(path, uid, gid)
    port = free_port()
    options = (
        f"-c listen_addresses={LOOPBACK} -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        " -c synchronous_commit=off -c max_connections=60"
    )
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "sid", f"--pwfile={password_file}"]
            + ["-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        password_file.unlink()
        subprocess.run([*pg_ctl, "-o", options, "-l", str(log), "-w", "-t", "60", "start"], check=True, timeout=90)
        server = Postgres(LOOPBACK, port, "sid", password)
        for name in databases:
            server.create_database(name)
        yield server
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"PostgreSQL failed: {error}\n{error.stderr or b''!r}\n{_tail(log)}") from error
    finally:
        if (data / "postmaster.pid").exists():
            # immediate: no shutdown checkpoint, the cluster is deleted next anyway
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# --- moto's S3 server --------------------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode (``python -m moto.server``) on a free loopback port; yields its endpoint URL."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="sid-moto-", suffix=".log")[1])
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAKE_AWS},
            start_new_session=True,
        )
    endpoint = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: _http_ok(f"{endpoint}/moto-api/"), "moto server", process, 60, log)
        yield endpoint
    finally:
        _stop(process)
        log.unlink(missing_ok=True)


# --- MLflow tracking server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mlflow:
    """A running tracking server and the user the platform's processes log in as (basic auth)."""

    uri: str
    username: str
    password: str

    def client_env(self) -> dict[str, str]:
        """What a client process needs: the deployment's ConfigMap and ``sid-platform-mlflow-client`` Secret."""
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }


AUTH_INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{database}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
"""


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts_destination: str, s3_endpoint: str) -> Iterator[Mlflow]:
    """``mlflow server`` as ``deploy/k8s/mlflow-server.yaml`` runs it, on a free loopback port: MLflow's basic-auth
    app, the given backend store, artifacts proxied to S3. Passwords and the backend URI (it holds the database
    password) go in the environment, as the deployment's Secrets do, never in a file or on the command line; the
    auth store is SQLite beside a generated config. Yields the server with a platform user made by the admin."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="sid-mlflow-"))
    log, config = root / "server.log", root / "basic_auth.ini"
    config.write_text(AUTH_INI.format(database=root / "auth.db"))
    admin_password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        **FAKE_AWS,
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),  # the auth app's CSRF key; required
    }
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", LOOPBACK]
    command += ["--port", str(port), "--workers", "1", "--artifacts-destination", artifacts_destination]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: _http_ok(f"{uri}/health"), "mlflow server", process, 180, log)
        server = Mlflow(uri, "sid-platform", secrets.token_urlsafe(16))
        created = requests.post(
            f"{uri}/api/2.0/mlflow/users/create",
            json={"username": server.username, "password": server.password},
            auth=("admin", admin_password),
            timeout=30,
        )
        created.raise_for_status()
        yield server
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)
