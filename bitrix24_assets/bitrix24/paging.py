"""Enumerating list methods: one loop, two paginator strategies, parallel ID-range lanes, and a proof.

**Keyset** (Bitrix24 docs, "Performance: huge data") for methods that accept ``>ID`` with
``order ID asc`` and ``start=-1`` (no ``COUNT(*)``, no ``OFFSET``: about a tenth of a counted page's
server time). Up to 50 pages go in one ``batch``, each page's ``>ID`` chained to the previous page's
last row::

    p0: tasks.task.list?order[ID]=asc&filter[>ID]=1200&filter[<=ID]=5000&start=-1
    p1: tasks.task.list?order[ID]=asc&filter[>ID]=$result[p0][tasks][49][id]&filter[<=ID]=5000&start=-1

When ``p0`` has fewer than 50 rows, ``$result[p0][tasks][49]`` does not exist and the portal
substitutes the deepest path that does (the whole list), so every command after the first short
page is garbage (or an error) and is ignored. The same holds after a full page whose row 49 has no
readable ID (an object, ``"²"``, no ID at all): the rest of that batch is discarded and the lane
continues from the last readable ID. Batches are sized to the expected rows left so that little
server time is spent on such pages.

**Lanes**: one probe batch reads the first page ascending and descending (``start=-1``); the two
give the ID range and the density of IDs. The range is split into lanes of equal expected size
that run concurrently in a thread pool (the portal serves a few requests at once), the last lane
open-ended so rows added during the pull are still read. Records stream out through a bounded
queue; within a lane IDs only grow, so duplicates (a row seen twice while rows move) are dropped
with O(1) memory per lane, and counted.

**Proven complete** (a full enumeration is used to remove what it did not see, so a short read
must fail instead of returning fewer rows):

* a batch answer without one of its commands is broken (the client retries it, see ``client.py``);
* the probe's two pages must agree: one empty and the other not, or an ascending page that ends
  below the descending page's highest ID, is a contradiction (retried, then raised);
* a bounded lane ends only by a short page or by reaching its upper ID; the open-ended lane must
  reach the highest ID the probe saw, or a descending page from where it stopped must show that
  nothing is left (the rows above were deleted during the read);
* at the end, ONE counted request (``start=0``, the same filter plus ``<=ID`` the probe's highest
  ID, ``select=ID``) gives ``total``. Rows that existed for the whole read must all have been read:
  rows added during it get higher IDs, rows deleted during it only lower the count. So fewer
  distinct IDs read (up to that ID) than ``total`` means rows were lost, and the read fails.

Every contradiction is an :class:`~.errors.IncompleteReadError` naming the numbers.

**Counted** paging (``start``/``next``) only for methods without ``>ID`` filtering
(``department.get``, ``sonet_group.get``): a page that ends the read early (no ``next`` while
``start + rows < total``, or an empty page where ``next`` promised more) is a contradiction, and
the distinct rows read must reach the last page's ``total``.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import Counter
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
    "ListRead",
    "ListSpec",
    "Progress",
    "enumerate_list",
    "read_id",
    "spec_for",
]

PAGE = 50
MIN_LANE_PAGES = 8  # fewer pages than this per lane: the extra batch costs more than it saves
MAX_END_RECHECKS = 3  # descending pages that contradict a lane's short last page before giving up
MAX_BLOCKED_ROUNDS = 15  # OPERATION_TIME_LIMIT answers to one round before giving up

# Fixed reasons for records received but not yielded (``ListRead.dropped``).
REPEATED = "repeated ID"
OUT_OF_LANE = "ID outside the lane's range"
NOT_AN_OBJECT = "not an object"


def read_id(raw: Any) -> int | None:
    """A record ID as the portal keys it: a positive JSON integer or ASCII digits, else None.

    ``int()`` alone would accept ``" 7"``, ``"+7"``, ``"7_0"``, ``True`` and other scripts' digits
    (``"٣"``), none of which the portal can have sent as an ID.
    """
    if type(raw) is int:
        return raw if raw > 0 else None
    if type(raw) is str and 0 < len(raw) <= 19 and raw.isascii() and raw.isdigit():
        value = int(raw)
        return value if value > 0 else None
    return None


@dataclass(frozen=True)
class ListSpec:
    """How one list method pages. ``items_key``: where the rows sit in ``result`` (``tasks``).

    ``total_always``: the method reports ``total`` on every counted page, even 0 (``department.get``),
    so a page without it is a broken answer.
    """

    method: str
    id_field: str = "ID"
    items_key: str | None = None
    keyset: bool = True
    sort_style: str = "order"  # "order": order={"ID": "asc"}; "sort": sort="ID"&order="ASC" (user.get)
    total_always: bool = False

    def order(self, direction: str) -> dict[str, Any]:
        if self.sort_style == "sort":
            return {"sort": "ID", "order": direction.upper()}
        return {"order": {"ID": direction.lower()}}

    def items(self, result: Any) -> list[Any] | None:
        """The page's entries as sent (non-objects included, so positions stay right), or None when
        ``result`` has no list where the rows belong (a broken answer)."""
        if self.items_key is not None:
            if isinstance(result, list) and not result:
                return []  # PHP's empty array
            if not isinstance(result, dict) or self.items_key not in result:
                return None
            result = result[self.items_key]
        if isinstance(result, dict):  # PHP list with gaps -> object
            return list(result.values())
        return result if isinstance(result, list) else None

    def row_id(self, row: Any) -> int | None:
        """The record's ID, or None when it has none that can be read."""
        if not isinstance(row, dict):
            return None
        raw = row.get(self.id_field)  # called for every row read: other spellings only when absent
        if raw is None:
            raw = row.get(self.id_field.upper(), row.get(self.id_field.lower()))
        return read_id(raw)

    def chain_id(self, row: Any) -> int | None:
        """The ID the next page's ``$result[...]`` reference reads (exactly ``id_field``)."""
        return read_id(row.get(self.id_field)) if isinstance(row, dict) else None

    def ref(self, key: str, index: int) -> str:
        """``$result[...]`` path to the ID of row ``index`` of command ``key``."""
        inner = f"[{self.items_key}]" if self.items_key else ""
        return f"$result[{key}]{inner}[{index}][{self.id_field}]"


LIST_SPECS: dict[str, ListSpec] = {
    "user.get": ListSpec("user.get", sort_style="sort"),
    "tasks.task.list": ListSpec("tasks.task.list", id_field="id", items_key="tasks"),
    "department.get": ListSpec("department.get", keyset=False, total_always=True),
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


class ListRead(Iterator[dict[str, Any]]):
    """The records of one list read, streamed; what the read proved is known once it is exhausted.

    Attributes (final once the iterator is exhausted):
        dropped: records received but not yielded, by fixed reason (``"repeated ID"``, ...).
        verified: True when the completeness proof of a full enumeration ran and passed.
        counted_total: the portal's count used for that proof, when one was made.
    """

    def __init__(self, method: str, rows: Iterator[dict[str, Any]] | None = None) -> None:
        self.method = method
        self.dropped: Counter[str] = Counter()
        self.verified = False
        self.counted_total: int | None = None
        self._rows: Iterator[dict[str, Any]] = rows if rows is not None else iter(())

    def __iter__(self) -> ListRead:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)

    def close(self) -> None:
        """Stop the read early (its lanes stop at once); the attributes then stay unproven."""
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(method={self.method!r}, dropped={dict(self.dropped)!r}, "
            f"verified={self.verified!r}, counted_total={self.counted_total!r})"
        )


@dataclass
class Page:
    """One page of a round: its entries, or the sub-command's error; ``next``/``total`` when counted."""

    rows: list[Any] = field(default_factory=list)
    error: errors.ApiError | None = None
    next: int | None = None
    total: int | None = None


Check = Callable[[list[Page]], None]
"""Raises :class:`~.errors.IncompleteReadError` when a round's pages contradict each other; runs
inside the client's retry path, so a contradiction is sent again like a 5xx."""


class Fetcher(Protocol):
    """What the paginators need from the client: one batch of named commands, checked before use."""

    @property
    def portal(self) -> str: ...

    def batch_pages(
        self, spec: ListSpec, commands: dict[str, str], check: Check | None = None
    ) -> list[Page]: ...

    def operation_blocked(self, method: str) -> None: ...


class Paginator(Protocol):
    """A paging strategy: what to fetch next, what would make a round's answer unusable, what it means."""

    done: bool
    dropped: Counter[str]

    def next_round(self) -> dict[str, str]: ...

    def check(self, pages: list[Page]) -> None: ...

    def update(self, pages: list[Page]) -> list[dict[str, Any]]: ...


def _ids(spec: ListSpec, rows: list[Any]) -> list[int]:
    return [i for i in (spec.row_id(r) for r in rows) if i is not None]


def _split(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(filter, the other params)`` without the paging and ordering keys the paginators set."""
    flt = dict(params.get("filter") or {})
    rest = {k: v for k, v in params.items() if k not in ("filter", "start", "order", "sort")}
    return flt, rest


class CountedPaginator:
    """``start=0, 50, ...`` following ``next``; de-duplicates by ID (offsets shift when rows change)."""

    def __init__(self, spec: ListSpec, params: Mapping[str, Any], portal: str = "the portal") -> None:
        self.spec, self.params, self.portal = spec, dict(params), portal
        self.start = 0
        self.done = False
        self.verified = False
        self.total: int | None = None
        self.dropped: Counter[str] = Counter()
        self._seen: set[int] = set()
        self._unidentified = 0

    def _broken(self, text: str) -> errors.IncompleteReadError:
        return errors.IncompleteReadError(text, method=self.spec.method, portal=self.portal)

    def next_round(self) -> dict[str, str]:
        return {"page": build_command(self.spec.method, {**self.params, "start": self.start})}

    def check(self, pages: list[Page]) -> None:
        page = pages[0]
        if page.error is not None:
            return
        where = f"the page at start={self.start}"
        if self.spec.total_always and page.total is None:
            raise self._broken(f"{where} came without a total")
        if not page.rows and self.start > 0:
            raise self._broken(f"{where} is empty although the page before promised more")
        end = self.start + len(page.rows)
        if page.next is None and page.total is not None and end < page.total:
            raise self._broken(f"{where} ends the read after {end} of {page.total} records")
        if page.next is not None and page.next <= self.start:
            raise self._broken(f"{where} points back to start={page.next}")

    def update(self, pages: list[Page]) -> list[dict[str, Any]]:
        page = pages[0]
        if page.error is not None:
            if isinstance(page.error, errors.OperationTimeLimitError):
                return []  # the same page again after the budget reset
            raise page.error
        self.total = page.total if page.total is not None else self.total
        rows: list[dict[str, Any]] = []
        for row in page.rows:
            if not isinstance(row, dict):
                self.dropped[NOT_AN_OBJECT] += 1
                continue
            rid = self.spec.row_id(row)
            if rid is None:
                self._unidentified += 1  # yielded: the mapper rejects and counts it
            elif rid in self._seen:
                self.dropped[REPEATED] += 1
                continue
            else:
                self._seen.add(rid)
            rows.append(row)
        if page.next is None or not page.rows:
            self.done = True
            read = len(self._seen) + self._unidentified
            if self.total is not None:
                if read < self.total:
                    raise self._broken(
                        f"the pages held {read} distinct records but the portal counts {self.total}"
                    )
                self.verified = True
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
        *,
        count_upto: int | None = None,
        portal: str = "the portal",
    ) -> None:
        self.spec, self.lo, self.hi = spec, lo, hi
        self.density = max(density, 1e-6)
        self.max_pages = max_pages
        # Open-ended lane: size batches to the largest ID the probe saw, plus one page for rows
        # added since, instead of 50 pages whose tail is paid-for garbage (and a late lane). It must
        # also reach that ID before it may end (or prove that the rows above were deleted).
        self.last_known_id = last_known_id
        self.count_upto = count_upto
        self.portal = portal
        self.done = False
        self.dropped: Counter[str] = Counter()
        self.counted = 0  # records yielded that the final count covers (ID <= count_upto)
        self.skip_unidentified = 0  # leading ID-less entries of the next page already handled
        self.rechecks = 0
        self._confirming = False
        self._filter, self._rest = _split(params)

    def _broken(self, text: str) -> errors.IncompleteReadError:
        return errors.IncompleteReadError(text, method=self.spec.method, portal=self.portal)

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
        if self._confirming:  # is anything left above where the ascending pages stopped?
            params = {**self.spec.order("desc"), "filter": {**self._filter, ">ID": self.lo}, **self._rest}
            return {"rest": build_command(self.spec.method, {**params, "start": -1})}
        commands: dict[str, str] = {}
        for i in range(self.pages_wanted()):
            after: int | str = self.lo if i == 0 else self.spec.ref(f"p{i - 1}", PAGE - 1)
            commands[f"p{i}"] = build_command(self.spec.method, self._params(after))
        return commands

    def check(self, pages: list[Page]) -> None:
        """Nothing beyond the batch's own checks: a lane's pages are judged in :meth:`update`."""

    def _counts(self, rid: int | None) -> bool:
        """Whether a yielded record is one the final count covers (an ID-less one: by position)."""
        if self.count_upto is None:
            return True
        if rid is None:
            return self.lo < self.count_upto
        return rid <= self.count_upto

    def update(self, pages: list[Page]) -> list[dict[str, Any]]:
        if self._confirming:
            return self._confirmed(pages[0])
        out: list[dict[str, Any]] = []
        round_lo = self.lo
        for page in pages:
            if page.error is not None:
                if isinstance(page.error, errors.OperationTimeLimitError):
                    return out  # resume from self.lo after the budget reset
                raise page.error
            rows = page.rows
            trailing = 0  # ID-less entries after the last readable ID of this page
            for row in rows:
                rid = self.spec.row_id(row)
                if rid is None:
                    if self.skip_unidentified:
                        self.skip_unidentified -= 1  # re-read after a broken chain: already handled
                        trailing += 1
                        continue
                    trailing += 1
                    if not isinstance(row, dict):
                        self.dropped[NOT_AN_OBJECT] += 1
                        continue
                    if self._counts(None):
                        self.counted += 1
                    out.append(row)  # yielded: the mapper rejects and counts it
                    continue
                self.skip_unidentified = trailing = 0
                if rid <= self.lo:
                    self.dropped[REPEATED] += 1
                    continue
                if self.hi is not None and rid > self.hi:
                    self.dropped[OUT_OF_LANE] += 1
                    continue
                self.lo = rid
                if self._counts(rid):
                    self.counted += 1
                out.append(row)
            if len(rows) < PAGE:
                if self.hi is None and self.last_known_id is not None and self.lo < self.last_known_id:
                    self._confirming = True  # ended below the probe's highest ID: prove it
                else:
                    self.done = True
                return out  # commands after the first short page carry partial-path garbage
            if self.hi is not None and self.lo >= self.hi:
                self.done = True
                return out
            if self.spec.chain_id(rows[PAGE - 1]) is None:
                # The next command's `>ID` read garbage: drop the rest, go on from the last readable ID.
                if self.lo == round_lo:
                    raise self._broken(
                        f"{PAGE} records in a row after ID {self.lo} have no readable ID, "
                        "so the list cannot be paged past them"
                    )
                self.skip_unidentified = trailing
                return out
        return out

    def _confirmed(self, page: Page) -> list[dict[str, Any]]:
        """The descending page above ``lo``: empty proves the lane's end, rows mean the end was wrong."""
        if page.error is not None:
            if isinstance(page.error, errors.OperationTimeLimitError):
                return []
            raise page.error
        self._confirming = False
        if not page.rows:
            self.done = True  # the rows up to the probe's highest ID were deleted during the read
            return []
        self.rechecks += 1
        if self.rechecks >= MAX_END_RECHECKS:
            top = max(_ids(self.spec, page.rows), default=None)
            raise self._broken(
                f"the ascending pages keep ending at ID {self.lo} although the descending page shows "
                f"{len(page.rows)} more records" + (f" up to ID {top}" if top is not None else "")
            )
        return []  # read on from self.lo


class _Count:
    """The one counted request that cross-checks a full enumeration (``start=0``, ``select=ID``)."""

    def __init__(self, spec: ListSpec, params: Mapping[str, Any], upto: int | None, portal: str) -> None:
        flt, rest = _split(params)
        rest.pop("select", None)
        if upto is not None:
            flt["<=ID"] = upto
        self.spec, self.portal = spec, portal
        self.command = build_command(spec.method, {"filter": flt, **rest, "select": ["ID"], "start": 0})
        self.done = False
        self.total = 0
        self.dropped: Counter[str] = Counter()

    def next_round(self) -> dict[str, str]:
        return {"count": self.command}

    def check(self, pages: list[Page]) -> None:
        page = pages[0]
        if page.error is None and page.total is None and page.rows:
            raise errors.IncompleteReadError(
                f"the counted request came back with {len(page.rows)} records but without a total",
                method=self.spec.method,
                portal=self.portal,
            )

    def update(self, pages: list[Page]) -> list[dict[str, Any]]:
        page = pages[0]
        if page.error is not None:
            if isinstance(page.error, errors.OperationTimeLimitError):
                return []
            raise page.error
        self.total = page.total if page.total is not None else 0  # no rows, no total: none match
        self.done = True
        return []


ProgressFn = Callable[[Progress], None]


def _drive(
    fetcher: Fetcher, spec: ListSpec, paginator: Paginator
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The only paging loop: fetch a round (checked inside the retry path), let the paginator read
    it, yield (pages, rows)."""
    blocked = 0
    while not paginator.done:
        pages = fetcher.batch_pages(spec, paginator.next_round(), paginator.check)
        rows = paginator.update(pages)
        if any(isinstance(p.error, errors.OperationTimeLimitError) for p in pages):
            blocked += 1
            if blocked > MAX_BLOCKED_ROUNDS:
                raise next(p.error for p in pages if isinstance(p.error, errors.OperationTimeLimitError))
            fetcher.operation_blocked(spec.method)
        else:
            blocked = 0
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
    verify: bool = True,
) -> ListRead:
    """Every record of ``method`` once, streaming, with the fastest strategy the method allows.

    ``verify``: end a keyset enumeration with the counted cross-check (one request; use it for
    full reads, skip it for incremental ones, which remove nothing).
    """
    spec = spec or spec_for(method)
    read = ListRead(spec.method)
    rows = _enumerate(fetcher, spec, dict(params or {}), read, max_lanes, queue_rounds, progress, verify)
    read._rows = rows
    return read


def _enumerate(
    fetcher: Fetcher,
    spec: ListSpec,
    params: dict[str, Any],
    read: ListRead,
    max_lanes: int,
    queue_rounds: int,
    progress: ProgressFn | None,
    verify: bool,
) -> Iterator[dict[str, Any]]:
    state = Progress(spec.method)
    if not spec.keyset:
        paginator = CountedPaginator(spec, params, fetcher.portal)
        try:
            for pages, rows in _drive(fetcher, spec, paginator):
                state.pages += pages
                state.records += len(rows)
                state.estimated_total = paginator.total
                if progress:
                    progress(state)
                yield from rows
        finally:
            read.dropped.update(paginator.dropped)
        read.verified, read.counted_total = paginator.verified, paginator.total
        return

    first, lanes, first_rows, estimate, probe_max = _plan(fetcher, spec, params, max_lanes)
    try:
        state.pages, state.records, state.estimated_total = 2, len(first_rows), estimate
        if progress:
            progress(state)
        yield from first_rows
        if len(lanes) == 1:
            for pages, rows in _drive(fetcher, spec, lanes[0]):
                state.pages += pages
                state.records += len(rows)
                if progress:
                    progress(state)
                yield from rows
        elif lanes:
            yield from _run_lanes(fetcher, spec, lanes, queue_rounds, state, progress)
    finally:
        for part in (first, *lanes):
            read.dropped.update(part.dropped)
    if verify:
        counted = first.counted + sum(lane.counted for lane in lanes)
        read.counted_total = _cross_check(fetcher, spec, params, probe_max, counted)
        read.verified = True


def _cross_check(
    fetcher: Fetcher, spec: ListSpec, params: dict[str, Any], upto: int | None, read: int
) -> int:
    """One counted request; fewer records read than the portal counts up to ``upto`` is a loss."""
    count = _Count(spec, params, upto, fetcher.portal)
    for _ in _drive(fetcher, spec, count):
        pass
    if read < count.total:
        scope = f"with ID up to {upto}" if upto is not None else "although the probe found none"
        raise errors.IncompleteReadError(
            f"the read returned {read} records {scope} but the portal counts {count.total}, "
            "so records were lost on the way",
            method=spec.method,
            portal=fetcher.portal,
        )
    return count.total


def _probe_check(spec: ListSpec, portal: str) -> Check:
    def check(pages: list[Page]) -> None:
        asc, desc = pages
        if asc.error is not None or desc.error is not None:
            return
        text = None
        if not asc.rows and desc.rows:
            text = f"the ascending probe page is empty but the descending one holds {len(desc.rows)} records"
        elif asc.rows and not desc.rows:
            text = f"the descending probe page is empty but the ascending one holds {len(asc.rows)} records"
        elif len(asc.rows) < PAGE:
            top_asc, top_desc = max(_ids(spec, asc.rows), default=0), max(_ids(spec, desc.rows), default=0)
            if top_desc > top_asc:
                text = (
                    f"the ascending probe page ends at ID {top_asc} "
                    f"but the descending one holds ID {top_desc}"
                )
        if text is not None:
            raise errors.IncompleteReadError(text, method=spec.method, portal=portal)

    return check


def _plan(
    fetcher: Fetcher, spec: ListSpec, params: dict[str, Any], max_lanes: int
) -> tuple[KeysetPaginator, list[KeysetPaginator], list[dict[str, Any]], int | None, int | None]:
    """Probe the ID range with one batch (first page asc + first page desc), then split into lanes.

    Returns the probe's paginator, the lanes, the probe's records, the estimated total and the
    highest ID the probe saw (None when it found nothing).
    """
    flt, rest = _split(params)
    start = read_id(flt.get(">ID")) or 0
    probe = {
        "asc": build_command(
            spec.method, {**spec.order("asc"), "filter": {**flt, ">ID": start}, **rest, "start": -1}
        ),
        "desc": build_command(spec.method, {**spec.order("desc"), "filter": flt, **rest, "start": -1}),
    }
    for _ in range(MAX_BLOCKED_ROUNDS):
        asc, desc = fetcher.batch_pages(spec, probe, _probe_check(spec, fetcher.portal))
        blocked = [p.error for p in (asc, desc) if isinstance(p.error, errors.OperationTimeLimitError)]
        if not blocked:
            break
        fetcher.operation_blocked(spec.method)
    for page in (asc, desc):
        if page.error is not None:
            raise page.error
    ids = _ids(spec, desc.rows)
    first = KeysetPaginator(spec, params, start, None, portal=fetcher.portal)
    rows = first.update([asc])
    top = max(ids) if ids else (first.lo if first.lo > start else None)
    first.counted = sum(1 for r in rows if top is None or (spec.row_id(r) or 0) <= top)
    if first.done or top is None:
        first.done = True
        return first, [], rows, len(rows), top
    max_id = top
    first_ids = _ids(spec, rows)
    spans = (max(first_ids) - min(first_ids) + 1 if first_ids else 0) + (
        max(ids) - min(ids) + 1 if ids else 0
    )
    density = min(1.0, (len(first_ids) + len(ids)) / max(spans, 1))
    lo = first.lo
    estimate = len(rows) + int((max_id - lo) * density)
    # Enough lanes to keep the portal's workers busy, but at least MIN_LANE_PAGES pages per lane.
    expected_pages = math.ceil(max(estimate - len(rows), 0) / PAGE)
    n = max(1, min(max_lanes, expected_pages // MIN_LANE_PAGES))
    step = max(1, math.ceil((max_id - lo) / n))
    lanes: list[KeysetPaginator] = []
    for i in range(n):
        a = lo + i * step
        b = None if i == n - 1 else min(max_id, lo + (i + 1) * step)
        lane = KeysetPaginator(
            spec, params, a, b, density, last_known_id=max_id, count_upto=max_id, portal=fetcher.portal
        )
        lanes.append(lane)
        if b is not None and b >= max_id:
            lane.hi = None
            break
    lanes[0].skip_unidentified = first.skip_unidentified
    return first, lanes, rows, estimate, max_id


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
