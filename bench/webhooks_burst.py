"""Receiver under a burst: 1,000 valid Bitrix24 events on loopback, sequential vs concurrent.

Run: ``python -m bench.webhooks_burst [--events 1000] [--concurrency 100]``

Starts a throw-away embedded Postgres Core and the real receiver (``bitrix24-webhooks`` in its own
process, uvicorn on 127.0.0.1), then sends
the same number of distinct valid events twice: one at a time, and with ``--concurrency`` requests
in flight (what Bitrix24's queue does on a mass change: one POST per changed object). A few
invalid ones (wrong token, duplicate) ride along in the concurrent burst. Prints p50/p99 latency,
throughput, and checks that every valid event - and nothing else - was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.core.postgres import PostgresStore

TOKEN = "bench-application-token-0123456789"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def event_body(task_id: int, *, ts: int, token: str = TOKEN) -> str:
    return urlencode(
        {
            "event": "ONTASKUPDATE",
            "event_handler_id": "975",
            "data[FIELDS_BEFORE][ID]": str(task_id),
            "data[FIELDS_AFTER][ID]": str(task_id),
            "data[IS_ACCESSIBLE_BEFORE]": "undefined",
            "data[IS_ACCESSIBLE_AFTER]": "undefined",
            "ts": str(ts),
            "auth[domain]": "bench.bitrix24.ru",
            "auth[member_id]": "bench",
            "auth[application_token]": token,
        }
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(dsn: str) -> Iterator[str]:
    """The receiver as its own process (``bitrix24-webhooks``), as in production; stopped on exit."""
    port = free_port()
    env = {**os.environ, "CORE_DATABASE_URL": dsn}
    command = [
        sys.executable,
        "-m",
        "bitrix24_assets.webhooks.cli",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("The receiver did not start.")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


async def burst(url: str, bodies: list[str], concurrency: int) -> tuple[list[float], list[int], float]:
    """``concurrency`` senders, each with its own keep-alive connection, share the bodies.

    One httpx client per sender, like Bitrix24's independent queue workers; a single AsyncClient
    with 100 pooled connections measured the client's pool (it capped at ~100 req/s here).
    """
    latencies: list[float] = []
    statuses: list[int] = []

    async def sender(share: list[str]) -> None:
        async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=1)) as client:
            for body in share:
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=FORM)
                latencies.append(time.perf_counter() - started)
                statuses.append(response.status_code)

    started = time.perf_counter()
    await asyncio.gather(*(sender(bodies[k::concurrency]) for k in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


async def raw_burst(url: str, bodies: list[str], concurrency: int) -> tuple[list[float], list[int], float]:
    """The same burst over bare asyncio streams (HTTP/1.1 keep-alive, no client library).

    httpx costs a few ms of CPU per request, and on a 2-core machine the client then competes
    with the receiver and Postgres; this pass shows what the receiver itself sustains.
    """
    parts = httpx.URL(url)
    latencies: list[float] = []
    statuses: list[int] = []

    async def sender(share: list[str]) -> None:
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        try:
            for body in share:
                data = body.encode()
                head = (
                    f"POST {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.host}\r\n"
                    f"Content-Type: {FORM['Content-Type']}\r\nContent-Length: {len(data)}\r\n\r\n"
                )
                started = time.perf_counter()
                writer.write(head.encode() + data)
                await writer.drain()
                response_head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                length = next(
                    int(h.split(":", 1)[1]) for h in response_head if h.lower().startswith("content-length")
                )
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses.append(int(response_head[0].split()[1]))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender(bodies[k::concurrency]) for k in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    many = args.concurrency
    passes = [
        ("httpx sequential", burst, 1),
        (f"httpx x{many}", burst, many),
        (f"raw x{many}", raw_burst, many),
    ]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "core_pg")
        with pg.running() as dsn, PostgresStore(dsn, max_size=20) as store:
            store.migrate()
            company = store.create_company("Bench company")
            account = store.add_account(company, "bench portal", {"application_token": TOKEN})
            with serving(dsn) as base:
                url = f"{base}/bitrix24/events/{account.id}"
                for ts, (label, send, concurrency) in enumerate(passes, start=1_700_000_000):
                    valid = [event_body(i, ts=ts) for i in range(1, args.events + 1)]
                    # concurrent passes carry noise: 10 re-deliveries and 10 wrong tokens
                    noise = [event_body(1, ts=ts)] * 10 + [event_body(i, ts=ts, token="x") for i in range(10)]
                    bodies = valid + (noise if concurrency > 1 else [])
                    latencies, statuses, elapsed = asyncio.run(send(url, bodies, concurrency))
                    rows.append(
                        (
                            label,
                            len(bodies),
                            percentile(latencies, 50),
                            percentile(latencies, 99),
                            max(latencies),
                            len(bodies) / elapsed,
                            statuses.count(200),
                            statuses.count(401),
                        )
                    )
            stored = len(store.pending_events(limit=10 * args.events))

    print(f"Receiver burst: {args.events} valid ONTASKUPDATE events per pass; loopback; embedded Postgres")
    header = ("pass", "requests", "p50 ms", "p99 ms", "max ms", "req/s", "200", "401")
    print(f"{header[0]:<18}" + "".join(f"{h:>9}" for h in header[1:]))
    for label, n, p50, p99, worst, rps, ok, refused in rows:
        figures = (n, f"{p50 * 1e3:.1f}", f"{p99 * 1e3:.1f}", f"{worst * 1e3:.1f}", f"{rps:.0f}", ok, refused)
        print(f"{label:<18}" + "".join(f"{f:>9}" for f in figures))
    expected = len(rows) * args.events  # each pass has its own ts, hence its own dedupe keys
    verdict = "OK" if stored == expected else "MISMATCH"
    print(f"stored: {stored} of {expected} valid events, no duplicate, no wrong token: {verdict}")
    print(
        f"throughput vs httpx sequential: {rows[1][0]} {rows[1][5] / rows[0][5]:.1f}x, "
        f"{rows[2][0]} {rows[2][5] / rows[0][5]:.1f}x"
    )


if __name__ == "__main__":
    main()
