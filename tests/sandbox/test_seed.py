"""Seeded data: deterministic per (seed, anchor date) and realistic in shape."""

from __future__ import annotations

from datetime import date

from bitrix24_assets.sandbox.seed import anchor_timestamp, seed_portal
from bitrix24_assets.sandbox.store import PortalState


def _portal(seed: int) -> PortalState:
    state = PortalState()
    seed_portal(state, users=300, tasks=2000, events=500, seed=seed, anchor=date(2025, 6, 2))
    return state


def _snapshot(state: PortalState) -> tuple:
    return (
        list(state.users.rows.values()),
        list(state.tasks.rows.values()),
        list(state.events.rows.values()),
        list(state.departments.values()),
    )


def test_same_seed_same_portal_other_seed_other_portal():
    assert _snapshot(_portal(11)) == _snapshot(_portal(11))
    assert _snapshot(_portal(11)) != _snapshot(_portal(12))


def test_users_look_like_a_real_company():
    users = list(_portal(3).users.rows.values())
    assert any(any("а" <= ch <= "я" for ch in u.name.lower()) for u in users)  # Russian names
    assert any(u.name.isascii() for u in users)  # Latin names
    assert any(not u.email for u in users) and any(not u.mobile and not u.work_phone for u in users)
    assert any(not u.active for u in users)
    extranet = [u for u in users if u.user_type == "extranet"]
    assert extranet and all(not u.departments for u in extranet)
    emails = [u.email for u in users if u.email]
    assert len(emails) == len(set(emails))


def test_tasks_and_events_are_spread_realistically():
    state = _portal(3)
    tasks = list(state.tasks.rows.values())
    assert len(tasks) == 2000 and state.tasks.ids == sorted(state.tasks.ids)
    assert len({t.responsible_id for t in tasks}) > 100
    assert all(t.changed_date >= t.created_date for t in tasks)
    assert all((t.closed_date is not None) == (t.status == 5) for t in tasks)
    kinds = {e.cal_type for e in state.events.rows.values()}
    assert kinds == {"user", "company_calendar", "group"}


def test_no_seeded_change_is_dated_after_the_portal_clock():
    # seeding at 09:00 of a day whose 09:00 has not come yet once dated task changes in the future,
    # which hid later edits from incremental (>=CHANGED_DATE) reads
    clock_now = anchor_timestamp(date(2025, 6, 2), 3) - 6 * 3600  # 03:00 local on the anchor day
    state = PortalState()
    seed_portal(state, users=50, tasks=2000, events=200, seed=3, anchor=date(2025, 6, 2), not_after=clock_now)
    assert max(t.changed_date for t in state.tasks.rows.values()) <= clock_now
    assert max(t.created_date for t in state.tasks.rows.values()) <= clock_now
