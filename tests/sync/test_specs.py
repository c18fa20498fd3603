"""The EntitySpec registry and the incremental cursor stated as data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bitrix24_assets.sync import ENTITIES, event_window, next_cursor, read_since


@dataclass
class Row:
    changed_at_source: datetime | None


def test_registry_names_entities_assets_and_core_methods() -> None:
    assert {name: (s.client_method, s.merge_method, s.sync_entity) for name, s in ENTITIES.items()} == {
        "employees": ("get_users", "merge_employees", "employees"),
        "tasks": ("get_tasks", "merge_tasks", "tasks"),
        "events": ("get_events", "merge_events", "calendar_events"),
    }
    assert ENTITIES["tasks"].depends_on == ENTITIES["events"].depends_on == ("employees",)


def test_cursor_is_largest_source_time_never_now() -> None:
    spec = ENTITIES["tasks"].cursor
    assert spec is not None
    t1, t2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    assert next_cursor(spec, [Row(t2), Row(None), Row(t1)], None) == {"changed_since": t2.isoformat()}
    # nothing read: the previous cursor stays
    assert next_cursor(spec, [], {"changed_since": t2.isoformat()}) == {"changed_since": t2.isoformat()}
    # an older row never moves the cursor back
    assert next_cursor(spec, [Row(t1)], {"changed_since": t2.isoformat()}) == {
        "changed_since": t2.isoformat()
    }
    assert next_cursor(spec, [], None) is None
    assert read_since(spec, {"changed_since": t2.isoformat()}) == t2  # the client adds its overlap
    assert read_since(spec, {"changed_since": "garbage"}) is None


def test_cursor_never_passes_the_portal_time_the_read_started() -> None:
    # a task dated in the future (clock skew, hand-edited date) must not make later edits invisible
    spec = ENTITIES["tasks"].cursor
    assert spec is not None
    started = datetime(2025, 3, 1, 12, tzinfo=UTC)
    future, past = datetime(2025, 3, 1, 14, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    capped = next_cursor(spec, [Row(future), Row(past)], None, read_started_at=started)
    assert capped == {"changed_since": started.isoformat()}
    uncapped = next_cursor(spec, [Row(past)], None, read_started_at=started)
    assert uncapped == {"changed_since": past.isoformat()}
    # a cursor stored ahead of the portal's clock (before this cap existed) heals itself
    healed = next_cursor(spec, [], {"changed_since": future.isoformat()}, read_started_at=started)
    assert healed == {"changed_since": started.isoformat()}


def test_plans_incremental_full_and_windowed_reads() -> None:
    tasks, users, events = ENTITIES["tasks"], ENTITIES["employees"], ENTITIES["events"]
    cursor = {"changed_since": "2025-02-01T00:00:00+00:00"}
    incremental = tasks.plan(full=False, cursor=cursor, window=None)
    assert incremental.full is False
    assert incremental.kwargs["changed_since"] == datetime(2025, 2, 1, tzinfo=UTC)
    assert "changed_since" not in tasks.plan(full=True, cursor=cursor, window=None).kwargs
    assert tasks.plan(full=False, cursor=None, window=None).full is True  # no cursor yet: full read
    assert users.plan(full=False, cursor=None, window=None).full is True  # users are always read fully
    window = event_window(datetime(2025, 3, 1, tzinfo=UTC))
    plan = events.plan(full=False, cursor=None, window=window)
    assert plan.kwargs == {"date_from": window.date_from, "date_to": window.date_to}
