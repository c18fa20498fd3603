"""``profile``, ``scope``, ``methods``, ``method.get``, ``server.time``, ``app.info``
(docs/bitrix24-rest-api.md §6.11).

``batch`` is registered here too (scope ``basic``) but executed by :mod:`..batch`, because it
needs the dispatcher.
"""

from __future__ import annotations

from typing import Any

from ..phpquery import truthy, upper_keys
from . import CallContext, MethodResult, router

ALL_SCOPES = (
    "basic",
    "user",
    "user_basic",
    "user_brief",
    "department",
    "task",
    "calendar",
    "im",
    "sonet_group",
)


@router.method("profile")
def profile(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    user = ctx.state.users.get(ctx.user_id)
    if user is None or not user.active:
        return MethodResult([])
    return MethodResult(
        {
            "ID": str(user.id),
            "ADMIN": user.id == 1,
            "NAME": user.name,
            "LAST_NAME": user.last_name,
            "PERSONAL_GENDER": user.gender,
            "TIME_ZONE": "",
            "TIME_ZONE_OFFSET": ctx.portal.config.utc_offset_hours * 3600,
        }
    )


@router.method("scope")
def scope(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    if truthy(upper_keys(params).get("FULL", False)):
        return MethodResult([s for s in ALL_SCOPES if s != "basic"])
    return MethodResult(sorted(s for s in ctx.scopes if s != "basic"))


@router.method("methods")
def methods(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    full = truthy(p.get("FULL", False))
    names = []
    for name in router.names():
        spec = router.get(name)
        assert spec is not None
        if full or not spec.scopes or spec.scopes & ctx.scopes:
            names.append(name)
    return MethodResult(names)


@router.method("method.get")
def method_get(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    spec = router.get(str(params.get("name", "")))
    return MethodResult(
        {
            "isExisting": spec is not None,
            "isAvailable": spec is not None and (not spec.scopes or bool(spec.scopes & ctx.scopes)),
        }
    )


@router.method("server.time")
def server_time(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    return MethodResult(ctx.portal.clock.iso(ctx.portal.clock.now()))


@router.method("app.info")
def app_info(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    return MethodResult({"SCOPE": sorted(s for s in ctx.scopes if s != "basic"), "LICENSE": "ru_project"})


@router.method("batch")
def batch_placeholder(ctx: CallContext, params: dict[str, Any]) -> MethodResult:  # pragma: no cover
    raise RuntimeError("batch is executed by the dispatcher, not as a plain handler")
