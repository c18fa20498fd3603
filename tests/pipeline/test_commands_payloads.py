"""Payloads come from the platform, so any JSON must give either the one write to make or a
one-sentence refusal, before anything is sent: a hypothesis property over arbitrary payloads of
every kind, with e-mail look-ups answered by the shared sandbox portal over HTTP (the write itself
is never called here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitrix24_assets.bitrix24 import Bitrix24Client, errors
from bitrix24_assets.core.commands import COMMAND_KINDS, IntegrationCommand
from bitrix24_assets.pipeline.commands import CommandRejected, PeopleByEmail, prepare_command
from bitrix24_assets.sandbox import SandboxHandle

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
KEYS = ["fields", "email", "message", "personal", "responsible_email", "owner_email", "TITLE"]
FIELD_KEYS = ["TITLE", "RESPONSIBLE_ID", "name", "type", "ownerId", "from", "to"]
payloads = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=6),
    json_values
    | st.dictionaries(st.sampled_from(FIELD_KEYS), json_values, max_size=5)
    | st.sampled_from(["", " ", "nobody@acme.test", "x@y"]),
    max_size=5,
)


WRITES = ("tasks.task.add", "calendar.event.add", "im.notify.system.add", "im.notify.personal.add")


@pytest.fixture(scope="module")
def client(sandbox: SandboxHandle) -> Iterator[Bitrix24Client]:
    with Bitrix24Client(webhook_url=sandbox.webhook_url, time_scale=0.001) as c:
        yield c


@pytest.fixture(scope="module")
def writes(sandbox: SandboxHandle) -> Any:
    return lambda: [sandbox.portal.counters.calls.get(m, 0) for m in WRITES]


@settings(max_examples=80)
@given(kind=st.sampled_from(COMMAND_KINDS), payload=payloads)
def test_any_payload_gives_one_write_or_a_refusal_before_sending(
    client: Bitrix24Client, writes: Any, kind: Any, payload: dict[str, Any]
) -> None:
    command = IntegrationCommand(
        id=1, account_id="a", kind=kind, payload=payload, idempotency_key="k", status="sending"
    )
    requests_before, writes_before = client.stats.requests, writes()
    try:
        write = prepare_command(client, command, PeopleByEmail(client))
    except CommandRejected as exc:
        assert str(exc) and "\n" not in str(exc)
    except errors.Bitrix24Error as exc:  # the portal refused a look-up (e.g. an unreadable address)
        assert not exc.retryable or isinstance(exc, errors.ServerError)
    else:
        assert callable(write)
    lookups = client.stats.requests - requests_before
    assert lookups <= 1 and writes() == writes_before  # at most one e-mail look-up, and no write
