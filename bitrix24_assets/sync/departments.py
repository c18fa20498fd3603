"""``department.get`` record -> ``DepartmentRow`` (fields as Bitrix24's REST docs describe them).

Payload facts this module relies on (docs/bitrix24-rest-api.md §6.3): ``ID`` is a string, ``NAME``
text, ``SORT`` an int, ``PARENT`` a string ID that is missing on the root department, ``UF_HEAD`` a
string user ID that is missing when no head is set. ``department.get`` takes no ``select``: these
are the fields it returns. Only active departments are returned, so a department that is gone from
a complete read was deleted in Bitrix24.
"""

from __future__ import annotations

from typing import Any

from bitrix24_assets.core.rows import DepartmentRow
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import Issues, bitrix_id, small_int, text

__all__ = ["DEPARTMENT_FIELDS", "OWN_PARENT", "to_department"]

DEPARTMENT_FIELDS: tuple[str, ...] = ("ID", "NAME", "SORT", "PARENT", "UF_HEAD")

OWN_PARENT = "the department itself"
"""Field issue of a ``PARENT`` naming the department itself: a loop, so no parent is stored."""


def to_department(department: Any) -> DepartmentRow | Rejection:
    """Map one ``department.get`` record to a ``DepartmentRow``, or say why it cannot be one.

    Only a record without a readable ``ID`` is rejected: every other field has a safe empty
    value (a department without a readable parent is stored as a root, noted as a field issue,
    rather than dropped, which a full merge would turn into a deletion).
    """
    if not isinstance(department, dict):
        return Rejection("record is not an object")
    department_id = bitrix_id(department.get("ID"))
    if department_id is None:
        return Rejection("missing or invalid ID")
    issues: Issues = {}
    name = text(department.get("NAME"), issues, "NAME")
    sort = small_int(department.get("SORT"), issues, "SORT")
    parent = bitrix_id(department.get("PARENT"), issues, "PARENT")
    if parent == department_id:
        issues["PARENT"] = OWN_PARENT
        parent = None
    head = bitrix_id(department.get("UF_HEAD"), issues, "UF_HEAD")
    metadata: dict[str, Any] = {"bitrix_id": department_id}
    if issues:
        metadata["field_issues"] = issues
    return DepartmentRow(
        bitrix_id=department_id,
        name=name,
        parent_bitrix_id=parent,
        head_bitrix_id=head,
        sort=sort,
        metadata=metadata,
    )
