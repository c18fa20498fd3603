"""The webhook secret lives in the URL path, which query-only sanitizers miss."""

from __future__ import annotations

import pytest

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
        # user id forgotten or mistyped: the code is still a secret
        ("https://acme.bitrix24.ru/rest/abc123xyz/", "https://acme.bitrix24.ru/rest/***/"),
        ("https://acme.bitrix24.ru/rest/x1/abc123xyz/", "https://acme.bitrix24.ru/rest/***/"),
        ("https://acme.bitrix24.ru/rest/abc123xyz/user.get", "https://acme.bitrix24.ru/rest/***/user.get"),
    ],
)
def test_redact(raw: str, shown: str) -> None:
    assert redact(raw) == shown


def test_redactor_scrubs_known_secrets_in_free_text() -> None:
    scrub = Redactor(["supersecret99"])
    assert scrub("token supersecret99 leaked") == "token *** leaked"
    assert "supersecret99" not in repr(scrub)
