"""``bitrix24-webhooks``: run the outgoing-event receiver with uvicorn."""

from __future__ import annotations

import logging

import typer
import uvicorn

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; a real portal needs a public TLS proxy."),
    port: int = typer.Option(8787, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn/receiver log level."),
) -> None:
    """Receive events at POST /bitrix24/events/<account id>; Core comes from the usual env vars."""
    from .app import create_app  # imported here so --help does not import Core

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(), host=host, port=port, log_level=log_level, proxy_headers=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
