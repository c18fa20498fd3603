"""``Bitrix24Client``: the public face of layer 1.

Usage::

    with Bitrix24Client(webhook_url=os.environ["BITRIX24_WEBHOOK_URL"]) as client:
        for task in client.get_tasks(select=["ID", "TITLE", "CHANGED_DATE"]):
            ...

Every call goes through :class:`~.transport.Transport` (OAuth refresh -> operating budget -> retries ->
leaky bucket + one HTTP request); every list goes through :func:`~.paging.enumerate_list`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from . import errors
from .batch import MAX_COMMANDS, BatchResult, as_map, command_method, parse_batch
from .oauth import OAuthCredentials
from .paging import ListSpec, Page, Progress, enumerate_list, spec_for
from .query import build_command
from .transport import Stats, Transport, is_read_method

__all__ = ["PLANS", "Bitrix24Client"]

log = logging.getLogger(__name__)

PLANS: dict[str, tuple[int, float]] = {
    "auto": (50, 2.0),
    "cloud": (50, 2.0),
    "enterprise": (250, 5.0),
    "self-hosted": (50, 2.0),
}
"""Leaky-bucket size and drain per plan (reference §4.1); the bucket exists in the cloud only."""

METERED: dict[str, bool | None] = {"auto": None, "cloud": True, "enterprise": True, "self-hosted": False}
"""Whether the plan's portal paces requests; ``None``: learn it from the first answer (limits.py)."""

DEFAULT_OVERLAP = timedelta(minutes=1)

Command = str | tuple[str, Mapping[str, Any]]


class Bitrix24Client:
    """A Bitrix24 portal, reached through an inbound webhook or an OAuth application.

    Parameters:
        webhook_url: ``https://<portal>/rest/<user id>/<code>/`` (a secret: never logged or shown).
        oauth: :class:`~.oauth.OAuthCredentials` instead of a webhook.
        on_token_refresh: called with the new credentials (a plain dict) after each OAuth refresh.
        plan: ``"auto"`` (default: cloud pacing, 50 then 2/s, until an answer without
            ``time.operating`` shows an unmetered portal), ``"cloud"``, ``"enterprise"`` (250, 5/s)
            or ``"self-hosted"`` (no pacing until a ``QUERY_LIMIT_EXCEEDED``); ``rate_limit``
            overrides the bucket size and drain.
        operating_limit: server seconds per method per 10 minutes (480 in the cloud).
        max_lanes: concurrent batches when enumerating a big list.
        time_scale: wall seconds per modelled second (1 for real portals; the sandbox's scale in tests).
        timeout: wall seconds per HTTP request.
        transport: an ``httpx`` transport (e.g. ``httpx.MockTransport`` in unit tests).
    """

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        oauth: OAuthCredentials | None = None,
        on_token_refresh: Callable[[dict[str, Any]], None] | None = None,
        plan: str = "auto",
        rate_limit: tuple[int, float] | None = None,
        operating_limit: float = 480.0,
        max_lanes: int = 8,
        time_scale: float = 1.0,
        timeout: float = 60.0,
        max_attempts: int = 6,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if plan not in PLANS:
            raise errors.ClientConfigError(f"unknown plan {plan!r}", hint=f"use one of {', '.join(PLANS)}")
        self.max_lanes = max(1, max_lanes)
        self._t = Transport(
            webhook_url=webhook_url,
            oauth=oauth,
            time_scale=time_scale,
            timeout=timeout,
            rate_limit=rate_limit or PLANS[plan],
            metered=METERED[plan],
            operating_limit=operating_limit,
            max_attempts=max_attempts,
            on_token_refresh=on_token_refresh,
            transport=transport,
            max_connections=max(16, 2 * self.max_lanes),
        )
        self._closed = False

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def portal(self) -> str:
        """The portal's URL with the secret masked (``https://acme.bitrix24.ru/rest/1/***/``)."""
        return self._t.portal

    @property
    def stats(self) -> Stats:
        """Requests, retries, waits and the latest ``time.operating`` per method."""
        return self._t.stats

    def __repr__(self) -> str:
        return f"Bitrix24Client(portal={self.portal!r})"

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._t.close()

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ClientConfigError(
                "the client has been closed", portal=self.portal, hint="create a new Bitrix24Client"
            )

    # -- generic calls -------------------------------------------------------------------------

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, idempotent: bool | None = None
    ) -> Any:
        """Call one REST method and return its ``result``.

        ``idempotent`` says whether a retry after a timeout/5xx is safe; by default only reading
        methods (``*.get``, ``*.list``, ...) are retried that way, writes only when the portal
        provably did not run them (rate limited, connection refused).
        """
        self._check_open()
        if method.lower() == "batch":
            raise errors.ClientConfigError(
                "use client.batch() for batch",
                method=method,
                portal=self.portal,
                hint="call client.batch({key: 'method?query'})",
            )
        return self._t.send(method, params, idempotent=idempotent).result

    def batch(
        self, commands: Mapping[str, Command], *, halt: bool = False, raise_errors: bool = True
    ) -> BatchResult:
        """Run up to 50 commands in one request.

        ``commands`` maps a key to ``"method?query"`` or ``(method, params)``. Use non-numeric keys
        if you read ``.results`` positionally (PHP turns keys ``0..n-1`` into a list; we normalise).
        A failed sub-command raises its :class:`~.errors.BatchCommandError` (``raise_errors=False``
        defers that to reading the key).
        """
        self._check_open()
        if not commands:
            return BatchResult()
        if len(commands) > MAX_COMMANDS:
            raise errors.ClientConfigError(
                f"{len(commands)} commands given",
                method="batch",
                portal=self.portal,
                hint=f"split them into batches of at most {MAX_COMMANDS} commands",
            )
        cmd = {str(k): (v if isinstance(v, str) else build_command(v[0], v[1])) for k, v in commands.items()}
        methods = tuple(sorted({command_method(c) for c in cmd.values()}))
        if "batch" in methods:
            raise errors.ClientConfigError(
                "batch cannot contain batch",
                method="batch",
                portal=self.portal,
                hint="flatten the commands into one batch",
            )
        envelope = self._t.send(
            "batch",
            {"halt": 1 if halt else 0, "cmd": cmd},
            idempotent=all(is_read_method(m) for m in methods),
            budget_methods=methods,
        )
        result = parse_batch(envelope.result, cmd, portal=self.portal, scrub=self._t.redactor)
        by_method: dict[str, list[Any]] = {}
        for key, raw_time in result.time.items():
            by_method.setdefault(command_method(cmd.get(key, "batch")), []).append(raw_time)
        for sub_method, times in by_method.items():
            self._t.observe_sub(sub_method, times)
        if raise_errors:
            result.raise_for_errors()
        return result

    def iter_list(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        progress: Callable[[Progress], None] | None = None,
        spec: ListSpec | None = None,
        max_lanes: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record of a list method, streamed, each once (order not guaranteed across lanes)."""
        self._check_open()
        return enumerate_list(
            self, method, params, max_lanes=max_lanes or self.max_lanes, progress=progress, spec=spec
        )

    # -- Fetcher protocol for paging -------------------------------------------------------------

    def call_page(self, method: str, params: Mapping[str, Any]) -> Page:
        spec = spec_for(method)
        env = self._t.send(method, params)
        return Page(rows=spec.items(env.result), next=env.next, total=env.total)

    def batch_pages(self, spec: ListSpec, commands: dict[str, str]) -> list[Page]:
        result = self.batch(commands, raise_errors=False)
        return [
            Page(
                rows=spec.items(result.results.get(k)),
                error=(result.errors[k].error if k in result.errors else None),
                next=result.next.get(k),
                total=result.total.get(k),
            )
            for k in commands
        ]

    def operation_blocked(self, method: str) -> None:
        self._t.budget.blocked(method)

    # -- users and departments -----------------------------------------------------------------

    def get_users(
        self,
        filter: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
        *,
        progress: Callable[[Progress], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """All users matching ``filter`` (active and inactive unless filtered), raw ``user.get`` records."""
        params: dict[str, Any] = {}
        if filter:
            params["filter"] = dict(filter)
        if select:
            params["select"] = _with(select, "ID")
        return self.iter_list("user.get", params, progress=progress)

    def get_user_by_email(self, email: str) -> dict[str, Any] | None:
        """The user with this e-mail (exact match), or None when the portal has no such user."""
        rows = self.call("user.get", {"filter": {"=EMAIL": email.strip()}})
        rows = rows if isinstance(rows, list) else []
        exact = [r for r in rows if str(r.get("EMAIL", "")).lower() == email.strip().lower()]
        return (exact or rows or [None])[0]

    def get_departments(self) -> list[dict[str, Any]]:
        """All departments (``department.get`` pages with ``start``: it has no ``>ID`` filter)."""
        return list(self.iter_list("department.get", {}))

    # -- tasks -----------------------------------------------------------------------------------

    def get_tasks(
        self,
        filter: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
        changed_since: datetime | None = None,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        progress: Callable[[Progress], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Tasks as ``tasks.task.list`` returns them (camelCase keys).

        ``changed_since`` reads incrementally: ``>=CHANGED_DATE`` at ``changed_since - overlap``
        (the portal compares whole seconds, and clocks drift). Store the next cursor with
        :class:`~.cursors.TaskCursor`, never "now".
        """
        flt = dict(filter or {})
        if changed_since is not None:
            if changed_since.tzinfo is None:
                raise errors.ClientConfigError(
                    "changed_since has no time zone",
                    method="tasks.task.list",
                    portal=self.portal,
                    hint="pass an aware datetime (e.g. datetime.now(UTC)) so the portal cannot misread it",
                )
            flt[">=CHANGED_DATE"] = (changed_since - overlap).isoformat(timespec="seconds")
        params: dict[str, Any] = {}
        if flt:
            params["filter"] = flt
        if select:
            params["select"] = _with(select, "ID", *(["CHANGED_DATE"] if changed_since else []))
        return self.iter_list("tasks.task.list", params, progress=progress)

    def create_task(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``tasks.task.add``; returns the created task (camelCase); needs ``TITLE``, ``RESPONSIBLE_ID``."""
        missing = [k for k in ("TITLE", "RESPONSIBLE_ID") if not fields.get(k)]
        if missing:
            raise errors.ClientConfigError(
                f"task fields lack {', '.join(missing)}",
                method="tasks.task.add",
                portal=self.portal,
                hint="pass TITLE and RESPONSIBLE_ID",
            )
        result = self.call("tasks.task.add", {"fields": dict(fields)})
        task = result.get("task") if isinstance(result, dict) else None
        if not isinstance(task, dict):
            raise errors.ServerError(
                "tasks.task.add returned no task", method="tasks.task.add", portal=self.portal
            )
        return task

    # -- calendar ------------------------------------------------------------------------------

    def create_event(self, fields: Mapping[str, Any]) -> int:
        """``calendar.event.add``; returns the new event id.

        The docs and the source disagree on whether ``section`` may be omitted (reference §6.8,
        AMBIGUOUS), so without ``section`` we always send ``auto_detect_section=Y``.
        """
        params = dict(fields)
        params.setdefault("ownerId", 0 if params.get("type") == "company_calendar" else params.get("ownerId"))
        if "section" not in params:
            params.setdefault("auto_detect_section", "Y")
        return int(self.call("calendar.event.add", params))

    def get_events(
        self,
        date_from: date | datetime,
        date_to: date | datetime,
        *,
        group_ids: Iterable[int] | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every event of every calendar (each active user's, each group's, the company's) in the window.

        ``calendar.event.get`` has no pagination, so each calendar is one command; they go 50 per
        batch, several batches at once. A meeting appears in the host's and every attendee's
        calendar; it is returned once, preferring the host's copy (``ID == PARENT_ID``).
        Groups come from ``sonet_group.get`` unless ``group_ids`` is given.
        """
        window = {"from": _iso(date_from), "to": _iso(date_to)}
        owners: list[tuple[str, int]] = [("company_calendar", 0)]
        owners += [("user", int(u["ID"])) for u in self.get_users({"ACTIVE": True}, ["ID"])]
        groups = list(group_ids) if group_ids is not None else self._group_ids()
        owners += [("group", int(g)) for g in groups]
        chunks = [owners[i : i + MAX_COMMANDS] for i in range(0, len(owners), MAX_COMMANDS)]
        state = Progress("calendar.event.get", estimated_total=None)
        kept: dict[str, dict[str, Any]] = {}

        def run(chunk: list[tuple[str, int]]) -> list[dict[str, Any]]:
            cmd = {
                f"{t}_{o}": build_command("calendar.event.get", {"type": t, "ownerId": o, **window})
                for t, o in chunk
            }
            result = self.batch(cmd)
            return [e for k in cmd for e in as_map(result.results.get(k)).values() if isinstance(e, dict)]

        with ThreadPoolExecutor(max_workers=min(self.max_lanes, max(1, len(chunks)))) as pool:
            for events in pool.map(run, chunks):
                state.pages += 1
                state.records += len(events)
                for event in events:
                    _keep_meeting_copy(kept, event)
                if progress:
                    progress(state)
        return iter(kept.values())

    def _group_ids(self) -> list[int]:
        """Every workgroup's ID. ``IS_ADMIN=Y`` makes an administrator's webhook see invisible
        groups too (others get the groups they may see; the portal ignores the flag for them)."""
        params = {"ORDER": {"ID": "ASC"}, "IS_ADMIN": "Y"}
        try:
            return [int(g["ID"]) for g in self.iter_list("sonet_group.get", params)]
        except (errors.MethodNotFoundError, errors.ScopeError) as exc:
            log.warning("group calendars skipped on %s: %s", self.portal, exc)
            return []

    # -- notifications ---------------------------------------------------------------------------

    def notify(self, user_id: int, message: str, *, personal: bool = False, tag: str | None = None) -> int:
        """Send a notification (system by default; ``personal`` sends it from the webhook's user).

        Returns the notification id. Not retried after a timeout (it could arrive twice).
        """
        if not str(message).strip():
            raise errors.ClientConfigError(
                "empty notification",
                method="im.notify.system.add",
                portal=self.portal,
                hint="pass a non-empty message",
            )
        method = "im.notify.personal.add" if personal else "im.notify.system.add"
        params: dict[str, Any] = {"USER_ID": int(user_id), "MESSAGE": message}
        if tag:  # webhooks must send CLIENT_ID with TAG (reference §6.10)
            params.update(TAG=tag, CLIENT_ID="bitrix24-assets")
        result = self.call(method, params)
        if result is False or result is None:
            raise errors.BadRequestError(
                "the portal did not create the notification", method=method, portal=self.portal
            )
        return int(result)


def _with(select: Sequence[str], *required: str) -> list[str]:
    out = list(select)
    for field in required:
        if field not in {s.upper() for s in out}:
            out.insert(0, field)
    return out


def _iso(value: date | datetime | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat(timespec="seconds")
    return value.isoformat()


def _keep_meeting_copy(kept: dict[str, dict[str, Any]], event: dict[str, Any]) -> None:
    """Keep one copy per meeting: the parent (host) copy wins over attendee copies."""
    eid = str(event.get("ID", ""))
    parent = str(event.get("PARENT_ID") or eid)
    key = parent or eid
    current = kept.get(key)
    if current is None or (eid == parent and str(current.get("ID")) != parent):
        kept[key] = event
