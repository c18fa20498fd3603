"""End to end through the real assets: one account with 10,000 users, 100,000 tasks and 20,000
calendar events, from the sandbox portal over HTTP into Core on embedded Postgres, on a real
Dagster instance (temp SQLite storage, in-process executor, the JSON-lines IO manager).

Two runs of the same partition: cold (``bitrix24_full_sync_job``, empty Core) and incremental with
nothing changed (``bitrix24_sync_job``). Dagster's overhead is the share of wall time spent neither
in the client (``read_seconds`` of the raw assets) nor in the merge (``merge_seconds`` of the core
assets): mapping, the IO manager, event-log writes, step orchestration, sync-log bookkeeping and
checks. The sandbox runs in its own process (profile ``instant``: no rate limits), so the peak
memory printed (max RSS) is this process: Dagster + client + mapped rows.

Targets: overhead < 25% of the cold run; incremental with nothing changed < 10% of the cold run.

Run: ``python -m bench.e2e`` (``--users/--tasks/--events`` to change the size).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.defs.assets import ALL_ASSETS
from bitrix24_assets.defs.io_manager import JsonLinesIOManager
from bitrix24_assets.defs.jobs import JOBS
from bitrix24_assets.defs.partitions import integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource


def start_sandbox(users: int, tasks: int, events: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitrix24_assets.sandbox",
            "--port",
            "0",
            "--profile",
            "instant",
            "--users",
            str(users),
            "--tasks",
            str(tasks),
            "--events",
            str(events),
            "--seed",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Webhook URL:"):
            return proc, line.split(":", 1)[1].strip()
    raise RuntimeError("the sandbox portal did not start")


def figures(result: dg.ExecuteInProcessResult, wall: float) -> dict[str, Any]:
    read = merge = 0.0
    rows: dict[str, Any] = {}
    for node in ("bitrix_users", "bitrix_tasks", "bitrix_events"):
        (mat,) = result.asset_materializations_for_node(node)
        read += float(mat.metadata["read_seconds"].value)  # type: ignore[arg-type]
        rows[node] = mat.metadata["dagster/row_count"].value
    for node in ("core_employees", "core_tasks", "core_events"):
        (mat,) = result.asset_materializations_for_node(node)
        merge += float(mat.metadata["merge_seconds"].value)  # type: ignore[arg-type]
        counts = ("inserted", "updated", "unchanged", "removed")
        rows[node] = "/".join(str(mat.metadata[k].value) for k in counts)
    return {"wall": wall, "read": read, "merge": merge, "overhead": wall - read - merge, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()

    began = time.perf_counter()
    sandbox, webhook_url = start_sandbox(args.users, args.tasks, args.events)
    print(
        f"sandbox seeded in {time.perf_counter() - began:.1f} s "
        f"({args.users:,} users, {args.tasks:,} tasks, {args.events:,} events)"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedPostgres(Path(tmp) / "core_pg")
            (Path(tmp) / "dagster").mkdir()
            dagster_dir = str(Path(tmp) / "dagster")
            with server.running("core") as dsn, dg.instance_for_test(temp_dir=dagster_dir) as instance:
                with PostgresStore(dsn) as store:
                    store.migrate()
                    company = store.create_company("Bench Ltd")
                    account = store.add_account(company, "Bench portal", {"webhook_url": webhook_url}).id
                defs = dg.Definitions(
                    assets=ALL_ASSETS,
                    jobs=JOBS,
                    executor=dg.in_process_executor,
                    resources={
                        "core": CoreResource(database_url=dsn),
                        "bitrix24": Bitrix24Resource(),
                        "io_manager": JsonLinesIOManager(base_dir=str(Path(tmp) / "storage")),
                    },
                )
                instance.add_dynamic_partitions(integration_accounts.name, [account])
                runs = {}
                for label, job in (
                    ("cold (full)", "bitrix24_full_sync_job"),
                    ("incremental, nothing changed", "bitrix24_sync_job"),
                ):
                    started = time.perf_counter()
                    job_def = defs.resolve_job_def(job)
                    result = job_def.execute_in_process(instance=instance, partition_key=account)
                    wall = time.perf_counter() - started
                    assert result.success, label
                    runs[label] = figures(result, wall)
                    runs[label]["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    cold = runs["cold (full)"]
    print(
        f"\n{'run':<30}{'wall s':>9}{'client s':>10}{'merge s':>9}{'overhead s':>12}{'overhead %':>12}"
        f"{'peak RSS MB':>13}"
    )
    for label, f in runs.items():
        print(
            f"{label:<30}{f['wall']:>9.2f}{f['read']:>10.2f}{f['merge']:>9.2f}{f['overhead']:>12.2f}"
            f"{100 * f['overhead'] / f['wall']:>11.1f}%{f['rss_mb']:>13.0f}"
        )
    for label, f in runs.items():
        print(f"  {label}: rows read/merged (ins/upd/unch/rem) {f['rows']}")
    incremental = runs["incremental, nothing changed"]
    share = 100 * cold["overhead"] / cold["wall"]
    ratio = 100 * incremental["wall"] / cold["wall"]
    verdict = {True: "OK", False: "MISSED"}
    print(f"\nDagster overhead of the cold run: {share:.1f}% (target < 25%) -> {verdict[share < 25]}")
    print(f"incremental / cold wall time:     {ratio:.1f}% (target < 10%) -> {verdict[ratio < 10]}")


if __name__ == "__main__":
    main()
