"""The webhook secret lives in the URL path, which query-only sanitizers miss.

A mistyped webhook URL (no user id, no trailing slash, pasted twice) is printed exactly when
something fails, so every segment after ``/rest/`` is a secret unless it is a user id or a REST
method name; the properties below feed arbitrary secrets in arbitrary text through every form a
URL takes in a log line (plain, quoted, JSON with PHP's ``\\/``, percent-encoded once or twice).
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bitrix24_assets.bitrix24.redaction import Redactor, redact


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("https://acme.bitrix24.ru/rest/1/abc123xyz/", "https://acme.bitrix24.ru/rest/1/***/"),
        (
            "https://acme.bitrix24.ru/rest/17/abc123xyz/user.get.json",
            "https://acme.bitrix24.ru/rest/17/***/user.get.json",
        ),
        ("https://acme.bitrix24.ru/rest/1/abc123xyz", "https://acme.bitrix24.ru/rest/1/***"),
        (
            "https://acme.bitrix24.ru/rest/user.get?auth=tok123456&x=1",
            "https://acme.bitrix24.ru/rest/user.get?auth=***&x=1",
        ),
        (
            "grant_type=refresh_token&refresh_token=r123456&client_secret=s123456",
            "grant_type=refresh_token&refresh_token=***&client_secret=***",
        ),
        ("https://acme.bitrix24.ru/rest/", "https://acme.bitrix24.ru/rest/"),
        ("https://acme.bitrix24.ru/rest/1/", "https://acme.bitrix24.ru/rest/1/"),
        # user id forgotten or mistyped: the code is still a secret
        ("https://acme.bitrix24.ru/rest/abc123xyz/", "https://acme.bitrix24.ru/rest/***/"),
        ("https://acme.bitrix24.ru/rest/x1/abc123xyz/", "https://acme.bitrix24.ru/rest/***/"),
        ("https://acme.bitrix24.ru/rest/abc123xyz/user.get", "https://acme.bitrix24.ru/rest/***/user.get"),
        # ... and without the trailing slash (printed in full before)
        ("https://portal/rest/abc123SECRET456", "https://portal/rest/***"),
        ("https://portal/rest/1/abc123SECRET456", "https://portal/rest/1/***"),
        ("https://portal/rest/abc/def", "https://portal/rest/***"),
        ("HTTPS://PORTAL/REST/ABC123SECRET456", "HTTPS://PORTAL/REST/***"),
        ("https://portal/Rest/1/abc123SECRET456/", "https://portal/Rest/1/***/"),
        ("https://portal/rest/1//abc123SECRET456", "https://portal/rest/1//***"),
        ("https://portal/rest/1234567890123/", "https://portal/rest/***/"),  # too long for a user id
        # inside longer text, quoted, in JSON (PHP escapes "/"), percent-encoded in a query string
        ("failed: https://p.ru/rest/abc123SECRET456. Retry", "failed: https://p.ru/rest/*** Retry"),
        ("/rest/1/x/https://p/rest/1/abc123SECRET456/", "/rest/1/***/https://p/rest/1/***/"),
        ('url "https://p.ru/rest/abc123SECRET456" is bad', 'url "https://p.ru/rest/***" is bad'),
        ("{'u': 'https://p.ru/rest/abc123SECRET456'}", "{'u': 'https://p.ru/rest/***'}"),
        (
            '{"u":"https:\\/\\/p\\/rest\\/1\\/abc123SECRET456\\/"}',
            '{"u":"https:\\/\\/p\\/rest\\/1\\/***\\/"}',
        ),
        ("next=https%3A%2F%2Fp.ru%2Frest%2Fabc123SECRET456&x=1", "next=https%3A%2F%2Fp.ru%2Frest%2F***&x=1"),
        ("next=https%3a%2f%2fp%2frest%2f1%2fabc123SECRET456%2f", "next=https%3a%2f%2fp%2frest%2f1%2f***%2f"),
        ("n=https%253A%252F%252Fp%252Frest%252Fabc123SECRET456", "n=https%253A%252F%252Fp%252Frest%252F***"),
        ("see (https://p/rest/1/abc123SECRET456/user.get) ok", "see (https://p/rest/1/***/user.get) ok"),
        # OAuth: the method name stays, the token goes, in every spelling of the parameter
        ("https://p/rest/batch?auth=tok123456", "https://p/rest/batch?auth=***"),
        ("https://p/rest/user.get?AUTH=tok123456", "https://p/rest/user.get?AUTH=***"),
        ("auth[access_token]=tok123456&auth[domain]=p", "auth[access_token]=***&auth[domain]=***"),
        (
            "u=https%3A%2F%2Fp%2Frest%2Fuser.get%3Fauth%3Dtok123456",
            "u=https%3A%2F%2Fp%2Frest%2Fuser.get%3Fauth%3D***",
        ),
        ('{"access_token": "tok123456", "x": 1}', '{"access_token": "***", "x": 1}'),
        ("{'auth': {'application_token': 'tok123456'}}", "{'auth': {'application_token': '***'}}"),
        ('{"auth[application_token]":"tok123456"}', '{"auth[application_token]":"***"}'),
    ],
)
def test_redact(raw: str, shown: str) -> None:
    assert redact(raw) == shown


def test_redact_is_idempotent_on_its_own_output() -> None:
    for text in ("https://p/rest/1/***/", "https://p/rest/***", "https://p/rest/user.get?auth=***"):
        assert redact(text) == text


def test_redactor_scrubs_known_secrets_in_free_text() -> None:
    scrub = Redactor(["supersecret99", "tok/with&odd chars"])
    assert scrub("token supersecret99 leaked") == "token *** leaked"
    assert scrub("encoded tok%2Fwith%26odd%20chars here") == "encoded *** here"
    assert "supersecret99" not in repr(scrub)


# ---- properties ------------------------------------------------------------------------------------

# A method name is the one thing after /rest/ that is kept (OAuth calls); Bitrix24 webhook codes
# never contain a dot, so a generated secret of that shape would not be a webhook code.
_METHOD_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")

secrets = st.text(min_size=10, max_size=40).filter(lambda s: not _METHOD_SHAPE.fullmatch(s))
code_like = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=10, max_size=32
).filter(lambda s: not s.isdigit())
hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}(:[0-9]{2,5})?", fullmatch=True)
user_ids = st.from_regex(r"[1-9][0-9]{0,6}", fullmatch=True)
methods = st.sampled_from(["user.get", "tasks.task.list", "calendar.event.get.json", "batch", "profile"])
surrounding = st.text(max_size=40)
separators = st.sampled_from([" ", "\n", "\t", '"', "'", "(", "<", "=", ": ", ""])


@st.composite
def webhook_urls(draw: st.DrawFn) -> tuple[str, str]:
    """(URL, the secret as it appears in it): proper and mistyped shapes, any case, any host."""
    secret = quote(draw(st.one_of(secrets, code_like)), safe="")
    uid, method = draw(user_ids), draw(methods)
    junk = draw(st.sampled_from(["abc", "x1", "1x", "user", "00"]))
    path = draw(
        st.sampled_from(
            [
                f"{uid}/{secret}/",
                f"{uid}/{secret}",
                f"{uid}/{secret}/{method}",
                f"{secret}",
                f"{secret}/",
                f"{secret}/{method}",
                f"{junk}/{secret}",
                f"{junk}/{secret}/",
                f"{uid}//{secret}",
                f"{secret}/{secret}",
                f"{uid}/{secret}/{method}?auth={secret}",
            ]
        )
    )
    rest = draw(st.sampled_from(["rest", "REST", "Rest"]))
    scheme = draw(st.sampled_from(["https://", "http://", "HTTPS://", ""]))
    return f"{scheme}{draw(hosts)}/{rest}/{path}", secret


def _encodings(url: str, secret: str) -> list[tuple[str, str]]:
    """The forms a URL takes in logs, JSON bodies, reprs and query strings, each with its secret."""
    once, secret_once = quote(url, safe=""), quote(secret, safe="")
    return [
        (url, secret),
        (json.dumps(url), secret),
        (json.dumps(url).replace("/", "\\/"), secret),  # PHP's json_encode
        (repr({"webhook_url": url}), secret),
        (once, secret_once),
        (once.lower(), secret_once.lower()),
        (quote(once, safe=""), quote(secret_once, safe="")),
    ]


@given(webhook_urls(), surrounding, separators, surrounding, separators)
def test_no_webhook_secret_survives_in_any_text(
    url_and_secret: tuple[str, str], before: str, sep1: str, after: str, sep2: str
) -> None:
    url, secret = url_and_secret
    for form, shown_secret in _encodings(url, secret):
        assert shown_secret in form
        assume(shown_secret not in f"{before}{sep1}\x00{sep2}{after}")
        text = f"{before}{sep1}{form}{sep2}{after}"
        shown = redact(text)
        assert shown_secret not in shown, (text, shown)
        # no part of it either (a mask that stops early leaves the rest of the code readable)
        elsewhere = text.replace(shown_secret, "\x00")
        parts = {shown_secret[i : i + 6] for i in range(len(shown_secret) - 5)}
        assert not [p for p in parts if p in shown and p not in elsewhere], (text, shown)


@given(code_like, hosts, user_ids, st.booleans(), st.text(alphabet=" .,;:!()-abcXYZ\n", max_size=20))
def test_a_proper_webhook_url_shows_as_rest_user_mask(
    code: str, host: str, uid: str, slash: bool, after: str
) -> None:
    url = f"https://{host}/rest/{uid}/{code}" + ("/" if slash else "")
    shown = f"https://{host}/rest/{uid}/***" + ("/" if slash else "")
    assert redact(f"Call to {url} {after}") == f"Call to {shown} {after}"


@given(methods, hosts, secrets)
def test_oauth_calls_keep_the_method_and_lose_the_token(method: str, host: str, token: str) -> None:
    encoded = quote(token, safe="")
    for name in ("auth", "access_token", "application_token", "auth[access_token]"):
        shown = redact(f"POST https://{host}/rest/{method}?{name}={encoded}&ID=42 failed")
        assert shown == f"POST https://{host}/rest/{method}?{name}=***&ID=42 failed"


@given(st.text(max_size=200))
def test_redact_never_raises_and_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
