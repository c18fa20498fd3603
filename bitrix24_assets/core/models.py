"""Records the Core SDK returns: accounts, merge counts, sync logs, inbox events."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Secret, field_validator

from .secrets import redact_webhook_url

__all__ = ["Credentials", "InboxEvent", "IntegrationAccount", "MergeCounts", "SyncLog"]

Credentials = Secret[dict[str, Any]]
"""Account credentials (webhook URL or OAuth tokens): repr, str and JSON dumps show ``**********``."""


def _uuid_text(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value


class IntegrationAccount(BaseModel):
    """One connected portal (a row of ``core.integration_accounts``).

    ``credentials`` is a :class:`pydantic.Secret`: it never shows in ``repr()``, ``str()``, logs or
    ``model_dump(mode="json")``. Use :attr:`webhook_url` / :attr:`oauth` to hand the real values to
    the Bitrix24 client, and :attr:`portal` whenever the portal is displayed.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    company_id: str
    provider: str = "bitrix24"
    name: str = ""
    status: str = "active"
    status_message: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    credentials: Credentials = Field(default_factory=lambda: Secret({}))
    created_at: datetime | None = None
    updated_at: datetime | None = None

    _ids = field_validator("id", "company_id", mode="before")(_uuid_text)

    @property
    def webhook_url(self) -> str | None:
        """The real inbound-webhook URL (a secret): pass it to the client, never print it."""
        value = self.credentials.get_secret_value().get("webhook_url")
        return str(value) if value else None

    @property
    def oauth(self) -> dict[str, Any] | None:
        """OAuth fields (client_id, client_secret, access_token, refresh_token, ...) or None."""
        creds = self.credentials.get_secret_value()
        keys = ("access_token", "refresh_token", "client_id", "client_secret")
        return (
            {k: v for k, v in creds.items() if k != "webhook_url"} if any(k in creds for k in keys) else None
        )

    @property
    def application_token(self) -> str | None:
        """Token Bitrix24 puts in outgoing events, used to validate them (a secret)."""
        value = self.credentials.get_secret_value().get("application_token")
        return str(value) if value else None

    @property
    def portal(self) -> str:
        """Display form of the portal, safe for logs: ``http://host/rest/1/***/`` or the OAuth domain."""
        if self.webhook_url:
            return redact_webhook_url(self.webhook_url)
        creds = self.credentials.get_secret_value()
        return str(creds.get("domain") or creds.get("client_endpoint") or f"account {self.id}")


class MergeCounts(BaseModel):
    """What a merge did. ``written`` is what actually touched the database."""

    model_config = ConfigDict(frozen=True)

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.removed

    def __add__(self, other: MergeCounts) -> MergeCounts:
        return MergeCounts(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            removed=self.removed + other.removed,
        )


class SyncLog(BaseModel):
    """One row of ``core.integration_sync_logs``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    integration_account_id: str
    company_id: str | None = None
    provider: str = "bitrix24"
    entity: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    records_fetched: int | None = None
    inserted: int | None = None
    updated: int | None = None
    unchanged: int | None = None
    removed: int | None = None
    cursor: dict[str, Any] | None = None
    error: str | None = None
    run_id: str | None = None

    _ids = field_validator("id", "integration_account_id", "company_id", mode="before")(_uuid_text)


class InboxEvent(BaseModel):
    """One Bitrix24 outgoing event waiting in ``core.integration_events``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    integration_account_id: str
    event: str
    payload: dict[str, Any] = Field(default_factory=dict)
    dedupe_key: str = ""
    received_at: datetime
    processed_at: datetime | None = None

    _ids = field_validator("id", "integration_account_id", mode="before")(_uuid_text)
