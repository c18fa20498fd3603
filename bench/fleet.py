"""One hourly cycle of many small portals, the way production runs it, two ways side by side:

- **fleet**: ``bitrix24_fleet_sensor`` requests ``bitrix24_fleet_job`` runs (batches of up to 500
  portals, each synced by a thread pool in one run worker);
- **one run per portal** (today's path, ``BITRIX24_FLEET=off``): ``bitrix24_hourly_sync`` requests
  one ``bitrix24_sync_job`` run per account. It is slow, so it runs at ``--baseline-portals``
  (default min(N, 100)) and its figures are extrapolated to N, labelled as such.

Each path gets a fresh ``DAGSTER_HOME`` in a temp dir with the project's ``dagster_home/dagster.yaml``
(SQLite storage, the queued run coordinator, ``LocalRunLauncher``) and a real ``dagster-daemon``
process (which starts the code server, which starts the run workers). Core is embedded Postgres;
the portals are one sandbox process serving N small portals (``bitrix24_assets.sandbox.fleet``,
one port each, ``--profile`` limits and costs at ``--time-scale``). Before the cycle every account
gets its first full sync (not measured), so the cycle is the steady state: employees read in full,
tasks changed since the last sync (nothing changed).

Printed per path: portals synced, wall time of the cycle (first run created -> last portal's
materialization), portals/min, CPU-s per portal of all product processes (daemon, code server, run
workers and Core Postgres, children included, measured as deltas over the cycle with psutil), the
sandbox's CPU apart (it stands in for Bitrix24), and p50/p95 freshness lag (cycle start -> the
portal's last hourly materialization).

Run: ``python -m bench.fleet --portals 200`` (default; about 3-5 minutes with the baseline).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Figures:
    path: str
    portals: int
    synced: int
    failed_runs: int
    runs: int
    wall: float
    cpu: float
    sandbox_cpu: float
    lags: list[float]
    roles: dict[str, float]

    @property
    def per_minute(self) -> float:
        return self.synced / self.wall * 60 if self.wall > 0 else 0.0

    def cpu_per_portal(self) -> float:
        return self.cpu / self.synced if self.synced else float("nan")

    def lag(self, q: float) -> float:
        if not self.lags:
            return float("nan")
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def tree_cpu(pids: Sequence[int]) -> float:
    """CPU seconds of these processes and every descendant: each live process's own time plus the
    time of the children it has reaped (so a finished run worker still counts, once)."""
    total, seen = 0.0, set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop the daemon, then whatever of its code server and run workers is left."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def roles_cpu(daemon: int, postgres: int) -> dict[str, float]:
    """The product's CPU by role: the code server(s) themselves (sensors, schedules, launches),
    the daemon with the run workers (a finished worker's time lands with whichever of the two reaped
    it, so they are counted together) and Postgres."""
    out = {"code server": 0.0, "daemon + run workers": 0.0, "Core Postgres": tree_cpu([postgres])}
    try:
        servers = psutil.Process(daemon).children()
    except psutil.Error:
        return out
    for server in servers:
        try:
            t = server.cpu_times()
        except psutil.Error:
            continue
        out["code server"] += t.user + t.system
    out["daemon + run workers"] = tree_cpu([daemon]) - out["code server"]
    return out


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def start_sandbox(
    tmp: Path, args: argparse.Namespace, count: int
) -> tuple[subprocess.Popen[bytes], list[str]]:
    urls_file = tmp / "urls.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitrix24_assets.sandbox.fleet",
            "--portals",
            str(count),
            "--users",
            str(args.users),
            "--tasks",
            str(args.tasks),
            "--events",
            "10",
            "--profile",
            args.profile,
            "--time-scale",
            str(args.time_scale),
            "--urls-file",
            str(urls_file),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not urls_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the sandbox fleet did not start")
        time.sleep(0.1)
    return proc, json.loads(urls_file.read_text())


def seed_core(dsn: str, urls: list[str]) -> list[str]:
    from bitrix24_assets.core import PostgresStore

    with PostgresStore(dsn) as store:
        store.migrate()
        ids = []
        for i, url in enumerate(urls):
            company = store.create_company(f"Company {i:05d}")
            ids.append(store.add_account(company, f"portal-{i:05d}", {"webhook_url": url}).id)
    return ids


def first_full_sync(dsn: str, accounts: list[str], raw_dir: Path, time_scale: float) -> float:
    """Every account's first full sync (what onboarding does), so the cycle is the steady state."""
    from bitrix24_assets.bitrix24 import Bitrix24Client
    from bitrix24_assets.core import PostgresStore
    from bitrix24_assets.defs.fleet import hourly_entities
    from bitrix24_assets.pipeline import RawStore, SyncOptions
    from bitrix24_assets.pipeline.fleet import FleetSync, http_transport

    began = time.monotonic()
    with PostgresStore(dsn, max_size=24) as store:

        def client_for(account: Any) -> Bitrix24Client:
            return Bitrix24Client(
                webhook_url=account.webhook_url, time_scale=time_scale, transport=http_transport()
            )

        fleet = FleetSync(
            store,
            client_for,
            RawStore(raw_dir),
            "bench-onboarding",
            entities=hourly_entities(),
            options=SyncOptions(full=True),
            workers=20,
        )
        failed = [r for r in fleet.run(accounts) if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} first syncs failed: {failed[0].message}")
    return time.monotonic() - began


def dagster_home(tmp: Path, name: str) -> Path:
    home = tmp / name
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return home


def instance_for(home: Path) -> Any:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def run_cycle(
    path: str,
    home: Path,
    env: dict[str, str],
    job: str,
    accounts: list[str],
    expected_runs: int,
    pg_pid: int,
    sandbox: subprocess.Popen[bytes],
    timeout: float,
) -> Figures:
    import dagster as dg

    from bitrix24_assets.defs.fleet import hourly_entities
    from bitrix24_assets.defs.partitions import ACCOUNTS_PARTITIONS_NAME

    instance = instance_for(home)
    instance.add_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME, accounts)
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=open(home / "daemon.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    filters = dg.RunsFilter(job_name=job)
    try:
        deadline = time.monotonic() + timeout
        while not instance.get_runs(filters=filters, limit=1):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{path}: no {job} run appeared; see {home / 'daemon.log'}")
            time.sleep(0.05)
        cpu0 = tree_cpu([daemon.pid, pg_pid])
        roles0 = roles_cpu(daemon.pid, pg_pid)
        sandbox0 = tree_cpu([sandbox.pid])
        while True:
            records = instance.get_run_records(filters=filters)
            done = [r for r in records if r.dagster_run.is_finished]
            if len(records) >= expected_runs and len(done) == len(records):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: {len(done)} of {len(records)} runs finished in {timeout:.0f} s")
            time.sleep(1.0)
        cpu = tree_cpu([daemon.pid, pg_pid]) - cpu0
        roles = {k: v - roles0.get(k, 0.0) for k, v in roles_cpu(daemon.pid, pg_pid).items()}
        sandbox_cpu = tree_cpu([sandbox.pid]) - sandbox0
    finally:
        stop_tree(daemon)
    start = min(r.create_timestamp.timestamp() for r in records)
    wanted = {e.core_key for e in hourly_entities()}
    last: dict[str, float] = {}
    for record in records:
        for entry in instance.all_logs(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            event = entry.dagster_event
            mat = event.event_specific_data.materialization if event else None  # type: ignore[union-attr]
            if mat is not None and mat.partition and mat.asset_key.to_user_string() in wanted:
                last[mat.partition] = max(last.get(mat.partition, 0.0), entry.timestamp)
    lags = [t - start for t in last.values()]
    failed_runs = sum(1 for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS)
    wall = max(last.values()) - start if last else float("nan")
    return Figures(
        path, len(accounts), len(last), failed_runs, len(records), wall, cpu, sandbox_cpu, lags, roles
    )


def table(fleet: Figures, baseline: Figures | None, n: int) -> str:
    rows = [
        ("portals in the cycle", f"{fleet.portals:,}", f"{baseline.portals:,}" if baseline else "-"),
        ("portals synced", f"{fleet.synced:,}", f"{baseline.synced:,}" if baseline else "-"),
        (
            "runs (failed)",
            f"{fleet.runs} ({fleet.failed_runs})",
            f"{baseline.runs} ({baseline.failed_runs})" if baseline else "-",
        ),
        ("cycle wall time, s", f"{fleet.wall:.1f}", f"{baseline.wall:.1f}" if baseline else "-"),
        ("portals/min", f"{fleet.per_minute:,.0f}", f"{baseline.per_minute:,.1f}" if baseline else "-"),
        (
            "CPU-s per portal (product)",
            f"{fleet.cpu_per_portal():.3f}",
            f"{baseline.cpu_per_portal():.2f}" if baseline else "-",
        ),
        ("product CPU-s, total", f"{fleet.cpu:.1f}", f"{baseline.cpu:.1f}" if baseline else "-"),
        *(
            (
                f"  of which {role}, per portal",
                f"{fleet.roles.get(role, 0.0) / max(1, fleet.synced):.3f}",
                f"{baseline.roles.get(role, 0.0) / max(1, baseline.synced):.3f}" if baseline else "-",
            )
            for role in ("daemon + run workers", "code server", "Core Postgres")
        ),
        (
            "sandbox CPU-s per portal (Bitrix24's side)",
            f"{fleet.sandbox_cpu / max(1, fleet.synced):.3f}",
            f"{baseline.sandbox_cpu / max(1, baseline.synced):.3f}" if baseline else "-",
        ),
        ("freshness lag p50, s", f"{fleet.lag(0.5):.1f}", f"{baseline.lag(0.5):.1f}" if baseline else "-"),
        ("freshness lag p95, s", f"{fleet.lag(0.95):.1f}", f"{baseline.lag(0.95):.1f}" if baseline else "-"),
    ]
    if baseline and baseline.synced:
        scale = n / baseline.synced
        rows.append(
            (
                f"EXTRAPOLATED to {n:,} portals: cycle wall, min",
                f"{fleet.wall / 60:.1f} (measured)",
                f"{baseline.wall * scale / 60:.1f} (x{scale:.1f}, linear)",
            )
        )
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'fleet':>22}  {'one run per portal':>26}"]
    lines += [f"{a:<{width}}  {b:>22}  {c:>26}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One hourly cycle: the fleet vs one run per portal.")
    parser.add_argument("--portals", type=int, default=200)
    parser.add_argument("--baseline-portals", type=int, default=None, help="default min(N, 40); 0 skips it")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--profile", default="cloud", choices=["instant", "cloud", "enterprise"])
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=8, help="portals in flight per fleet run")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--events", default="core", choices=["core", "full"], help="BITRIX24_FLEET_EVENTS")
    args = parser.parse_args(argv)
    n = args.portals
    m = min(n, 40) if args.baseline_portals is None else min(n, args.baseline_portals)

    from bitrix24_assets.core.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        server = EmbeddedPostgres(tmp / "core_pg")
        dsn = server.start()
        sandbox, urls = start_sandbox(tmp, args, n)
        try:
            accounts = seed_core(dsn, urls)
            seconds = first_full_sync(dsn, accounts, tmp / "raw", args.time_scale)
            print(
                f"{n:,} portals ({args.users} users / {args.tasks} tasks, sandbox profile {args.profile} at "
                f"time scale {args.time_scale:g}); first full syncs (not measured) took {seconds:.0f} s",
                flush=True,
            )
            pg = postmaster_pid(tmp / "core_pg")
            common = {
                # only the hourly cycle under test: the 6-hourly and nightly crons must not tick
                # during the bench (they would queue runs that make the hourly pass skip portals)
                "BITRIX24_EVENTS_SYNC_CRON": "0 0 1 1 *",
                "BITRIX24_FULL_SYNC_CRON": "0 0 1 1 *",
                "CORE_DATABASE_URL": dsn,
                "CORE_POOL_MAX_SIZE": str(args.workers + 4),
                "BITRIX24_STORAGE_DIR": str(tmp / "raw"),
                "BITRIX24_TIME_SCALE": str(args.time_scale),
            }
            fleet_env = {
                **common,
                "BITRIX24_FLEET": "on",
                "BITRIX24_FLEET_SPREAD_SECONDS": "0",  # the whole cycle at once: a throughput test
                "BITRIX24_SYNC_CRON": "0 0 1 1 *",  # one hourly-pass cycle (since 1 January) during the bench
                "BITRIX24_FLEET_WORKERS": str(args.workers),
                "BITRIX24_FLEET_EVENTS": args.events,
            }
            runs = math.ceil(n / int(os.environ.get("BITRIX24_FLEET_MAX_PER_RUN", "500")))  # at least
            fleet = run_cycle(
                "fleet",
                dagster_home(tmp, "dh_fleet"),
                fleet_env,
                "bitrix24_fleet_job",
                accounts,
                runs,
                pg,
                sandbox,
                args.timeout,
            )
            print(
                f"fleet cycle done ({fleet.runs} runs, events '{args.events}'): {fleet.synced} portals in "
                f"{fleet.wall:.1f} s",
                flush=True,
            )
            baseline = None
            if m:
                with_runs = accounts[:m]
                from bitrix24_assets.core import PostgresStore

                with PostgresStore(dsn) as store:  # the others must not be onboarded by the accounts sensor
                    for account in accounts[m:]:
                        store.set_account_status(account, "disabled", "bench: not in the baseline cycle")
                now = datetime.now(UTC)  # the schedules' timezone (BITRIX24_SCHEDULE_TIMEZONE)
                minute = (now.minute + (1 if now.second < 15 else 2)) % 60
                baseline_env = {**common, "BITRIX24_FLEET": "off", "BITRIX24_SYNC_CRON": f"{minute} * * * *"}
                print(
                    f"one run per portal: {m} portals, waiting for the schedule's tick at minute {minute}",
                    flush=True,
                )
                baseline = run_cycle(
                    "baseline",
                    dagster_home(tmp, "dh_baseline"),
                    baseline_env,
                    "bitrix24_sync_job",
                    with_runs,
                    m,
                    pg,
                    sandbox,
                    args.timeout + 180,
                )
            print()
            print(table(fleet, baseline, n))
        finally:
            sandbox.terminate()
            sandbox.wait(30)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
