"""Run configuration of an entity's step, visible and editable in the Launchpad.

Nothing secret belongs here: run config is stored with the run and shown in the UI.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from bitrix24_assets.core.models import RemovalGuard
from bitrix24_assets.pipeline import ENTITIES, SyncOptions
from bitrix24_assets.sync.events import DEFAULT_DAYS_AHEAD, DEFAULT_DAYS_BACK

_DEFAULT_GUARD = RemovalGuard()


class SyncConfig(dg.Config):
    """How much to read for users and tasks, and what a full read may remove."""

    full: bool = Field(
        default=False,
        description=(
            "Read everything instead of the changes since the last successful sync, and mark rows "
            "that disappeared from Bitrix24 as deleted (tasks) or inactive (employees)."
        ),
    )
    allow_mass_removal: bool = Field(
        default=False,
        description=(
            "Confirm a full read that would remove more than max_removal_share of the account's live "
            "rows (or all of them). Set it only after checking in Bitrix24 that they are really gone."
        ),
    )
    max_removal_share: float = Field(
        default=_DEFAULT_GUARD.max_share,
        ge=0,
        le=1,
        description="Largest share of an account's live rows one full read may remove without confirmation.",
    )

    def options(self) -> SyncOptions:
        guard = RemovalGuard(
            max_share=self.max_removal_share, min_rows=_DEFAULT_GUARD.min_rows, allow=self.allow_mass_removal
        )
        return SyncOptions(full=self.full, guard=guard)


class EventsConfig(SyncConfig):
    """How much to read for calendar events (always a window; per-account settings win)."""

    calendar_days_back: int = Field(default=DEFAULT_DAYS_BACK, ge=0, description="Days before today to read.")
    calendar_days_ahead: int = Field(
        default=DEFAULT_DAYS_AHEAD, ge=0, description="Days after today to read."
    )

    def options(self) -> SyncOptions:
        base = super().options()
        return SyncOptions(
            full=base.full,
            guard=base.guard,
            calendar_days_back=self.calendar_days_back,
            calendar_days_ahead=self.calendar_days_ahead,
        )


def read_config(entities: list[str], *, full: bool) -> dict[str, dict[str, dict[str, dict[str, bool]]]]:
    """Run config setting ``full`` on the steps of ``entities`` (for schedules and sensors)."""
    return {"ops": {ENTITIES[e].raw_key: {"config": {"full": full}} for e in entities}}
