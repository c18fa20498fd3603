"""``bitrix24-sandbox``: run a sandbox portal in the foreground and print its webhook URL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import StrEnum
from typing import Annotated

import typer

from .app import build_app
from .config import BatchBilling, SandboxConfig
from .portal import Portal
from .server import _Server, _uvicorn_config, bind_socket

app = typer.Typer(add_completion=False, help="Run a local Bitrix24 sandbox portal (REST API emulator).")


_BATCH_BILLING: dict[str, BatchBilling] = {"docs": "docs", "batch": "batch"}


class Profile(StrEnum):
    instant = "instant"
    cloud = "cloud"
    enterprise = "enterprise"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8024,
    users: Annotated[int, typer.Option(help="Seeded users.")] = 50,
    tasks: Annotated[int, typer.Option(help="Seeded tasks.")] = 300,
    events: Annotated[int, typer.Option(help="Seeded calendar events.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same portal.")] = 1,
    profile: Annotated[Profile, typer.Option(help="Limits and costs.")] = Profile.cloud,
    time_scale: Annotated[
        float, typer.Option(help="Wall seconds per modelled second (0.001 = 1000x faster).")
    ] = 1.0,
    event_handler: Annotated[
        str | None, typer.Option(help="URL that receives outgoing events (form POSTs).")
    ] = None,
    application_token: Annotated[
        str | None, typer.Option(help="application_token sent with outgoing events.")
    ] = None,
    batch_billing: Annotated[
        str, typer.Option(help="Operating time of batch: 'docs' (per sub-method) or 'batch'.")
    ] = "docs",
) -> None:
    """Seed a portal, print its webhook URL, serve until Ctrl+C."""
    if time_scale <= 0:
        raise typer.BadParameter("--time-scale must be positive, e.g. 1 or 0.01")
    billing = _BATCH_BILLING.get(batch_billing)
    if billing is None:
        raise typer.BadParameter("--batch-billing must be 'docs' or 'batch'")
    if event_handler and not application_token:
        application_token = "sandbox-application-token"
    began = time.perf_counter()
    config = SandboxConfig(
        users=users,
        tasks=tasks,
        events=events,
        seed=seed,
        profile=profile.value,
        time_scale=time_scale,
        event_handler_url=event_handler,
        application_token=application_token,
        host=host,
        port=port,
        batch_billing=billing,
    )
    portal = Portal(config)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        ) from None
    bound_host, bound_port = sock.getsockname()[:2]
    portal.bind(bound_host, bound_port)
    server = _Server(_uvicorn_config(build_app(portal)))
    counts = portal.state.seeded_counts
    typer.echo(
        f"Bitrix24 sandbox portal ({profile.value}, time scale {time_scale}) seeded in "
        f"{time.perf_counter() - began:.2f} s: {counts['users']} users, {counts['tasks']} tasks, "
        f"{counts['events']} events, {counts['departments']} departments"
    )
    typer.echo(f"Webhook URL: {portal.webhook_url(portal.admin_webhook)}")
    typer.echo(f"Admin API:   {portal.base_url}/_sandbox/")
    if application_token and event_handler:
        typer.echo(f"Outgoing events -> {event_handler}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(sockets=[sock]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
