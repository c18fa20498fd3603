"""Full syncs under faults: every run ends in exact parity with the portal or fails with one
sentence, and never loses a row.

A portal (``--users/--tasks/--events``, default 1,000 / 20,000 / 2,000) is synced once cleanly into
Core; that Core is the baseline. Then, for each fault kind at 5% and 20% of the portal's answers
(seeded, so a run is repeatable), a copy of the baseline gets a full sync of employees, tasks,
calendar events and departments through the Dagster-free entity sync, with the step retries the
Dagster jobs use (3 retries of transient failures). The portal does not change meanwhile, so the
right end state is the baseline itself: "exact" means every row of the four tables is what it was,
"unchanged" that a failed run left Core as it was; any row removed, deactivated or changed that
still exists in the portal is counted as lost and fails the bench.

Fault kinds (the sandbox's): 500, 503 (an HTML gateway page), drop (connection closed before the
body), truncate (half a JSON body), slow (an answer slower than the client's timeout), query_limit
(503 QUERY_LIMIT_EXCEEDED), garbled (a 200 that is not JSON), empty (a well-formed 200 with an empty
result), missing_key (a batch answer without one command's key).

Run: ``python -m bench.chaos`` (``--rates 0.05 0.2``, ``--kinds``, sizes). ``tests/pipeline/
test_chaos.py`` runs the same scenarios on a small portal.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import IntegrationAccount, PostgresStore
from bitrix24_assets.core.embedded import FAST_SETTINGS, EmbeddedPostgres
from bitrix24_assets.core.migrator import apply_migrations
from bitrix24_assets.pipeline import ENTITIES, EntitySync, RawStore, SyncFailed, SyncOptions
from bitrix24_assets.sandbox import SandboxConfig, SandboxHandle, running_sandbox

KINDS = ("500", "503", "drop", "truncate", "slow", "query_limit", "garbled", "empty", "missing_key")
RATES = (0.05, 0.2)
STEP_RETRIES = 3  # as TRANSIENT_RETRY in bitrix24_assets/defs/failures.py
CLIENT_TIMEOUT = 2.0  # wall seconds per request; "slow" answers take longer
SLOW_SECONDS = 4.0
TABLES = {
    "employees": (
        "select metadata->>'bitrix_id' as key, email, full_name, position, phone, is_active, metadata "
        "from core.employees where metadata->>'integration_account_id' = %s"
    ),
    "tasks": (
        "select bitrix_id as key, title, description, status, priority, deadline, changed_at_source, "
        "responsible_id, is_deleted, metadata from core.tasks where integration_account_id = %s::uuid"
    ),
    "calendar_events": (
        "select bitrix_id as key, name, starts_at, ends_at, owner_id, is_deleted, metadata "
        "from core.calendar_events where integration_account_id = %s::uuid"
    ),
    "departments": (
        "select bitrix_id as key, name, sort, parent_id, head_id, is_deleted, metadata "
        "from core.departments where integration_account_id = %s::uuid"
    ),
}


@dataclass
class Outcome:
    kind: str
    rate: float
    synced: bool
    message: str
    lost: int
    changed: int
    retries: int
    seconds: float

    @property
    def parity(self) -> str:
        if self.lost or self.changed:
            return f"LOST {self.lost}, CHANGED {self.changed}"
        return "exact" if self.synced else "unchanged"


def snapshot(dsn: str, account: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of the account in the four tables (without bookkeeping columns)."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return {
            table: {str(r["key"]): r for r in conn.execute(query, (account,)).fetchall()}  # type: ignore[arg-type]
            for table, query in TABLES.items()
        }


def compare(
    baseline: dict[str, dict[str, dict[str, Any]]], now: dict[str, dict[str, dict[str, Any]]]
) -> tuple[int, int]:
    """(rows lost: gone, deactivated or deleted although the portal still has them; rows changed)."""
    lost = changed = 0
    for table, rows in baseline.items():
        for key, row in rows.items():
            current = now[table].get(key)
            if current is None:
                lost += 1
            elif current != row:
                live_then = row.get("is_active", not row.get("is_deleted", False))
                live_now = current.get("is_active", not current.get("is_deleted", False))
                if live_then and not live_now:
                    lost += 1
                else:
                    changed += 1
        changed += len(now[table].keys() - rows.keys())
    return lost, changed


@dataclass(frozen=True)
class Pace:
    """How long the client waits: per request (wall seconds), and how fast its backoff clock runs
    (1: real waits, as against a real portal; a test shortens them)."""

    timeout: float = CLIENT_TIMEOUT
    time_scale: float = 1.0
    slow_seconds: float = SLOW_SECONDS


def full_sync(
    store: PostgresStore, account: str, raw: Path, run: str, pace: Pace = Pace()
) -> tuple[bool, str, int]:
    """Every entity of the registry in full, each with the jobs' step retries; (synced, sentence, retries)."""
    clients: dict[str, Bitrix24Client] = {}

    def client_for(acc: IntegrationAccount) -> Bitrix24Client:
        if acc.id not in clients:
            clients[acc.id] = Bitrix24Client(
                webhook_url=acc.webhook_url, timeout=pace.timeout, time_scale=pace.time_scale
            )
        return clients[acc.id]

    retries = 0
    try:
        for entity in ENTITIES.values():
            for attempt in itertools.count():
                sync = EntitySync(store, client_for, RawStore(raw), f"{run}-{attempt}")
                try:
                    sync.run(account, entity, SyncOptions(full=True))
                    break
                except SyncFailed as failed:
                    if not failed.retryable or attempt >= STEP_RETRIES:
                        return False, str(failed), retries + _client_retries(clients)
                    retries += 1
    finally:
        for client in clients.values():
            client.close()
    return True, "", retries + _client_retries(clients)


def _client_retries(clients: dict[str, Bitrix24Client]) -> int:
    return sum(c.stats.retries for c in clients.values())


@contextlib.contextmanager
def core_server(root: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(root / "core_pg", settings=FAST_SETTINGS)
    with server.running("baseline") as dsn:
        with psycopg.connect(dsn) as conn:
            apply_migrations(conn)
        yield server


def copy_database(server: EmbeddedPostgres, source: str, name: str) -> str:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(source))
        )
    return server.dsn(name)


def scenarios(
    portal: SandboxHandle,
    server: EmbeddedPostgres,
    root: Path,
    kinds: Sequence[str],
    rates: Sequence[float],
    pace: Pace = Pace(),
) -> Iterator[Outcome]:
    """The baseline sync, then one faulted full sync per (kind, rate) on a copy of it."""
    baseline_dsn = server.dsn("baseline")
    with PostgresStore(baseline_dsn) as store:
        account = store.add_account(
            store.create_company("Chaos Ltd"), "Chaos portal", {"webhook_url": portal.webhook_url}
        ).id
        synced, message, _ = full_sync(store, account, root / "raw", "baseline", pace)
        if not synced:
            raise SystemExit(f"the baseline sync failed: {message}")
    baseline = snapshot(baseline_dsn, account)
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:  # no sessions on a template
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'baseline'")
    for n, (kind, rate) in enumerate(itertools.product(kinds, rates)):
        dsn = copy_database(server, "baseline", f"chaos_{n}")
        portal.admin.set_faults(rate=rate, kinds=[kind], seed=n, slow_seconds=pace.slow_seconds)
        began = time.perf_counter()
        with PostgresStore(dsn) as store:
            synced, message, retries = full_sync(store, account, root / "raw", f"chaos-{n}", pace)
        seconds = time.perf_counter() - began
        portal.admin.clear_faults()
        lost, changed = compare(baseline, snapshot(dsn, account))
        yield Outcome(kind, rate, synced, message, lost, changed, retries, seconds)


def print_table(outcomes: Sequence[Outcome]) -> None:
    print(f"{'fault':<12} {'rate':>5}  {'outcome':<8} {'parity':<22} {'retries':>7} {'seconds':>8}  sentence")
    for o in outcomes:
        outcome = "synced" if o.synced else "failed"
        sentence = o.message if len(o.message) < 150 else o.message[:147] + "..."
        row = f"{o.kind:<12} {o.rate:>5.0%}  {outcome:<8} {o.parity:<22} {o.retries:>7} {o.seconds:>8.1f}"
        print(f"{row}  {sentence}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    args = parser.parse_args(argv)
    config = SandboxConfig(
        users=args.users, tasks=args.tasks, events=args.events, seed=11, profile="instant", time_scale=1.0
    )
    print(
        f"portal: {args.users:,} users, {args.tasks:,} tasks, {args.events:,} events; full syncs of all three"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_sandbox(config) as portal,
        core_server(Path(tmp)) as server,
    ):
        outcomes = []
        for outcome in scenarios(portal, server, Path(tmp), args.kinds, args.rates):
            outcomes.append(outcome)
            print(
                f"  {outcome.kind} at {outcome.rate:.0%}: {outcome.parity} ({outcome.seconds:.1f} s)",
                flush=True,
            )
    print()
    print_table(outcomes)
    lost = [o for o in outcomes if o.lost or o.changed]
    if lost:
        print(f"\nFAILED: {len(lost)} runs lost or changed rows")
        return 1
    print(
        f"\nno run lost a row: {sum(o.synced for o in outcomes)} in exact parity, "
        f"{sum(not o.synced for o in outcomes)} failed with one sentence and left Core unchanged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
