"""The sync of one entity of one account: read with the client, map, merge into Core, log it.

No Dagster here: plain inputs (an account id, an :class:`~.entities.Entity`, :class:`SyncOptions`)
and plain outcomes, so the same code serves a Dagster step, a loop over many portals and a test.
The steps can run together (:meth:`EntitySync.run`) or one at a time, which is what a Dagster step
materialising only some of an entity's assets does:

* :meth:`EntitySync.read` reads the records, writes them to the raw store as they arrive and maps
  them on the way (mapping fills the client's waits for the portal);
* :meth:`EntitySync.map_stored` maps the stored read again (``mapped_<entity>`` or ``core_<entity>``
  materialised alone);
* :meth:`EntitySync.merge` merges, advances the cursor, closes the sync-log row and runs the checks.

Every failure is recorded where it must show (the sync-log row, the account's status when its
owner must fix something) and raised as :class:`~.failures.SyncFailed`, one sentence that names
the account and the fix. Nothing is removed from Core unless the read was complete (the client
proves it or raises), no record of it was unreadable, and the removal is not a mass removal
(:class:`~bitrix24_assets.core.models.RemovalGuard`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.bitrix24.errors import ScopeError
from bitrix24_assets.core import CoreStore, IntegrationAccount, MergeCounts
from bitrix24_assets.core.errors import MassRemovalError
from bitrix24_assets.core.models import RemovalGuard
from bitrix24_assets.gc_pause import cyclic_gc_paused
from bitrix24_assets.pipeline.checks import CheckOutcome, PostMerge, evaluate, mostly_valid
from bitrix24_assets.pipeline.entities import EMPLOYEES, Entity, MergeRequest, ReadRequest
from bitrix24_assets.pipeline.failures import (
    AccountNotSyncable,
    MapperBug,
    MassRemovalConfirmation,
    SyncFailed,
    Verdict,
    account_label,
    classify,
    sentence,
)
from bitrix24_assets.pipeline.raw_store import RawStore, ReadEnding, ReadHeader, StoredRead
from bitrix24_assets.pipeline.settings import entity_switch
from bitrix24_assets.sync.batch import MappingResult, map_records
from bitrix24_assets.sync.cursors import next_cursor, read_since
from bitrix24_assets.sync.events import DEFAULT_DAYS_AHEAD, DEFAULT_DAYS_BACK, EventWindow, event_window
from bitrix24_assets.sync.rejection import Rejection
from bitrix24_assets.sync.values import iso_datetime

__all__ = ["EntitySync", "MapOutcome", "MergeOutcome", "ReadOutcome", "Skipped", "SyncOptions", "SyncOutcome"]

log = logging.getLogger(__name__)

SYNCABLE_STATUSES = frozenset({"active", "error"})
NOT_AN_EMPLOYEE = "is not an employee"  # the end of the employees mapper's reason for extranet users
CLIENT_DROPPED = "dropped by the client: "  # prefix of client-dropped reasons among the rejections
NO_READABLE_ID = (
    "nothing was removed: {n} records read had no readable ID, so the rows missing from the read "
    "cannot be told apart from them"
)


@dataclass(frozen=True)
class SyncOptions:
    """How one sync reads and what it may remove (Dagster's run config, or a caller's choice)."""

    full: bool = False
    calendar_days_back: int = DEFAULT_DAYS_BACK
    calendar_days_ahead: int = DEFAULT_DAYS_AHEAD
    guard: RemovalGuard = field(default_factory=RemovalGuard)
    max_invalid_share: float = 0.2


@dataclass(frozen=True)
class Skipped:
    """The entity is not synced for this account, and why (no scope, turned off in its settings)."""

    entity: str
    reason: str


@dataclass
class MapOutcome:
    """The mapped read: rows, what was rejected or dropped by reason, and the blocking check."""

    result: MappingResult[Any]
    seconds: float
    while_reading: bool
    rejected: dict[str, int]
    check: CheckOutcome
    source: str  # "read" (this step's read) or "file" (the stored read)
    non_employees: set[str] = field(default_factory=set)  # users rejected as not employees (extranet, ...)


@dataclass
class ReadOutcome:
    """A read stored in the raw store (and, when asked, mapped on the way)."""

    header: ReadHeader
    ending: ReadEnding
    records: int
    since: datetime | None
    window: EventWindow | None
    read_seconds: float
    client_seconds: float
    spool_seconds: float
    sync_log_seconds: float
    client_stats: dict[str, Any]
    portal: str
    sync_id: str | None
    mapping: MapOutcome | None = None
    reused: bool = False  # a retry of the step: the read this run stored first, not read again


@dataclass
class MergeOutcome:
    counts: MergeCounts
    full: bool
    removal_skipped: str | None
    cursor: dict[str, Any] | None
    sync_id: str
    merge_seconds: float
    sync_log_seconds: float
    checks_seconds: float
    checks: list[CheckOutcome]


@dataclass
class SyncOutcome:
    """Everything one entity sync did (:meth:`EntitySync.run`)."""

    account: IntegrationAccount
    entity: Entity
    read: ReadOutcome | None = None
    merge: MergeOutcome | None = None
    skipped: Skipped | None = None


ClientFactory = Callable[[IntegrationAccount], Bitrix24Client]


class EntitySync:
    """Syncs entities of accounts into one Core.

    Args:
        store: the Core.
        client_for: the Bitrix24 client of an account (shared by the entities of one run, so one
            rate-limit bucket per portal).
        raw: where reads are stored.
        run_id: written into sync-log rows and stored reads (Dagster's run id, or any label).
        progress: called with (entity, client progress) every few seconds of a long read.
    """

    def __init__(
        self,
        store: CoreStore,
        client_for: ClientFactory,
        raw: RawStore,
        run_id: str,
        *,
        progress: Callable[[Entity, Any], None] | None = None,
    ) -> None:
        self.store, self.client_for, self.raw, self.run_id = store, client_for, raw, run_id
        self.progress = progress

    # ---- the whole sync ------------------------------------------------------------------------

    def run(self, account_id: str, entity: Entity, options: SyncOptions | None = None) -> SyncOutcome:
        """Read, map and merge one entity of one account; raises :class:`SyncFailed`."""
        options = options or SyncOptions()
        account = self.account(account_id)
        sync_id = self.open_sync(account, entity)
        skipped = self.availability(account, entity, sync_id)
        if skipped is not None:
            return SyncOutcome(account, entity, skipped=self.skip(account, skipped, sync_id))
        with cyclic_gc_paused():
            read = self.read(account, entity, options, map_while_reading=True, sync_id=sync_id)
            if isinstance(read, Skipped):
                return SyncOutcome(account, entity, skipped=read)
            assert read.mapping is not None and read.sync_id is not None
            self.ensure_mergeable(account, entity, read.mapping, read.sync_id)
            merged = self.merge(
                account, entity, read.header, read.ending, read.mapping, options, read.sync_id
            )
        return SyncOutcome(account, entity, read=read, merge=merged)

    # ---- the account -----------------------------------------------------------------------------

    def account(self, account_id: str) -> IntegrationAccount:
        """The account of a partition, if it may be synced."""
        try:
            account = self.store.get_account(account_id)
        except Exception as exc:
            raise self._failed(
                None, None, exc, "loading the integration account", account_id=account_id
            ) from None
        if account.provider != "bitrix24" or account.status not in SYNCABLE_STATUSES:
            raise self._failed(
                account,
                None,
                AccountNotSyncable(
                    f"the account is provider '{account.provider}' with status '{account.status}', so it is "
                    "not synced; set provider 'bitrix24' and status 'active' in core.integration_accounts "
                    "(or `bitrix24-core accounts enable`) to sync it"
                ),
                "checking the account",
                mark_account=False,
            ) from None
        return account

    def open_sync(self, account: IntegrationAccount, entity: Entity) -> str:
        """Open the sync-log row of a sync that will merge (status ``running``)."""
        try:
            return self.store.start_sync(account.id, entity.core_entity, self.run_id)
        except Exception as exc:
            raise self._failed(account, None, exc, "opening the sync-log row") from None

    def availability(
        self, account: IntegrationAccount, entity: Entity, sync_id: str | None = None
    ) -> Skipped | None:
        """Why ``entity`` is not synced for ``account``, or None: turned off in the account's
        ``settings.entities``, or a scope the method needs is not granted to the webhook."""
        if not entity_switch(account.settings)(entity):
            return Skipped(entity.name, f"{entity.name} are turned off in the account's settings.entities")
        try:
            granted = self.client_for(account).scopes()
        except Exception as exc:
            raise self._failed(account, sync_id, exc, "asking the portal for the webhook's scopes") from None
        return _missing_scope(entity, granted)

    def skip(self, account: IntegrationAccount, skipped: Skipped, sync_id: str | None = None) -> Skipped:
        """Record the skip as a ``skipped`` sync-log row (the account stays as it is)."""
        try:
            entity = _entity(skipped.entity)
            if sync_id is None:
                sync_id = self.store.start_sync(account.id, entity.core_entity, self.run_id)
            self.store.finish_sync(
                sync_id, status="skipped", error=f"{account_label(account)}: {skipped.reason}."
            )
        except Exception as exc:
            raise self._failed(account, None, exc, "recording a skipped sync") from None
        return skipped

    # ---- reading ---------------------------------------------------------------------------------

    def read(
        self,
        account: IntegrationAccount,
        entity: Entity,
        options: SyncOptions,
        *,
        map_while_reading: bool,
        sync_id: str | None = None,
    ) -> ReadOutcome | Skipped:
        """Read the entity's records into the raw store; map them on the way if asked.

        ``sync_id``: the sync-log row of this sync (a merge follows in this step), closed here when
        the read fails; it rides on the outcome. A scope error during the read (the scope was taken
        away since the check) skips the entity instead of failing it.
        """
        began = time.perf_counter()
        spool = None
        try:
            cursor = self.store.get_cursor(account.id, entity.core_entity) if entity.cursor else None
            client_began = time.perf_counter()
            client = self.client_for(account)
            stats_before = stats_snapshot(client)
            read_started_at = _portal_now(client) if entity.cursor else None
            window = None
            if entity.windowed:
                window = event_window(
                    _portal_now(client),
                    account.settings,
                    days_back=options.calendar_days_back,
                    days_ahead=options.calendar_days_ahead,
                )
            since = read_since(entity.cursor, cursor) if entity.cursor and not options.full else None
            header = ReadHeader(
                entity=entity.name,
                account_id=account.id,
                run_id=self.run_id,
                full=since is None,
                cursor_before=cursor,
                read_started_at=read_started_at.isoformat() if read_started_at else None,
                window=window.as_cursor() if window else None,
            )
            started = time.monotonic()
            spool = self.raw.spool(entity.raw_key, header)
            report = self.progress
            progress = (lambda p: report(entity, p)) if report else None
            stream = entity.read(client, ReadRequest(since=since, window=window, progress=progress))
            try:
                arriving = _spooled(stream, spool.add)
                mapping = _map_while_reading(arriving, entity) if map_while_reading else None
                if mapping is None:
                    for _ in arriving:
                        pass
                ending = _ending(stream)
                spool.commit(ending)
            except BaseException:
                spool.discard()
                getattr(stream, "close", lambda: None)()  # stop the client's lanes now
                raise
            read_seconds = time.monotonic() - started
            client_seconds = time.perf_counter() - client_began
        except MapperBug as exc:
            raise self._failed(account, sync_id, exc, "mapping", mark_account=False) from None
        except ScopeError as exc:
            skipped = self._scope_taken_away(account, entity, exc)
            if skipped is None:
                raise self._failed(account, sync_id, exc, f"reading {entity.bitrix_method}") from None
            if sync_id is not None:
                self._close_skipped(account, sync_id, skipped)
            return skipped
        except Exception as exc:
            raise self._failed(account, sync_id, exc, f"reading {entity.bitrix_method}") from None
        finished = self._finish_mapping(entity, mapping, ending, "read", options) if mapping else None
        return ReadOutcome(
            header=header,
            ending=ending,
            records=spool.count,
            since=since,
            window=window,
            read_seconds=read_seconds,
            client_seconds=client_seconds,
            spool_seconds=spool.seconds,
            sync_log_seconds=client_began - began,
            client_stats=stats_delta(client, stats_before),
            portal=account.portal,
            sync_id=sync_id,
            mapping=finished,
        )

    def stored(
        self, account: IntegrationAccount, entity: Entity, *, this_run: bool = False
    ) -> StoredRead | None:
        """The stored read of the entity (only one this run made, with ``this_run``)."""
        stored = self.raw.load(entity.raw_key, account.id)
        if stored is None or (this_run and stored.header.run_id != self.run_id):
            return None
        return stored

    def require_stored(self, account: IntegrationAccount, entity: Entity) -> StoredRead:
        stored = self.stored(account, entity)
        if stored is None:
            raise SyncFailed(
                f"{account_label(account)}: there is no stored read of {entity.raw_key} (reads are kept "
                f"{self.raw.retention_hours:g} h); materialise {entity.raw_key} in the same run.",
                Verdict(retryable=False, owner_must_fix=False, configuration_error=False),
                "NoStoredRead",
            )
        return stored

    # ---- mapping ---------------------------------------------------------------------------------

    def map_stored(
        self, account: IntegrationAccount, entity: Entity, stored: StoredRead, options: SyncOptions
    ) -> MapOutcome:
        """Map a stored read again (its rows are a pure function of its records)."""
        try:
            mapped = _map_while_reading(iter(stored.records), entity)
        except MapperBug as exc:
            raise self._failed(account, None, exc, "mapping", mark_account=False) from None
        return self._finish_mapping(entity, mapped, stored.ending, "file", options)

    def _finish_mapping(
        self, entity: Entity, mapped: _Mapped, ending: ReadEnding, source: str, options: SyncOptions
    ) -> MapOutcome:
        """Rejections by reason, the client's dropped records included, and the blocking check."""
        rejected = Counter(mapped.result.rejected)
        for reason, n in ending.dropped.items():
            rejected[CLIENT_DROPPED + reason] += n
        by_reason = dict(rejected.most_common())
        records = mapped.result.records_read + sum(ending.dropped.values())
        check = mostly_valid(entity.mostly_valid_check, by_reason, records, options.max_invalid_share)
        return MapOutcome(
            mapped.result, mapped.seconds, source == "read", by_reason, check, source, mapped.non_employees
        )

    def ensure_mergeable(
        self, account: IntegrationAccount, entity: Entity, mapping: MapOutcome, sync_id: str | None
    ) -> None:
        """Raise (and close the sync-log row) when the blocking ``mostly_valid`` check failed."""
        if mapping.check.passed:
            return
        message = (
            f"{account_label(account)}: the merge into {entity.table} was not run because too many "
            f"{entity.name} records read are malformed ({mapping.check.metadata['invalid_records']} of "
            f"{mapping.result.records_read}); the API probably changed shape: see {entity.mapped_key}'s "
            "rejected_by_reason and update the mapper in bitrix24_assets/sync/."
        )
        if sync_id is not None:
            self._finish_failed(sync_id, message, mapping.rejected, mapping.result.records_read)
        raise SyncFailed(message, Verdict(False, False, False), "TooManyMalformedRecords")

    # ---- merging ---------------------------------------------------------------------------------

    def merge(
        self,
        account: IntegrationAccount,
        entity: Entity,
        header: ReadHeader,
        ending: ReadEnding,
        mapping: MapOutcome,
        options: SyncOptions,
        sync_id: str | None,
    ) -> MergeOutcome:
        """Merge the mapped read, advance the cursor, close the sync-log row, run the checks."""
        began = time.perf_counter()
        result = mapping.result
        full, removal_skipped = header.full, None
        if full and result.unidentified:
            full, removal_skipped = False, NO_READABLE_ID.format(n=result.unidentified)
        try:
            if sync_id is None:
                sync_id = self.store.start_sync(account.id, entity.core_entity, self.run_id)
            seen = {row.bitrix_id for row in result.rows}
            request = MergeRequest(
                account_id=account.id,
                rows=result.rows,
                full=full,
                # read but rejected as malformed: seen, kept as they are (people who are not
                # employees are no reason to keep an employee row active)
                keep_ids=sorted(result.rejected_ids - seen - mapping.non_employees),
                guard=options.guard,
                window=_window(header.window),
                owners=[(t, o) for t, o in ending.owners] if ending.owners is not None else None,
            )
            started = time.monotonic()
            counts = entity.merge(self.store, request)
            merge_seconds = time.monotonic() - started
            cursor = self._cursor(entity, header, mapping)
            self.store.finish_sync(
                sync_id,
                status="success",
                records_fetched=result.records_read,
                counts=counts,
                cursor=cursor,
                rejected=mapping.rejected,
            )
            if account.status == "error":
                self.store.set_account_status(account.id, "active", None)
                log.info("%s is healthy again (status back to active).", account_label(account))
        except MassRemovalError as exc:
            confirm = MassRemovalConfirmation(
                f"{exc}; if Bitrix24 really no longer has them, confirm by running the sync again with "
                f"`allow_mass_removal: true` in the run config of {entity.raw_key}"
            )
            raise self._failed(
                account, sync_id, confirm, f"merging into {entity.table}", mark_account=False
            ) from None
        except Exception as exc:
            raise self._failed(
                account, sync_id, exc, f"merging into {entity.table}", mark_account=False
            ) from None
        checks_began = time.perf_counter()
        context = PostMerge(
            account.id,
            company_id=account.company_id,
            # (only rows that have the field: a pydantic attribute miss costs µs per row)
            active_read=sum(1 for row in result.rows if row.is_active) if entity is EMPLOYEES else None,
            non_employee_ids=self._non_employees(account, entity, cursor),
        )
        checks = evaluate(self.store, entity.name, entity.core_entity, context)
        checks_seconds = time.perf_counter() - checks_began
        return MergeOutcome(
            counts=counts,
            full=full,
            removal_skipped=removal_skipped,
            cursor=cursor,
            sync_id=sync_id,
            merge_seconds=merge_seconds,
            sync_log_seconds=checks_began - began - merge_seconds,
            checks_seconds=checks_seconds,
            checks=checks,
        )

    def _cursor(self, entity: Entity, header: ReadHeader, mapping: MapOutcome) -> dict[str, Any] | None:
        """Tasks: the largest change time read (capped); events: the window; employees: the users
        known not to be employees, which the tasks check counts apart."""
        if entity.cursor is not None:
            started = datetime.fromisoformat(header.read_started_at) if header.read_started_at else None
            return next_cursor(
                entity.cursor, mapping.result.rows, header.cursor_before, read_started_at=started
            )
        if entity.windowed:
            return header.window
        if entity is EMPLOYEES:
            return {"non_employees": sorted(mapping.non_employees, key=int)}
        return None

    def _non_employees(
        self, account: IntegrationAccount, entity: Entity, cursor: dict[str, Any] | None
    ) -> list[str]:
        if entity.name != "tasks":
            return []
        stored = self.store.get_cursor(account.id, EMPLOYEES.core_entity) or {}
        ids = stored.get("non_employees")
        return [str(i) for i in ids] if isinstance(ids, list) else []

    # ---- failures --------------------------------------------------------------------------------

    def _failed(
        self,
        account: IntegrationAccount | None,
        sync_id: str | None,
        exc: BaseException,
        what: str,
        *,
        mark_account: bool = True,
        account_id: str | None = None,
    ) -> SyncFailed:
        """Record a failure in Core (sync-log row; account status when its owner must fix it)."""
        message = sentence(exc, account, what, account_id)
        verdict = classify(exc)
        log.error(message)
        try:
            if sync_id is not None:
                self.store.finish_sync(sync_id, status="failed", error=message)
            if verdict.owner_must_fix and mark_account and account is not None:
                self.store.set_account_status(account.id, "error", message)
        except Exception as log_exc:  # Core itself may be what is down; run health closes the row later
            log.warning("Could not record the failure in Core (%s).", type(log_exc).__name__)
        return SyncFailed(message, verdict, type(exc).__name__)

    def _finish_failed(self, sync_id: str, message: str, rejected: dict[str, int], records_read: int) -> None:
        try:
            self.store.finish_sync(
                sync_id, status="failed", error=message, rejected=rejected, records_fetched=records_read
            )
        except Exception as exc:
            log.warning("Could not record the failure in Core (%s).", type(exc).__name__)

    def _scope_taken_away(
        self, account: IntegrationAccount, entity: Entity, exc: ScopeError
    ) -> Skipped | None:
        """After a scope error: skip if the webhook really lacks the scope now (asked afresh)."""
        try:
            answer = self.client_for(account).call("scope", {})
        except Exception:
            return None
        granted = frozenset(str(s) for s in answer) if isinstance(answer, list) else frozenset()
        return _missing_scope(entity, granted)

    def _close_skipped(self, account: IntegrationAccount, sync_id: str, skipped: Skipped) -> None:
        try:
            self.store.finish_sync(
                sync_id, status="skipped", error=f"{account_label(account)}: {skipped.reason}."
            )
        except Exception as exc:
            raise self._failed(account, None, exc, "recording a skipped sync") from None


# ---- helpers --------------------------------------------------------------------------------------


@dataclass
class _Mapped:
    result: MappingResult[Any]
    seconds: float
    non_employees: set[str]


def _entity(name: str) -> Entity:
    from bitrix24_assets.pipeline.entities import ENTITIES

    return ENTITIES[name]


def _missing_scope(entity: Entity, granted: frozenset[str]) -> Skipped | None:
    for alternatives in entity.needs:
        if not set(alternatives) & granted:
            return Skipped(
                entity.name,
                f"the webhook lacks scope '{alternatives[0]}', so {entity.name} are not synced; add the "
                "scope to the webhook in Bitrix24 and the next sync reads them",
            )
    return None


def _spooled(
    stream: Iterable[dict[str, Any]], add: Callable[[dict[str, Any]], None]
) -> Iterator[dict[str, Any]]:
    """Each record as the client yields it, also written to the raw file; no list is kept."""
    for record in stream:
        add(record)
        yield record


def _map_while_reading(stream: Iterator[dict[str, Any]], entity: Entity) -> _Mapped:
    """Map records as they arrive (the client's lanes mostly wait for the portal); a mapper that
    raises is a bug, not bad data."""
    spent = 0.0
    clock, mapper = time.perf_counter, entity.mapper
    non_employees: set[str] = set()

    def timed(record: Any) -> Any:
        nonlocal spent
        began = clock()
        try:
            mapped = mapper(record)
        except Exception as exc:
            raise MapperBug(entity.name, exc) from exc
        finally:
            spent += clock() - began
        if type(mapped) is Rejection and mapped.bitrix_id and mapped.reason.endswith(NOT_AN_EMPLOYEE):
            non_employees.add(mapped.bitrix_id)
        return mapped

    return _Mapped(map_records(stream, timed), spent, non_employees)


def _ending(stream: Any) -> ReadEnding:
    """What the client learned by the end of the read (see ``ListRead``/``EventsRead``)."""
    owners = getattr(stream, "owners", None)
    return ReadEnding(
        owners=sorted([t, o] for t, o in owners) if owners is not None else None,
        dropped=dict(getattr(stream, "dropped", None) or {}),
        verified=bool(getattr(stream, "verified", False)),
        counted_total=getattr(stream, "counted_total", None),
    )


def _window(window: dict[str, str] | None) -> tuple[datetime, datetime] | None:
    if not window:
        return None
    return datetime.fromisoformat(window["date_from"]), datetime.fromisoformat(window["date_to"])


def _portal_now(client: Bitrix24Client) -> datetime:
    """The portal's clock (``server.time``), so windows and cursor caps follow the portal."""
    try:
        value = iso_datetime(client.call("server.time", {}))
    except Exception:
        value = None
    return value or datetime.now(UTC)


_STATS = {
    "requests": "bitrix24_requests",
    "retries": "bitrix24_retries",
    "rate_limited": "rate_limited_answers",
    "bucket_wait_s": "rate_limit_wait_seconds",
    "budget_wait_s": "operating_budget_wait_seconds",
}


def stats_snapshot(client: Any) -> dict[str, Any]:
    """The client's cumulative statistics now (``{}`` for a client without them)."""
    as_dict = getattr(getattr(client, "stats", None), "as_dict", None)
    return as_dict() if callable(as_dict) else {}


def stats_delta(client: Any, before: dict[str, Any]) -> dict[str, Any]:
    """Requests, retries, rate-limit answers and waits since ``before`` (a client is shared by the
    steps of a run, so each step reports only its own)."""
    now = stats_snapshot(client)
    out: dict[str, Any] = {}
    for key, name in _STATS.items():
        value = now.get(key)
        if not isinstance(value, int | float):
            continue
        base = before.get(key)
        if isinstance(base, int | float):
            value = value - base if isinstance(value, int) else round(value - base, 3)
        out[name] = value
    return out
