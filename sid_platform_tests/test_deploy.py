"""deploy/ holds no credential, runs nothing as root or from a floating tag, keeps MLflow behind auth, and probes the
recommendation service on its own endpoints."""

import re
from pathlib import Path

import yaml

from sid_platform.cli import build_parser
from sid_platform.registry import Tracking
from sid_platform.service.app import create_app
from sid_platform.service.lookup import InProcessLookupStore
from sid_platform.service.reload import ChampionWatcher

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
    deployment = next(
        doc for name, doc in _documents() if name == "mlflow-server.yaml" and doc.get("kind") == "Deployment"
    )
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


def _service() -> tuple[dict, dict]:
    docs = {doc["kind"]: doc for name, doc in _documents() if name == "recommender-service.yaml"}
    return docs["Deployment"], docs["Service"]


def test_the_recommender_service_runs_the_pinned_image_as_non_root_with_the_serve_command():
    deployment, _ = _service()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    repository, tag = container["image"].rsplit(":", 1)
    helm = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())["dagster-user-deployments"]["deployments"][0]
    assert (repository, tag) == (helm["image"]["repository"], helm["image"]["tag"]) and tag != "latest"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The arguments are the command line's own: a renamed or mistyped flag fails here, not in the cluster.
    assert container["command"] == ["sid-platform"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.host == "0.0.0.0" and args.lookup == "dynamodb"
    assert container["ports"] == [{"name": "http", "containerPort": args.port}]


def test_the_recommender_service_probes_its_own_endpoints_and_the_service_reaches_its_pods():
    deployment, service = _service()
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    watcher = ChampionWatcher(Tracking("sqlite:////nonexistent/mlflow.db"), "m", InProcessLookupStore())
    routes = {route.path for route in create_app(watcher, start_watcher=False).routes}
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz" and probes["livenessProbe"]["path"] == "/healthz"
    assert all(probe["path"] in routes and probe["port"] == "http" for probe in probes.values())
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = template["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items() and service["spec"]["type"] == "ClusterIP"
    assert labels["app.kubernetes.io/part-of"] == "sid-platform"  # admitted by the MLflow NetworkPolicy
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics" and "/metrics" in routes


def test_the_recommender_service_reads_every_credential_from_a_secret_documented_in_the_readme():
    deployment, _ = _service()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    secrets = {source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source}
    for entry in container["env"]:
        if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", entry["name"]):
            assert "value" not in entry, entry["name"]
            secrets.add(entry["valueFrom"]["secretKeyRef"]["name"])
    readme = (DEPLOY / "README.md").read_text()
    assert secrets and all(f"`{name}`" in readme for name in secrets), secrets
