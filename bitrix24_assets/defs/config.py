"""Run configuration of the raw (reading) assets, visible and editable in the Launchpad.

Nothing secret belongs here: run config is stored with the run and shown in the UI.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from bitrix24_assets.sync import ENTITIES
from bitrix24_assets.sync.events import DEFAULT_DAYS_AHEAD, DEFAULT_DAYS_BACK


class SyncConfig(dg.Config):
    """How much to read for users and tasks."""

    full: bool = Field(
        default=False,
        description=(
            "Read everything instead of the changes since the last successful sync, and mark rows "
            "that disappeared from Bitrix24 as deleted (tasks) or inactive (employees)."
        ),
    )


class EventsConfig(SyncConfig):
    """How much to read for calendar events (always a window; per-account settings win)."""

    calendar_days_back: int = Field(default=DEFAULT_DAYS_BACK, ge=0, description="Days before today to read.")
    calendar_days_ahead: int = Field(
        default=DEFAULT_DAYS_AHEAD, ge=0, description="Days after today to read."
    )


def read_config(entities: list[str], *, full: bool) -> dict[str, dict[str, dict[str, dict[str, bool]]]]:
    """Run config setting ``full`` on the raw assets of ``entities`` (for schedules and sensors)."""
    return {"ops": {f"bitrix_{ENTITIES[e].raw_name}": {"config": {"full": full}} for e in entities}}
