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
