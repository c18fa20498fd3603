"""The admin surface under ``/_sandbox/`` (JSON in, JSON out), separate from the REST surface.

Tests and demos use it to reset the portal, read counters, move the modelled clock, change data
"as a portal user would" (which fires outgoing events like any change), create webhooks and OAuth
apps, point outgoing events at a handler, inject faults, and make stored records render malformed
values (``/overrides``). Shapes are listed in README.md.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .dates import parse_datetime
from .errors import RestError
from .faults import FaultPlan
from .methods import CallContext
from .methods.calendar import create_event, delete_event, event_record, update_event
from .methods.system import ALL_SCOPES
from .methods.tasks import create_task, delete_task, task_record, update_task
from .methods.user import user_record
from .oauth import install_app, uninstall_app
from .phpquery import intval
from .store import OVERRIDABLE, Override, User

if TYPE_CHECKING:
    from .portal import Portal

Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status_code=status,
        media_type="application/json; charset=utf-8",
    )


def _problem(message: str, status: int = 400) -> Response:
    return _json({"error": "BAD_ADMIN_REQUEST", "error_description": message}, status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the admin API takes a JSON object")
    return data


def admin_routes(portal: Portal) -> list[Route]:
    def admin_ctx() -> CallContext:
        return CallContext(portal, 1, frozenset(ALL_SCOPES), auth_kind="admin", auth_key="admin")

    def guarded(handler: Callable[[Request, dict[str, Any]], Awaitable[Response] | Response]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                body = await _body(request)
                result = handler(request, body)
                if isinstance(result, Response):
                    return result
                return await result
            except RestError as exc:
                return _json(exc.body(), exc.status)
            except (ValueError, TypeError, KeyError) as exc:
                return _problem(f"{type(exc).__name__}: {exc}")

        return endpoint

    def info(request: Request, body: dict[str, Any]) -> Response:
        return _json(
            {
                "profile": portal.config.profile,
                "time_scale": portal.config.time_scale,
                "seed": portal.config.seed,
                "anchor_date": portal.anchor.isoformat(),
                "counts": {
                    "users": len(portal.state.users),
                    "tasks": len(portal.state.tasks),
                    "events": len(portal.state.events),
                    "departments": len(portal.state.departments),
                },
                "seeded_counts": portal.state.seeded_counts,
                "webhook_url": portal.webhook_url(portal.admin_webhook),
                "event_handler": portal.events.handler_url,
                "now": portal.clock.now(),
            }
        )

    def reset(request: Request, body: dict[str, Any]) -> Response:
        portal.reset()
        return _json({"ok": True, "counts": portal.state.seeded_counts})

    def counters(request: Request, body: dict[str, Any]) -> Response:
        return _json(portal.counters.as_dict())

    def limits(request: Request, body: dict[str, Any]) -> Response:
        return _json(
            {
                "bucket_level": portal.bucket.current() if portal.bucket else None,
                "bucket_size": portal.limits.bucket_size,
                "drain_per_second": portal.limits.drain_per_second,
                "operating_limit": portal.limits.operating_limit,
                "operating": portal.budget.snapshot(),
            }
        )

    def clock(request: Request, body: dict[str, Any]) -> Response:
        if request.method == "POST":
            portal.clock.advance(float(body.get("advance", 0)))
        return _json(
            {
                "now": portal.clock.now(),
                "iso": portal.clock.iso(portal.clock.now()),
                "time_scale": portal.clock.time_scale,
                "frozen": portal.clock.frozen,
            }
        )

    def webhooks(request: Request, body: dict[str, Any]) -> Response:
        scopes = body.get("scopes", list(ALL_SCOPES))
        if not isinstance(scopes, list):
            raise ValueError("scopes must be a list of scope codes")
        hook = portal.add_webhook(user_id=int(body.get("user_id", 1)), scopes=[str(s) for s in scopes])
        return _json(
            {
                "id": hook.id,
                "webhook_url": portal.webhook_url(hook),
                "token": hook.token,
                "user_id": hook.user_id,
                "scopes": sorted(hook.scopes),
            }
        )

    def edit_webhook(request: Request, body: dict[str, Any]) -> Response:
        """The webhook's owner ticks other scopes in the portal: same URL, new permissions."""
        scopes = body.get("scopes")
        if not isinstance(scopes, list):
            raise ValueError("scopes must be a list of scope codes")
        hook_id = intval(request.path_params["id"])
        hook = next((h for h in portal.webhooks.values() if h.id == hook_id), None)
        if hook is None:
            return _problem("no such webhook", 404)
        hook.scopes = frozenset(str(s) for s in scopes) | {"basic"}
        return _json({"id": hook.id, "webhook_url": portal.webhook_url(hook), "scopes": sorted(hook.scopes)})

    def add_user(request: Request, body: dict[str, Any]) -> Response:
        fields = {k.upper(): v for k, v in body.items()}
        now = float(int(portal.clock.now()))
        user = User(
            id=portal.state.users.next_id(),
            active=bool(fields.get("ACTIVE", True)),
            name=str(fields.get("NAME", "")),
            last_name=str(fields.get("LAST_NAME", "")),
            second_name=str(fields.get("SECOND_NAME", "")),
            email=str(fields.get("EMAIL", "")),
            gender=str(fields.get("PERSONAL_GENDER", "")),
            birthday=str(fields.get("PERSONAL_BIRTHDAY", "")),
            position=str(fields.get("WORK_POSITION", "")),
            work_phone=str(fields.get("WORK_PHONE", "")),
            mobile=str(fields.get("PERSONAL_MOBILE", "")),
            city=str(fields.get("PERSONAL_CITY", "")),
            departments=[int(d) for d in fields.get("UF_DEPARTMENT", [1])],
            user_type=str(fields.get("USER_TYPE", "employee")),
            date_register=portal.clock.now_dt().date().isoformat(),
            last_login=None,
            timestamp_x=now,
            is_online=False,
            employment_date=str(fields.get("UF_EMPLOYMENT_DATE", "")),
            xml_id=str(fields.get("XML_ID", "")),
        )
        if user.user_type == "extranet":
            user.departments = []
        portal.state.users.add(user)
        record = user_record(user, admin_ctx())
        if user.user_type == "employee":  # ONUSERADD is not sent for external user types
            keys = (
                "ID",
                "ACTIVE",
                "EMAIL",
                "NAME",
                "LAST_NAME",
                "PERSONAL_GENDER",
                "PERSONAL_BIRTHDAY",
                "UF_DEPARTMENT",
                "DATE_REGISTER",
                "WORK_POSITION",
                "UF_EMPLOYMENT_DATE",
            )
            portal.emit("ONUSERADD", {k: record[k] for k in keys if k in record})
        return _json(record, 201)

    def patch_user(request: Request, body: dict[str, Any]) -> Response:
        user = portal.state.users.get(intval(request.path_params["id"]))
        if user is None:
            return _problem("no such user", 404)
        fields = {k.upper(): v for k, v in body.items()}
        mapping = {
            "ACTIVE": "active",
            "NAME": "name",
            "LAST_NAME": "last_name",
            "EMAIL": "email",
            "WORK_POSITION": "position",
            "PERSONAL_MOBILE": "mobile",
            "WORK_PHONE": "work_phone",
            "SECOND_NAME": "second_name",
        }
        for key, attr in mapping.items():
            if key in fields:
                setattr(user, attr, bool(fields[key]) if key == "ACTIVE" else str(fields[key]))
        if "UF_DEPARTMENT" in fields:
            user.departments = [int(d) for d in fields["UF_DEPARTMENT"]]
        user.timestamp_x = float(int(portal.clock.now()))
        return _json(user_record(user, admin_ctx()))

    def add_task(request: Request, body: dict[str, Any]) -> Response:
        task = create_task(admin_ctx(), {k.upper(): v for k, v in body.items()})
        return _json(task_record(task, admin_ctx(), None, full=True), 201)

    def change_task(request: Request, body: dict[str, Any]) -> Response:
        task_id = intval(request.path_params["id"])
        if request.method == "DELETE":
            delete_task(admin_ctx(), task_id)
            return _json({"deleted": task_id})
        task = update_task(admin_ctx(), task_id, {k.upper(): v for k, v in body.items()})
        return _json(task_record(task, admin_ctx(), None, full=True))

    def _times(body: dict[str, Any]) -> tuple[float | None, float | None]:
        start = parse_datetime(body["from"], portal.tz) if body.get("from") else None
        end = parse_datetime(body["to"], portal.tz) if body.get("to") else None
        return start, end

    def add_event(request: Request, body: dict[str, Any]) -> Response:
        start, end = _times(body)
        if start is None or end is None:
            raise ValueError("'from' and 'to' are required ISO datetimes")
        cal_type = str(body.get("type", "user"))
        event = create_event(
            admin_ctx(),
            cal_type=cal_type,
            owner=0 if cal_type == "company_calendar" else int(body.get("ownerId", 1)),
            name=str(body.get("name", "Event")),
            start=start,
            end=end,
            skip_time=bool(body.get("skip_time", False)),
            description=str(body.get("description", "")),
            location=str(body.get("location", "")),
        )
        return _json(event_record(event, admin_ctx()), 201)

    def change_event(request: Request, body: dict[str, Any]) -> Response:
        event_id = intval(request.path_params["id"])
        if request.method == "DELETE":
            delete_event(admin_ctx(), event_id)
            return _json({"deleted": event_id})
        start, end = _times(body)
        event = update_event(
            admin_ctx(),
            event_id,
            {
                "name": body.get("name"),
                "description": body.get("description"),
                "location": body.get("location"),
                "date_from": start,
                "date_to": end,
            },
        )
        return _json(event_record(event, admin_ctx()))

    def faults(request: Request, body: dict[str, Any]) -> Response:
        if request.method == "DELETE":
            portal.faults.clear()
        else:
            methods = body.get("methods")
            portal.faults.set(
                FaultPlan(
                    rate=float(body.get("rate", 1.0)),
                    kinds=tuple(str(k) for k in body.get("kinds", ["500"])),
                    methods=frozenset(str(m).lower() for m in methods) if methods else None,
                    remaining=int(body["count"]) if body.get("count") is not None else None,
                    slow_seconds=float(body.get("slow_seconds", 30.0)),
                    seed=int(body.get("seed", 0)),
                )
            )
        plan = portal.faults.plan
        return _json(
            {
                "rate": plan.rate,
                "kinds": list(plan.kinds),
                "remaining": plan.remaining,
                "methods": sorted(plan.methods) if plan.methods else None,
            }
        )

    def overrides(request: Request, body: dict[str, Any]) -> Response:
        state = portal.state
        if request.method == "DELETE":
            cleared = len(state.overrides)
            state.overrides.clear()
            return _json({"cleared": cleared})
        if request.method == "POST":
            entity = str(body.get("entity", ""))
            if entity not in OVERRIDABLE:
                raise ValueError(f"entity must be one of {', '.join(OVERRIDABLE)}")
            row_id = intval(body.get("id"))
            if getattr(state, entity).get(row_id) is None:
                return _problem(f"no such {entity[:-1]} {row_id}", 404)
            fields = body.get("fields") or {}
            remove = body.get("remove") or []
            if not isinstance(fields, dict) or not isinstance(remove, list):
                raise ValueError("fields must be an object and remove a list of keys")
            state.overrides[(entity, row_id)] = Override(dict(fields), tuple(str(k) for k in remove))
        return _json(
            [
                {"entity": entity, "id": row_id, "fields": o.fields, "remove": list(o.remove)}
                for (entity, row_id), o in state.overrides.items()
            ]
        )

    def oauth_app(request: Request, body: dict[str, Any]) -> Response:
        scopes = frozenset(str(s) for s in body.get("scopes", list(ALL_SCOPES)))
        app = portal.oauth.create_app(
            scopes=scopes, user_id=int(body.get("user_id", 1)), expires_in=int(body.get("expires_in", 3600))
        )
        tokens = portal.oauth.issue(app, portal_info=portal.oauth_portal_info())
        return _json(
            {
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "token_url": f"{portal.base_url}/oauth/token/",
                **tokens,
            }
        )

    def oauth_expire(request: Request, body: dict[str, Any]) -> Response:
        return _json({"expired": portal.oauth.expire_all()})

    async def oauth_install(request: Request, body: dict[str, Any]) -> Response:
        return _json(await install_app(portal, body))

    async def oauth_uninstall(request: Request, body: dict[str, Any]) -> Response:
        return _json(await uninstall_app(portal, body))

    def event_handler(request: Request, body: dict[str, Any]) -> Response:
        if request.method in ("PUT", "POST"):
            portal.events.configure(body.get("url"), body.get("application_token"))
        return _json({"url": portal.events.handler_url, "configured": portal.events.configured})

    def notifications(request: Request, body: dict[str, Any]) -> Response:
        return _json(
            [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "user_id": n.user_id,
                    "from_user_id": n.from_user_id,
                    "message": n.message,
                    "tag": n.tag,
                }
                for n in portal.state.notifications
            ]
        )

    return [
        Route("/", guarded(info), methods=["GET"]),
        Route("/reset", guarded(reset), methods=["POST"]),
        Route("/counters", guarded(counters), methods=["GET"]),
        Route("/limits", guarded(limits), methods=["GET"]),
        Route("/clock", guarded(clock), methods=["GET", "POST"]),
        Route("/webhooks", guarded(webhooks), methods=["POST"]),
        Route("/webhooks/{id}", guarded(edit_webhook), methods=["PATCH"]),
        Route("/users", guarded(add_user), methods=["POST"]),
        Route("/users/{id}", guarded(patch_user), methods=["PATCH"]),
        Route("/tasks", guarded(add_task), methods=["POST"]),
        Route("/tasks/{id}", guarded(change_task), methods=["PATCH", "DELETE"]),
        Route("/events", guarded(add_event), methods=["POST"]),
        Route("/events/{id}", guarded(change_event), methods=["PATCH", "DELETE"]),
        Route("/faults", guarded(faults), methods=["POST", "DELETE"]),
        Route("/overrides", guarded(overrides), methods=["GET", "POST", "DELETE"]),
        Route("/oauth/apps", guarded(oauth_app), methods=["POST"]),
        Route("/oauth/expire", guarded(oauth_expire), methods=["POST"]),
        Route("/oauth/install", guarded(oauth_install), methods=["POST"]),
        Route("/oauth/uninstall", guarded(oauth_uninstall), methods=["POST"]),
        Route("/event-handler", guarded(event_handler), methods=["GET", "PUT", "POST"]),
        Route("/notifications", guarded(notifications), methods=["GET"]),
    ]
