"""Redaction of secrets that can appear in Core errors and displays.

A Core DSN carries a password, a Supabase service-role key is a JWT, and Bitrix24 webhook URLs
carry their token in the path (``/rest/<user>/<token>/``). Every message that leaves ``core``
passes through :func:`redact_text`, so a vendor message quoting any of them is still safe.
Bitrix24 URLs are masked by the client layer's :func:`~bitrix24_assets.bitrix24.redaction.redact`,
the one place that knows their shapes (mistyped webhook URLs included).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from bitrix24_assets.bitrix24.redaction import redact as redact_bitrix24

__all__ = ["redact_dsn", "redact_text", "redact_webhook_url"]

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+")
_BEARER = re.compile(r"(\b(?:bearer|apikey)[\s:=]+)[\w.~+/-]+", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"([?&]password=)[^&\s]+")


def redact_text(text: str) -> str:
    """Remove passwords, keys, tokens and webhook secrets from free text."""
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    text = _JWT.sub("***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    return redact_bitrix24(text)


def redact_dsn(dsn: str) -> str:
    """``postgresql://core:pw@db:5432/core`` -> ``postgresql://core:***@db:5432/core``."""
    if "://" not in dsn:
        return redact_text(dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


def redact_webhook_url(url: str) -> str:
    """``https://x.bitrix24.ru/rest/1/abc/`` -> ``https://x.bitrix24.ru/rest/1/***/``."""
    return redact_bitrix24(url)
