"""``bitrix24-core``: migrate Core, manage Bitrix24 accounts, show status.

Webhook URLs are secrets: ``accounts add`` reads them from an environment variable or a hidden
prompt, never from the command line (which would leave them in shell history).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .config import CoreSettings, open_store
from .embedded import EmbeddedPostgres, default_data_dir
from .errors import CoreError

app = typer.Typer(help="Core SDK for bitrix24_assets: migrations, accounts, status.", no_args_is_help=True)
accounts = typer.Typer(help="Bitrix24 integration accounts.", no_args_is_help=True)
app.add_typer(accounts, name="accounts")


def _fail(exc: CoreError) -> None:
    typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply pending migrations to the configured Core and print what was done."""
    settings = CoreSettings()
    try:
        with open_store(settings, migrate=False) as store:
            done = store.migrate()
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(f"Core: {settings.describe()}")
    for line in done or ["already up to date"]:
        typer.echo(f"  {line}")


@app.command()
def status() -> None:
    """Show which Core is configured and its Bitrix24 accounts (credentials redacted)."""
    settings = CoreSettings()
    typer.echo(f"Core: {settings.describe()} (backend: {settings.backend})")
    try:
        with open_store(settings) as store:
            for account in store.list_accounts(provider=None):
                typer.echo(f"  {account.id}  {account.status:<8} {account.name}  {account.portal}")
                for log in store.recent_syncs(account.id, limit=3):
                    typer.echo(f"    last {log.entity}: {log.status} at {log.finished_at or log.started_at}")
    except CoreError as exc:
        _fail(exc)


@accounts.command("list")
def list_accounts() -> None:
    """List integration accounts; webhook URLs are shown redacted."""
    try:
        with open_store() as store:
            for account in store.list_accounts(provider=None):
                typer.echo(f"{account.id}\t{account.company_id}\t{account.status}\t{account.name}\t{account.portal}")
    except CoreError as exc:
        _fail(exc)


@accounts.command("add")
def add_account(
    name: Annotated[str, typer.Option(help="Display name, e.g. acme.bitrix24.ru")],
    company: Annotated[str, typer.Option(help="Company name (created if absent)")] = "Demo company",
    webhook_url_env: Annotated[
        str | None, typer.Option(help="Name of the env var holding the webhook URL (else: hidden prompt)")
    ] = None,
) -> None:
    """Add a Bitrix24 portal reached through an inbound webhook."""
    if webhook_url_env:
        url = os.environ.get(webhook_url_env, "")
        if not url:
            typer.secho(f"Error: env var {webhook_url_env} is empty or unset.", fg="red", err=True)
            raise typer.Exit(2)
    else:
        url = typer.prompt("Webhook URL (input hidden)", hide_input=True)
    if "/rest/" not in url:
        typer.secho("Error: that is not a Bitrix24 webhook URL (expected https://<portal>/rest/<user>/<token>/).",
                    fg="red", err=True)
        raise typer.Exit(2)
    try:
        with open_store() as store:
            account = store.add_account(store.create_company(company), name, {"webhook_url": url})
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(f"Added account {account.id} ({account.name}, {account.portal})")


@app.command("stop-embedded")
def stop_embedded() -> None:
    """Stop the embedded Core server (its data stays in $DAGSTER_HOME/core_pg)."""
    settings = CoreSettings()
    EmbeddedPostgres(settings.core_embedded_dir or default_data_dir()).stop()
    typer.echo("embedded Core stopped")


def main() -> None:
    app()
