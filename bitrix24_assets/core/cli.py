"""``bitrix24-core``: migrate Core, manage Bitrix24 accounts, show status.

Webhook URLs are secrets: ``accounts add``/``update`` read them from an environment variable or a
hidden prompt, never from the command line (which would leave them in shell history), and every
listing shows them redacted.

Only ``migrate`` and ``accounts add`` may create a Core (the embedded one, when nothing is
configured). Every other command works on an existing Core: it creates, migrates and seeds nothing
and leaves no server running that it started; without a Core it says where it looked.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from .config import CoreSettings, open_existing_store, open_store
from .embedded import EmbeddedPostgres, default_data_dir
from .errors import CoreError
from .models import IntegrationAccount, SyncLog
from .secrets import redact_dsn
from .store import CoreStore

app = typer.Typer(help="Core SDK for bitrix24_assets: migrations, accounts, status.", no_args_is_help=True)
accounts = typer.Typer(help="Bitrix24 integration accounts.", no_args_is_help=True)
app.add_typer(accounts, name="accounts")

ENTITIES = ("employees", "tasks", "calendar_events")
AccountId = Annotated[str, typer.Argument(help="Account id (first column of `bitrix24-core accounts list`)")]
WebhookEnv = Annotated[
    str | None, typer.Option(help="Name of the env var holding the webhook URL (else: hidden prompt)")
]


def _fail(exc: CoreError) -> None:
    typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _usage_error(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _describe(account: IntegrationAccount) -> str:
    return f"{account.id} ({account.name}, {account.portal})"


def _read_webhook_url(env_var: str | None) -> str:
    """From the named env var, else a hidden prompt; checked to look like an inbound webhook."""
    if env_var:
        url = os.environ.get(env_var, "")
        if not url:
            _usage_error(f"env var {env_var} is empty or unset.")
    else:
        url = typer.prompt("Webhook URL (input hidden)", hide_input=True)
    if "/rest/" not in url:
        _usage_error("that is not a Bitrix24 webhook URL (expected https://<portal>/rest/<user>/<token>/).")
    return url.strip()


def _parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that is JSON (``["tasks"]``, ``false``, ``3``) is stored as such."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            _usage_error(f"--setting expects KEY=VALUE, got {pair!r}.")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


# ---- schema and status --------------------------------------------------------------------------------
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


def _sync_line(entity: str, log: SyncLog | None) -> str:
    if log is None:
        return f"    {entity:<16} never synced"
    when = (log.finished_at or log.started_at).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    line = f"    {entity:<16} {log.status:<9} {when}"
    if log.records_fetched is not None:
        line += f"  read {log.records_fetched}"
    if log.inserted is not None:
        line += f"  {log.inserted} inserted, {log.updated} updated, {log.unchanged} unchanged"
        line += f", {log.removed} removed"
    if log.error:
        line += f"\n      {log.error}"
    return line


def _print_status(store: CoreStore) -> None:
    found = store.list_accounts(provider=None)
    if not found:
        typer.echo("No accounts: add one with `bitrix24-core accounts add`.")
    for account in found:
        typer.echo(f"Account {account.id}  {account.status}  {account.name}  {account.portal}")
        if account.status_message:
            typer.echo(f"    {account.status_message}")
        latest = {log.entity: log for log in store.latest_syncs(account.id)}
        for entity in (*ENTITIES, *sorted(set(latest) - set(ENTITIES))):
            typer.echo(_sync_line(entity, latest.get(entity)))


@app.command()
def status() -> None:
    """Show which Core is configured, its DSN (password masked), its accounts and each entity's
    latest sync. Reads only: it never creates, migrates or seeds a Core."""
    settings = CoreSettings()
    typer.echo(f"Core: {settings.describe()} (backend: {settings.backend})")
    try:
        with open_existing_store(settings) as store:
            typer.echo(f"DSN:  {_dsn(settings, store)}")
            _print_status(store)
    except CoreError as exc:
        _fail(exc)


def _dsn(settings: CoreSettings, store: CoreStore) -> str:
    """The connection string, password masked (the embedded Core has none: trust on 127.0.0.1)."""
    if settings.backend != "supabase":
        return str(getattr(store, "target", ""))
    if settings.core_database_url:
        return redact_dsn(settings.core_database_url.get_secret_value())
    return "none (the REST API is used; CORE_DATABASE_URL is only needed to migrate)"


# ---- accounts -----------------------------------------------------------------------------------------
@accounts.command("list")
def list_accounts() -> None:
    """List integration accounts; webhook URLs are shown redacted. Reads only."""
    try:
        with open_existing_store() as store:
            found = store.list_accounts(provider=None)
    except CoreError as exc:
        _fail(exc)
        return
    if not found:
        typer.echo("No accounts: add one with `bitrix24-core accounts add`.")
        return
    header = ("ID", "COMPANY", "PROVIDER", "STATUS", "NAME", "PORTAL")
    rows = [header] + [(a.id, a.company_id, a.provider, a.status, a.name, a.portal) for a in found]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        typer.echo("  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]]).rstrip())


@accounts.command("add")
def add_account(
    name: Annotated[str, typer.Option(help="Display name, e.g. acme.bitrix24.ru")],
    company: Annotated[str, typer.Option(help="Company name (created if absent)")] = "Demo company",
    webhook_url_env: WebhookEnv = None,
) -> None:
    """Add a Bitrix24 portal reached through an inbound webhook. A portal the company already has
    (same host and webhook user) is updated instead: name, webhook URL."""
    url = _read_webhook_url(webhook_url_env)
    try:
        with open_store() as store:
            account, created = store.upsert_account(store.create_company(company), name, {"webhook_url": url})
    except CoreError as exc:
        _fail(exc)
        return
    if created:
        typer.echo(f"Added account {_describe(account)}")
    else:
        typer.echo(
            f"Updated account {_describe(account)}: company {company} already had this portal, so its name"
            " and webhook URL were updated instead of adding a second account"
            + ("" if account.status == "active" else f" (status {account.status})")
        )


@accounts.command("update")
def update_account(
    account_id: AccountId,
    name: Annotated[str | None, typer.Option(help="New display name")] = None,
    webhook_url_env: Annotated[
        str | None, typer.Option(help="Name of the env var holding the new webhook URL")
    ] = None,
    prompt_webhook_url: Annotated[
        bool, typer.Option("--prompt-webhook-url", help="Ask for the new webhook URL (hidden input)")
    ] = False,
    setting: Annotated[
        list[str] | None,
        typer.Option(help='KEY=VALUE merged into the settings; VALUE may be JSON, e.g. entities=["tasks"]'),
    ] = None,
) -> None:
    """Rename an account, replace its webhook URL, or merge settings into it."""
    settings = _parse_settings(setting or [])
    credentials = (
        {"webhook_url": _read_webhook_url(webhook_url_env)} if webhook_url_env or prompt_webhook_url else None
    )
    if name is None and credentials is None and not settings:
        _usage_error("nothing to update: give --name, --webhook-url-env/--prompt-webhook-url or --setting.")
    try:
        with open_existing_store() as store:
            account = store.get_account(account_id)
            if credentials:
                other = store.find_account(account.company_id, credentials, account.provider)
                if other is not None and other.id != account.id:
                    _usage_error(
                        f"account {_describe(other)} of the same company already has that portal;"
                        f" remove one of them (bitrix24-core accounts remove <id>)."
                    )
            account = store.update_account(account_id, name=name, credentials=credentials, settings=settings)
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(f"Updated account {_describe(account)}")


@accounts.command("disable")
def disable_account(account_id: AccountId) -> None:
    """Stop syncing an account. Its rows stay in Core; `enable` resumes."""
    try:
        with open_existing_store() as store:
            store.disable_account(account_id)
            account = store.get_account(account_id)
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(
        f"Disabled account {_describe(account)}: no more syncs (its partition goes); its rows stay in Core."
        f" `bitrix24-core accounts enable {account.id}` resumes."
    )


@accounts.command("enable")
def enable_account(account_id: AccountId) -> None:
    """Sync an account again (status active)."""
    try:
        with open_existing_store() as store:
            store.enable_account(account_id)
            account = store.get_account(account_id)
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(
        f"Enabled account {_describe(account)}: the accounts sensor gives it its partition back"
        " and requests a full sync."
    )


def _removal_sentence(account: IntegrationAccount, rows: dict[str, int]) -> str:
    return (
        f"Removing account {_describe(account)} deletes its {rows['tasks']} tasks,"
        f" {rows['calendar_events']} calendar events, {rows['integration_sync_logs']} sync-log rows and"
        f" {rows['integration_events']} inbox events, with its departments, their memberships and its"
        f" commands to Bitrix24; its {rows['employees']} employees stay in"
        " core.employees (they are the platform's people) with this account's id and their Bitrix24 id"
        " still in their metadata, so adding the portal again makes a new account whose sync inserts them"
        " a second time. To pause syncing instead, use `bitrix24-core accounts disable`."
    )


@accounts.command("remove")
def remove_account(
    account_id: AccountId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete an account and the tasks, events, sync logs and inbox events it synced; its employees stay."""
    try:
        with open_existing_store() as store:
            account = store.get_account(account_id)
            typer.echo(_removal_sentence(account, store.account_rows(account_id)))
            if not yes and not typer.confirm("Remove it?", default=False):
                typer.echo("Nothing removed.")
                raise typer.Exit(1)
            removed = store.remove_account(account_id)
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(
        f"Removed account {account.id}: deleted {removed['tasks']} tasks, {removed['calendar_events']}"
        f" calendar events, {removed['integration_sync_logs']} sync-log rows and"
        f" {removed['integration_events']} inbox events (and its departments and commands); kept"
        f" {removed['employees']} employees."
    )


# ---- commands to Bitrix24 (the outbox, core/commands.py) ---------------------------------------------
commands = typer.Typer(help="Commands from the platform to Bitrix24 (core.integration_commands).")
app.add_typer(commands, name="commands", no_args_is_help=True)


@commands.command("list")
def list_commands(
    account: Annotated[str | None, typer.Option(help="Only this account id")] = None,
    status: Annotated[str | None, typer.Option(help="pending, sending, sent, failed or unknown")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
) -> None:
    """List commands, newest first (payloads are not shown: they may hold personal data). Reads only."""
    from .commands import COMMAND_STATUSES, CommandOutbox

    if status is not None and status not in COMMAND_STATUSES:
        _usage_error(f"--status must be one of {', '.join(COMMAND_STATUSES)}.")
    try:
        with open_existing_store() as store:
            found = CommandOutbox(store).list(account, status, limit)  # type: ignore[arg-type]
    except CoreError as exc:
        _fail(exc)
        return
    if not found:
        typer.echo("No commands.")
        return
    header = ("ID", "ACCOUNT", "KIND", "STATUS", "ATTEMPTS", "RESULT", "UPDATED", "ERROR")
    rows = [header] + [
        (
            str(c.id),
            c.account_id,
            c.kind,
            c.status,
            str(c.attempts),
            c.result or "",
            c.updated_at.isoformat(timespec="seconds") if c.updated_at else "",
            c.error or "",
        )
        for c in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        typer.echo("  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]]).rstrip())


@commands.command("resolve")
def resolve_command(
    command_id: Annotated[int, typer.Argument(help="Command id (first column of `commands list`)")],
    outcome: Annotated[str, typer.Option("--as", help="sent (it is in Bitrix24) or failed (it is not)")],
    result: Annotated[str | None, typer.Option(help="The Bitrix24 id found, with --as sent")] = None,
    note: Annotated[str | None, typer.Option(help="Why, in one sentence (kept as its error)")] = None,
) -> None:
    """Decide a command whose outcome is unknown, after checking Bitrix24 by hand."""
    from .commands import CommandOutbox

    if outcome not in ("sent", "failed"):
        _usage_error("--as must be 'sent' or 'failed'.")
    try:
        with open_existing_store() as store:
            outbox = CommandOutbox(store)
            command = outbox.resolve(command_id, outcome, result=result, note=note)  # type: ignore[arg-type]
    except CoreError as exc:
        _fail(exc)
        return
    typer.echo(f"Command {command.id} ({command.kind}) is now '{command.status}'; it will not be sent again.")


@app.command("stop-embedded")
def stop_embedded() -> None:
    """Stop the embedded Core server (its data stays in $DAGSTER_HOME/core_pg)."""
    settings = CoreSettings()
    server = EmbeddedPostgres(settings.core_embedded_dir or default_data_dir())
    if not server.exists():
        typer.echo(f"There is no embedded Core in {server.data_dir}: nothing to stop.")
        return
    server.stop()
    typer.echo("embedded Core stopped")


def main() -> None:
    app()
