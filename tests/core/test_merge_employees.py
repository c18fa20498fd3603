"""Employee merge: match by bitrix id within company+account, link by e-mail, insert; never delete."""

from __future__ import annotations

import psycopg
import pytest

from bitrix24_assets.core import EmployeeRow, MergeCounts, PostgresStore
from bitrix24_assets.core.errors import MassRemovalError
from bitrix24_assets.core.models import RemovalGuard

from .conftest import Portal, add_portal


def emp(bitrix_id: str, **kw: object) -> EmployeeRow:
    base: dict[str, object] = {
        "email": f"user{bitrix_id}@acme.io",
        "full_name": f"User {bitrix_id}",
        "first_name": "User",
        "last_name": bitrix_id,
        "departments": [1],
    }
    base.update(kw)
    return EmployeeRow(bitrix_id=bitrix_id, **base)  # type: ignore[arg-type]


def versions(db: psycopg.Connection) -> dict[str, str]:
    """bitrix_id -> xmin: a row rewritten by an UPDATE gets a new xmin."""
    return dict(db.execute("select metadata->>'bitrix_id', xmin::text from core.employees").fetchall())


def test_first_merge_inserts_and_links_metadata(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    counts = core_store.merge_employees(portal.id, [emp("1"), emp("2", is_active=False)], full=False)
    assert counts == MergeCounts(inserted=2, rows_in_table=2, live_rows=1)
    rows = db.execute(
        "select company_id::text, is_active, metadata from core.employees order by metadata->>'bitrix_id'"
    ).fetchall()
    assert [r[0] for r in rows] == [portal.company_id] * 2
    assert rows[0][2] == {
        "bitrix_id": "1",
        "integration_account_id": portal.id,
        "bitrix_departments": [1],
        "bitrix_active": True,
    }
    assert rows[1][1] is False and rows[1][2]["bitrix_active"] is False


def test_second_identical_merge_writes_nothing(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    rows = [emp(str(i)) for i in range(50)]
    core_store.merge_employees(portal.id, rows, full=True)
    before = versions(db)
    assert core_store.merge_employees(portal.id, rows, full=True) == MergeCounts(
        unchanged=50, rows_in_table=50, live_rows=50
    )
    assert versions(db) == before


def test_changed_row_is_the_only_one_written(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_employees(portal.id, [emp("1"), emp("2")], full=False)
    before = versions(db)
    counts = core_store.merge_employees(portal.id, [emp("1"), emp("2", position="CTO")], full=False)
    after = versions(db)
    assert counts == MergeCounts(updated=1, unchanged=1, rows_in_table=2, live_rows=2)
    assert after["1"] == before["1"] and after["2"] != before["2"]


def test_unlinked_employee_with_same_email_is_linked_not_duplicated(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    db.execute(
        "insert into core.employees (company_id, email, full_name, metadata)"
        " values (%s, 'Ann@Acme.io', 'Ann', '{\"hr_id\": 7}')",
        (portal.company_id,),
    )
    counts = core_store.merge_employees(
        portal.id, [emp("5", email="ann@acme.io", full_name="Ann Lee")], full=False
    )
    assert counts == MergeCounts(updated=1, rows_in_table=1, live_rows=1)
    rows = db.execute("select email, full_name, metadata from core.employees").fetchall()
    assert len(rows) == 1
    assert rows[0][0] == "ann@acme.io" and rows[0][1] == "Ann Lee"
    assert rows[0][2]["hr_id"] == 7 and rows[0][2]["bitrix_id"] == "5"


def test_email_of_another_company_is_not_linked(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    other = add_portal(core_store, company="Other", name="other.bitrix24.ru")
    db.execute(
        "insert into core.employees (company_id, email) values (%s, 'ann@acme.io')", (other.company_id,)
    )
    assert core_store.merge_employees(portal.id, [emp("5", email="ann@acme.io")], full=False).inserted == 1
    assert db.execute("select count(*) from core.employees").fetchone()[0] == 2


def test_deactivated_user_is_kept_inactive(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_employees(portal.id, [emp("1")], full=False)
    counts = core_store.merge_employees(portal.id, [emp("1", is_active=False)], full=False)
    assert counts == MergeCounts(updated=1, rows_in_table=1, live_rows=0)
    assert db.execute("select is_active, metadata->>'bitrix_active' from core.employees").fetchone() == (
        False,
        "false",
    )
    assert core_store.count_active_employees(portal.id) == 0


def test_full_merge_deactivates_missing_users_and_never_deletes(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_employees(portal.id, [emp("1"), emp("2"), emp("3")], full=True)
    counts = core_store.merge_employees(portal.id, [emp("1")], full=True)
    assert counts == MergeCounts(unchanged=1, removed=2, rows_in_table=3, live_rows=1)
    assert db.execute(
        "select count(*), count(*) filter (where is_active) from core.employees"
    ).fetchone() == (3, 1)
    # an incremental (not full) merge never deactivates anyone
    assert core_store.merge_employees(portal.id, [emp("2")], full=False) == MergeCounts(
        updated=1, rows_in_table=3, live_rows=2
    )


def test_duplicates_in_a_batch_last_wins(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    counts = core_store.merge_employees(
        portal.id, [emp("1", position="A"), emp("1", position="B")], full=False
    )
    assert counts == MergeCounts(inserted=1, rows_in_table=1, live_rows=1)
    assert db.execute("select position from core.employees").fetchone()[0] == "B"


def test_two_accounts_of_one_company_reuse_bitrix_ids(
    core_store: PostgresStore, db: psycopg.Connection
) -> None:
    first = add_portal(core_store, company="Acme", name="a.bitrix24.ru")
    second_account = core_store.add_account(
        first.company_id, "b.bitrix24.ru", {"webhook_url": "https://b/rest/1/x/"}
    )
    core_store.merge_employees(first.id, [emp("1", email="a@acme.io")], full=True)
    core_store.merge_employees(second_account.id, [emp("1", email="b@acme.io")], full=True)
    assert db.execute("select count(*) from core.employees").fetchone()[0] == 2
    # a full merge of one portal does not touch the other's people (an empty full read needs
    # confirmation: see test_removal_guard.py)
    with pytest.raises(MassRemovalError):
        core_store.merge_employees(first.id, [], full=True)
    assert core_store.merge_employees(first.id, [], full=True, guard=RemovalGuard(allow=True)).removed == 1
    assert core_store.count_active_employees(second_account.id) == 1


def test_company_comes_from_the_account_not_the_input(
    core_store: PostgresStore, db: psycopg.Connection
) -> None:
    acme = add_portal(core_store, company="Acme", name="a.bitrix24.ru")
    other = add_portal(core_store, company="Other", name="o.bitrix24.ru")
    core_store.merge_employees(other.id, [emp("1", metadata={"company_id": acme.company_id})], full=False)
    assert db.execute("select company_id::text from core.employees").fetchone()[0] == other.company_id


def test_sql_special_characters_and_emoji_survive(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    name = 'O\'Brien "Bob"; DROP TABLE core.employees; -- \\ \t 🚀 Ёлка'
    row = emp("1", full_name=name, metadata={"note": "50% off_%", "emoji": "👩‍💻"})
    core_store.merge_employees(portal.id, [row], full=False)
    assert core_store.merge_employees(portal.id, [row], full=False) == MergeCounts(
        unchanged=1, rows_in_table=1, live_rows=1
    )
    stored = db.execute(
        "select full_name, metadata->>'emoji', metadata->>'note' from core.employees"
    ).fetchone()
    assert stored == (name, "👩‍💻", "50% off_%")


def test_email_removed_in_bitrix24_is_cleared_in_core(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    core_store.merge_employees(portal.id, [emp("1"), emp("2")], full=True)
    counts = core_store.merge_employees(portal.id, [emp("1", email=None), emp("2")], full=True)
    assert counts == MergeCounts(updated=1, unchanged=1, rows_in_table=2, live_rows=2)
    emails = dict(db.execute("select metadata->>'bitrix_id', email from core.employees").fetchall())
    assert emails == {"1": None, "2": "user2@acme.io"}
    # recognised as unchanged from then on
    assert core_store.merge_employees(portal.id, [emp("1", email=None), emp("2")], full=True).unchanged == 2


def test_linking_by_email_and_clearing_it_later(
    core_store: PostgresStore, portal: Portal, db: psycopg.Connection
) -> None:
    """An unlinked platform employee is linked by e-mail only when the Bitrix24 user has one; once
    linked, the link is the bitrix_id and Bitrix24 owns the columns the merge writes, e-mail too."""
    db.execute(
        "insert into core.employees (company_id, email, full_name, metadata)"
        " values (%s, 'ann@acme.io', 'Ann', '{\"hr_id\": 7}'), (%s, 'bob@acme.io', 'Bob', '{}')",
        (portal.company_id, portal.company_id),
    )
    # a user without an e-mail links nobody (and leaves the platform's e-mails alone)
    assert core_store.merge_employees(portal.id, [emp("9", email=None)], full=False).inserted == 1
    assert db.execute("select count(*) from core.employees where email is not null").fetchone()[0] == 2
    assert core_store.merge_employees(portal.id, [emp("5", email="ANN@acme.io")], full=False).updated == 1
    (ann,) = db.execute("select id from core.employees where metadata->>'hr_id' = '7'").fetchone()

    def ann_now() -> tuple[str | None, str]:
        return db.execute(
            "select email, metadata->>'bitrix_id' from core.employees where id = %s", (ann,)
        ).fetchone()

    assert ann_now() == ("ANN@acme.io", "5")
    # the e-mail is removed in Bitrix24: cleared in Core, the link (bitrix_id) stays
    assert core_store.merge_employees(portal.id, [emp("5", email=None)], full=False).updated == 1
    assert ann_now() == (None, "5")
    # a new e-mail later lands on the same employee, never on Bob or a new row
    core_store.merge_employees(portal.id, [emp("5", email="ann.lee@acme.io")], full=False)
    assert ann_now() == ("ann.lee@acme.io", "5")
    assert db.execute("select count(*) from core.employees").fetchone()[0] == 3
    assert db.execute("select metadata from core.employees where email = 'bob@acme.io'").fetchone()[0] == {}
