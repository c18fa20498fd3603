"""Receiver limits, read from ``BITRIX24_WEBHOOKS_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ReceiverSettings"]


class ReceiverSettings(BaseSettings):
    """Limits of the receiver.

    ``max_body_bytes``: real events are well under 4 KiB (an ``ONUSERADD`` with every field is the
    largest); 64 KiB leaves room and bounds what an anonymous caller can make us buffer.
    ``token_cache_seconds``: how long an account's token is trusted before Core is asked again.
    ``token_recheck_seconds``: after a token mismatch, Core is asked again if the cached entry is
    at least this old, so a rotated token works at once while wrong tokens cannot hammer Core.
    """

    model_config = SettingsConfigDict(env_prefix="BITRIX24_WEBHOOKS_")

    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    token_cache_seconds: float = Field(default=30.0, ge=0)
    token_recheck_seconds: float = Field(default=5.0, ge=0)
