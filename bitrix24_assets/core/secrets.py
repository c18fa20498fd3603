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

# scheme://user: before a password, which runs to the LAST "@" of its whitespace-separated token ("@",
# ":", "/", "?" and "#" typed unencoded in a password stay masked); see _mask_url_passwords
_URL_USERINFO = re.compile(r"[a-z][a-z0-9+.-]{0,30}://[^:/@\s]*:", re.IGNORECASE)
_WHITESPACE = re.compile(r"(\s+)")
_KV_PASSWORD = re.compile(r"(\b(?:pg|ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*+'\S*|\S+)", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+")
_BEARER = re.compile(r"(\b(?:bearer|apikey)[\s:=]+)[\w.~+/-]+", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"([?&](?:ssl)?password=)[^&\s]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Remove passwords, keys, tokens and webhook secrets from free text."""
    text = _mask_url_passwords(text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    text = _JWT.sub("***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    return redact_bitrix24(text)


def _mask_url_passwords(text: str) -> str:
    """``scheme://user:<anything>@host`` -> ``scheme://user:***@host``, token by token.

    Not one regex with ``\\S*@``: backtracking to the last ``@`` from every ``scheme://`` made a long
    line without one quadratic.
    """
    if "://" not in text or "@" not in text:
        return text
    parts = _WHITESPACE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are the tokens, the odd ones the whitespace
        token = parts[i]
        at = token.rfind("@")
        userinfo = _URL_USERINFO.search(token, 0, at) if at > 0 else None
        if userinfo is not None:
            parts[i] = f"{token[: userinfo.end()]}***{token[at:]}"
    return "".join(parts)


def redact_dsn(dsn: str) -> str:
    """``postgresql://core:p@ss@db:5432/core`` -> ``postgresql://core:***@db:5432/core``.

    Not parsed with ``urlsplit``: it cuts an unencoded ``/``, ``?`` or ``#`` in a password at the
    wrong place and would show the rest. Keyword DSNs (``password=...``) are masked too.
    """
    return redact_text(dsn)


def redact_webhook_url(url: str) -> str:
    """``https://x.bitrix24.ru/rest/1/abc/`` -> ``https://x.bitrix24.ru/rest/1/***/``."""
    return redact_bitrix24(url)
