"""``user.get`` record -> ``EmployeeRow`` (reference 6.1).

Payload facts this module relies on: ``ID`` is a string, ``ACTIVE`` a JSON boolean (older
portals: "Y"/"N"), ``UF_DEPARTMENT`` a list of ints that is empty or absent for extranet users,
empty text is ``""``, and ``TIMESTAMP_X`` may be ``{}`` or a locale string (never parsed here).
"""

from __future__ import annotations

from typing import Any

from bitrix24_assets.core.rows import EmployeeRow
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import bitrix_id, flag, int_list, text

# Always pass ``select``: defaults differ between scopes and portal versions (reference 6.4 note).
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


def _email(value: Any) -> str | None:
    """A plausible e-mail, lower-cased for matching; anything else is treated as missing."""
    raw = text(value)
    if raw is None or "@" not in raw or " " in raw:
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
        ``metadata`` holding ``bitrix_active``, ``bitrix_departments`` and the user type.
        ``Rejection`` when the record has no usable ``ID`` or is an extranet/e-mail user, who is
        not an employee of the company.
    """
    if not isinstance(user, dict):
        return Rejection("record is not an object")
    user_id = bitrix_id(user.get("ID"))
    if user_id is None:
        return Rejection("missing or invalid ID")
    user_type = (text(user.get("USER_TYPE")) or "employee").lower()
    if user_type in NON_EMPLOYEE_TYPES:
        return Rejection(f"{user_type} user is not an employee", user_id)

    first, last = text(user.get("NAME")), text(user.get("LAST_NAME"))
    email = _email(user.get("EMAIL"))
    active = flag(user.get("ACTIVE"), default=True)
    departments = int_list(user.get("UF_DEPARTMENT"))
    phone = next(
        (p for p in (text(user.get(k)) for k in ("PERSONAL_MOBILE", "WORK_PHONE", "PERSONAL_PHONE")) if p),
        None,
    )
    metadata: dict[str, Any] = {
        "bitrix_id": user_id,
        "bitrix_active": active,
        "bitrix_departments": departments,
        "bitrix_user_type": user_type,
    }
    for key, meta_key in (("SECOND_NAME", "second_name"), ("XML_ID", "xml_id"), ("TIME_ZONE", "time_zone")):
        value = text(user.get(key))
        if value is not None:
            metadata[meta_key] = value
    return EmployeeRow(
        bitrix_id=user_id,
        email=email,
        full_name=_full_name(first, last, email, user_id),
        first_name=first,
        last_name=last,
        position=text(user.get("WORK_POSITION")),
        phone=phone,
        is_active=active,
        departments=departments,
        metadata=metadata,
    )
