"""1,000 queued commands for one portal: how fast the executor carries them out within the portal's
rate limits, against the cost model's lower bound.

    .venv/bin/python -m bench.commands [--commands 1000] [--time-scale 0.05]

The sandbox (cloud profile: bucket 50 / 2 per s, 480 s operating per method per 10 min, 4 workers,
``tasks.task.add`` 0.3 s, ``calendar.event.add`` 0.15 s, ``im.notify.system.add`` 0.05 s plus 0.01 s
per call) runs in its own process; Core is an embedded Postgres in a temp directory. The queue is a
mix of tasks, calendar events and notifications addressed by e-mail (ten people, each looked up once
per pass). The executor is the one the Dagster job runs (``pipeline/commands.py``): each command is
claimed in Core, sent once and its outcome written back.

The bound is ``lower_bound_seconds`` of the sandbox's cost model for exactly the requests made (the
writes and the e-mail look-ups): the largest of the work spread over the portal's 4 workers, the
leaky bucket's drain for the requests beyond its first 50, and whole operating-time windows. Writes
are sent one at a time (at most once each; a batch of writes would turn one dropped connection into
50 unknown outcomes), so the bucket's 2 requests/s is the bound for any queue longer than the burst.
Times are modelled seconds (wall / time scale), as on a real portal.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.client_pull import start_sandbox
from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.commands import CommandKind, CommandOutbox
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.pipeline.commands import execute_commands
from bitrix24_assets.sandbox import PROFILE_LIMITS, AdminClient, CostModel, lower_bound_seconds

PEOPLE = 10
METHOD = {
    "task": "tasks.task.add",
    "calendar_event": "calendar.event.add",
    "notification": "im.notify.system.add",
}


def queue(n: int) -> list[tuple[CommandKind, dict[str, Any]]]:
    """Half tasks, a quarter calendar events, a quarter notifications to ten people by e-mail."""
    out: list[tuple[CommandKind, dict[str, Any]]] = []
    for i in range(n):
        if i % 4 in (0, 2):
            out.append(("task", {"fields": {"TITLE": f"Bench task {i}", "RESPONSIBLE_ID": 1}}))
        elif i % 4 == 1:
            day = 1 + i % 28
            fields = {"type": "user", "ownerId": 1, "name": f"Bench event {i}"}
            fields |= {"from": f"2026-12-{day:02d}T10:00:00+03:00", "to": f"2026-12-{day:02d}T11:00:00+03:00"}
            out.append(("calendar_event", {"fields": fields}))
        else:
            out.append(
                ("notification", {"email": f"person{i // 4 % PEOPLE}@bench.test", "message": f"Note {i}"})
            )
    return out


def bound(kinds: Counter[str], lookups: int) -> tuple[float, int, float]:
    """(bound in modelled s, requests, server work in modelled s) for these writes and look-ups."""
    costs, limits = CostModel(), PROFILE_LIMITS["cloud"]
    billed = {METHOD[k]: n * costs.call_cost(METHOD[k], _no_list()) for k, n in kinds.items()}
    billed["user.get"] = lookups * costs.list_page_cost("user.get", matching_rows=1)
    work = sum(billed.values())
    requests = sum(kinds.values()) + lookups
    return lower_bound_seconds(work, requests, costs, limits, billed_per_method=billed), requests, work


def _no_list() -> Any:
    from bitrix24_assets.sandbox.costs import Work

    return Work()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--time-scale", type=float, default=0.2)
    args = ap.parse_args()
    scale = args.time_scale
    proc, url, base = start_sandbox(20, 10, scale, events=10)
    admin = AdminClient(base)
    try:
        for i in range(PEOPLE):
            admin.add_user(NAME=f"Person {i}", EMAIL=f"person{i}@bench.test")
        with tempfile.TemporaryDirectory() as tmp:
            server = EmbeddedPostgres(Path(tmp) / "pg")
            with server.running("bench") as dsn, PostgresStore(dsn) as store:
                store.migrate()
                account = store.add_account(
                    store.create_company("Bench"), "bench portal", {"webhook_url": url}
                )
                outbox = CommandOutbox(store)
                commands = queue(args.commands)
                for i, (kind, payload) in enumerate(commands):
                    outbox.enqueue(account.id, kind, payload, f"bench-{i}")
                time.sleep((50 / 2 + 1) * scale)  # the add_user calls used none of the bucket; be sure
                before = admin.counters()
                t0 = time.perf_counter()
                with Bitrix24Client(webhook_url=url, time_scale=scale) as client:
                    outcome = execute_commands(outbox, client, account.id, run_id="bench")
                    stats = client.stats.as_dict()
                wall = time.perf_counter() - t0
                after = admin.counters()
                statuses = Counter(c.status for c in outbox.list(account.id, limit=args.commands + 10))
    finally:
        admin.close()
        proc.terminate()
        proc.wait(10)

    kinds = Counter(kind for kind, _ in commands)
    lookups = after["calls"].get("user.get", 0) - before["calls"].get("user.get", 0)
    lower, requests, work = bound(kinds, lookups)
    modelled = wall / scale
    made = after["requests"] - before["requests"]
    limited = {
        k: v - before["rejections"].get(k, 0) - before["errors"].get(k, 0)
        for k, v in {**after["rejections"], **after["errors"]}.items()
        if "LIMIT" in k or k in ("503", "429")
    }
    limited = {k: v for k, v in limited.items() if v}
    print(
        f"Commands benchmark: {args.commands:,} queued commands for one cloud-profile portal "
        f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; {PEOPLE} people by e-mail), "
        f"time scale {scale}\n"
    )
    print(f"{'':<26} {'modelled s':>10} {'commands/s':>11} {'requests':>9}")
    print(f"{'executor (ours)':<26} {modelled:>10.1f} {args.commands / modelled:>11.2f} {made:>9}")
    print(f"{'cost model lower bound':<26} {lower:>10.1f} {args.commands / lower:>11.2f} {requests:>9}")
    print(
        f"\nratio to the bound: {modelled / lower:.2f}x; server work {work:.1f} modelled s "
        f"(the portal's 4 workers busy {work / (4 * modelled):.0%} of the time); "
        f"e-mail look-ups: {lookups}"
    )
    print(f"outcomes: {dict(outcome.counts)}; statuses in Core: {dict(statuses)}")
    print(
        f"rate-limit answers from the portal: {limited or 'none'}; client retries {stats['retries']}, "
        f"waited for the bucket {stats['bucket_wait_s']:.1f} modelled s"
    )
    ok = outcome.counts["sent"] == args.commands and not limited
    if not ok:
        raise SystemExit("FAILED: not every command was sent once without a rate-limit answer")


if __name__ == "__main__":
    main()
