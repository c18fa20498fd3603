"""``user.get`` record -> ``EmployeeRow`` (fields as Bitrix24's REST docs describe ``user.get``).

Payload facts this module relies on: ``ID`` is a string, ``ACTIVE`` a JSON boolean (older
portals: "Y"/"N"), ``UF_DEPARTMENT`` a list of ints that is empty or absent for extranet users,
empty text is ``""``, and ``TIMESTAMP_X`` may be ``{}`` or a locale string (never parsed here).
"""

from __future__ import annotations

from typing import Any

from bitrix24_assets.core.rows import EmployeeRow
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import NOT_A_TEXT, Issues, bitrix_id, flag, int_list, text

# Always pass ``select``: defaults differ between scopes and portal versions.
USER_SELECT: tuple[str, ...] = (
    "ID",
    "ACTIVE",
    "NAME",
    "LAST_NAME",
    "SECOND_NAME",
    "EMAIL",
    "WORK_POSITION",
    "PERSONAL_MOBILE",
    "WORK_PHONE",
    "PERSONAL_PHONE",
    "UF_DEPARTMENT",
    "USER_TYPE",
    "XML_ID",
    "TIME_ZONE",
    "DATE_REGISTER",
)

# Bitrix24 user types that are not the company's own staff: extranet users are guests from other
# companies (they have no department); "email" users are mail correspondents.
NON_EMPLOYEE_TYPES = frozenset({"extranet", "email", "bot", "imconnector", "replica"})


NOT_AN_EMAIL = "not an e-mail"


def _email(value: Any, issues: Issues) -> str | None:
    """A plausible e-mail, lower-cased for matching; a malformed one is treated as missing, noted."""
    raw = text(value, issues, "EMAIL")
    if raw is None:
        return None
    if "@" not in raw or " " in raw:
        issues["EMAIL"] = NOT_AN_EMAIL
        return None
    return raw.lower()


def _full_name(first: str | None, last: str | None, email: str | None, user_id: str) -> str:
    """ "First Last"; users created by invitation often have no name, so fall back sensibly."""
    name = " ".join(part for part in (first, last) if part)
    return name or email or f"Bitrix24 user {user_id}"


def to_employee(user: Any) -> EmployeeRow | Rejection:
    """Map one ``user.get`` record to an ``EmployeeRow``, or say why it cannot be one.

    Args:
        user: a raw record exactly as Bitrix24 returned it.

    Returns:
        ``EmployeeRow`` with ``is_active`` from ``ACTIVE`` (inactive users are kept so the merge
        can deactivate them, never delete), ``email`` None when missing or malformed, and
        ``metadata`` holding ``bitrix_active``, ``bitrix_departments``, the user type and, when a
        present field could not be read, ``field_issues``.
        ``Rejection`` when the record has no usable ``ID``, is an extranet/e-mail user (not an
        employee of the company), or its ``ACTIVE`` or ``USER_TYPE`` cannot be read: guessing
        either would deactivate an employee or add a guest.
    """
    if not isinstance(user, dict):
        return Rejection("record is not an object")
    user_id = bitrix_id(user.get("ID"))
    if user_id is None:
        return Rejection("missing or invalid ID")
    issues: Issues = {}
    user_type = (text(user.get("USER_TYPE"), issues, "USER_TYPE") or "employee").lower()
    if issues.get("USER_TYPE") == NOT_A_TEXT:
        return Rejection("USER_TYPE: not a text", user_id)
    if user_type in NON_EMPLOYEE_TYPES:
        return Rejection(f"{user_type} user is not an employee", user_id)
    active = flag(user.get("ACTIVE"), issues, "ACTIVE", True)
    if active is None:
        return Rejection("ACTIVE: not a boolean", user_id)

    first, last = text(user.get("NAME"), issues, "NAME"), text(user.get("LAST_NAME"), issues, "LAST_NAME")
    email = _email(user.get("EMAIL"), issues)
    departments = int_list(user.get("UF_DEPARTMENT"), issues, "UF_DEPARTMENT")
    phone = None
    for key in ("PERSONAL_MOBILE", "WORK_PHONE", "PERSONAL_PHONE"):
        phone = text(user.get(key), issues, key)
        if phone is not None:
            break
    metadata: dict[str, Any] = {
        "bitrix_id": user_id,
        "bitrix_active": active,
        "bitrix_departments": departments,
        "bitrix_user_type": user_type,
    }
    for key, meta_key in (("SECOND_NAME", "second_name"), ("XML_ID", "xml_id"), ("TIME_ZONE", "time_zone")):
        value = text(user.get(key), issues, key)
        if value is not None:
            metadata[meta_key] = value
    position = text(user.get("WORK_POSITION"), issues, "WORK_POSITION")
    if issues:
        metadata["field_issues"] = issues
    return EmployeeRow(
        bitrix_id=user_id,
        email=email,
        full_name=_full_name(first, last, email, user_id),
        first_name=first,
        last_name=last,
        position=position,
        phone=phone,
        is_active=active,
        departments=departments,
        metadata=metadata,
    )
