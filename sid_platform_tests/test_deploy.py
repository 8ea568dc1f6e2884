"""deploy/ holds no credential, runs nothing as root or from a floating tag, and keeps MLflow behind auth."""

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _documents() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted(DEPLOY.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]


def test_no_committed_secret_values():
    for name, doc in _documents():
        assert not (doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData"))), name
    text = "\n".join(path.read_text() for path in DEPLOY.rglob("*") if path.is_file())
    assert not re.search(r"(AWS_SECRET_ACCESS_KEY|password)\s*:\s*['\"]?[A-Za-z0-9/+\-]{4,}", text, re.IGNORECASE)


def test_image_is_pinned_and_not_root():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE).group(1)
    assert ":" in base and not base.endswith(":latest") and re.search(r":\d+\.\d+\.\d+", base), base
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert deployment["image"]["tag"] not in {"latest", ""}
        assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert values["generatePostgresqlPasswordSecret"] is False  # the chart's Postgres password is a Secret of yours


def test_mlflow_server_requires_auth_and_is_fenced():
    docs = dict(
        (doc["kind"], doc) for _, doc in _documents() if doc.get("metadata", {}).get("name", "").startswith("mlflow")
    )
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "--app-name=basic-auth" in container["args"]
    assert docs["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"] == {"app": "mlflow"}


def test_cluster_instance_monitors_runs_and_serializes_promotion():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["run_monitoring"]["enabled"] is True
    assert instance["concurrency"]["pools"]["default_limit"] == 1


def test_the_mlflow_server_image_has_what_its_flags_need():
    """Postgres store (psycopg2), S3 artifacts (boto3), basic auth (mlflow[auth]): MLflow's own image has none."""
    dockerfile = (DEPLOY / "mlflow-server.Dockerfile").read_text()
    for package in ("mlflow[auth]==", "psycopg2-binary==", "boto3=="):
        assert package in dockerfile, package
    assert re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)[-1].split(":")[0] not in {"root", "0"}
    deployment = next(doc for _, doc in _documents() if doc.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert not container["image"].startswith("ghcr.io/mlflow/mlflow:")
    secret_env = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert {"MLFLOW_BACKEND_URI", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= secret_env


def test_the_instance_names_the_postgres_driver_it_ships():
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres installs psycopg2."""
    db = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())["postgresql"]["postgresqlScheme"] == db["scheme"]
    assert all(isinstance(db[key], dict) and "env" in db[key] for key in ("hostname", "username", "password", "port"))


def test_the_runbook_names_every_file_here_and_only_tests_that_exist():
    runbook = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "README.md":
            assert path.name in runbook, f"deploy/README.md does not describe {path.relative_to(DEPLOY)}"
    repo = DEPLOY.parent
    named = set(re.findall(r"sid_platform_tests/[\w/]+\.py", runbook))
    assert named and all((repo / name).is_file() for name in named), sorted(
        n for n in named if not (repo / n).is_file()
    )
    tests = "\n".join((repo / name).read_text() for name in named)
    for test in set(re.findall(r"\btest_\w+", runbook)) - {Path(name).stem for name in named}:
        assert f"def {test}(" in tests, f"deploy/README.md names {test}, which is not in the files it names"
