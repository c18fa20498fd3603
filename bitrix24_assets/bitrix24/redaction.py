"""Hide the secrets Bitrix24 puts in URLs and bodies before anything is shown to a person.

A webhook URL carries its secret in the *path* (``/rest/<user>/<code>/``), which query-only
sanitizers such as dlt's ``sanitize_url()`` let through; OAuth calls carry ``auth=<access token>``
in the query or body. Every ``repr``, log line and exception of this package goes through
:func:`redact` or a :class:`Redactor` that also knows the live secrets and scrubs free text.

The rule for paths is deliberately blunt, because people mistype webhook URLs (user id forgotten,
trailing slash missing, code pasted twice) and a mistyped URL is printed exactly when something
fails: after ``/rest/`` (any case; also JSON-escaped ``\\/rest\\/`` and percent-encoded once or
twice, as in a URL inside a query string) every path segment is masked, except

* a leading user id (1-9 ASCII digits) followed by a code: the code is masked and whatever comes
  after it (the method name) is kept, so a proper webhook URL shows as ``/rest/1/***/``;
* a segment shaped like a REST method name (``user.get``, ``tasks.task.list.json``, ``batch``),
  which is what OAuth calls (``/rest/user.get?auth=...``) put there. Webhook codes never contain
  a dot, so a code cannot take this shape.

Consecutive masked segments collapse into one ``***``. Query parameters that carry tokens
(``auth``, ``access_token``, ``refresh_token``, ``client_secret``, ``application_token``, also as
PHP ``auth[...]`` keys, percent-encoded, or as JSON/``repr`` keys) lose their values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["MASK", "Redactor", "redact"]

MASK = "***"

# "/rest/" as it appears in text: plain, JSON-escaped by PHP ("\/"), percent-encoded once (a URL
# in a query string) or twice. The same separator must close "rest" (backreference, any case).
_REST = re.compile(r"(/|\\/|%2f|%252f)rest\1", re.IGNORECASE)

# What the path after "/rest/" may consist of in each form; it ends at the query, the fragment,
# whitespace, a quote or markup, so the rest of the text is left alone.
_TAILS: dict[str, re.Pattern[str]] = {
    "/": re.compile(r"[^\s\"'<>\\`?#]*"),
    "\\/": re.compile(r"(?:\\/|[^\s\"'<>\\`?#])*"),
    "%2f": re.compile(r"(?:%(?!3f|23)[0-9a-f]{2}|[^\s\"'<>\\`?#&%])*", re.IGNORECASE),
    "%252f": re.compile(r"(?:%25(?!3f|23)[0-9a-f]{2}|[^\s\"'<>\\`?#&%])*", re.IGNORECASE),
}
_SPLITS: dict[str, re.Pattern[str]] = {
    "/": re.compile(r"(/)"),
    "\\/": re.compile(r"(\\/)"),
    "%2f": re.compile(r"(%2f)", re.IGNORECASE),
    "%252f": re.compile(r"(%252f)", re.IGNORECASE),
}

_USER_ID = re.compile(r"[0-9]{1,9}")
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_DOTLESS_METHODS = frozenset({"batch", "scope", "methods", "profile", "events"})

_SECRET_NAMES = r"(?:auth|access_token|refresh_token|client_secret|application_token)"
_SECRET_PARAMS = re.compile(
    r"((?:^|[?&;,(\s\"']|%3f|%26|%253f|%2526)"  # where a parameter starts (also percent-encoded)
    + _SECRET_NAMES
    + r"(?:\[[^=&\]]*\]|%5b(?:(?!%5d)[^=&])*%5d|%255b(?:(?!%255d)[^=&])*%255d)?"  # PHP auth[...] keys
    r"(?:=|%3d|%253d))"
    r"([^&#\s\"'<>]+)",
    re.IGNORECASE,
)
# {"access_token": "..."} and {'auth[application_token]': '...'}: JSON bodies and Python reprs
_SECRET_KEYS = re.compile(
    r"""((["'])""" + _SECRET_NAMES + r"""(?:\[[^\]"']*\])?\2\s*:\s*(["']))((?:\\.|(?!\3)[^\\])*)(?=\3)""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask everything secret in ``/rest/...`` paths and the values of token parameters.

    >>> redact("https://acme.bitrix24.ru/rest/1/abc123/user.get?auth=xyz")
    'https://acme.bitrix24.ru/rest/1/***/user.get?auth=***'
    >>> redact("https://acme.bitrix24.ru/rest/abc123SECRET456")  # user id and slash forgotten
    'https://acme.bitrix24.ru/rest/***'
    >>> redact("https://acme.bitrix24.ru/rest/user.get?auth=xyz")  # OAuth: the method stays
    'https://acme.bitrix24.ru/rest/user.get?auth=***'
    """
    text = _redact_rest_paths(text)
    text = _SECRET_PARAMS.sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_KEYS.sub(lambda m: m.group(1) + MASK, text)


def _redact_rest_paths(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _REST.finditer(text):
        if match.start() < pos:  # inside a tail already handled
            continue
        style = match.group(1).lower()
        tail = _TAILS[style].match(text, match.end())
        assert tail is not None  # the patterns accept the empty string
        out.append(text[pos : match.end()])
        out.append(_mask_segments(tail.group(), _SPLITS[style]))
        pos = tail.end()
    out.append(text[pos:])
    return "".join(out)


def _mask_segments(tail: str, split: re.Pattern[str]) -> str:
    """``1/code/user.get`` -> ``1/***/user.get``; ``code`` -> ``***``; ``user.get`` stays."""
    parts = split.split(tail)
    segments, separators = parts[0::2], parts[1::2]
    if len(segments) >= 2 and _USER_ID.fullmatch(segments[0]) and segments[1]:
        # a proper webhook URL: the code is the secret, the method after it is not; what follows
        # is scanned again (it could hold another URL)
        rest = "".join(s + seg for s, seg in zip(separators[1:], segments[2:], strict=True))
        return segments[0] + separators[0] + MASK + _redact_rest_paths(rest)
    first = 2 if len(segments) >= 2 and _USER_ID.fullmatch(segments[0]) else 0
    for i in range(first, len(segments)):
        if segments[i] and not _is_method(segments[i]):
            segments[i] = MASK
    out = [segments[0]]
    for separator, segment in zip(separators, segments[1:], strict=True):
        if segment == MASK and out[-1] == MASK:
            continue  # one mask for a run of masked segments: their number is not worth showing
        out += [separator, segment]
    return "".join(out)


def _is_method(segment: str) -> bool:
    return bool(_METHOD.fullmatch(segment)) or segment.lower() in _DOTLESS_METHODS


class Redactor:
    """``redact`` plus literal removal of known secrets (tokens may show up in free text)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember a secret (e.g. a freshly refreshed OAuth token); short strings are ignored.

        Its percent-encoded form is remembered too: a token inside an encoded URL is still the token.
        """
        if secret and len(secret) >= 6:
            self._secrets.add(secret)
            self._secrets.add(quote(secret, safe=""))

    def __call__(self, text: str) -> str:
        text = redact(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"
