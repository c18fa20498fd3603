"""The commands outbox in Core (migration 0010, sql/commands.sql) on the embedded Postgres, and the
same calls on the Supabase backend through the PostgREST stand-in (PostgREST itself cannot run here:
tests/core/postgrest_standin.py executes the same SQL functions on the same Postgres)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest

from bitrix24_assets.core import CoreDataError, PostgresStore
from bitrix24_assets.core.commands import CommandOutbox
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import Portal, add_portal
from .postgrest_standin import running_standin

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


def test_enqueue_is_idempotent_per_account_and_key(core_store: PostgresStore, portal: Portal) -> None:
    outbox = CommandOutbox(core_store)
    first = outbox.enqueue(portal.id, "task", {"fields": {"TITLE": "Call back"}}, "req-1")
    again = outbox.enqueue(portal.id, "task", {"fields": {"TITLE": "Something else"}}, "req-1")
    assert first.created and not again.created
    assert again.command == first.command  # the first request wins, unchanged
    assert first.command.status == "pending" and first.command.attempts == 0
    other = add_portal(core_store, "Beta", "beta.bitrix24.ru")
    assert outbox.enqueue(other.id, "task", {"fields": {"TITLE": "x"}}, "req-1").created  # per account
    assert [c.id for c in outbox.list(portal.id)] == [first.command.id]


def test_kind_key_and_account_are_checked(core_store: PostgresStore, portal: Portal) -> None:
    outbox = CommandOutbox(core_store)
    with pytest.raises(CoreDataError, match="not a command kind"):
        outbox.enqueue(portal.id, "sms", {}, "k")  # type: ignore[arg-type]
    with pytest.raises(CoreDataError, match="idempotency key"):
        outbox.enqueue(portal.id, "task", {}, " ")
    with pytest.raises(Exception, match="does not exist"):
        outbox.enqueue("00000000-0000-0000-0000-000000000000", "task", {}, "k")


def test_claim_marks_sending_before_anything_is_sent_and_never_twice(
    core_store: PostgresStore, portal: Portal
) -> None:
    outbox = CommandOutbox(core_store)
    ids = [outbox.enqueue(portal.id, "notification", {"n": i}, f"k{i}").command.id for i in range(30)]
    with ThreadPoolExecutor(4) as pool:  # four executors at once: SKIP LOCKED shares the rows out
        claimed = [
            c for batch in pool.map(lambda _: outbox.claim(portal.id, 10, "run"), range(4)) for c in batch
        ]
    assert sorted(c.id for c in claimed) == ids  # every row once, none twice
    assert {c.status for c in claimed} == {"sending"} and {c.attempts for c in claimed} == {1}
    assert {c.status for c in outbox.list(portal.id)} == {"sending"}  # committed, visible to others
    assert outbox.claim(portal.id) == []
    assert outbox.pending_accounts() == []


def test_outcomes_only_change_a_sending_row(core_store: PostgresStore, portal: Portal) -> None:
    outbox = CommandOutbox(core_store)
    a, b, c, d = (outbox.enqueue(portal.id, "task", {}, k).command.id for k in "abcd")
    assert outbox.mark_sent(a, "17") is None  # still pending: not claimed, not changed
    outbox.claim(portal.id)
    sent = outbox.mark_sent(a, "17")
    assert sent is not None and (sent.status, sent.result) == ("sent", "17")
    failed = outbox.mark_failed(b, "tasks.task.add on https://p/rest/1/s3cr3tt0ken/ failed.")
    assert failed is not None and failed.status == "failed" and "s3cr3tt0ken" not in (failed.error or "")
    assert outbox.mark_unknown(c, "The connection dropped.") is not None
    released = outbox.release(d)
    assert released is not None and released.status == "pending"
    assert outbox.mark_failed(a, "late") is None  # a sent row never changes again
    assert [p.model_dump(exclude={"waiting_seconds"}) for p in outbox.pending_accounts()] == [
        {"account_id": portal.id, "max_id": d, "pending": 1, "max_attempts": 1}
    ]


def test_operator_resolves_only_unknown(core_store: PostgresStore, portal: Portal) -> None:
    outbox = CommandOutbox(core_store)
    a, b = (outbox.enqueue(portal.id, "calendar_event", {}, k).command.id for k in "ab")
    outbox.claim(portal.id)
    outbox.mark_unknown(a, "The connection dropped after sending.")
    outbox.mark_sent(b, "5")
    resolved = outbox.resolve(a, "sent", result="42", note="found in the calendar")
    assert (resolved.status, resolved.result) == ("sent", "42")
    with pytest.raises(CoreDataError, match="is 'sent', not 'unknown'"):
        outbox.resolve(b, "failed")
    with pytest.raises(CoreDataError, match="does not exist"):
        outbox.resolve(10**9, "failed")


def test_a_row_left_sending_by_a_dead_run_becomes_unknown(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    outbox = CommandOutbox(core_store)
    cid = outbox.enqueue(portal.id, "task", {}, "k").command.id
    outbox.claim(portal.id)
    db.execute("update core.integration_commands set updated_at = now() - interval '1 hour'")
    assert outbox.claim(portal.id) == []  # never claimed again...
    row = outbox.get(cid)
    assert row is not None and row.status == "unknown" and "resolve" in (row.error or "")  # ...but unknown


def test_the_tables_get_the_integrations_access(core_dsn: str) -> None:
    with psycopg.connect(core_dsn) as conn:
        rls = dict(
            conn.execute(
                "select relname, relrowsecurity from pg_class where relname in"
                " ('integration_commands', 'confirmation_codes')"
            ).fetchall()
        )
        recorded = {
            name
            for (name,) in conn.execute(
                "select name from core.schema_migrations where kind = 'table'"
            ).fetchall()
        }
    assert rls == {"integration_commands": True, "confirmation_codes": True}
    assert {"core.integration_commands", "core.confirmation_codes"} <= recorded


def test_the_supabase_backend_runs_the_same_outbox(
    core_store: PostgresStore, core_dsn: str, portal: Portal
) -> None:
    with running_standin(core_dsn, KEY) as (base_url, app):
        outbox = CommandOutbox(SupabaseStore(base_url, KEY))
        first = outbox.enqueue(portal.id, "notification", {"email": "a@b.c", "message": "hi"}, "k1")
        assert first.created and not outbox.enqueue(portal.id, "notification", {}, "k1").created
        (claimed,) = outbox.claim(portal.id, run_id="r")
        assert claimed.status == "sending" and claimed.payload == {"email": "a@b.c", "message": "hi"}
        assert outbox.mark_unknown(claimed.id, "The connection dropped.") is not None
        assert outbox.resolve(claimed.id, "failed").status == "failed"
        assert [c.status for c in CommandOutbox(core_store).list(portal.id)] == ["failed"]
        cid, expires = outbox.create_confirmation(
            portal.id, "a@b.c", "7", salt=b"\x01" * 16, code_hash=b"\x02" * 32, ttl_seconds=60, max_attempts=2
        )
        assert expires > datetime.now(UTC)
        attempt = outbox.confirmation_attempt(cid)
        assert (attempt.state, attempt.hash_hex, attempt.attempts_left) == ("check", "02" * 32, 1)
        assert outbox.confirmation_verified(cid) and not outbox.confirmation_verified(cid)
        assert {c["function"] for c in app.state.calls} >= {"enqueue_command", "claim_commands"}
