"""Full pull of users and tasks: our client vs a naive loop vs fast_bitrix24 vs the cost model's bound.

    .venv/bin/python -m bench.client_pull [--users 10000] [--tasks 100000] [--time-scale 0.5]

The sandbox (cloud profile: bucket 50 / 2 per s, 480 s operating per method per 10 min, 4 workers,
counted ``tasks.task.list`` pages ~1 s, keyset pages 0.07 s) runs in a separate process so its CPU
and memory do not mix with the measured client. Every contender uses the same time scale and a
webhook of its own (so one contender's operating budget does not block the next); the bench waits
for the portal's request bucket to drain between contenders. Times are printed in modelled
seconds (wall / time scale), so they read as on a real portal. The default scale 0.5 keeps CPU out
of the figures: at 0.05 one modelled second is 50 ms of wall time, so JSON encoding/decoding on a
2-core machine inflated every contender (ours read 3.0x the bound there, 1.3x at 0.5). The ``busy``
column is server work / (workers x time): how well a contender keeps the portal's 4 workers busy.

Our contender is a full read as a sync makes it, so its time includes the proof of completeness
(the counted request at the end, see ``bitrix24/paging.py``); it fails if the read is not proven.

The naive loop (one counted page after another with ``start``) is run for a bounded number of
pages and extrapolated linearly to the whole list; that underestimates it (deeper offsets cost
more, and it would also wait out operating-time blocks), which the output says.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.sandbox import PROFILE_LIMITS, AdminClient, CostModel, lower_bound_seconds

TASK_SELECT = ["ID", "TITLE", "STATUS", "RESPONSIBLE_ID", "CREATED_BY", "CHANGED_DATE", "DEADLINE"]
USER_SELECT = ["ID", "NAME", "LAST_NAME", "EMAIL", "ACTIVE", "UF_DEPARTMENT"]


@dataclass
class Row:
    name: str
    records: int
    modelled_s: float
    requests: int
    operating_s: float
    peak_mib: float
    limited: str
    note: str = ""


def start_sandbox(
    users: int, tasks: int, scale: float, events: int = 0
) -> tuple[subprocess.Popen[str], str, str]:
    """A cloud-profile sandbox in its own process: (process, webhook URL, base URL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitrix24_assets.sandbox",
            "--port",
            "0",
            "--users",
            str(users),
            "--tasks",
            str(tasks),
            "--events",
            str(events),
            "--profile",
            "cloud",
            "--time-scale",
            str(scale),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"Webhook URL:\s*(\S+)", line)
        if match:
            url = match.group(1)
            return proc, url, url.split("/rest/")[0]
    raise SystemExit("the sandbox did not start")


def counters(admin: AdminClient) -> dict[str, Any]:
    return admin.counters()


def measure(name: str, admin: AdminClient, scale: float, fn: Callable[[], int], note: str = "") -> Row:
    before = counters(admin)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        records = fn()
    except Exception as exc:  # a contender failing is a result to print, not a crash
        records = 0
        text = str(exc)
        cause = (
            "OPERATION_TIME_LIMIT (HTTP 429): the portal blocked the method for this webhook"
            if "OPERATION_TIME_LIMIT" in text
            else f"{type(exc).__name__}: {text[:80]}"
        )
        note = f"failed after {(time.perf_counter() - t0) / scale:.0f} model s: {cause}"
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = counters(admin)
    requests = after["requests"] - before["requests"]
    operating = sum(after["operating"].values()) - sum(before["operating"].values())
    rejected = {k: v - before["rejections"].get(k, 0) for k, v in after["rejections"].items()}
    errs = {k: v - before["errors"].get(k, 0) for k, v in after["errors"].items()}
    hits = {k: v for k, v in {**rejected, **errs}.items() if v and ("LIMIT" in k or k in ("503", "429"))}
    limited = ", ".join(f"{k}x{v}" for k, v in hits.items()) or "none"
    return Row(name, records, wall / scale, requests, operating, peak / 2**20, limited, note)


def drain(admin: AdminClient, scale: float) -> None:
    """Let the portal's request bucket empty, so each contender starts with the full burst of 50."""
    limits = admin.limits()
    level = float(limits.get("bucket_level") or 0.0)
    time.sleep((level / float(limits["drain_per_second"]) + 0.5) * scale)


def ours(url: str, scale: float, method: str, flt: dict[str, Any] | None = None) -> int:
    """A full read as a sync makes it: streamed, and proven complete (the counted cross-check included)."""
    with Bitrix24Client(webhook_url=url, time_scale=scale, timeout=600) as client:
        rows = (
            client.get_users(select=USER_SELECT)
            if method == "user.get"
            else client.get_tasks(filter=flt, select=TASK_SELECT)
        )
        count = sum(1 for _ in rows)  # streaming: nothing kept
        if not rows.verified:
            raise RuntimeError(f"{method}: the read was not proven complete")
        return count


def naive(url: str, method: str, select: list[str], max_pages: int) -> tuple[int, int, int]:
    """One counted page after another; returns (records read, pages read, total pages)."""
    records, start, pages, total = 0, 0, 0, 0
    with httpx.Client(timeout=600) as http:
        while True:
            body = http.post(url + method, json={"select": select, "start": start}).json()
            result = body["result"]
            rows = result["tasks"] if isinstance(result, dict) else result
            records += len(rows)
            pages += 1
            total = math.ceil(int(body.get("total", 0)) / 50)
            if "next" not in body or pages >= max_pages:
                return records, pages, total
            start = body["next"]


def fast_b24(url: str, method: str, select: list[str]) -> int:
    from fast_bitrix24 import Bitrix

    # its abandoned requests log "Task exception was never retrieved" after a failure: not our result
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    b = Bitrix(url, verbose=False, ssl=False)
    return len(b.get_all(method, params={"select": select}))


def lower_bound(method: str, rows: int) -> tuple[float, int]:
    costs, limits = CostModel(), PROFILE_LIMITS["cloud"]
    pages = math.ceil(rows / 50) + (1 if rows % 50 == 0 else 0)
    requests = math.ceil(pages / 50)
    work = costs.keyset_enumeration_cost(method, rows, per_batch=50)
    return lower_bound_seconds(work, requests, costs, limits, billed_per_method={method: work}), requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--time-scale", type=float, default=0.5)
    ap.add_argument("--naive-pages", type=int, default=40)
    ap.add_argument("--skip-fast-bitrix24", action="store_true")
    args = ap.parse_args()
    scale = args.time_scale
    print(
        f"Seeding sandbox (cloud profile, {args.users} users, {args.tasks} tasks, time scale {scale}) ...",
        flush=True,
    )
    proc, _, base = start_sandbox(args.users, args.tasks, scale)
    admin = AdminClient(base)
    rows: list[Row] = []

    def hook() -> str:
        drain(admin, scale)
        return str(admin.create_webhook(["user", "task", "department", "calendar", "im"])["webhook_url"])

    try:
        for method, n in (("user.get", args.users), ("tasks.task.list", args.tasks)):
            bound, breq = lower_bound(method, n)
            rows.append(
                Row(
                    f"{method}: lower bound (cost model)",
                    n,
                    bound,
                    breq,
                    CostModel().keyset_enumeration_cost(method, n, per_batch=50),
                    0.0,
                    "-",
                    "computed",
                )
            )
            url = hook()
            rows.append(
                measure(
                    f"{method}: ours (keyset+batch+lanes)", admin, scale, partial(ours, url, scale, method)
                )
            )
            if method == "tasks.task.list":
                url = hook()
                sub = n // 2
                rows.append(
                    measure(
                        f"{method}: ours, first {sub} IDs only",
                        admin,
                        scale,
                        partial(ours, url, scale, method, {"<=ID": sub}),
                        "memory check",
                    )
                )
            url = hook()
            select = USER_SELECT if method == "user.get" else TASK_SELECT
            got: dict[str, int] = {}

            def run_naive(
                url: str = url, select: list[str] = select, got: dict[str, int] = got, method: str = method
            ) -> int:
                got["records"], got["pages"], got["total"] = naive(url, method, select, args.naive_pages)
                return got["records"]

            row = measure(f"{method}: naive counted loop", admin, scale, run_naive)
            if got["pages"] < got["total"]:
                factor = got["total"] / got["pages"]
                row.note = (
                    f"extrapolated x{factor:.1f} from {got['pages']}/{got['total']} pages (underestimate)"
                )
                row.modelled_s *= factor
                row.requests = got["total"]
                row.operating_s *= factor
                row.records = n
            rows.append(row)
            if not args.skip_fast_bitrix24:
                url = hook()
                fb = partial(fast_b24, url, method, select)
                rows.append(measure(f"{method}: fast_bitrix24 get_all", admin, scale, fb))
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print()
    print(
        f"{'contender':48} {'records':>8} {'time(model s)':>13} {'requests':>8} {'operating s':>11} "
        f"{'busy':>5} {'peak MiB':>8}  503/429   note"
    )
    workers = CostModel().workers
    for r in rows:
        busy = r.operating_s / (workers * r.modelled_s) if r.modelled_s else float("nan")
        print(
            f"{r.name:48} {r.records:>8} {r.modelled_s:>13.1f} {r.requests:>8} {r.operating_s:>11.1f} "
            f"{busy:>5.0%} {r.peak_mib:>8.1f}  {r.limited:8}  {r.note}"
        )
    print()
    for method in ("user.get", "tasks.task.list"):
        sel = {r.name.split(": ", 1)[1]: r for r in rows if r.name.startswith(method)}
        o, lb = sel.get("ours (keyset+batch+lanes)"), sel.get("lower bound (cost model)")
        nv, fb = sel.get("naive counted loop"), sel.get("fast_bitrix24 get_all")
        if o and lb:
            line = f"{method}: ours/lower bound = {o.modelled_s / lb.modelled_s:.2f}x"
            if nv:
                line += f"; naive/ours = {nv.modelled_s / o.modelled_s:.1f}x"
            if fb and fb.records:
                line += f"; fast_bitrix24/ours = {fb.modelled_s / o.modelled_s:.1f}x"
                # No client of ours can beat the lower bound, so that caps the ratio this run can show.
                cap = fb.modelled_s / lb.modelled_s
                line += f" (at most {cap:.1f}x possible: its time / our lower bound)"
            elif fb:
                line += "; fast_bitrix24 did not finish"
            print(line)
    print(f"time scale {scale}: modelled seconds = wall seconds / {scale}")


if __name__ == "__main__":
    main()
