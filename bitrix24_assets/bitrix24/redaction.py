"""Hide the secrets Bitrix24 puts in URLs and bodies before anything is shown to a person.

A webhook URL carries its secret in the *path* (``/rest/<user>/<token>/``), which query-only
sanitizers such as dlt's ``sanitize_url()`` let through; OAuth calls carry ``auth=<access token>``
in the query or body. Every ``repr``, log line and exception of this package goes through
:func:`redact` or a :class:`Redactor` that also knows the live secrets and scrubs free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "Redactor", "redact"]

MASK = "***"

_WEBHOOK_PATH = re.compile(r"(/rest/\d+/)([^/?#\s]+)")
# a mistyped webhook URL (user id missing or not numeric) still carries its code in a segment
# that ends with "/"; OAuth calls end in the bare method name (``/rest/user.get``) and keep it
_MISTYPED_WEBHOOK_PATH = re.compile(r"(/rest/)(?!\d+/)([^?#\s\"']*/)")
_SECRET_PARAMS = re.compile(
    r"((?:^|[?&\s\"'])(?:auth|access_token|refresh_token|client_secret|application_token)"
    r"(?:%5B[^=&]*%5D|\[[^=&\]]*\])?=)([^&#\s\"']+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask webhook tokens in ``/rest/<user>/<token>/`` paths and secret query parameters.

    >>> redact("https://acme.bitrix24.ru/rest/1/abc123/user.get?auth=xyz")
    'https://acme.bitrix24.ru/rest/1/***/user.get?auth=***'
    >>> redact("https://acme.bitrix24.ru/rest/abc123/")  # user id forgotten: still a secret
    'https://acme.bitrix24.ru/rest/***/'
    """
    text = _WEBHOOK_PATH.sub(lambda m: m.group(1) + MASK, text)
    text = _MISTYPED_WEBHOOK_PATH.sub(lambda m: m.group(1) + MASK + "/", text)
    return _SECRET_PARAMS.sub(lambda m: m.group(1) + MASK, text)


class Redactor:
    """``redact`` plus literal removal of known secrets (tokens may show up in free text)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember a secret (e.g. a freshly refreshed OAuth token); short strings are ignored."""
        if secret and len(secret) >= 6:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        text = redact(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"
