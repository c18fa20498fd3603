"""Parse and authenticate Bitrix24 outgoing-event payloads (docs/bitrix24-rest-api.md §7).

Bitrix24's queue server POSTs ``application/x-www-form-urlencoded`` bodies with PHP bracket keys,
for example (decoded, one field per line)::

    event=ONTASKUPDATE
    event_handler_id=975
    data[FIELDS_BEFORE][ID]=123
    data[FIELDS_AFTER][ID]=123
    data[IS_ACCESSIBLE_BEFORE]=undefined
    ts=1766047124
    auth[domain]=some-domain.bitrix24.com
    auth[member_id]=d897063e1ce7c5eb9f04b9751eef5915
    auth[application_token]=jvh9y1ulvt2m6k5or90v9mg8nn32ozas

:func:`parse_form` turns that into nested dicts, :func:`parse_event` into an :class:`OutgoingEvent`,
and :func:`verify_application_token` compares the token in constant time. The quirks handled here:

* the literal string ``undefined`` means "no value" (task events) and becomes ``None``;
* task ids are read from ``data[FIELDS_AFTER][ID]`` with a fallback to ``data[FIELDS_BEFORE][ID]``
  (``ONTASKADD`` sends ``FIELDS_BEFORE=undefined``, ``ONTASKDELETE`` sends ``FIELDS_AFTER=undefined``);
* calendar events carry a lower-case ``data[id]`` (``data[ID]`` is accepted too);
* ``ONUSERADD``'s ``data[ACTIVE]`` is ``Y`` in the docs' example but a PHP boolean (``1``, or
  empty for false) as Bitrix24 builds it: ``Y``/``1``/``true`` and ``N``/``0``/``false``/empty are
  all accepted (docs/bitrix24-rest-api.md §7.3, AMBIGUOUS).

Anything else is refused with :class:`EventPayloadError` (one sentence, the receiver's 400), never
another exception: a field we use that is malformed (``ts="²"``, a 5,000-digit ``ts``, a handler id
that is not digits, ``ACTIVE=maybe``), NUL bytes (Postgres cannot store them in ``jsonb``), text
that is not UTF-8. The fields we only carry (the rest of ``data``) are kept as they came.

Layer 1: no Dagster, no database, no HTTP server; the receiver and the sensor build on this.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

__all__ = [
    "UNDEFINED",
    "Entity",
    "EventName",
    "EventPayloadError",
    "OutgoingEvent",
    "parse_event",
    "parse_form",
    "verify_application_token",
]

UNDEFINED = "undefined"
"""What Bitrix24 sends for "no value" in task events (a literal string, not an absent field)."""

MAX_FIELDS = 1000
"""Form fields accepted per body; PHP's own ``max_input_vars`` default. Real events carry < 100."""

MAX_NESTING = 16
"""Bracket depth accepted per key; events nest three deep at most (``data[UF_DEPARTMENT][0]``)."""

MAX_DIGITS = 18
"""Digits accepted in ``ts`` and ``event_handler_id``: any value fits a signed 64-bit integer."""

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_NUMERIC_ID = re.compile(r"[1-9][0-9]{0,18}")
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")
# auth[domain] / auth[member_id]: printable, no spaces (a host, maybe with a port; a 32-hex id)
_PORTAL_TEXT = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")


class EventPayloadError(ValueError):
    """The body is not a Bitrix24 outgoing event we can use; ``str()`` is one sentence for the sender."""


class Entity(StrEnum):
    """What an event is about; the values are the Core entity names used by ``mark_deleted``."""

    EMPLOYEES = "employees"
    TASKS = "tasks"
    CALENDAR_EVENTS = "calendar_events"


class EventName(StrEnum):
    """The outgoing events this project subscribes to (payload ``event`` is upper-case)."""

    ONUSERADD = "ONUSERADD"
    ONTASKADD = "ONTASKADD"
    ONTASKUPDATE = "ONTASKUPDATE"
    ONTASKDELETE = "ONTASKDELETE"
    ONCALENDARENTRYADD = "ONCALENDARENTRYADD"
    ONCALENDARENTRYUPDATE = "ONCALENDARENTRYUPDATE"
    ONCALENDARENTRYDELETE = "ONCALENDARENTRYDELETE"

    @property
    def entity(self) -> Entity:
        if self is EventName.ONUSERADD:
            return Entity.EMPLOYEES
        if self.value.startswith("ONTASK"):
            return Entity.TASKS
        return Entity.CALENDAR_EVENTS

    @property
    def is_deletion(self) -> bool:
        return self in (EventName.ONTASKDELETE, EventName.ONCALENDARENTRYDELETE)


class OutgoingEvent(BaseModel):
    """One outgoing event, as far as we trust and need it.

    ``application_token`` is a :class:`~pydantic.SecretStr`, so neither ``repr()`` nor
    :meth:`inbox_payload` ever shows it; the rest of the ``auth`` block (OAuth tokens that
    application handlers receive) is dropped at parse time.
    """

    model_config = ConfigDict(frozen=True)

    event: EventName
    object_id: str = Field(description="Bitrix24 id of the user / task / calendar entry (digits).")
    handler_id: str | None = Field(default=None, description="event_handler_id: which subscription sent it.")
    ts: int | None = Field(default=None, description="Unix seconds when the queue sent the event.")
    domain: str | None = None
    member_id: str | None = None
    application_token: SecretStr | None = None
    user_active: bool | None = Field(default=None, description="ONUSERADD only: data[ACTIVE] as a bool.")
    data: dict[str, Any] = Field(default_factory=dict, description="data[...] with 'undefined' as None.")

    @property
    def entity(self) -> Entity:
        return self.event.entity

    @property
    def is_deletion(self) -> bool:
        return self.event.is_deletion

    @property
    def dedupe_key(self) -> str:
        """Same delivery twice -> same key; the queue re-sending is the only source of duplicates.

        Two real changes of one object within the same second through the same handler share a
        key too; that loses nothing, because the run the event triggers reads the object's
        current state.
        """
        raw = f"{self.event.value}|{self.object_id}|{self.ts}|{self.handler_id}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def inbox_payload(self) -> dict[str, Any]:
        """What the inbox stores: everything but the token (the auth block never leaves the receiver)."""
        return {**self.model_dump(mode="json", exclude={"application_token"}), "entity": self.entity.value}


def parse_form(body: bytes | str) -> dict[str, Any]:
    """Decode a PHP-style form body: ``a[b][]=1&a[b][]=2`` -> ``{"a": {"b": {"0": "1", "1": "2"}}}``.

    Arrays stay dicts with string keys, like PHP arrays (``[]`` appends the next integer key).
    A later scalar replaces an earlier array under the same name, as in PHP.

    Raises:
        EventPayloadError: not UTF-8, NUL bytes, more than ``MAX_FIELDS`` fields or nesting beyond
            ``MAX_NESTING``.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        text.encode("utf-8")  # a str argument may hold lone surrogates, which no database stores
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeError:
        raise EventPayloadError("The event body is not UTF-8 form data.") from None
    except ValueError as exc:  # max_num_fields exceeded
        raise EventPayloadError(f"The event body has more than {MAX_FIELDS} form fields.") from exc
    result: dict[str, Any] = {}
    for raw_key, value in pairs:
        if "\x00" in raw_key or "\x00" in value:
            raise EventPayloadError("The event body contains NUL bytes, which no Bitrix24 event carries.")
        _assign(result, raw_key, value)
    return result


def _assign(target: dict[str, Any], raw_key: str, value: str) -> None:
    bracket = raw_key.find("[")
    if bracket <= 0 or not raw_key.endswith("]"):
        if raw_key and not raw_key.startswith("["):
            target[raw_key] = value
        return
    segments = _BRACKETS.findall(raw_key, bracket)
    if "".join(f"[{s}]" for s in segments) != raw_key[bracket:]:
        target[raw_key] = value  # not clean bracket syntax: keep the key literally
        return
    if len(segments) > MAX_NESTING:
        raise EventPayloadError(f"The event body nests form keys deeper than {MAX_NESTING} levels.")
    node = target
    path = [raw_key[:bracket], *segments]
    for i, segment in enumerate(path):
        key = _next_index(node) if segment == "" else segment
        if i == len(path) - 1:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child


def _next_index(array: dict[str, Any]) -> str:
    """PHP's next key for ``a[]``: one past the largest integer key (ASCII digits; ``"²"`` is not one)."""
    ints = [int(k) for k in array if _DIGITS.fullmatch(k)]
    return str(max(ints) + 1 if ints else 0)


def parse_event(form: dict[str, Any]) -> OutgoingEvent:
    """Build an :class:`OutgoingEvent` from a parsed form (see :func:`parse_form`).

    Raises:
        EventPayloadError: unknown or missing event name, no usable object id, or a malformed
            ``ts``, ``event_handler_id``, ``auth[domain]``, ``auth[member_id]`` or ``ONUSERADD``
            ``data[ACTIVE]``. No other exception escapes, whatever the form holds.
    """
    name = _text(form.get("event"))
    if not name:
        raise EventPayloadError("The body has no 'event' field; it is not a Bitrix24 outgoing event.")
    event = _event_name(name)
    raw_data = form.get("data")
    data = _without_undefined(raw_data) if isinstance(raw_data, dict) else {}
    raw_auth = form.get("auth")
    auth: dict[str, Any] = raw_auth if isinstance(raw_auth, dict) else {}
    token = _text(auth.get("application_token"))
    try:
        return OutgoingEvent(
            event=event,
            object_id=_object_id(event, data),
            handler_id=_digits(form, "event_handler_id", "a handler id"),
            ts=_unix_seconds(form),
            domain=_portal_text(auth, "domain"),
            member_id=_portal_text(auth, "member_id"),
            application_token=SecretStr(token) if token else None,
            user_active=_user_active(data) if event is EventName.ONUSERADD else None,
            data=data,
        )
    except ValidationError:  # every field is checked above; this is the last line of defence
        raise EventPayloadError(f"The {event.value} event has a field that cannot be read.") from None


def verify_application_token(expected: str | SecretStr | None, received: str | SecretStr | None) -> bool:
    """True only if both tokens are present and equal, compared in constant time.

    The token is the authenticity check Bitrix24 documents (docs/bitrix24-rest-api.md §7.4).
    """
    expected_text = expected.get_secret_value() if isinstance(expected, SecretStr) else expected
    received_text = received.get_secret_value() if isinstance(received, SecretStr) else received
    if not expected_text or not received_text:
        return False
    return hmac.compare_digest(expected_text.encode(), received_text.encode())


def _object_id(event: EventName, data: dict[str, Any]) -> str:
    if event.entity is Entity.TASKS:
        candidates = [_nested(data, "FIELDS_AFTER", "ID"), _nested(data, "FIELDS_BEFORE", "ID")]
    elif event.entity is Entity.CALENDAR_EVENTS:
        candidates = [data.get("id"), data.get("ID")]
    else:
        candidates = [data.get("ID")]
    for candidate in candidates:
        text = _text(candidate)
        if text and _NUMERIC_ID.fullmatch(text):
            return text
    where = {
        Entity.TASKS: "data[FIELDS_AFTER][ID] or data[FIELDS_BEFORE][ID]",
        Entity.CALENDAR_EVENTS: "data[id]",
        Entity.EMPLOYEES: "data[ID]",
    }[event.entity]
    raise EventPayloadError(f"{event.value} carries no numeric {where}; the event cannot be matched.")


def _nested(data: dict[str, Any], *keys: str) -> Any:
    node: Any = data
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _without_undefined(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_undefined(v) for k, v in value.items()}
    if isinstance(value, str) and value == UNDEFINED:
        return None
    return value


def _text(value: Any) -> str | None:
    """A scalar form value as stripped text; arrays, ``undefined`` and blanks are ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return None if not text or text == UNDEFINED else text


def _event_name(name: str) -> EventName:
    try:
        return EventName(name.upper()) if name.isascii() else EventName("?")
    except ValueError:
        known = ", ".join(e.value for e in EventName)
        raise EventPayloadError(
            f"Event {name[:64]!r} is not handled here; subscribe only to {known}."
        ) from None


def _digits(form: dict[str, Any], key: str, what: str) -> str | None:
    """An optional field of ASCII digits (``undefined``/blank = absent); anything else is refused."""
    value = form.get(key)
    if value is None:
        return None
    text = _text(value)
    if text is None and isinstance(value, str):
        return None
    if text is None or not _DIGITS.fullmatch(text):
        raise EventPayloadError(
            f"The event's {key} is not {what} (at most {MAX_DIGITS} ASCII digits); the event was not stored."
        )
    return text


def _unix_seconds(form: dict[str, Any]) -> int | None:
    text = _digits(form, "ts", "Unix seconds")
    return int(text) if text is not None else None


def _portal_text(auth: dict[str, Any], key: str) -> str | None:
    value = auth.get(key)
    if value is None:
        return None
    text = _text(value)
    if text is None and isinstance(value, str):
        return None
    if text is None or not _PORTAL_TEXT.fullmatch(text):
        raise EventPayloadError(
            f"The event's auth[{key}] is not a portal {'domain' if key == 'domain' else 'id'}; "
            "the event was not stored."
        )
    return text


def _user_active(data: dict[str, Any]) -> bool | None:
    if "ACTIVE" not in data:
        return None
    active = _php_bool(data["ACTIVE"])
    if active is None and data["ACTIVE"] is not None:
        raise EventPayloadError(
            "ONUSERADD's data[ACTIVE] is neither Y/N nor 1/0/true/false; the event was not stored."
        )
    return active


def _php_bool(value: Any) -> bool | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in ("y", "1", "true"):
        return True
    if text in ("n", "0", "false", ""):
        return False
    return None
