"""The project as a user meets it: `dagster definitions validate` and the webserver's GraphQL API
list the assets, the account partitions, the sensors and the schedules (real subprocesses)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name }
  assetNodes { assetKey { path } groupName
    partitionDefinition { dimensionTypes { type dynamicPartitionsDefinitionName } } }
  sensors { name sensorState { status } }
  schedules { name cronSchedule scheduleState { status } }
  jobs { name } } } } }"""


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORE_", "SUPABASE_"))}
    return {**env, "DAGSTER_HOME": str(home)}


def test_definitions_validate_cli_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed validation" in done.stdout + done.stderr


@contextlib.contextmanager
def start_webserver(home: Path) -> Iterator[str]:
    """A real ``dagster-webserver`` on the project's workspace and the instance in ``home``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORE_", "SUPABASE_"))}
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env={**env, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, "dagster-webserver exited"
            try:
                if httpx.get(f"{url}/server_info", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        _wait_for_code_location(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for_code_location(url: str) -> None:
    """The code location loads after ``server_info`` answers; poll until it is there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        data = httpx.post(f"{url}/graphql", json={"query": QUERY}, timeout=30).json()["data"]
        if data["repositoriesOrError"].get("nodes"):
            return
        time.sleep(0.5)
    raise AssertionError("the code location did not load within 60 s")


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with start_webserver(home) as url:
        yield url


def test_webserver_lists_assets_partitions_sensors_and_schedules(webserver: str) -> None:
    data = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=30).json()["data"]
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert repo["location"]["name"] == "bitrix24_assets"
    assets = {"/".join(a["assetKey"]["path"]): a for a in repo["assetNodes"]}
    assert {
        "bitrix_users",
        "mapped_employees",
        "core_employees",
        "core_tasks",
        "core_events",
    } <= assets.keys()
    for asset in assets.values():
        assert asset["groupName"] == "bitrix24"
        (dim,) = asset["partitionDefinition"]["dimensionTypes"]
        assert (dim["type"], dim["dynamicPartitionsDefinitionName"]) == ("DYNAMIC", "integration_accounts")
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors["bitrix24_accounts_sensor"] == "RUNNING"
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    assert schedules == {
        "bitrix24_hourly_sync": "RUNNING",
        "bitrix24_events_sync": "RUNNING",
        "bitrix24_nightly_full_sync": "RUNNING",
        "bitrix24_retention": "RUNNING",
    }
    assert {
        "bitrix24_employees_job",
        "bitrix24_tasks_job",
        "bitrix24_events_job",
        "bitrix24_full_sync_job",
    } <= {j["name"] for j in repo["jobs"]}
