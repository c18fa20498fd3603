"""REST method handlers, one module per Bitrix method family, registered on one router.

A handler is a plain function ``(ctx, params) -> MethodResult``: it reads PHP-style params, reads or
changes the portal state, and reports the :class:`~bitrix24_assets.sandbox.costs.Work` it did so
the cost model can price it. Handlers never sleep and never do I/O; the app does both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..costs import Work

if TYPE_CHECKING:
    from ..portal import Portal


@dataclass
class CallContext:
    """Who is calling and on which portal."""

    portal: Portal
    user_id: int
    scopes: frozenset[str]
    auth_kind: str = "webhook"  # webhook | oauth
    auth_key: str = "webhook:1"  # who the operating budget is kept for
    in_batch: bool = False

    @property
    def state(self) -> Any:
        return self.portal.state


@dataclass
class MethodResult:
    result: Any
    total: int | None = None
    next: int | None = None
    work: Work = field(default_factory=Work)


Handler = Callable[[CallContext, dict[str, Any]], MethodResult]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    scopes: frozenset[str]  # any one of these grants the method; empty = basic (always)
    handler: Handler


class MethodRouter:
    """Lower-case method name -> handler, with the scope that guards it."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def method(self, name: str, *scopes: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._methods[name.lower()] = MethodSpec(name.lower(), frozenset(scopes), handler)
            return handler

        return register

    def get(self, name: str) -> MethodSpec | None:
        return self._methods.get(name.lower())

    def names(self) -> list[str]:
        return sorted(self._methods)


router = MethodRouter()


def load_all() -> MethodRouter:
    """Import every method module so its handlers register (idempotent)."""
    from . import calendar, department, im, sonet_group, system, tasks, user  # noqa: F401

    return router
