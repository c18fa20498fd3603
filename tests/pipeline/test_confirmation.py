"""Confirmation codes sent through the sandbox portal over HTTP and checked against the embedded
Core: only a salted hash is stored, the code expires, attempts are limited, a code is good once,
and the code appears nowhere but in the notification."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import psycopg
import pytest

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.commands import CommandOutbox
from bitrix24_assets.pipeline.confirmation import CodeNotSent, hash_code, send_code, verify_code
from bitrix24_assets.sandbox import SandboxHandle

EMAIL = "boris.confirm@acme.test"


@pytest.fixture
def portal(sandbox_factory: Callable[..., SandboxHandle]) -> SandboxHandle:
    handle = sandbox_factory(users=3, tasks=1, events=1, seed=12)
    handle.admin.add_user(NAME="Boris", EMAIL=EMAIL)
    return handle


@pytest.fixture
def client(portal: SandboxHandle) -> Iterator[Bitrix24Client]:
    with Bitrix24Client(webhook_url=portal.webhook_url, time_scale=0.001) as c:
        yield c


@pytest.fixture
def account(core_store: PostgresStore, portal: SandboxHandle) -> str:
    company = core_store.create_company("Acme")
    return core_store.add_account(company, "acme.test", {"webhook_url": portal.webhook_url}).id


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_the_code_reaches_the_person_and_only_its_hash_is_stored(
    core_store: PostgresStore,
    core_dsn: str,
    portal: SandboxHandle,
    client: Bitrix24Client,
    account: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = CommandOutbox(core_store)
    with caplog.at_level(logging.DEBUG):
        sent = send_code(outbox, client, account, f" {EMAIL.upper()}")
    (note,) = portal.state.notifications
    boris = next(u.id for u in portal.state.users.rows.values() if u.email == EMAIL)
    assert note.user_id == boris and sent.code in note.message
    assert sent.code not in repr(sent) and sent.code not in caplog.text
    with psycopg.connect(core_dsn) as conn:
        (row,) = conn.execute(
            "select to_jsonb(c)::text, salt, code_hash from core.confirmation_codes c"
        ).fetchall()
        dump = "\n".join(
            str(r)
            for r in conn.execute("select to_jsonb(c)::text from core.integration_commands c").fetchall()
        )
    text, salt, stored = row
    assert sent.code not in text and sent.code not in dump  # not in Core in any form but the hash
    assert bytes(stored) == hash_code(sent.code, bytes(salt)) and len(bytes(salt)) == 16
    assert verify_code(outbox, sent.confirmation_id, sent.code) == "ok"
    assert verify_code(outbox, sent.confirmation_id, sent.code) == "used"  # good once


def test_attempts_are_limited_and_counted_before_comparing(
    core_store: PostgresStore, client: Bitrix24Client, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    sent = send_code(outbox, client, account, EMAIL, max_attempts=3)
    assert verify_code(outbox, sent.confirmation_id, _wrong(sent.code)) == "wrong"
    assert verify_code(outbox, sent.confirmation_id, _wrong(sent.code)) == "wrong"
    assert verify_code(outbox, sent.confirmation_id, _wrong(sent.code)) == "exhausted"
    assert verify_code(outbox, sent.confirmation_id, sent.code) == "exhausted"  # too late, even right


def test_an_expired_code_is_refused(
    core_store: PostgresStore, core_dsn: str, client: Bitrix24Client, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    sent = send_code(outbox, client, account, EMAIL, ttl_seconds=300)
    with psycopg.connect(core_dsn) as conn:  # five minutes later, without waiting five minutes
        conn.execute("update core.confirmation_codes set expires_at = now() - interval '1 second'")
    assert verify_code(outbox, sent.confirmation_id, sent.code) == "expired"
    assert verify_code(outbox, "00000000-0000-0000-0000-000000000000", sent.code) == "unknown"


def test_no_code_for_an_email_nobody_has(
    core_store: PostgresStore, portal: SandboxHandle, client: Bitrix24Client, account: str
) -> None:
    with pytest.raises(CodeNotSent, match="no Bitrix24 user of account"):
        send_code(CommandOutbox(core_store), client, account, "boris.confirm@acme")
    assert portal.state.notifications == []
