# MLflow tracking server image for deploy/k8s/mlflow-server.yaml. MLflow's own image (ghcr.io/mlflow/mlflow:vX)
# carries neither psycopg2 (the Postgres backend store) nor boto3 (S3 artifacts) nor Flask-WTF (the basic-auth
# app), so the server would not start with this deployment's flags. Pinned to the MLflow the tests run against
# (sid_platform_tests/services/test_mlflow_server.py); a non-root user, as for the platform's image.
FROM python:3.11.11-slim-bookworm
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" "psycopg2-binary==2.9.13" "boto3==1.44.8" \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin mlflow
USER 10001:10001
