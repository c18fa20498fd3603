"""The commands executor: carries out an account's pending outbox commands in Bitrix24, each at most
once, without Dagster (a Dagster op, a bench and a test run the same code).

For one account it claims pending commands (``sending`` is committed before any HTTP call), then
sends each with the client's write methods and records what is known:

* Bitrix24 created it -> ``sent`` with the Bitrix24 id;
* Bitrix24 refused it (an error answer, a missing scope, no user with that e-mail, a malformed
  payload) -> ``failed`` with one sentence; nothing was created;
* the request may have run but no answer came (connection dropped or timed out after sending, a
  5xx or a spoiled answer) -> ``unknown``: never sent again; an operator checks Bitrix24 and
  resolves it (``bitrix24-core commands resolve``);
* the portal provably ran nothing (``QUERY_LIMIT_EXCEEDED`` / 503, the operating-time limit, a
  refused connection, still so after the client's own retries) -> ``pending`` again and the pass
  stops: the portal is overloaded and the next run continues.

The client never repeats a write that may have run (``transport.py``: only rate limits and refused
connections are retried for writes). Rate limits and the operating budget are the portal's, shared
with its syncs: the caller passes the one client of the portal for this run, and the Dagster layer
runs commands as runs of the account's partition, which the run queue serialises with its syncs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bitrix24_assets.bitrix24 import Bitrix24Client, errors
from bitrix24_assets.core.commands import CommandOutbox, IntegrationCommand

__all__ = [
    "CommandRejected",
    "CommandsOutcome",
    "PeopleByEmail",
    "execute_commands",
    "prepare_command",
    "send_command",
]

log = logging.getLogger(__name__)

CLAIM_BATCH = 50
NO_SUCH_USER = "no Bitrix24 user with that e-mail"


class CommandRejected(Exception):
    """The command cannot be sent as given (its payload); ``str()`` is one sentence."""


@dataclass
class CommandsOutcome:
    """What one pass did, by outcome (ids of the commands)."""

    account_id: str
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    stopped: str | None = None
    """Why the pass stopped early (nothing could be sent for now), one sentence; None when it drained
    the queue."""

    @property
    def counts(self) -> dict[str, int]:
        return {
            "sent": len(self.sent),
            "failed": len(self.failed),
            "unknown": len(self.unknown),
            "released": len(self.released),
        }


def execute_commands(
    outbox: CommandOutbox,
    client: Bitrix24Client,
    account_id: str,
    *,
    run_id: str | None = None,
    account_name: str = "",
    max_commands: int | None = None,
    on_command: Callable[[IntegrationCommand, str], None] | None = None,
) -> CommandsOutcome:
    """Send the account's pending commands, oldest first, until none is left (or ``max_commands``).

    ``on_command(command, status)`` is called after each outcome is stored (progress logs).
    """
    outcome = CommandsOutcome(account_id)
    who = f"Bitrix24 account '{account_name or account_id}'"
    people = PeopleByEmail(client)
    done = 0
    while max_commands is None or done < max_commands:
        limit = CLAIM_BATCH if max_commands is None else min(CLAIM_BATCH, max_commands - done)
        batch = outbox.claim(account_id, limit, run_id)
        if not batch:
            break
        for index, command in enumerate(batch):
            status = _carry_out(outbox, client, command, who, people)
            done += 1
            getattr(outcome, status).append(command.id)
            if on_command is not None:
                on_command(command, status)
            if status == "released":
                for rest in batch[index + 1 :]:  # claimed but not tried: nothing was sent
                    outbox.release(rest.id)
                    outcome.released.append(rest.id)
                outcome.stopped = (
                    f"{who}: the portal took no new requests for now (rate or operating-time limit, or "
                    f"an error before anything was sent); {len(outcome.released)} commands wait for the "
                    "next run, nothing to do."
                )
                return outcome
    return outcome


def _carry_out(
    outbox: CommandOutbox,
    client: Bitrix24Client,
    command: IntegrationCommand,
    who: str,
    people: PeopleByEmail | None = None,
) -> str:
    """Send one claimed command and store its outcome; returns the outcome's field name."""
    what = f"{who}: command {command.id} ({command.kind})"
    try:
        write = prepare_command(client, command, people)  # reads only (e-mail look-ups): nothing sent yet
    except CommandRejected as exc:
        outbox.mark_failed(command.id, f"{what} was not sent: {exc}.")
        return "failed"
    except errors.Bitrix24Error as exc:
        if exc.retryable:
            outbox.release(command.id, str(exc))
            return "released"
        outbox.mark_failed(command.id, f"{what} was not sent: {exc}")
        return "failed"
    try:
        result = write()
    except (errors.RateLimitError, errors.OperationTimeLimitError, errors.ConnectError) as exc:
        log.warning("%s not sent, the portal ran nothing: %s", what, exc)
        outbox.release(command.id, str(exc))
        return "released"
    except _MAYBE_SENT as exc:
        outbox.mark_unknown(
            command.id,
            f"{what} may have been carried out but no answer came ({_code(exc)}); check Bitrix24 and "
            f"resolve it with `bitrix24-core commands resolve {command.id} --as sent|failed`.",
        )
        return "unknown"
    except errors.Bitrix24Error as exc:
        outbox.mark_failed(command.id, f"{what} failed: {exc}")
        return "failed"
    outbox.mark_sent(command.id, result)
    return "sent"


_MAYBE_SENT = (errors.TransportError, errors.ServerError, errors.IncompleteReadError)
"""After the request left: the portal may have run it (ConnectError is handled before these)."""


def _code(exc: errors.Bitrix24Error) -> str:
    return ", ".join(x for x in (exc.code, exc.status and f"HTTP {exc.status}") if x) or type(exc).__name__


def send_command(client: Bitrix24Client, command: IntegrationCommand) -> str:
    """Carry out one command in Bitrix24 and return the id Bitrix24 gave it (see
    :func:`prepare_command` for the payloads)."""
    return prepare_command(client, command)()


def prepare_command(
    client: Bitrix24Client, command: IntegrationCommand, people: PeopleByEmail | None = None
) -> Callable[[], str]:
    """Check the payload and look up the people it names (reads only); returns the one write call,
    which returns the id Bitrix24 gave the new object.

    Payloads (``fields`` are the Bitrix24 method's own fields):

    * ``task``: ``{"fields": {"TITLE": ..., "RESPONSIBLE_ID": ...}}``, or ``"responsible_email"``
      instead of ``RESPONSIBLE_ID`` -> ``tasks.task.add``;
    * ``calendar_event``: ``{"fields": {"type", "ownerId", "name", "from", "to", ...}}``, or
      ``"owner_email"`` for a user's calendar -> ``calendar.event.add``;
    * ``notification``: ``{"email": ..., "message": ..., "personal": false}`` -> ``im.notify.*``.

    People are found by exact e-mail only (:meth:`Bitrix24Client.get_user_by_email`).
    """
    user_id = (people or PeopleByEmail(client)).user_id
    payload = command.payload
    if command.kind == "notification":
        email = _text(payload, "email")
        message = _text(payload, "message")
        to = user_id(email)
        personal = payload.get("personal") is True
        return lambda: str(client.notify(to, message, personal=personal))
    fields = payload.get("fields")
    if not isinstance(fields, Mapping):
        raise CommandRejected("its payload has no 'fields' object")
    params: dict[str, Any] = dict(fields)
    if command.kind == "task":
        if payload.get("responsible_email") is not None:
            params["RESPONSIBLE_ID"] = user_id(_text(payload, "responsible_email"))
        if not params.get("TITLE") or not params.get("RESPONSIBLE_ID"):
            raise CommandRejected(
                "a task needs fields.TITLE and fields.RESPONSIBLE_ID (or responsible_email)"
            )

        def add_task() -> str:
            task = client.create_task(params)
            return str(task.get("id") or task.get("ID") or "")

        return add_task
    if payload.get("owner_email") is not None:
        params.update(type="user", ownerId=user_id(_text(payload, "owner_email")))
    return lambda: str(client.create_event(params))


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CommandRejected(f"its payload has no '{key}' text")
    return value


class PeopleByEmail:
    """Bitrix24 users by exact e-mail, each address asked once per pass (a queue of notifications to
    the same people would otherwise cost one ``user.get`` per command of the portal's rate)."""

    def __init__(self, client: Bitrix24Client) -> None:
        self._client = client
        self._ids: dict[str, int | None] = {}

    def user_id(self, email: str) -> int:
        """The user whose e-mail is exactly ``email``; a read, so nothing is sent yet."""
        key = email.strip().lower()
        if key not in self._ids:
            user = self._client.get_user_by_email(email)
            raw = str((user or {}).get("ID") or "")
            self._ids[key] = int(raw) if raw.isascii() and raw.isdigit() else None
        found = self._ids[key]
        if found is None:
            raise CommandRejected(NO_SUCH_USER)
        return found
