"""Per-account settings that decide what is synced (the ``settings`` column of the account row).

``settings.entities`` turns entities on or off on purpose, in either form::

    {"entities": ["employees", "tasks"]}                 # only these
    {"entities": {"events": false}}                      # all but these

Names are the entities' names in any spelling (``events``, ``calendar_events``, ``calendar``).
Anything else (absent, null, a typo'd type) syncs everything the webhook's scopes allow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bitrix24_assets.pipeline.entities import Entity

__all__ = ["entity_switch"]


def entity_switch(settings: Mapping[str, Any] | None) -> Callable[[Entity], bool]:
    """Whether the account's settings let an entity sync."""
    from bitrix24_assets.pipeline.entities import entity_named

    value = (settings or {}).get("entities")
    if isinstance(value, list):
        wanted = {e.name for e in (entity_named(str(n)) for n in value) if e is not None}
        return lambda entity: entity.name in wanted
    if isinstance(value, dict):
        off = {
            e.name
            for e, on in ((entity_named(str(k)), v) for k, v in value.items())
            if e is not None and on is False
        }
        return lambda entity: entity.name not in off
    return lambda entity: True
