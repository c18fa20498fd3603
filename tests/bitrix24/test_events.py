"""Outgoing-event parsing pins the payload quirks of reference §7.3.

Bitrix24 sends the literal string ``undefined`` for missing task fields, a lower-case ``data[id]``
for calendar entries, and ``ONUSERADD``'s ``ACTIVE`` as either ``Y`` (docs) or ``1`` (source).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from bitrix24_assets.bitrix24.events import (
    MAX_FIELDS,
    Entity,
    EventName,
    EventPayloadError,
    parse_event,
    parse_form,
    verify_application_token,
)

TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"

AUTH = {
    "auth[domain]": "some-domain.bitrix24.com",
    "auth[client_endpoint]": "https://some-domain.bitrix24.com/rest/",
    "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
    "auth[member_id]": "d897063e1ce7c5eb9f04b9751eef5915",
    "auth[application_token]": TOKEN,
}


def body(event: str, data: dict[str, str], **extra: str) -> bytes:
    fields = {"event": event, "event_handler_id": "975", **data, "ts": "1766047124", **AUTH, **extra}
    return urlencode(fields).encode()


def test_reference_example_of_a_task_update_parses() -> None:
    # the decoded example body of reference §7.2, verbatim
    raw = body("ONTASKUPDATE", {
        "data[FIELDS_BEFORE][ID]": "123", "data[FIELDS_AFTER][ID]": "123",
        "data[IS_ACCESSIBLE_BEFORE]": "undefined", "data[IS_ACCESSIBLE_AFTER]": "undefined",
    })
    event = parse_event(parse_form(raw))
    assert event.event is EventName.ONTASKUPDATE
    assert event.entity is Entity.TASKS
    assert (event.object_id, event.handler_id, event.ts) == ("123", "975", 1766047124)
    assert (event.domain, event.member_id) == ("some-domain.bitrix24.com", "d897063e1ce7c5eb9f04b9751eef5915")
    assert event.application_token is not None and event.application_token.get_secret_value() == TOKEN
    assert event.data["IS_ACCESSIBLE_BEFORE"] is None  # 'undefined' means no value
    assert not event.is_deletion


@pytest.mark.parametrize(
    ("name", "data", "expected_id"),
    [
        # ONTASKADD: FIELDS_BEFORE is the string 'undefined', the id is in FIELDS_AFTER
        ("ONTASKADD", {"data[FIELDS_BEFORE]": "undefined", "data[FIELDS_AFTER][ID]": "7",
                       "data[IS_ACCESSIBLE_BEFORE]": "N", "data[IS_ACCESSIBLE_AFTER]": "undefined"}, "7"),
        # ONTASKDELETE: FIELDS_AFTER is 'undefined', fall back to FIELDS_BEFORE
        ("ONTASKDELETE", {"data[FIELDS_BEFORE][ID]": "8", "data[FIELDS_AFTER]": "undefined"}, "8"),
        # the docs' table variant: FIELDS_AFTER[ID] present on a delete
        ("ONTASKDELETE", {"data[FIELDS_AFTER][ID]": "9"}, "9"),
        # calendar events use a lower-case key
        ("ONCALENDARENTRYUPDATE", {"data[id]": "41"}, "41"),
        # ... but an upper-case one is accepted as well
        ("ONCALENDARENTRYDELETE", {"data[ID]": "42"}, "42"),
        ("ONUSERADD", {"data[ID]": "55", "data[ACTIVE]": "Y"}, "55"),
        # event names are upper-case in payloads, but be lenient
        ("OnTaskUpdate", {"data[FIELDS_AFTER][ID]": "10"}, "10"),
    ],
)
def test_object_id_is_found_in_every_documented_shape(name: str, data: dict[str, str],
                                                      expected_id: str) -> None:
    assert parse_event(parse_form(body(name, data))).object_id == expected_id


@pytest.mark.parametrize(
    ("active", "expected"),
    [("Y", True), ("1", True), ("true", True), ("N", False), ("0", False), ("false", False), ("", False)],
)
def test_onuseradd_active_accepts_docs_and_source_variants(active: str, expected: bool) -> None:
    # AMBIGUOUS in reference §7.3: docs show "Y", the source sends a PHP bool (form-encoded "1"/"")
    event = parse_event(parse_form(body("ONUSERADD", {"data[ID]": "3", "data[ACTIVE]": active})))
    assert event.user_active is expected
    assert event.entity is Entity.EMPLOYEES


def test_onuseradd_without_active_is_unknown_not_inactive() -> None:
    event = parse_event(parse_form(body("ONUSERADD", {"data[ID]": "3", "data[UF_DEPARTMENT][0]": "1"})))
    assert event.user_active is None
    assert event.data["UF_DEPARTMENT"] == {"0": "1"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "no 'event' field"),
        (b"hello", "no 'event' field"),
        (urlencode({"event": "ONCRMDEALADD", "data[FIELDS][ID]": "1"}).encode(), "not handled here"),
        (urlencode({"event": "ONTASKUPDATE", "data[FIELDS_BEFORE]": "undefined",
                    "data[FIELDS_AFTER]": "undefined"}).encode(), "no numeric"),
        (urlencode({"event": "ONCALENDARENTRYADD", "data[id]": "12; drop"}).encode(), "no numeric"),
        (urlencode({"event": "ONUSERADD"}).encode(), r"no numeric data\[ID\]"),
        (b"event=ONTASKADD&data[FIELDS_AFTER][ID]=%FF", "not UTF-8"),
    ],
)
def test_unusable_bodies_raise_one_clear_sentence(raw: bytes, message: str) -> None:
    with pytest.raises(EventPayloadError, match=message):
        parse_event(parse_form(raw))


def test_too_many_fields_and_too_deep_keys_are_refused() -> None:
    with pytest.raises(EventPayloadError, match="form fields"):
        parse_form("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)))
    with pytest.raises(EventPayloadError, match="nests"):
        parse_form("a" + "[x]" * 40 + "=1")


def test_php_bracket_rules() -> None:
    parsed = parse_form("a[]=1&a[]=2&b[c][d]=3&e=4&e=5&f[g=6&[h]=7")
    assert parsed == {"a": {"0": "1", "1": "2"}, "b": {"c": {"d": "3"}}, "e": "5", "f[g": "6"}


def test_token_never_appears_in_repr_or_stored_payload() -> None:
    event = parse_event(parse_form(body("ONTASKUPDATE", {"data[FIELDS_AFTER][ID]": "1"})))
    assert TOKEN not in repr(event)
    assert TOKEN not in str(event.inbox_payload())
    assert "application_token" not in event.inbox_payload()


def test_dedupe_key_is_stable_per_delivery_and_differs_per_change() -> None:
    first = parse_event(parse_form(body("ONTASKUPDATE", {"data[FIELDS_AFTER][ID]": "1"})))
    again = parse_event(parse_form(body("ONTASKUPDATE", {"data[FIELDS_AFTER][ID]": "1"})))
    later = parse_event(parse_form(body("ONTASKUPDATE", {"data[FIELDS_AFTER][ID]": "1"}, ts="1766047125")))
    other = parse_event(parse_form(body("ONTASKUPDATE", {"data[FIELDS_AFTER][ID]": "2"})))
    assert first.dedupe_key == again.dedupe_key
    assert len({first.dedupe_key, later.dedupe_key, other.dedupe_key}) == 3


@pytest.mark.parametrize(
    ("expected", "received", "ok"),
    [
        (TOKEN, TOKEN, True),
        (SecretStr(TOKEN), SecretStr(TOKEN), True),
        (TOKEN, TOKEN[:-1] + "x", False),
        (TOKEN, TOKEN + "x", False),
        (TOKEN, None, False),
        (TOKEN, "", False),
        (None, TOKEN, False),  # an account without a stored token accepts nothing
        ("", "", False),
        (TOKEN, "жжж", False),  # non-ASCII must not raise (compare_digest on str would)
    ],
)
def test_verify_application_token(expected: str | SecretStr | None, received: str | SecretStr | None,
                                  ok: bool) -> None:
    assert verify_application_token(expected, received) is ok


def test_deletions_are_flagged() -> None:
    assert EventName.ONTASKDELETE.is_deletion and EventName.ONCALENDARENTRYDELETE.is_deletion
    assert not any(e.is_deletion for e in EventName if "DELETE" not in e.value)
