"""``Bitrix24Client``: the public face of layer 1.

Usage::

    with Bitrix24Client(webhook_url=os.environ["BITRIX24_WEBHOOK_URL"]) as client:
        for task in client.get_tasks(select=["ID", "TITLE", "CHANGED_DATE"]):
            ...

Every call goes through :class:`~.transport.Transport` (OAuth refresh -> operating budget -> retries ->
leaky bucket + one HTTP request); every list goes through :func:`~.paging.enumerate_list`.

Reads return :class:`~.paging.ListRead` / :class:`EventsRead`: iterators whose ``dropped``,
``verified`` and ``counted_total`` (and ``owners`` for events) say what the read proved once it is
exhausted. A full sync removes records only on the strength of such a proof.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from . import errors
from .batch import MAX_COMMANDS, BatchResult, as_map, command_method, parse_batch
from .envelope import Envelope
from .oauth import OAuthCredentials
from .paging import (
    NOT_AN_OBJECT,
    REPEATED,
    Check,
    ListRead,
    ListSpec,
    Page,
    Progress,
    enumerate_list,
    read_id,
)
from .query import build_command
from .transport import Stats, Transport, is_read_method

__all__ = ["PLANS", "Bitrix24Client", "EventsRead"]

MEETING_COPY = "attendee copy of a meeting"
"""Why ``get_events`` drops an event it received: the host's copy of that meeting is kept."""

log = logging.getLogger(__name__)

PLANS: dict[str, tuple[int, float]] = {
    "auto": (50, 2.0),
    "cloud": (50, 2.0),
    "enterprise": (250, 5.0),
    "self-hosted": (50, 2.0),
}
"""Leaky-bucket size and drain per plan (Bitrix24 docs, "Limits"); the bucket exists in the cloud only."""

METERED: dict[str, bool | None] = {"auto": None, "cloud": True, "enterprise": True, "self-hosted": False}
"""Whether the plan's portal paces requests; ``None``: learn it from the first answer (limits.py)."""

DEFAULT_OVERLAP = timedelta(minutes=1)

Command = str | tuple[str, Mapping[str, Any]]


class EventsRead(ListRead):
    """The events of one calendar read (see :meth:`Bitrix24Client.get_events`).

    ``owners``: the calendars that were read, as ``(calendar_type, owner_id)`` with calendar_type in
    ``{"user", "group", "company_calendar"}`` and owner_id canonical decimal text (``"0"`` for the
    company calendar). Only events of these owners may be treated as gone when they were not seen.
    ``verified``: every calendar listed was answered and the list of users whose calendars were read
    was itself proven complete.
    """

    def __init__(
        self,
        rows: Iterator[dict[str, Any]],
        owners: frozenset[tuple[str, str]],
        *,
        dropped: Counter[str] | None = None,
        verified: bool = False,
    ) -> None:
        super().__init__("calendar.event.get", rows)
        self.owners = owners
        self.dropped.update(dropped or {})
        self.verified = verified

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, owners={len(self.owners)})"


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
        self._scopes: frozenset[str] | None = None
        self._scopes_lock = threading.Lock()

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
        defers that to reading the key). An answer without one of the commands (in neither
        ``result`` nor ``result_error``) is broken: a batch of reads is sent again like after a 5xx,
        and :class:`~.errors.IncompleteReadError` is raised when the attempts are used up (at once
        for a batch that writes).
        """
        return self._batch(commands, halt=halt, raise_errors=raise_errors)

    def _batch(
        self,
        commands: Mapping[str, Command],
        *,
        halt: bool = False,
        raise_errors: bool = True,
        check: Callable[[BatchResult], None] | None = None,
    ) -> BatchResult:
        """:meth:`batch`, with ``check(result)`` run on every answer inside the retry path."""
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
        accepted: list[BatchResult] = []
        named = methods[0] if len(methods) == 1 else "batch"

        def validate(envelope: Envelope) -> None:
            result = parse_batch(envelope.result, cmd, portal=self.portal, scrub=self._t.redactor)
            by_method: dict[str, list[Any]] = {}
            for key, raw_time in result.time.items():
                by_method.setdefault(command_method(cmd.get(key, "batch")), []).append(raw_time)
            for sub_method, times in by_method.items():
                self._t.observe_sub(sub_method, times)
            absent = result.missing(cmd, halt=halt)
            if absent:
                shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
                raise errors.IncompleteReadError(
                    f"the batch answer has neither a result nor an error for {len(absent)} of its "
                    f"{len(cmd)} commands ({shown})",
                    method=named,
                    portal=self.portal,
                )
            if check is not None:
                check(result)
            accepted.append(result)

        self._t.send(
            "batch",
            {"halt": 1 if halt else 0, "cmd": cmd},
            idempotent=all(is_read_method(m) for m in methods),
            budget_methods=methods,
            validate=validate,
        )
        result = accepted[-1]
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
        verify: bool = True,
    ) -> ListRead:
        """Every record of a list method, streamed, each once (order not guaranteed across lanes).

        The returned :class:`~.paging.ListRead` raises :class:`~.errors.IncompleteReadError` instead
        of ending short; once exhausted, ``dropped`` counts what was received but not yielded, and
        ``verified`` says whether the completeness proof ran and passed: ``verify=True`` (default)
        ends a keyset enumeration with one counted request; pass False for reads that remove
        nothing (incremental ones). Records whose ID cannot be read are yielded, never dropped.
        """
        self._check_open()
        return enumerate_list(
            self,
            method,
            params,
            max_lanes=max_lanes or self.max_lanes,
            progress=progress,
            spec=spec,
            verify=verify,
        )

    # -- Fetcher protocol for paging -------------------------------------------------------------

    def batch_pages(self, spec: ListSpec, commands: dict[str, str], check: Check | None = None) -> list[Page]:
        """One round of list pages; ``check(pages)`` runs inside the retry path (a contradiction is
        sent again like a 5xx). A command whose result has no list where the rows belong is a
        broken answer too."""
        built: list[list[Page]] = []

        def pages_of(result: BatchResult) -> None:
            pages = []
            for key in commands:
                if key in result.errors:
                    pages.append(Page(error=result.errors[key].error))
                    continue
                raw = result.results.get(key)
                rows = spec.items(raw)
                if rows is None:
                    raise errors.IncompleteReadError(
                        f"batch command '{key}' answered with {type(raw).__name__} where a list of records "
                        "belongs",
                        method=spec.method,
                        portal=self.portal,
                    )
                pages.append(Page(rows=rows, next=result.next.get(key), total=result.total.get(key)))
            if check is not None:
                check(pages)
            built.append(pages)

        self._batch(commands, raise_errors=False, check=pages_of)
        return built[-1]

    def operation_blocked(self, method: str) -> None:
        self._t.budget.blocked(method)

    # -- users and departments -----------------------------------------------------------------

    def get_users(
        self,
        filter: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
        *,
        progress: Callable[[Progress], None] | None = None,
    ) -> ListRead:
        """All users matching ``filter`` (active and inactive unless filtered), raw ``user.get`` records,
        proven complete (see :meth:`iter_list`)."""
        params: dict[str, Any] = {}
        if filter:
            params["filter"] = dict(filter)
        if select:
            params["select"] = _with(select, "ID")
        return self.iter_list("user.get", params, progress=progress)

    def get_user_by_email(self, email: str) -> dict[str, Any] | None:
        """The user whose e-mail is exactly ``email`` (case-insensitive, spaces stripped), or None.

        Only an exact match is returned: a portal that ignores the filter answers with other users,
        and handing one of them back would link the wrong person.
        """
        wanted = email.strip().lower()
        if not wanted:
            return None
        rows = as_map(self.call("user.get", {"filter": {"=EMAIL": email.strip()}})).values()
        return next(
            (r for r in rows if isinstance(r, dict) and str(r.get("EMAIL") or "").strip().lower() == wanted),
            None,
        )

    def get_departments(self) -> list[dict[str, Any]]:
        """All departments (``department.get`` pages with ``start``: it has no ``>ID`` filter)."""
        return list(self.iter_list("department.get", {}))

    def scopes(self) -> frozenset[str]:
        """The scopes of the webhook or application (method ``scope``), asked once per client.

        An answer that is not a non-empty list of scope codes is broken (every webhook has one), so
        it is sent again instead of being read as "no scopes".
        """
        with self._scopes_lock:
            if self._scopes is None:
                self._check_open()

                def validate(envelope: Envelope) -> None:
                    codes = list(as_map(envelope.result).values())
                    if not codes or not all(isinstance(c, str) for c in codes):
                        raise errors.IncompleteReadError(
                            "the answer is not a list of scope codes", method="scope", portal=self.portal
                        )

                envelope = self._t.send("scope", None, validate=validate)
                self._scopes = frozenset(as_map(envelope.result).values())
            return self._scopes

    # -- tasks -----------------------------------------------------------------------------------

    def get_tasks(
        self,
        filter: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
        changed_since: datetime | None = None,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        progress: Callable[[Progress], None] | None = None,
    ) -> ListRead:
        """Tasks as ``tasks.task.list`` returns them (camelCase keys).

        ``changed_since`` reads incrementally: ``>=CHANGED_DATE`` at ``changed_since - overlap``
        (the portal compares whole seconds, and clocks drift). The next cursor is the largest
        ``changedDate`` read, never "now" (``bitrix24_assets.sync.cursors``). Without it the read is a
        full enumeration and ends with the counted cross-check (``verified``); an incremental read
        removes nothing, so it skips that request.
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
        return self.iter_list("tasks.task.list", params, progress=progress, verify=changed_since is None)

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

        The ``calendar.event.add`` docs and the calendar module's source disagree on whether
        ``section`` may be omitted, so without ``section`` we always send ``auto_detect_section=Y``.
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
    ) -> EventsRead:
        """Every event of every calendar (each active user's, each group's, the company's) in the window.

        ``calendar.event.get`` has no pagination, so each calendar is one command; they go 50 per
        batch, several batches at once. A calendar missing from a batch answer is a broken answer
        (retried, then :class:`~.errors.IncompleteReadError`), never an empty calendar. A meeting
        appears in the host's and every attendee's calendar; it is returned once, preferring the
        host's copy (``ID == PARENT_ID``); the other copies are counted in ``dropped``. Events whose
        ID cannot be read are yielded. Groups come from ``sonet_group.get`` unless ``group_ids`` is
        given. ``owners`` of the result names the calendars read: users whose ID cannot be read
        (and groups skipped for a missing scope) are not among them.
        """
        window = {"from": _iso(date_from), "to": _iso(date_to)}
        users = self.get_users({"ACTIVE": True}, ["ID"])
        owners: dict[tuple[str, int], None] = {("company_calendar", 0): None}
        for user in users:
            uid = read_id(user.get("ID"))
            if uid is not None:
                owners[("user", uid)] = None
        groups_verified = True
        if group_ids is not None:
            groups = [int(g) for g in group_ids]
        else:
            groups, groups_verified = self._group_ids()
        for gid in groups:
            owners[("group", gid)] = None
        calendars = list(owners)
        chunks = [calendars[i : i + MAX_COMMANDS] for i in range(0, len(calendars), MAX_COMMANDS)]
        state = Progress("calendar.event.get", estimated_total=None)
        dropped: Counter[str] = Counter()
        kept: dict[int, dict[str, Any]] = {}
        unidentified: list[dict[str, Any]] = []

        def run(chunk: list[tuple[str, int]]) -> list[Any]:
            cmd = {
                f"{t}_{o}": build_command("calendar.event.get", {"type": t, "ownerId": o, **window})
                for t, o in chunk
            }

            def check(result: BatchResult) -> None:
                for key in cmd:
                    raw = result.results.get(key)
                    if key not in result.errors and not isinstance(raw, list | dict):
                        raise errors.IncompleteReadError(
                            f"calendar '{key}' answered with {type(raw).__name__} "
                            "instead of a list of events",
                            method="calendar.event.get",
                            portal=self.portal,
                        )

            for _ in range(15):
                result = self._batch(cmd, raise_errors=False, check=check)
                limited = errors.OperationTimeLimitError
                if not any(isinstance(e.error, limited) for e in result.errors.values()):
                    break
                self.operation_blocked("calendar.event.get")  # wait for the reset, then the same batch
            result.raise_for_errors()
            return [e for k in cmd for e in as_map(result.results[k]).values()]

        with ThreadPoolExecutor(max_workers=min(self.max_lanes, max(1, len(chunks)))) as pool:
            for events in pool.map(run, chunks):
                state.pages += 1
                state.records += len(events)
                for event in events:
                    if not isinstance(event, dict):
                        dropped[NOT_AN_OBJECT] += 1
                    elif (reason := _keep_meeting_copy(kept, event)) == "unidentified":
                        unidentified.append(event)
                    elif reason is not None:
                        dropped[reason] += 1
                if progress:
                    progress(state)
        return EventsRead(
            iter([*kept.values(), *unidentified]),
            frozenset((t, str(o)) for t, o in calendars),
            dropped=dropped,
            verified=users.verified and groups_verified,
        )

    def _group_ids(self) -> tuple[list[int], bool]:
        """Every workgroup's ID, and whether that list was proven complete. ``IS_ADMIN=Y`` makes an
        administrator's webhook see invisible groups too (others get the groups they may see; the
        portal ignores the flag for them). Groups whose ID cannot be read are left out."""
        params = {"ORDER": {"ID": "ASC"}, "IS_ADMIN": "Y"}
        try:
            read = self.iter_list("sonet_group.get", params)
            ids = [gid for gid in (read_id(g.get("ID")) for g in read) if gid is not None]
            return ids, read.verified
        except (errors.MethodNotFoundError, errors.ScopeError) as exc:
            log.warning("group calendars skipped on %s: %s", self.portal, exc)
            return [], True

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
        if tag:  # webhooks must send CLIENT_ID with TAG (docs of ``im.notify.system.add``)
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


def _keep_meeting_copy(kept: dict[int, dict[str, Any]], event: dict[str, Any]) -> str | None:
    """Keep one copy per meeting: the parent (host) copy wins over attendee copies.

    Returns why ``event`` (or the copy it replaced) was not kept, ``"unidentified"`` for an event
    whose ID cannot be read (the caller yields it as is), or None.
    """
    eid = read_id(event.get("ID"))
    if eid is None:
        return "unidentified"
    parent = read_id(event.get("PARENT_ID")) or eid
    current = kept.get(parent)
    if current is None:
        kept[parent] = event
        return None
    current_id = read_id(current.get("ID"))
    if eid == parent and current_id != parent:
        kept[parent] = event
        return MEETING_COPY
    return REPEATED if eid == current_id else MEETING_COPY
