"""The commands executor against the sandbox portal over HTTP and the embedded Core: each kind is
carried out once with its Bitrix24 id written back, a dropped connection after the call ran is
'unknown' and never sent again, refusals are one sentence, people are found by exact e-mail only,
and a rate-limited command waits for the next pass without having been sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.commands import CommandOutbox
from bitrix24_assets.pipeline.commands import NO_SUCH_USER, execute_commands
from bitrix24_assets.sandbox import SandboxHandle

SCALE = 0.001
EMAIL = "anna.commands@acme.test"


@pytest.fixture
def portal(sandbox_factory: Callable[..., SandboxHandle]) -> SandboxHandle:
    handle = sandbox_factory(users=5, tasks=3, events=2, seed=11)
    handle.admin.add_user(NAME="Anna", EMAIL=EMAIL)
    handle.admin.add_user(NAME="Ann", EMAIL="ann.commands@acme.test")
    return handle


@pytest.fixture
def client(portal: SandboxHandle) -> Iterator[Bitrix24Client]:
    with Bitrix24Client(webhook_url=portal.webhook_url, time_scale=SCALE) as c:
        yield c


@pytest.fixture
def account(core_store: PostgresStore, portal: SandboxHandle) -> str:
    company = core_store.create_company("Acme")
    return core_store.add_account(company, "acme.test", {"webhook_url": portal.webhook_url}).id


def _calls(portal: SandboxHandle, method: str) -> int:
    return portal.portal.counters.calls.get(method, 0)


def _user_id(portal: SandboxHandle, email: str) -> int:
    return next(u.id for u in portal.state.users.rows.values() if u.email == email)


def test_each_kind_is_carried_out_once_and_its_id_written_back(
    core_store: PostgresStore, portal: SandboxHandle, client: Bitrix24Client, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    task = outbox.enqueue(
        account, "task", {"fields": {"TITLE": "Sign the contract"}, "responsible_email": EMAIL}, "t1"
    ).command
    event = outbox.enqueue(
        account,
        "calendar_event",
        {
            "fields": {
                "name": "Review",
                "from": "2026-12-02T10:00:00+03:00",
                "to": "2026-12-02T11:00:00+03:00",
            },
            "owner_email": EMAIL,
        },
        "e1",
    ).command
    note = outbox.enqueue(account, "notification", {"email": EMAIL, "message": "Your report is due"}, "n1")
    outbox.enqueue(account, "notification", {"email": EMAIL, "message": "Your report is due"}, "n1")  # repeat

    outcome = execute_commands(outbox, client, account, run_id="run-1", account_name="acme.test")

    assert outcome.counts == {"sent": 3, "failed": 0, "unknown": 0, "released": 0}
    rows = {c.id: c for c in outbox.list(account)}
    assert {c.status for c in rows.values()} == {"sent"} and {c.attempts for c in rows.values()} == {1}
    anna = _user_id(portal, EMAIL)
    created_task = portal.state.tasks.get(int(rows[task.id].result or 0))
    assert created_task is not None and created_task.title == "Sign the contract"
    assert created_task.responsible_id == anna
    created_event = portal.state.events.get(int(rows[event.id].result or 0))
    assert created_event is not None and created_event.name == "Review" and created_event.owner_id == anna
    (sent_note,) = portal.state.notifications
    assert (sent_note.user_id, sent_note.message, str(sent_note.id)) == (
        anna,
        "Your report is due",
        rows[note.command.id].result,
    )
    assert [_calls(portal, m) for m in ("tasks.task.add", "calendar.event.add", "im.notify.system.add")] == [
        1,
        1,
        1,
    ]
    assert execute_commands(outbox, client, account).counts["sent"] == 0  # nothing left, nothing resent


def test_a_connection_dropped_after_the_call_ran_is_unknown_and_never_sent_again(
    core_store: PostgresStore, portal: SandboxHandle, client: Bitrix24Client, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    cid = outbox.enqueue(account, "task", {"fields": {"TITLE": "Once", "RESPONSIBLE_ID": 1}}, "k").command.id
    tasks_before = len(portal.state.tasks)
    portal.admin.set_faults(rate=1.0, kinds=["drop_after"], methods=["tasks.task.add"], count=1)

    first = execute_commands(outbox, client, account, account_name="acme.test")
    second = execute_commands(outbox, client, account, account_name="acme.test")  # a later run

    assert first.unknown == [cid] and second.counts == {"sent": 0, "failed": 0, "unknown": 0, "released": 0}
    assert _calls(portal, "tasks.task.add") == 1  # the client did not repeat the write
    assert len(portal.state.tasks) == tasks_before + 1  # ...which Bitrix24 did carry out
    row = outbox.get(cid)
    assert row is not None and row.status == "unknown" and row.attempts == 1
    assert row.error is not None and "acme.test" in row.error and f"resolve {cid}" in row.error
    assert row.error.count(". ") == 0 and row.error.endswith(".")  # one sentence
    token = portal.webhook_url.rstrip("/").rsplit("/", 1)[-1]
    assert token not in row.error


def test_a_refusal_is_failed_with_one_sentence_and_nothing_created(
    core_store: PostgresStore, portal: SandboxHandle, client: Bitrix24Client, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    bad = outbox.enqueue(account, "calendar_event", {"fields": {"type": "user", "ownerId": 1}}, "no-name")
    malformed = outbox.enqueue(account, "task", {"fields": "Sign it"}, "malformed")
    events_before = len(portal.state.events)

    outcome = execute_commands(outbox, client, account, account_name="acme.test")

    assert sorted(outcome.failed) == sorted([bad.command.id, malformed.command.id])
    rows = {c.id: c for c in outbox.list(account)}
    refused = rows[bad.command.id].error or ""
    assert refused.startswith("Bitrix24 account 'acme.test': command") and "name" in refused
    assert "\n" not in refused and refused.endswith(".")
    assert "'fields' object" in (rows[malformed.command.id].error or "")
    assert len(portal.state.events) == events_before and _calls(portal, "tasks.task.add") == 0


ADDRESSES = {
    EMAIL: True,
    f"  {EMAIL.upper()} ": True,  # e-mail addresses compare case-insensitively, spaces stripped
    "ann@acme.test": False,  # close to another user's address is not that user
    "anna.commands@acme": False,
    "acme.test": False,
}


def test_a_person_is_found_by_exact_email_only(
    core_store: PostgresStore, portal: SandboxHandle, client: Bitrix24Client, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    ids = {
        address: outbox.enqueue(
            account, "notification", {"email": address, "message": "Hi"}, address
        ).command.id
        for address in ADDRESSES
    }
    execute_commands(outbox, client, account, account_name="acme.test")
    rows = {c.id: c for c in outbox.list(account)}
    for address, found in ADDRESSES.items():
        row = rows[ids[address]]
        if found:
            assert row.status == "sent", address
        else:
            assert row.status == "failed" and NO_SUCH_USER in (row.error or ""), address
    anna = _user_id(portal, EMAIL)
    assert [n.user_id for n in portal.state.notifications] == [anna, anna]
    assert _calls(portal, "im.notify.system.add") == 2


def test_a_rate_limited_command_waits_unsent_for_the_next_pass(
    core_store: PostgresStore, portal: SandboxHandle, account: str
) -> None:
    outbox = CommandOutbox(core_store)
    ids = [
        outbox.enqueue(
            account, "task", {"fields": {"TITLE": f"T{i}", "RESPONSIBLE_ID": 1}}, f"k{i}"
        ).command.id
        for i in range(3)
    ]
    portal.admin.set_faults(rate=1.0, kinds=["query_limit"], methods=["tasks.task.add"], count=3)
    with Bitrix24Client(webhook_url=portal.webhook_url, time_scale=SCALE, max_attempts=2) as client:
        first = execute_commands(outbox, client, account, account_name="acme.test")
        assert first.released == ids and first.stopped is not None and "acme.test" in first.stopped
        assert {c.status for c in outbox.list(account)} == {"pending"}
        assert len([t for t in portal.state.tasks.rows.values() if t.title.startswith("T")]) == 0
        second = execute_commands(outbox, client, account)
    assert second.sent == ids
    assert sorted(int(c.result or 0) for c in outbox.list(account)) == sorted(
        t.id for t in portal.state.tasks.rows.values() if t.title in {"T0", "T1", "T2"}
    )
