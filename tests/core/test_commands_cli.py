"""``bitrix24-core commands list|resolve`` against the tests' embedded Postgres (Typer's CliRunner in
this process): an operator sees the commands without their payloads and resolves an unknown one."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.cli import app
from bitrix24_assets.core.commands import CommandOutbox

from .conftest import Portal


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(autouse=True)
def on_core(core_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CORE_EMBEDDED_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CORE_DATABASE_URL", core_dsn)


def test_list_shows_status_and_error_but_not_the_payload(core_store: PostgresStore, portal: Portal) -> None:
    outbox = CommandOutbox(core_store)
    sent = outbox.enqueue(
        portal.id, "notification", {"email": "secret.person@acme.test", "message": "x"}, "a"
    )
    unknown = outbox.enqueue(portal.id, "task", {"fields": {"TITLE": "t"}}, "b")
    outbox.claim(portal.id)
    outbox.mark_sent(sent.command.id, "77")
    outbox.mark_unknown(unknown.command.id, "The connection dropped after sending.")

    listed = cli("commands", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split()[:6] == ["ID", "ACCOUNT", "KIND", "STATUS", "ATTEMPTS", "RESULT"]
    assert lines[1].split()[:5] == [str(unknown.command.id), portal.id, "task", "unknown", "1"]
    assert lines[1].endswith("The connection dropped after sending.")
    assert lines[2].split()[:6] == [str(sent.command.id), portal.id, "notification", "sent", "1", "77"]
    assert "secret.person" not in listed.output  # payloads stay out of terminals and shell logs
    only_unknown = cli("commands", "list", "--status", "unknown")
    assert str(unknown.command.id) in only_unknown.output and "notification" not in only_unknown.output
    assert cli("commands", "list", "--status", "lost").exit_code == 2


def test_resolve_decides_an_unknown_command_once(core_store: PostgresStore, portal: Portal) -> None:
    outbox = CommandOutbox(core_store)
    cid = outbox.enqueue(portal.id, "task", {"fields": {"TITLE": "t"}}, "b").command.id
    outbox.claim(portal.id)
    outbox.mark_unknown(cid, "The connection dropped after sending.")

    done = cli("commands", "resolve", str(cid), "--as", "sent", "--result", "4711")
    assert done.exit_code == 0, done.output
    assert f"Command {cid} (task) is now 'sent'" in done.output
    row = outbox.get(cid)
    assert row is not None and (row.status, row.result) == ("sent", "4711")
    again = cli("commands", "resolve", str(cid), "--as", "failed")
    assert again.exit_code == 1 and "is 'sent', not 'unknown'" in again.output
    assert cli("commands", "resolve", str(cid), "--as", "maybe").exit_code == 2
