"""Outgoing-event parsing pins the payload quirks of docs/bitrix24-rest-api.md §7.3.

Bitrix24 sends the literal string ``undefined`` for missing task fields, a lower-case ``data[id]``
for calendar entries, and ``ONUSERADD``'s ``ACTIVE`` as either ``Y`` (docs) or ``1`` (a PHP bool).
Whatever else arrives is a parsed event or one :class:`EventPayloadError` sentence, never another
exception (property-based tests at the end).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
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


def test_docs_example_of_a_task_update_parses() -> None:
    # the decoded example body of docs/bitrix24-rest-api.md §7.2, verbatim
    raw = body(
        "ONTASKUPDATE",
        {
            "data[FIELDS_BEFORE][ID]": "123",
            "data[FIELDS_AFTER][ID]": "123",
            "data[IS_ACCESSIBLE_BEFORE]": "undefined",
            "data[IS_ACCESSIBLE_AFTER]": "undefined",
        },
    )
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
        (
            "ONTASKADD",
            {
                "data[FIELDS_BEFORE]": "undefined",
                "data[FIELDS_AFTER][ID]": "7",
                "data[IS_ACCESSIBLE_BEFORE]": "N",
                "data[IS_ACCESSIBLE_AFTER]": "undefined",
            },
            "7",
        ),
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
def test_object_id_is_found_in_every_documented_shape(
    name: str, data: dict[str, str], expected_id: str
) -> None:
    assert parse_event(parse_form(body(name, data))).object_id == expected_id


@pytest.mark.parametrize(
    ("active", "expected"),
    [("Y", True), ("1", True), ("true", True), ("N", False), ("0", False), ("false", False), ("", False)],
)
def test_onuseradd_active_accepts_docs_and_source_variants(active: str, expected: bool) -> None:
    # AMBIGUOUS in docs/bitrix24-rest-api.md §7.3: docs show "Y", the source sends a PHP bool ("1"/"")
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
        (
            urlencode(
                {
                    "event": "ONTASKUPDATE",
                    "data[FIELDS_BEFORE]": "undefined",
                    "data[FIELDS_AFTER]": "undefined",
                }
            ).encode(),
            "no numeric",
        ),
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
def test_verify_application_token(
    expected: str | SecretStr | None, received: str | SecretStr | None, ok: bool
) -> None:
    assert verify_application_token(expected, received) is ok


def test_deletions_are_flagged() -> None:
    assert EventName.ONTASKDELETE.is_deletion and EventName.ONCALENDARENTRYDELETE.is_deletion
    assert not any(e.is_deletion for e in EventName if "DELETE" not in e.value)


# ---- malformed fields: one sentence, never another exception -----------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ts", "²", "ts is not Unix seconds"),  # str.isdigit() says yes, int() says no
        ("ts", "9" * 5000, "ts is not Unix seconds"),  # past int()'s 4300-digit limit
        ("ts", "9" * 19, "ts is not Unix seconds"),  # past a 64-bit integer
        ("ts", "١٧٦٦٠٤٧١٢٤", "ts is not Unix seconds"),  # Arabic-Indic digits
        ("ts", "-1", "ts is not Unix seconds"),
        ("ts", "1766047124.5", "ts is not Unix seconds"),
        ("ts[]", "1766047124", "ts is not Unix seconds"),  # an array where a number belongs
        ("event_handler_id", "9x", "event_handler_id is not a handler id"),
        ("event_handler_id", "²", "event_handler_id is not a handler id"),
        ("auth[domain]", "evil domain", r"auth\[domain\] is not a portal domain"),
        ("auth[member_id][x]", "1", r"auth\[member_id\] is not a portal id"),
    ],
)
def test_malformed_fields_are_one_sentence(key: str, value: str, message: str) -> None:
    fields = {
        "event": "ONTASKUPDATE",
        "event_handler_id": "975",
        "data[FIELDS_AFTER][ID]": "1",
        "ts": "1766047124",
        **AUTH,
    }
    fields.pop(key.removesuffix("[]").removesuffix("[x]"))
    fields[key] = value
    with pytest.raises(EventPayloadError, match=message) as info:
        parse_event(parse_form(urlencode(fields)))
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")


def test_onuseradd_active_that_is_no_boolean_is_refused() -> None:
    for active in ("maybe", "²"):
        with pytest.raises(EventPayloadError, match=r"data\[ACTIVE\]"):
            parse_event(parse_form(body("ONUSERADD", {"data[ID]": "3", "data[ACTIVE]": active})))
    with pytest.raises(EventPayloadError, match=r"data\[ACTIVE\]"):
        parse_event(parse_form(body("ONUSERADD", {"data[ID]": "3", "data[ACTIVE][0]": "Y"})))


def test_absent_or_undefined_optional_fields_are_none() -> None:
    raw = urlencode(
        {"event": "ONTASKUPDATE", "data[FIELDS_AFTER][ID]": "5", "ts": "undefined", "event_handler_id": ""}
    )
    event = parse_event(parse_form(raw))
    assert (event.ts, event.handler_id, event.domain, event.application_token) == (None, None, None, None)


def test_nul_bytes_and_lone_surrogates_are_refused_before_they_reach_core() -> None:
    with pytest.raises(EventPayloadError, match="NUL"):
        parse_form(body("ONTASKUPDATE", {"data[FIELDS_AFTER][ID]": "1", "data[TITLE]": "a\x00b"}))
    with pytest.raises(EventPayloadError, match="NUL"):
        parse_form("event=ONTASKADD&data%5B%00%5D=1")
    with pytest.raises(EventPayloadError, match="not UTF-8"):
        parse_form("event=ONTASKADD&data[TITLE]=\ud800")
    with pytest.raises(EventPayloadError, match="not UTF-8"):
        parse_form(b"event=ONTASKADD&data[TITLE]=%ED%A0%80")  # a surrogate, UTF-8 encoded


def test_php_append_ignores_keys_that_only_look_like_integers() -> None:
    assert parse_form("a[²]=1&a[]=2") == {"a": {"²": "1", "0": "2"}}
    assert parse_form(f"a[{'9' * 5000}]=1&a[]=2")["a"]["0"] == "2"


def test_object_id_must_be_ascii_digits_that_fit() -> None:
    for bad in ("²", "١٢", "0", "1" * 20, "1e3", "12 3"):
        with pytest.raises(EventPayloadError, match="no numeric"):
            parse_event(parse_form(body("ONCALENDARENTRYADD", {"data[id]": bad})))


def test_event_names_are_ascii() -> None:
    # "ſ".upper() == "S": a name must not become a known one only after Unicode case mapping
    with pytest.raises(EventPayloadError, match="not handled here"):
        parse_event(parse_form(body("ONTAſKADD", {"data[FIELDS_AFTER][ID]": "1"})))


# ---- properties -------------------------------------------------------------------------------------

_KNOWN_KEYS = [
    "event",
    "event_handler_id",
    "ts",
    "data[ID]",
    "data[id]",
    "data[ACTIVE]",
    "data[FIELDS_AFTER][ID]",
    "data[FIELDS_BEFORE][ID]",
    "data[FIELDS_BEFORE]",
    "data[FIELDS_AFTER]",
    "data",
    "auth",
    "auth[domain]",
    "auth[member_id]",
    "auth[application_token]",
    "data[UF_DEPARTMENT][]",
    "data[]",
    "ts[]",
    "event[]",
]
_EVENT_NAMES = [e.value for e in EventName] + ["OnTaskAdd", "ONCRMDEALADD", ""]
_ODD_DIGITS = "0123456789²³¹٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９"

keys = st.one_of(
    st.sampled_from(_KNOWN_KEYS),
    st.builds(
        lambda name, segments: name + "".join(f"[{s}]" for s in segments),
        st.sampled_from(["data", "auth", "ts", "x", ""]),
        st.lists(
            st.one_of(st.sampled_from(["", "ID", "id", "FIELDS_AFTER", "0"]), st.text(max_size=5)),
            max_size=20,
        ),
    ),
    st.text(max_size=12),  # unbalanced brackets and anything else
)
values = st.one_of(
    st.sampled_from([*_EVENT_NAMES, "undefined", "", "Y", "N", "1", "0", "true", "-1", "1.5"]),
    st.text(alphabet="0123456789", min_size=1, max_size=40),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),  # past int()'s 4300-digit limit
    st.text(alphabet=_ODD_DIGITS, min_size=1, max_size=25),  # digits str.isdigit() accepts
    st.text(max_size=30),
)


@st.composite
def forms(draw: st.DrawFn) -> str:
    """A form body: a plausible event whose fields are each kept, dropped or replaced by anything,
    plus arbitrary fields (nested, unbalanced, repeated)."""
    base = {
        "event": draw(st.sampled_from(_EVENT_NAMES)),
        "event_handler_id": "975",
        "ts": "1766047124",
        "data[FIELDS_AFTER][ID]": "5",
        "data[id]": "6",
        "data[ID]": "7",
        "data[ACTIVE]": "Y",
        **AUTH,
    }
    pairs: list[tuple[str, str]] = []
    for key, plausible in base.items():
        choice = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if choice != "drop":
            pairs.append((key, plausible if choice == "keep" else draw(values)))
    pairs += draw(st.lists(st.tuples(keys, values), max_size=8))
    pairs = draw(st.permutations(pairs))
    if draw(st.booleans()):
        return urlencode(pairs)
    return "&".join(f"{k}={v}" for k, v in pairs)  # not encoded: raw brackets, stray % and &


def _parsed_or_refused(raw: str | bytes) -> None:
    try:
        event = parse_event(parse_form(raw))
    except EventPayloadError as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
        return
    payload = json.dumps(event.inbox_payload(), ensure_ascii=False, allow_nan=False)
    payload.encode("utf-8")  # what Core stores: UTF-8 JSON without NUL
    assert "\x00" not in payload and "\\u0000" not in payload
    assert re.fullmatch(r"[1-9][0-9]{0,18}", event.object_id)
    assert event.ts is None or 0 <= event.ts < 2**63
    assert event.handler_id is None or re.fullmatch(r"[0-9]{1,18}", event.handler_id)
    assert len(event.dedupe_key) == 64


@given(forms())
def test_any_form_is_an_event_or_one_sentence(raw: str) -> None:
    _parsed_or_refused(raw)
    _parsed_or_refused(raw.encode("utf-8", "surrogatepass"))


@given(st.binary(max_size=300))
def test_any_bytes_are_an_event_or_one_sentence(raw: bytes) -> None:
    _parsed_or_refused(raw)
    _parsed_or_refused(b"event=ONTASKADD&data[FIELDS_AFTER][ID]=1&" + raw)
