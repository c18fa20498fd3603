"""Enumerating list methods: one loop, two paginator strategies, parallel ID-range lanes.

**Keyset** (reference §2.1) for methods that accept ``>ID`` with ``order ID asc`` and ``start=-1``
(no ``COUNT(*)``, no ``OFFSET``: about a tenth of a counted page's server time). Up to 50 pages go
in one ``batch``, each page's ``>ID`` chained to the previous page's last row::

    p0: tasks.task.list?order[ID]=asc&filter[>ID]=1200&filter[<=ID]=5000&start=-1
    p1: tasks.task.list?order[ID]=asc&filter[>ID]=$result[p0][tasks][49][id]&filter[<=ID]=5000&start=-1

When ``p0`` has fewer than 50 rows, ``$result[p0][tasks][49]`` does not exist and the portal
substitutes the deepest path that does (the whole list), so every command after the first short
page is garbage (or an error) and is ignored. Batches are sized to the expected rows left so that
little server time is spent on such pages.

**Lanes**: one probe batch reads the first page ascending and descending (``start=-1``); the two
give the ID range and the density of IDs. The range is split into lanes of equal expected size
that run concurrently in a thread pool (the portal serves a few requests at once), the last lane
open-ended so rows added during the pull are still read. Records stream out through a bounded
queue; within a lane IDs only grow, so duplicates (a row seen twice while rows move) are dropped
with O(1) memory per lane.

**Counted** paging (``start``/``next``) only for methods without ``>ID`` filtering (``department.get``).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import errors
from .query import build_command

__all__ = [
    "LIST_SPECS",
    "CountedPaginator",
    "KeysetPaginator",
    "ListSpec",
    "Progress",
    "enumerate_list",
    "spec_for",
]

PAGE = 50
MIN_LANE_PAGES = 8  # fewer pages than this per lane: the extra batch costs more than it saves


@dataclass(frozen=True)
class ListSpec:
    """How one list method pages. ``items_key``: where the rows sit in ``result`` (``tasks``)."""

    method: str
    id_field: str = "ID"
    items_key: str | None = None
    keyset: bool = True
    sort_style: str = "order"  # "order": order={"ID": "asc"}; "sort": sort="ID"&order="ASC" (user.get)

    def order(self, direction: str) -> dict[str, Any]:
        if self.sort_style == "sort":
            return {"sort": "ID", "order": direction.upper()}
        return {"order": {"ID": direction.lower()}}

    def items(self, result: Any) -> list[dict[str, Any]]:
        if self.items_key is not None:
            result = result.get(self.items_key) if isinstance(result, dict) else None
        if isinstance(result, dict):  # PHP list with gaps -> object
            result = list(result.values())
        return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []

    def row_id(self, row: Mapping[str, Any]) -> int | None:
        raw = row.get(self.id_field)  # called for every row read: other spellings only when absent
        if raw is None:
            raw = row.get(self.id_field.upper(), row.get(self.id_field.lower()))
        try:
            return int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None

    def ref(self, key: str, index: int) -> str:
        """``$result[...]`` path to the ID of row ``index`` of command ``key``."""
        inner = f"[{self.items_key}]" if self.items_key else ""
        return f"$result[{key}]{inner}[{index}][{self.id_field}]"


LIST_SPECS: dict[str, ListSpec] = {
    "user.get": ListSpec("user.get", sort_style="sort"),
    "tasks.task.list": ListSpec("tasks.task.list", id_field="id", items_key="tasks"),
    "department.get": ListSpec("department.get", keyset=False),
    "crm.lead.list": ListSpec("crm.lead.list"),
    "crm.deal.list": ListSpec("crm.deal.list"),
    "crm.contact.list": ListSpec("crm.contact.list"),
    "crm.company.list": ListSpec("crm.company.list"),
    "socialnetwork.api.workgroup.list": ListSpec("socialnetwork.api.workgroup.list", keyset=False),
    "sonet_group.get": ListSpec("sonet_group.get", keyset=False),
}


def spec_for(method: str) -> ListSpec:
    """The spec of a known list method; unknown methods page with ``start`` (always correct, slower)."""
    return LIST_SPECS.get(method.lower(), ListSpec(method, keyset=False))


@dataclass
class Progress:
    """Handed to progress callbacks after every round of pages."""

    method: str
    pages: int = 0
    records: int = 0
    estimated_total: int | None = None


@dataclass
class Page:
    """One page of a round: rows, or the sub-command's error; ``next``/``total`` for counted pages."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    error: errors.ApiError | None = None
    next: int | None = None
    total: int | None = None


class Fetcher(Protocol):
    """What the paginators need from the client: one call, or one batch of named commands."""

    def call_page(self, method: str, params: Mapping[str, Any]) -> Page: ...

    def batch_pages(self, spec: ListSpec, commands: dict[str, str]) -> list[Page]: ...

    def operation_blocked(self, method: str) -> None: ...


class Paginator(Protocol):
    """A paging strategy: what to fetch next, and what a round of pages means."""

    done: bool

    def next_round(self) -> list[Mapping[str, Any]] | dict[str, str]: ...

    def update(self, pages: list[Page]) -> list[dict[str, Any]]: ...


class CountedPaginator:
    """``start=0, 50, ...`` following ``next``; de-duplicates by ID (offsets shift when rows change)."""

    def __init__(self, spec: ListSpec, params: Mapping[str, Any]) -> None:
        self.spec, self.params = spec, dict(params)
        self.start = 0
        self.done = False
        self.total: int | None = None
        self._seen: set[int] = set()

    def next_round(self) -> list[Mapping[str, Any]]:
        return [{**self.params, "start": self.start}]

    def update(self, pages: list[Page]) -> list[dict[str, Any]]:
        page = pages[0]
        if page.error is not None:
            raise page.error
        self.total = page.total if page.total is not None else self.total
        rows = []
        for row in page.rows:
            rid = self.spec.row_id(row)
            if rid is not None:
                if rid in self._seen:
                    continue
                self._seen.add(rid)
            rows.append(row)
        if page.next is None or not page.rows:
            self.done = True
        else:
            self.start = page.next
        return rows


class KeysetPaginator:
    """``>ID`` keyset pages inside ``batch`` for the ID range ``(lo, hi]`` (``hi=None``: open-ended)."""

    def __init__(
        self,
        spec: ListSpec,
        params: Mapping[str, Any],
        lo: int,
        hi: int | None,
        density: float = 1.0,
        max_pages: int = PAGE,
        last_known_id: int | None = None,
    ) -> None:
        self.spec, self.lo, self.hi = spec, lo, hi
        self.density = max(density, 1e-6)
        self.max_pages = max_pages
        # Open-ended lane: size batches to the largest ID the probe saw, plus one page for rows
        # added since, instead of 50 pages whose tail is paid-for garbage (and a late lane).
        self.last_known_id = last_known_id
        self.done = False
        self._filter = dict(params.get("filter") or {})
        self._rest = {k: v for k, v in params.items() if k not in ("filter", "start", "order", "sort")}

    def _params(self, after: int | str) -> dict[str, Any]:
        flt = {**self._filter, ">ID": after}
        if self.hi is not None:
            flt["<=ID"] = self.hi
        return {**self.spec.order("asc"), "filter": flt, **self._rest, "start": -1}

    def pages_wanted(self) -> int:
        if self.hi is None:
            if self.last_known_id is None:
                return self.max_pages
            expected_rows = max(0, self.last_known_id - self.lo) * self.density
            return max(1, min(self.max_pages, math.ceil(expected_rows / PAGE) + 1))
        expected_rows = (self.hi - self.lo) * self.density
        return max(1, min(self.max_pages, math.ceil(expected_rows / PAGE)))

    def next_round(self) -> dict[str, str]:
        commands: dict[str, str] = {}
        for i in range(self.pages_wanted()):
            after: int | str = self.lo if i == 0 else self.spec.ref(f"p{i - 1}", PAGE - 1)
            commands[f"p{i}"] = build_command(self.spec.method, self._params(after))
        return commands

    def update(self, pages: list[Page]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in pages:
            if page.error is not None:
                if isinstance(page.error, errors.OperationTimeLimitError):
                    return out  # resume from self.lo after the budget reset
                raise page.error
            for row in page.rows:
                rid = self.spec.row_id(row)
                if rid is None or rid <= self.lo or (self.hi is not None and rid > self.hi):
                    continue  # a duplicate or out-of-lane row (rows moved while we read)
                self.lo = rid
                out.append(row)
            if len(page.rows) < PAGE or (self.hi is not None and self.lo >= self.hi):
                self.done = True
                return out  # commands after the first short page carry partial-path garbage
        return out


ProgressFn = Callable[[Progress], None]


def _drive(
    fetcher: Fetcher, spec: ListSpec, paginator: Paginator
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The only paging loop: fetch a round, let the paginator read it, yield (pages, rows)."""
    while not paginator.done:
        request = paginator.next_round()
        if isinstance(request, dict):
            pages = fetcher.batch_pages(spec, request)
        else:
            pages = [fetcher.call_page(spec.method, p) for p in request]
        rows = paginator.update(pages)
        if any(isinstance(p.error, errors.OperationTimeLimitError) for p in pages):
            fetcher.operation_blocked(spec.method)
        yield len(pages), rows


def enumerate_list(
    fetcher: Fetcher,
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_lanes: int = 8,
    queue_rounds: int = 4,
    progress: ProgressFn | None = None,
    spec: ListSpec | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every record of ``method`` once, streaming, with the fastest strategy the method allows."""
    spec = spec or spec_for(method)
    params = dict(params or {})
    state = Progress(method)
    if not spec.keyset:
        paginator = CountedPaginator(spec, params)
        for pages, rows in _drive(fetcher, spec, paginator):
            state.pages += pages
            state.records += len(rows)
            state.estimated_total = paginator.total
            if progress:
                progress(state)
            yield from rows
        return

    lanes, first_rows, estimate = _plan(fetcher, spec, params, max_lanes)
    state.pages, state.records, state.estimated_total = 2, len(first_rows), estimate
    if progress:
        progress(state)
    yield from first_rows
    if not lanes:
        return
    if len(lanes) == 1:
        for pages, rows in _drive(fetcher, spec, lanes[0]):
            state.pages += pages
            state.records += len(rows)
            if progress:
                progress(state)
            yield from rows
        return
    yield from _run_lanes(fetcher, spec, lanes, queue_rounds, state, progress)


def _plan(
    fetcher: Fetcher, spec: ListSpec, params: dict[str, Any], max_lanes: int
) -> tuple[list[KeysetPaginator], list[dict[str, Any]], int | None]:
    """Probe the ID range with one batch (first page asc + first page desc), then split into lanes."""
    flt = dict(params.get("filter") or {})
    rest = {k: v for k, v in params.items() if k not in ("filter", "start", "order", "sort")}
    probe = {
        "asc": build_command(
            spec.method, {**spec.order("asc"), "filter": {**flt, ">ID": 0}, **rest, "start": -1}
        ),
        "desc": build_command(spec.method, {**spec.order("desc"), "filter": flt, **rest, "start": -1}),
    }
    asc, desc = fetcher.batch_pages(spec, probe)
    for page in (asc, desc):
        if page.error is not None:
            raise page.error
    first = KeysetPaginator(spec, params, 0, None)
    rows = first.update([asc])
    if first.done:
        return [], rows, len(rows)
    ids = [i for i in (spec.row_id(r) for r in desc.rows) if i is not None]
    max_id = max(ids) if ids else first.lo
    first_ids = [i for i in (spec.row_id(r) for r in rows) if i is not None]
    spans = (max(first_ids) - min(first_ids) + 1) + ((max(ids) - min(ids) + 1) if ids else 0)
    density = min(1.0, (len(first_ids) + len(ids)) / max(spans, 1))
    lo = first.lo
    estimate = len(rows) + int((max_id - lo) * density)
    # Enough lanes to keep the portal's workers busy, but at least MIN_LANE_PAGES pages per lane.
    expected_pages = math.ceil(max(estimate - len(rows), 0) / PAGE)
    n = max(1, min(max_lanes, expected_pages // MIN_LANE_PAGES))
    step = max(1, math.ceil((max_id - lo) / n))
    lanes = []
    for i in range(n):
        a = lo + i * step
        b = None if i == n - 1 else min(max_id, lo + (i + 1) * step)
        lanes.append(KeysetPaginator(spec, params, a, b, density, last_known_id=max_id))
        if b is not None and b >= max_id:
            lanes[-1].hi = None
            break
    return lanes, rows, estimate


_DONE = object()


def _run_lanes(
    fetcher: Fetcher,
    spec: ListSpec,
    lanes: list[KeysetPaginator],
    queue_rounds: int,
    state: Progress,
    progress: ProgressFn | None,
) -> Iterator[dict[str, Any]]:
    """Run lanes concurrently; rows flow through a bounded queue so memory stays flat."""
    out: queue.Queue[Any] = queue.Queue(maxsize=queue_rounds)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run(lane: KeysetPaginator) -> None:
        try:
            for pages, rows in _drive(fetcher, spec, lane):
                if stop.is_set() or not put((pages, rows)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
        finally:
            put(_DONE)

    pool = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="b24-lane")
    try:
        for lane in lanes:
            pool.submit(run, lane)
        running = len(lanes)
        while running:
            item = out.get()
            if item is _DONE:
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            pages, rows = item
            state.pages += pages
            state.records += len(rows)
            if progress:
                progress(state)
            yield from rows
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
