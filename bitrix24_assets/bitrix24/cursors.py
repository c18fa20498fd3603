"""The incremental cursor for tasks: the largest ``changedDate`` seen, capped by the portal's clock.

Why not "now": our clock and the portal's differ, and a task saved while we were reading may carry a
time just before our "now" without having been read. Why capped: while lanes read ID ranges, a
task whose ID was already passed can be edited; a later task's ``changedDate`` must not move the
cursor past that edit, so the cursor never exceeds the portal time at which the read started
(``time.start`` of its first response, via ``client.stats.server_now`` before the read).

Usage on raw records::

    cursor = TaskCursor.load(stored)                      # None -> full read
    started = client.stats.server_now                      # portal clock before the read, may be None
    for task in client.get_tasks(select=..., changed_since=cursor.since):
        cursor.observe(task)
    store(cursor.advance(started).dump())

:func:`advance_cursor` is the rule itself; the sync layer applies it to mapped rows
(``bitrix24_assets.sync.cursors.next_cursor``), so both read the same way. A cursor stored ahead
of the portal's clock (written before the cap existed, or by a clock-skewed host) is pulled back
to the read's start instead of hiding every later edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["TaskCursor", "advance_cursor"]


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def advance_cursor(
    previous: datetime | None, seen: datetime | None, read_started_at: datetime | None
) -> datetime | None:
    """The cursor to store after a read: ``max(previous, seen)``, never past ``read_started_at``.

    Args:
        previous: the cursor the read started from (None before the first sync).
        seen: the largest source change time read (None when nothing was read).
        read_started_at: the portal's clock when the read began; None means no cap.

    Returns:
        The new cursor, or None when there was none and nothing was read.
    """
    latest = max((v for v in (previous, seen) if v is not None), default=None)
    if latest is not None and read_started_at is not None and latest > read_started_at:
        latest = read_started_at.astimezone(latest.tzinfo)
    return latest


@dataclass
class TaskCursor:
    """``since``: where the next read starts (the stored cursor); ``latest``: max ``changedDate`` seen."""

    since: datetime | None = None
    latest: datetime | None = None
    key: str = "changed_since"

    @classmethod
    def load(cls, stored: Mapping[str, Any] | None, key: str = "changed_since") -> TaskCursor:
        since = _parse(stored.get(key)) if stored else None
        return cls(since=since, latest=since, key=key)

    def observe(self, task: Mapping[str, Any]) -> None:
        """Take a raw ``tasks.task.list`` record into account (``changedDate``/``CHANGED_DATE``)."""
        changed = _parse(task.get("changedDate", task.get("CHANGED_DATE")))
        if changed is not None and (self.latest is None or changed > self.latest):
            self.latest = changed

    def advance(self, server_started_at: float | None = None) -> TaskCursor:
        """The cursor to store: max seen, but never past the portal time the read started."""
        cap = datetime.fromtimestamp(server_started_at, UTC) if server_started_at is not None else None
        latest = advance_cursor(self.since, self.latest, cap)
        return TaskCursor(since=latest, latest=latest, key=self.key)

    def dump(self) -> dict[str, str] | None:
        return None if self.since is None else {self.key: self.since.isoformat()}
