"""A DSN password never shows, however it is typed: with '@', ':', '/', '%', '?', '#' in it, raw or
percent-encoded, alone or inside a longer message."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitrix24_assets.core.secrets import redact_dsn, redact_text


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://core:pw@db:5432/core", "postgresql://core:***@db:5432/core"),
        ("postgresql://core:p@ss@db/core", "postgresql://core:***@db/core"),  # typed unencoded
        ("postgresql://core:p%40ss@db/core", "postgresql://core:***@db/core"),
        ("postgresql://core:p@ss@db/core?sslmode=require", "postgresql://core:***@db/core?sslmode=require"),
        ("postgresql://core:p#s?s/x:y@db:5432/core", "postgresql://core:***@db:5432/core"),
        ("postgres://:only-password@db/core", "postgres://:***@db/core"),
        ("postgresql://core@db/core", "postgresql://core@db/core"),  # no password: nothing to hide
        ("postgresql://db:5432/core", "postgresql://db:5432/core"),
        ("host=db user=core password=p@ss dbname=core", "host=db user=core password=*** dbname=core"),
        ("host=db password='p @ss' user=core", "host=db password=*** user=core"),
        ("PGPASSWORD=p@ss psql", "PGPASSWORD=*** psql"),
        # more is masked, never less
        ("postgresql://core@db/core?password=p@ss&x=1", "postgresql://core@db/core?password=***"),
    ],
)
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_webhook_urls_in_core_messages_are_masked_by_the_same_rule() -> None:
    text = "account error: https://acme.bitrix24.ru/rest/abc123SECRET456 refused"
    assert redact_text(text) == "account error: https://acme.bitrix24.ru/rest/*** refused"


# what people type into passwords, with the characters that break DSN parsing over-represented
_TRICKY = list("@:/%?#&=+;'\"")
passwords = st.lists(
    st.one_of(
        st.sampled_from(_TRICKY),
        st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
        st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
    ),
    min_size=6,
    max_size=30,
).map("".join)
users = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
hosts = st.from_regex(r"[a-z][a-z0-9.-]{0,20}(:[0-9]{2,5})?", fullmatch=True)
context = st.text(max_size=40)


def pieces(password: str) -> list[str]:
    """The runs of a password between its special characters: a partial leak shows one of them."""
    runs = [password]
    for char in _TRICKY:
        runs = [part for run in runs for part in run.split(char)]
    return [run for run in runs if len(run) >= 3]


@given(users, passwords, hosts, st.booleans(), st.sampled_from(["postgresql", "postgres", "https"]))
def test_no_dsn_password_survives(user: str, password: str, host: str, encoded: bool, scheme: str) -> None:
    secret = quote(password, safe="") if encoded else password
    dsn = f"{scheme}://{user}:{secret}@{host}/core?sslmode=require"
    shown = redact_dsn(dsn)
    assert shown == f"{scheme}://{user}:***@{host}/core?sslmode=require"


@given(users, passwords, hosts, context, context)
def test_no_dsn_password_survives_in_free_text(
    user: str, password: str, host: str, before: str, after: str
) -> None:
    dsn = f"postgresql://{user}:{password}@{host}/core"
    visible = f"{before} postgresql://{user}:@{host}/core {after} Core at  is unreachable host= user="
    leaks = [p for p in [password, *pieces(password)] if p not in visible]
    for text in (
        f"{before} {dsn} {after}",
        f"{before}\n{dsn}\n{after}",
        f"Core at {dsn} is unreachable",
        f"host={host} password={password} user={user}",
    ):
        shown = redact_text(text)
        assert not [p for p in leaks if p in shown], (text, shown)


@pytest.mark.parametrize("password", ["'@'aaa", "a'b'cde", "'half"])
def test_keyword_password_with_quotes_is_masked_whole(password: str) -> None:
    assert redact_text(f"host=db password={password} user=core") == "host=db password=*** user=core"


@pytest.mark.parametrize(
    "text",
    ["postgresql://a:b" * 20_000, "password='" * 20_000, "x://a:b " * 20_000 + "@", "/rest/1/" * 20_000],
)
def test_redaction_stays_linear_on_long_lines(text: str) -> None:
    """Backtracking to the last "@" from every "scheme://" once took ~30 s for 160 KB (quadratic);
    linear work takes well under a second, so the bound below only trips on a quadratic pattern."""
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 10
