"""``make dev``: the whole local stack with one command, stopped with Ctrl-C.

1. the sandbox portal on 127.0.0.1:8765 (in this process), with the demo webhook token the
   embedded Core's demo account uses (``bitrix24_assets.core.config``);
2. the embedded Core (Postgres under ``dagster_home/core_pg``), migrated, with the demo company and
   its Bitrix24 account;
3. the processes in ``services()``: ``dagster dev`` (webserver + daemon) on ``workspace.yaml``
   with ``DAGSTER_HOME=./dagster_home`` and ``CORE_DATABASE_URL`` pointing at the embedded Core,
   and the webhooks receiver (``bitrix24-webhooks``) on 127.0.0.1:8787; the sandbox sends its
   outgoing events there with the demo account's application token (made once, kept in Core).

Within a minute the accounts sensor creates the demo account's partition and its first full sync
runs; open http://127.0.0.1:3000 and look at Assets -> bitrix24 (or Runs).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bitrix24_assets.core import PostgresStore, seed_demo
from bitrix24_assets.core.config import DEFAULT_SANDBOX_PORT, DEMO_WEBHOOK_TOKEN
from bitrix24_assets.core.embedded import EmbeddedPostgres, default_data_dir
from bitrix24_assets.sandbox import SandboxConfig, SandboxHandle, running_sandbox

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGSTER_PORT = int(os.environ.get("DAGSTER_PORT", "3000"))
WEBHOOKS_PORT = int(os.environ.get("WEBHOOKS_PORT", "8787"))


@dataclass
class DevContext:
    """What the services of the stack need to know about each other (no secrets printed)."""

    dagster_home: Path
    core_dsn: str
    sandbox_webhook_url: str
    sandbox_base_url: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Service:
    """One long-running child process of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Ctrl-C reaches every process of the terminal's group. A service that shuts down better on
    # another signal runs in its own session and gets that signal from us instead (uvicorn
    # re-raises a captured SIGINT after shutdown, which ends in a KeyboardInterrupt traceback).
    stop_signal: signal.Signals = signal.SIGINT


def services(ctx: DevContext) -> list[Service]:
    """The processes ``make dev`` runs. Add a service here to make it part of the stack.

    The sandbox's event handler (pointing at the ``webhooks`` service) is set in ``main``.
    """
    return [
        Service(
            "dagster",
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(DAGSTER_PORT)],
        ),
        Service(
            "webhooks",
            [str(BIN / "bitrix24-webhooks"), "--host", "127.0.0.1", "--port", str(WEBHOOKS_PORT)],
            stop_signal=signal.SIGTERM,
        ),
    ]


def _start_core(webhook_url: str) -> tuple[EmbeddedPostgres, str]:
    server = EmbeddedPostgres(default_data_dir())
    dsn = server.start()
    with PostgresStore(dsn) as store:
        store.migrate()
        seed_demo(store, webhook_url)
    return server, dsn


def _wire_outgoing_events(portal: SandboxHandle, dsn: str) -> None:
    """Point the sandbox's outgoing events at the receiver, with the demo account's application token."""
    with PostgresStore(dsn) as store:
        demo = [a for a in store.list_accounts(provider="bitrix24") if a.webhook_url == portal.webhook_url]
        if not demo:
            return
        token = demo[0].application_token
        if not token:
            token = secrets.token_urlsafe(24)
            store.update_credentials(demo[0].id, {"application_token": token})
    portal.admin.set_event_handler(f"http://127.0.0.1:{WEBHOOKS_PORT}/bitrix24/events/{demo[0].id}", token)


def _stop(procs: list[tuple[Service, subprocess.Popen[bytes]]]) -> None:
    for service, proc in procs:
        if proc.poll() is None:
            proc.send_signal(service.stop_signal)
    deadline = time.monotonic() + 20
    for _, proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def _stop_on_signals() -> None:
    """Every way of stopping the stack runs the same shutdown as Ctrl-C.

    ``kill`` (SIGTERM) and a closed terminal (SIGHUP) would otherwise end this process at once and
    leave Postgres, the sandbox and Dagster running. And a shell starts a background job with
    SIGINT *ignored*, which children inherit through exec: ``make dev &`` then ignored Ctrl-C/
    ``kill -INT`` and so did ``dagster dev``. Installing a handler here also gives the children
    the default SIGINT behaviour again (handlers, unlike "ignore", are reset by exec).
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def main() -> None:
    _stop_on_signals()
    home = (ROOT / "dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    config = SandboxConfig(
        users=50,
        tasks=300,
        events=100,
        seed=1,
        profile="cloud",
        time_scale=1.0,
        port=DEFAULT_SANDBOX_PORT,
        webhook_token=DEMO_WEBHOOK_TOKEN,
    )
    try:
        sandbox_cm = running_sandbox(config)
        portal = sandbox_cm.__enter__()
    except OSError as exc:
        sys.exit(f"Port {DEFAULT_SANDBOX_PORT} is busy ({exc.strerror}); stop whatever uses it and retry.")
    server, dsn = _start_core(portal.webhook_url)
    _wire_outgoing_events(portal, dsn)
    ctx = DevContext(home, dsn, portal.webhook_url, portal.base_url)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CORE_DATABASE_URL": dsn, "BITRIX24_TIME_SCALE": "1.0"}
    procs: list[tuple[Service, subprocess.Popen[bytes]]] = []
    try:
        for service in services(ctx):
            own_session = service.stop_signal != signal.SIGINT
            proc = subprocess.Popen(
                service.argv, cwd=ROOT, env={**env, **service.env}, start_new_session=own_session
            )
            procs.append((service, proc))
        print(
            f"\nSandbox portal:  {portal.base_url} (admin API {portal.base_url}/_sandbox/)\n"
            f"Core:            {dsn} (embedded Postgres in {default_data_dir()})\n"
            f"Events receiver: http://127.0.0.1:{WEBHOOKS_PORT}/bitrix24/events/<account id>\n"
            f"Dagster UI:      http://127.0.0.1:{DAGSTER_PORT}  - within a minute the accounts sensor adds\n"
            "                 the demo partition and its first full sync runs (Runs, Assets -> bitrix24).\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(proc.poll() is None for _, proc in procs):
            time.sleep(0.5)
        dead = [s.name for s, p in procs if p.poll() is not None]
        print(f"{', '.join(dead)} stopped; shutting the stack down.", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        _stop(procs)
        sandbox_cm.__exit__(None, None, None)
        server.stop()


if __name__ == "__main__":
    main()
