"""``user.get`` payload variants mapped to EmployeeRow.

Quirks pinned here: IDs are strings, ``ACTIVE`` is a JSON bool on current portals and "Y"/"N"
on old ones, ``TIMESTAMP_X`` may be ``{}``, empty text is ``""``, ``UF_DEPARTMENT`` is absent or
``[]`` for extranet users, and e-mail can be missing entirely (invited users).
"""

from __future__ import annotations

from typing import Any

import pytest

from bitrix24_assets.sync import Rejection, to_employee
from bitrix24_assets.sync.batch import DUPLICATE_REASON, map_records

BASE: dict[str, Any] = {
    "ID": "1",
    "ACTIVE": True,
    "NAME": "Vadim",
    "LAST_NAME": "Valeev",
    "SECOND_NAME": "",
    "EMAIL": "V@Example.com",
    "TIMESTAMP_X": {},
    "LAST_ACTIVITY_DATE": {},
    "PERSONAL_MOBILE": "",
    "WORK_PHONE": "+7 495 000",
    "WORK_POSITION": "CTO",
    "UF_DEPARTMENT": [1, 3],
    "USER_TYPE": "employee",
}


def user(**changes: Any) -> dict[str, Any]:
    record = {**BASE, **changes}
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # the documented example: string ID, bool ACTIVE, {} timestamps
        (
            user(),
            {
                "bitrix_id": "1",
                "email": "v@example.com",
                "full_name": "Vadim Valeev",
                "is_active": True,
                "departments": [1, 3],
                "phone": "+7 495 000",
                "position": "CTO",
            },
        ),
        # deactivated user stays, inactive (the merge deactivates, never deletes)
        (user(ACTIVE=False), {"is_active": False}),
        # old portals answer "Y"/"N"
        (user(ACTIVE="N"), {"is_active": False}),
        (user(ACTIVE="Y"), {"is_active": True}),
        # missing e-mail (invited user with phone login) and a malformed one
        (user(EMAIL=""), {"email": None, "full_name": "Vadim Valeev"}),
        (user(EMAIL=...), {"email": None}),
        (user(EMAIL="not an email"), {"email": None}),
        # no name at all: fall back to the e-mail, then to the ID
        (user(NAME="", LAST_NAME=""), {"full_name": "v@example.com", "first_name": None}),
        (user(NAME="", LAST_NAME="", EMAIL=""), {"full_name": "Bitrix24 user 1"}),
        # numeric ID and string department IDs normalise to the same values
        (user(ID=17, UF_DEPARTMENT=["5"]), {"bitrix_id": "17", "departments": [5]}),
        # PHP empty array for departments, or the key missing entirely
        (user(UF_DEPARTMENT=[]), {"departments": []}),
        (user(UF_DEPARTMENT=...), {"departments": []}),
        # phone: mobile preferred over work phone
        (user(PERSONAL_MOBILE="+1 555"), {"phone": "+1 555"}),
        # USER_TYPE absent (user_brief scope on old portals): an employee
        (user(USER_TYPE=...), {"is_active": True}),
    ],
)
def test_user_variant_maps_to_expected_row(record: dict[str, Any], expected: dict[str, Any]) -> None:
    row = to_employee(record)
    assert not isinstance(row, Rejection), row
    for field, value in expected.items():
        assert getattr(row, field) == value, field


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (user(ID=...), "missing or invalid ID"),
        (user(ID=""), "missing or invalid ID"),
        (user(ID="0"), "missing or invalid ID"),
        # extranet users are guests from other companies, not employees
        (user(USER_TYPE="extranet", UF_DEPARTMENT=[]), "extranet user is not an employee"),
        (user(USER_TYPE="email"), "email user is not an employee"),
        ("garbage", "record is not an object"),
    ],
)
def test_unusable_user_is_rejected_with_reason(record: Any, reason: str) -> None:
    result = to_employee(record)
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_metadata_carries_seed_mapping_keys() -> None:
    row = to_employee(user(ACTIVE=False, SECOND_NAME="Petrovich"))
    assert not isinstance(row, Rejection)
    assert row.metadata["bitrix_id"] == "1"
    assert row.metadata["bitrix_active"] is False
    assert row.metadata["bitrix_departments"] == [1, 3]
    assert row.metadata["second_name"] == "Petrovich"


def test_second_portal_reusing_an_id_maps_to_an_identical_row() -> None:
    # rows carry no account: the merge keys them by (account, bitrix_id), so two portals' user 1
    # stay two employees. The mapper must not invent a global identity.
    first, second = to_employee(user()), to_employee(user())
    assert first == second


def test_batch_counts_rejections_by_reason_and_keeps_first_duplicate() -> None:
    records = [user(ID="1"), user(ID="2", USER_TYPE="extranet"), user(ID="1", NAME="Later"), user(ID="")]
    result = map_records(records, to_employee)
    assert [r.bitrix_id for r in result.rows] == ["1"]
    assert result.rows[0].first_name == "Vadim"
    assert result.records_read == 4
    assert result.rejected == {
        "extranet user is not an employee": 1,
        DUPLICATE_REASON: 1,
        "missing or invalid ID": 1,
    }
