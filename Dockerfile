# The replicator image: the CLI and the Dagster code location (webserver and daemon run from it too).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY replicator ./replicator
COPY dagster_defs ./dagster_defs
RUN pip install --no-cache-dir . dagster-webserver
COPY replicator.yml ./
COPY schemas ./schemas
COPY dagster_home/dagster.yaml /opt/dagster/home/dagster.yaml
ENV DAGSTER_HOME=/opt/dagster/home
