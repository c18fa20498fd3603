"""The commands outbox (``core.integration_commands``, migration 0010): the platform asks Bitrix24 for
a task, a calendar event or a notification by enqueueing a row, and each is carried out at most once.

Status flow::

    pending --claim--> sending --> sent | failed | unknown
       ^                  |                          |
       +-- nothing sent --+          operator: resolve as sent | failed

A claimed row is ``sending`` and committed before any HTTP call, so a crash after the call can
never make it ``pending`` again: at worst it becomes ``unknown`` (a row left ``sending`` longer
than ``stale_seconds`` is turned ``unknown`` by the next claim of its account). Only a rate-limit
answer or a refused connection, which prove the portal ran nothing, put a row back to ``pending``.

Both backends call the same SQL functions (``sql/commands.sql``), which all return jsonb, so this
module needs no method on :class:`~.store.CoreStore`: it reaches the store's one-call plumbing
(``_scalar`` for Postgres, ``_rpc`` for Supabase) through :func:`_caller`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import CoreDataError
from .postgres import PostgresStore
from .secrets import redact_text
from .store import CoreStore

__all__ = [
    "COMMAND_KINDS",
    "COMMAND_STATUSES",
    "CommandKind",
    "CommandOutbox",
    "CommandStatus",
    "ConfirmationAttempt",
    "Enqueued",
    "IntegrationCommand",
    "PendingAccount",
]

CommandKind = Literal["task", "calendar_event", "notification"]
CommandStatus = Literal["pending", "sending", "sent", "failed", "unknown"]
COMMAND_KINDS: tuple[CommandKind, ...] = ("task", "calendar_event", "notification")
COMMAND_STATUSES: tuple[CommandStatus, ...] = ("pending", "sending", "sent", "failed", "unknown")
STALE_SENDING_SECONDS = 900
"""A row ``sending`` this long belongs to a run that died between claim and outcome: ``unknown``."""


def _text(value: Any) -> str:
    return str(value)


class IntegrationCommand(BaseModel):
    """One row of ``core.integration_commands``. ``payload`` is what the platform asked for (it may
    hold personal data such as an e-mail; it never holds a secret or a confirmation code)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    account_id: str
    kind: CommandKind
    payload: dict[str, Any] = Field(default_factory=dict, repr=False)
    idempotency_key: str
    status: CommandStatus
    result: str | None = None
    error: str | None = None
    attempts: int = 0
    run_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    _account = field_validator("account_id", mode="before")(_text)


class Enqueued(BaseModel):
    """The command stored under the key, and whether this call created it (False: a repeat)."""

    command: IntegrationCommand
    created: bool


class PendingAccount(BaseModel):
    """An account with pending commands, as the sensor sees it."""

    account_id: str
    max_id: int
    pending: int
    max_attempts: int = 0
    waiting_seconds: int = 0
    """Since the oldest pending command was queued or put back (Core's clock)."""

    _account = field_validator("account_id", mode="before")(_text)


class ConfirmationAttempt(BaseModel):
    """What Core says about one verification attempt (the attempt is already counted when
    ``state == "check"``; ``salt_hex``/``hash_hex`` are then the stored hash to compare with)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["check", "expired", "exhausted", "verified", "missing"]
    salt_hex: str = Field(default="", alias="salt", repr=False)
    hash_hex: str = Field(default="", alias="hash", repr=False)
    attempts_left: int = 0


Typed = tuple[Any, str]
"""A parameter value and its SQL type (the Postgres backend casts; PostgREST reads the signature)."""
Caller = Callable[[str, dict[str, Typed]], Any]


def _caller(store: CoreStore) -> Caller:
    """One SQL function call returning jsonb, through whichever backend ``store`` is."""
    if isinstance(store, PostgresStore):

        def postgres(function: str, params: dict[str, Typed]) -> Any:
            args = ", ".join(f"{name} => %({name})s::{sql_type}" for name, (_, sql_type) in params.items())
            values = {
                name: Jsonb(value) if sql_type == "jsonb" and value is not None else value
                for name, (value, sql_type) in params.items()
            }
            return store._scalar(f"select core.{function}({args})", values)  # type: ignore[arg-type]

        return postgres
    rpc: Callable[[str, dict[str, Any]], Any] | None = getattr(store, "_rpc", None)
    if rpc is None:
        raise TypeError(f"{type(store).__name__} has no way to call Core's SQL functions")
    rpc_call = rpc

    def supabase(function: str, params: dict[str, Typed]) -> Any:
        return rpc_call(function, {name: value for name, (value, _) in params.items()})

    return supabase


class CommandOutbox:
    """The outbox over a :class:`~.store.CoreStore` (either backend); thread-safe as the store is."""

    def __init__(self, store: CoreStore) -> None:
        self._call = _caller(store)

    def __repr__(self) -> str:
        return "CommandOutbox()"

    # ---- the platform's side ------------------------------------------------------------------------
    def enqueue(
        self, account_id: str, kind: CommandKind, payload: dict[str, Any], idempotency_key: str
    ) -> Enqueued:
        """Queue a command; a second call with the same key returns the first command unchanged."""
        if kind not in COMMAND_KINDS:
            raise CoreDataError(
                f"'{kind}' is not a command kind", hint=f"use one of {', '.join(COMMAND_KINDS)}"
            )
        if not idempotency_key.strip():
            raise CoreDataError("a command needs an idempotency key", hint="pass the platform's request id")
        data = self._call(
            "enqueue_command",
            {
                "p_account": (account_id, "uuid"),
                "p_kind": (kind, "text"),
                "p_payload": (payload, "jsonb"),
                "p_idempotency_key": (idempotency_key, "text"),
            },
        )
        return Enqueued.model_validate(data)

    def list(
        self,
        account_id: str | None = None,
        status: CommandStatus | None = None,
        limit: int = 100,
        ids: Sequence[int] | None = None,
    ) -> builtins.list[IntegrationCommand]:
        """Commands, newest first."""
        data = self._call(
            "list_commands",
            {
                "p_account": (account_id, "uuid"),
                "p_status": (status, "text"),
                "p_limit": (limit, "integer"),
                "p_ids": (None if ids is None else [int(i) for i in ids], "bigint[]"),
            },
        )
        return [IntegrationCommand.model_validate(r) for r in data or []]

    def get(self, command_id: int) -> IntegrationCommand | None:
        found = self.list(ids=[command_id], limit=1)
        return found[0] if found else None

    # ---- the executor's side ------------------------------------------------------------------------
    def pending_accounts(self) -> builtins.list[PendingAccount]:
        """Accounts with pending commands (highest pending id, count, most attempts, longest wait)."""
        return [PendingAccount.model_validate(r) for r in self._call("pending_command_accounts", {}) or []]

    def claim(
        self,
        account_id: str,
        limit: int = 50,
        run_id: str | None = None,
        stale_seconds: int = STALE_SENDING_SECONDS,
    ) -> builtins.list[IntegrationCommand]:
        """Take up to ``limit`` pending commands of an account, oldest first; they are ``sending``
        (committed) when this returns. Rows of a run that died while ``sending`` become ``unknown``."""
        data = self._call(
            "claim_commands",
            {
                "p_account": (account_id, "uuid"),
                "p_limit": (limit, "integer"),
                "p_run_id": (run_id, "text"),
                "p_stale_seconds": (stale_seconds, "integer"),
            },
        )
        return [IntegrationCommand.model_validate(r) for r in data or []]

    def mark_sent(self, command_id: int, result: str) -> IntegrationCommand | None:
        """Bitrix24 created it: ``result`` is its id there."""
        return self._finish(command_id, "sent", result=result)

    def mark_failed(self, command_id: int, error: str) -> IntegrationCommand | None:
        """Bitrix24 refused it (nothing was created); ``error`` is one sentence."""
        return self._finish(command_id, "failed", error=error)

    def mark_unknown(self, command_id: int, error: str) -> IntegrationCommand | None:
        """The request may have run (the connection dropped after sending); never sent again."""
        return self._finish(command_id, "unknown", error=error)

    def release(self, command_id: int, error: str | None = None) -> IntegrationCommand | None:
        """Back to ``pending``: the portal provably ran nothing (rate limited, connection refused)."""
        return self._finish(command_id, "pending", error=error)

    def _finish(
        self, command_id: int, status: str, *, result: str | None = None, error: str | None = None
    ) -> IntegrationCommand | None:
        data = self._call(
            "finish_command",
            {
                "p_id": (command_id, "bigint"),
                "p_status": (status, "text"),
                "p_result": (result, "text"),
                "p_error": (redact_text(error) if error else None, "text"),
            },
        )
        return IntegrationCommand.model_validate(data) if data else None

    # ---- the operator's side ------------------------------------------------------------------------
    def resolve(
        self,
        command_id: int,
        status: Literal["sent", "failed"],
        *,
        result: str | None = None,
        note: str | None = None,
    ) -> IntegrationCommand:
        """Decide an ``unknown`` command after checking Bitrix24; only ``unknown`` rows change."""
        data = self._call(
            "resolve_command",
            {
                "p_id": (command_id, "bigint"),
                "p_status": (status, "text"),
                "p_result": (result, "text"),
                "p_note": (redact_text(note) if note else None, "text"),
            },
        )
        if not data or not data.get("found"):
            raise CoreDataError(
                f"command {command_id} does not exist", hint="list them with `bitrix24-core commands list`"
            )
        command = IntegrationCommand.model_validate(data["command"])
        if not data.get("resolved"):
            raise CoreDataError(
                f"command {command_id} is '{command.status}', not 'unknown'",
                hint="only a command whose outcome is unknown is resolved by hand",
            )
        return command

    # ---- confirmation codes (hash only; see pipeline/confirmation.py) ---------------------------------
    def create_confirmation(
        self,
        account_id: str,
        email: str,
        bitrix_user_id: str | None,
        *,
        salt: bytes,
        code_hash: bytes,
        ttl_seconds: int,
        max_attempts: int,
    ) -> tuple[str, datetime]:
        """Store a code's salted hash; returns (confirmation id, expiry)."""
        data = self._call(
            "create_confirmation",
            {
                "p_account": (account_id, "uuid"),
                "p_email": (email, "text"),
                "p_bitrix_user_id": (bitrix_user_id, "text"),
                "p_salt": (salt.hex(), "text"),
                "p_hash": (code_hash.hex(), "text"),
                "p_ttl_seconds": (ttl_seconds, "integer"),
                "p_max_attempts": (max_attempts, "integer"),
            },
        )
        expires = data["expires_at"]
        return str(data["id"]), expires if isinstance(expires, datetime) else datetime.fromisoformat(expires)

    def confirmation_attempt(self, confirmation_id: str) -> ConfirmationAttempt:
        """Count one attempt (if the code is still open) and return its stored hash to compare."""
        data = self._call("confirmation_attempt", {"p_id": (confirmation_id, "uuid")})
        return ConfirmationAttempt.model_validate(data)

    def confirmation_verified(self, confirmation_id: str) -> bool:
        """Mark the code used; False when it already was (or expired meanwhile)."""
        return bool(self._call("confirmation_verified", {"p_id": (confirmation_id, "uuid")}))
