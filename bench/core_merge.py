"""Benchmark the Core merges: 10,000 employees + 100,000 tasks, three rounds, both SQL paths.

Rounds: first load, the same rows again (must write 0 rows), then 1% of the rows changed (must
write exactly those). Measured on a fresh embedded Postgres with default (durable) settings, from
the pydantic rows to the committed transaction, i.e. what an asset pays. The server settings that
decide write speed are printed with the figures.

The three rounds are repeated ``--repeats`` times (default 3), each time in a fresh database of
the same server (the previous one dropped and a checkpoint taken first, so its autovacuum and
dirty buffers do not land in the next first load), and each figure is the median with the range:
on this noisy 2-core VM one first load scatters by 20-40%. ``written`` is per repetition and must
be the same in all of them (the bench fails otherwise).

* postgres: PostgresStore (first load: binary COPY straight into the tables; reruns: COPY of
  (bitrix_id, source_hash), core.plan_*, COPY of the rows the plan asks for, core.merge_*_staged)
* supabase-sql: the RPC functions core.merge_*(p_rows jsonb) the Supabase backend calls, fed with
  the same JSON chunks SupabaseStore sends (5,000 rows per call, each row with its source_hash),
  executed over psycopg, so the figure is the database side of the Supabase path without
  PostgREST/network overhead. This is also the "stage every row, compare only hashes" variant of
  the merge (vs. the postgres path's narrow two-phase one).

Run: ``python -m bench.core_merge``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bitrix24_assets.core import EmployeeRow, MergeCounts, PostgresStore, TaskRow
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.core.staging import json_rows

EMPLOYEES = 10_000
TASKS = 100_000
CHUNK = 5_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
# server settings printed with the figures (the ones that decide write speed)
SHOWN_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "temp_buffers",
    "wal_buffers",
    "max_wal_size",
    "wal_compression",
)


def employees(n: int) -> list[EmployeeRow]:
    return [
        EmployeeRow(
            bitrix_id=str(i),
            email=f"user{i}@acme.io",
            full_name=f"User Number {i}",
            first_name="User",
            last_name=f"Number {i}",
            position="Engineer",
            phone="+7 900 000 00 00",
            departments=[1, i % 50],
            metadata={"bitrix_time_zone": "Europe/Moscow"},
        )
        for i in range(n)
    ]


def tasks(n: int, people: int) -> list[TaskRow]:
    return [
        TaskRow(
            bitrix_id=str(i),
            title=f"Task {i}: prepare the quarterly report",
            description="Details " * 8,
            status="in_progress",
            status_code=3,
            priority="medium",
            deadline=T0 + timedelta(days=i % 90),
            created_at_source=T0,
            changed_at_source=T0 + timedelta(minutes=i),
            responsible_bitrix_id=str(i % people),
            created_by_bitrix_id=str((i * 7) % people),
            group_id=str(i % 20),
            metadata={"tags": ["q1"], "mark": None},
        )
        for i in range(n)
    ]


def change_one_percent(
    emps: list[EmployeeRow], tks: list[TaskRow]
) -> tuple[list[EmployeeRow], list[TaskRow]]:
    emps = [e.model_copy(update={"position": "Lead"}) if i % 100 == 0 else e for i, e in enumerate(emps)]
    tks = [
        t.model_copy(update={"status": "completed", "status_code": 5}) if i % 100 == 0 else t
        for i, t in enumerate(tks)
    ]
    return emps, tks


def timed(fn: Callable[[], MergeCounts]) -> tuple[float, MergeCounts]:
    start = time.perf_counter()
    counts = fn()
    return time.perf_counter() - start, counts


def rpc_merge(
    dsn: str, function: str, account: str, rows: Sequence[EmployeeRow] | Sequence[TaskRow]
) -> MergeCounts:
    """What SupabaseStore does per chunk, minus HTTP: JSON body -> core.merge_*(jsonb); like it,
    only the last chunk counts the table's rows."""
    total = MergeCounts()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, len(rows), CHUNK):
            body = orjson.dumps(json_rows(rows[start : start + CHUNK], start)).decode()
            last = start + CHUNK >= len(rows)
            r = conn.execute(
                f"select * from core.{function}(%s::uuid, %s::jsonb, false, p_counts => %s)",
                (account, body, last),
            ).fetchone()
            total = total + MergeCounts(
                inserted=r[0], updated=r[1], unchanged=r[2], removed=r[3], rows_in_table=r[4], live_rows=r[5]
            )
    return total


Merge = Callable[[str, str, list[Any]], MergeCounts]  # (entity, account, rows) -> counts
PATHS: dict[str, Callable[[PostgresStore, str], Merge]] = {  # (store, dsn) -> that path's merge
    "postgres": lambda store, dsn: (
        lambda kind, account, rows: (store.merge_employees if kind == "employees" else store.merge_tasks)(
            account, rows, full=True
        )
    ),
    "supabase-sql": lambda store, dsn: (
        lambda kind, account, rows: rpc_merge(
            dsn, "merge_employees" if kind == "employees" else "merge_tasks", account, rows
        )
    ),
}


def repetition(
    server: EmbeddedPostgres, database: str, path: str, rounds: list[tuple[str, list[Any], list[Any]]]
) -> dict[tuple[str, str], tuple[float, MergeCounts]]:
    """The three rounds on one account of a fresh database: (round, entity) -> (seconds, counts)."""
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute("checkpoint")
    dsn = server.start(database)
    out = {}
    with PostgresStore(dsn) as store:
        store.migrate()
        company = store.create_company("Bench")
        account = store.add_account(company, path, {"webhook_url": "http://x/rest/1/t/"}).id
        merge = PATHS[path](store, dsn)
        for label, e_rows, t_rows in rounds:
            for kind, rows in (("employees", e_rows), ("tasks", t_rows)):
                out[(label, kind)] = timed(lambda k=kind, r=rows: merge(k, account, r))
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'drop database "{database}" with (force)')
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of the three rounds per path")
    args = parser.parse_args()
    emps, tks = employees(EMPLOYEES), tasks(TASKS, EMPLOYEES)
    emps_1pct, tks_1pct = change_one_percent(emps, tks)
    rounds = [("first load", emps, tks), ("unchanged rerun", emps, tks), ("1% changed", emps_1pct, tks_1pct)]
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        with server.running("bench") as dsn:
            with psycopg.connect(dsn) as conn:
                shown = conn.execute(
                    "select string_agg(name || '=' || current_setting(name), ', ' order by name)"
                    " from pg_settings where name = any(%s)",
                    (list(SHOWN_SETTINGS),),
                ).fetchone()[0]
            print(
                f"Core merge benchmark: {EMPLOYEES:,} employees + {TASKS:,} tasks, embedded Postgres 18 "
                f"as shipped (EmbeddedPostgres defaults): {shown}\n"
                f"{args.repeats} repetitions, each in a fresh database: median seconds and rows/s, range "
                "of seconds; rows written per repetition\n"
            )
            print(
                f"{'path':<13} {'round':<16} {'entity':<10} {'rows':>8} {'seconds':>8} {'range s':>12} "
                f"{'rows/s':>10} {'written':>8}  counts"
            )
            for path in PATHS:
                reps = [repetition(server, f"bench_{i}", path, rounds) for i in range(args.repeats)]
                for label, e_rows, t_rows in rounds:
                    totals, written_total = [0.0] * len(reps), 0
                    for kind, rows in (("employees", e_rows), ("tasks", t_rows)):
                        seconds = [rep[(label, kind)][0] for rep in reps]
                        counts = {rep[(label, kind)][1] for rep in reps}
                        assert len(counts) == 1, f"{path} {label} {kind}: counts differ between repetitions"
                        (same,) = counts
                        totals = [t + x for t, x in zip(totals, seconds, strict=True)]
                        written_total += same.written
                        med = statistics.median(seconds)
                        print(
                            f"{path:<13} {label:<16} {kind:<10} {len(rows):>8,} {med:>8.3f} "
                            f"{f'{min(seconds):.3f}-{max(seconds):.3f}':>12} {len(rows) / med:>10,.0f} "
                            f"{same.written:>8,}  {same.model_dump()}"
                        )
                    both = len(e_rows) + len(t_rows)
                    med = statistics.median(totals)
                    spread = f"{min(totals):.3f}-{max(totals):.3f}"
                    print(
                        f"{path:<13} {label:<16} {'both':<10} {both:>8,} {med:>8.3f} "
                        f"{spread:>12} {both / med:>10,.0f} {written_total:>8,}"
                    )
                print()


if __name__ == "__main__":
    main()
