# syntax=docker/dockerfile:1
# The code location's image: the same image serves the code location over gRPC (default command),
# runs every Dagster run (Kubernetes Jobs / Docker containers start it with `dagster api
# execute_run`), and runs the events receiver (second command, below). The webserver and the daemon
# can run from it too (the Helm chart uses its own images for them). Build from the repository root:
#   docker build -t registry.example.com/bitrix24-assets:$(git rev-parse --short HEAD) .
# Events receiver from the same image:
#   docker run -p 8787:8787 -e CORE_DATABASE_URL IMAGE bitrix24-webhooks --host 0.0.0.0 --port 8787

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Launchers of the cluster deployments (pyproject.toml extras): k8s for K8sRunLauncher, docker
# for DockerRunLauncher.
ARG EXTRAS=k8s,docker
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Installed in place (editable) at the path it keeps in the final stage: definitions.py loads the
# defs folder with dg.load_from_defs_folder, which finds the project by its pyproject.toml above
# the package (from site-packages, a plain install, it finds none and the code location fails).
WORKDIR /opt/dagster/app
COPY pyproject.toml README.md ./
COPY bitrix24_assets ./bitrix24_assets
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install -e ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE}
# A fixed non-root uid, so Kubernetes' runAsNonRoot can check it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --create-home dagster \
    && mkdir -p /opt/dagster/dagster_home/storage \
    && chown -R dagster:dagster /opt/dagster
COPY --from=build /opt/venv /opt/venv
# The project's code, owned by root: the runtime user reads it and cannot change it.
COPY --from=build /opt/dagster/app /opt/dagster/app
# The instance for clusters without the Helm chart (the chart mounts its own dagster.yaml here).
COPY --chown=dagster:dagster dagster_home/dagster.production.yaml /opt/dagster/dagster_home/dagster.yaml
ENV PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    PYTHONUNBUFFERED=1
WORKDIR /opt/dagster/app
USER 10001:10001
# 4000: the code location's gRPC API; 8787: the events receiver (second command).
EXPOSE 4000 8787
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "bitrix24_assets.definitions", "--location-name", "bitrix24_assets"]
