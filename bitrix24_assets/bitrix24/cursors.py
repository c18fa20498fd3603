"""The incremental cursor for tasks: the largest ``changedDate`` seen, capped by the portal's clock.

Why not "now": our clock and the portal's differ, and a task saved while we were reading may carry a
time just before our "now" without having been read. Why capped: while lanes read ID ranges, a
task whose ID was already passed can be edited; a later task's ``changedDate`` must not move the
cursor past that edit, so the cursor never exceeds the portal time at which the read started
(``time.start`` of its first response, via ``client.stats.server_now`` before the read).

Usage (what the Dagster layer calls)::

    cursor = TaskCursor.load(stored)                      # None -> full read
    started = client.stats.server_now                      # portal clock before the read, may be None
    for task in client.get_tasks(select=..., changed_since=cursor.since):
        cursor.observe(task)
    store(cursor.advance(started).dump())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["TaskCursor"]


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


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
        latest = self.latest
        if latest is not None and server_started_at is not None:
            cap = datetime.fromtimestamp(server_started_at, UTC)
            if latest > cap:
                latest = cap.astimezone(latest.tzinfo)
        if self.since is not None and (latest is None or latest < self.since):
            latest = self.since  # never move backwards
        return TaskCursor(since=latest, latest=latest, key=self.key)

    def dump(self) -> dict[str, str] | None:
        return None if self.since is None else {self.key: self.since.isoformat()}
