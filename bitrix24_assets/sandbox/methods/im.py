"""``im.notify``, ``im.notify.system.add``, ``im.notify.personal.add`` (docs/bitrix24-rest-api.md §6.10).

Classic handlers: parameter names are upper-cased. Result is the new notification id (int).
Notifications are kept in the state so tests can see what was sent.
"""

from __future__ import annotations

from typing import Any

from ..errors import RestError
from ..phpquery import intval, upper_keys
from ..store import Notification
from . import CallContext, MethodResult, router

ATTACH_LIMIT = 60_000


def _notify(ctx: CallContext, params: dict[str, Any], kind: str) -> MethodResult:
    p = upper_keys(params)
    user_id = intval(p.get("USER_ID", 0))
    if not user_id:
        raise RestError(400, "USER_ID_EMPTY", "User ID can't be empty")
    message = str(p.get("MESSAGE", "") or "").strip()
    if not message:
        raise RestError(400, "MESSAGE_EMPTY", "Message can't be empty")
    attach = p.get("ATTACH")
    if attach is not None and len(str(attach)) > ATTACH_LIMIT:
        raise RestError(400, "ATTACH_OVERSIZE", "You have exceeded the maximum allowable size of attach")
    if ctx.state.users.get(user_id) is None:
        return MethodResult(False)
    tag = p.get("TAG")
    notifications: list[Notification] = ctx.state.notifications
    if tag:
        notifications[:] = [n for n in notifications if n.tag != tag]
    note = Notification(
        id=_next_id(ctx),
        kind=kind,
        user_id=user_id,
        from_user_id=None if kind == "system" else ctx.user_id,
        message=message,
        tag=str(tag) if tag else None,
        created=ctx.portal.clock.now(),
    )
    notifications.append(note)
    return MethodResult(note.id)


def _next_id(ctx: CallContext) -> int:
    ctx.portal.counters.notifications += 1
    return ctx.portal.counters.notifications


@router.method("im.notify.system.add", "im")
def notify_system(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    return _notify(ctx, params, "system")


@router.method("im.notify.personal.add", "im")
def notify_personal(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    return _notify(ctx, params, "personal")


@router.method("im.notify", "im")
def notify(ctx: CallContext, params: dict[str, Any]) -> MethodResult:
    kind = "system" if str(upper_keys(params).get("TYPE", "USER")).upper() == "SYSTEM" else "personal"
    return _notify(ctx, params, kind)
