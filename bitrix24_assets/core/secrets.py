"""Redaction of secrets that can appear in Core errors and displays.

A Core DSN carries a password, a Supabase service-role key is a JWT, and Bitrix24 webhook URLs
carry their token in the path (``/rest/<user>/<token>/``). Every message that leaves ``core``
passes through :func:`redact_text`, so a vendor message quoting any of them is still safe.
Bitrix24 URLs are masked by the client layer's :func:`~bitrix24_assets.bitrix24.redaction.redact`,
the one place that knows their shapes (mistyped webhook URLs included).

A password typed into a DSN is not always percent-encoded: people write
``postgresql://core:p@ss@db/core``, and parsers disagree on where such a password ends (Python's
``urlsplit`` takes the last ``@``, libpq the first). So everything between ``user:`` and the last
``@`` before whitespace is masked: when in doubt, more is masked, never less.
"""

from __future__ import annotations

import re

from bitrix24_assets.bitrix24.redaction import redact as redact_bitrix24

__all__ = ["redact_dsn", "redact_text", "redact_webhook_url"]

# scheme://user:<password>@host: the password runs to the LAST "@" before whitespace ("@", ":", "/",
# "?" and "#" typed unencoded in a password stay masked)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)\S*(@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(\b(?:pg|ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'\S*|\S+)", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+")
_BEARER = re.compile(r"(\b(?:bearer|apikey)[\s:=]+)[\w.~+/-]+", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"([?&](?:ssl)?password=)[^&\s]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Remove passwords, keys, tokens and webhook secrets from free text."""
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    text = _JWT.sub("***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    return redact_bitrix24(text)


def redact_dsn(dsn: str) -> str:
    """``postgresql://core:p@ss@db:5432/core`` -> ``postgresql://core:***@db:5432/core``.

    Not parsed with ``urlsplit``: it cuts an unencoded ``/``, ``?`` or ``#`` in a password at the
    wrong place and would show the rest. Keyword DSNs (``password=...``) are masked too.
    """
    return redact_text(dsn)


def redact_webhook_url(url: str) -> str:
    """``https://x.bitrix24.ru/rest/1/abc/`` -> ``https://x.bitrix24.ru/rest/1/***/``."""
    return redact_bitrix24(url)
