"""Many accounts synced in one process: a thread pool calling :class:`EntitySync` per account and entity.

Why: a small portal's sync is ~0.04 CPU-s of our work and mostly waiting on its HTTP answers and on
Core, so one process keeps dozens of portals in flight, where a process per portal spends most of
its CPU starting up. What stays per portal: its own client (its own rate-limit bucket and
operating-time budget), its own sync-log rows, account health and outcome; one portal's failure
is recorded for that portal only and never stops the others.

Within a portal the entities run in registry order; an entity whose ``depends_on`` failed is not
run (as a Dagster run skips the steps downstream of a failed one). Failures that a retry can fix
(the portal or Core unreachable, an incomplete read) are retried once after the first pass, only
for the entities that failed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import cache

import httpx

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core import CoreStore, IntegrationAccount
from bitrix24_assets.pipeline.entities import Entity
from bitrix24_assets.pipeline.entity_sync import EntitySync, SyncOptions, SyncOutcome
from bitrix24_assets.pipeline.failures import SyncFailed, Verdict, account_label, classify, sentence
from bitrix24_assets.pipeline.raw_store import RawStore

__all__ = [
    "EntityResult",
    "FleetSync",
    "PortalResult",
    "describe",
    "http_transport",
    "slot_of",
]

log = logging.getLogger(__name__)

ClientFactory = Callable[[IntegrationAccount], Bitrix24Client]


@dataclass
class EntityResult:
    """One entity of one portal: synced (``outcome``), failed (``failure``) or not run (``not_run``)."""

    entity: Entity
    outcome: SyncOutcome | None = None
    failure: SyncFailed | None = None
    not_run: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is not None


@dataclass
class PortalResult:
    """Everything the fleet did for one account, with wall-clock times (``time.time()``)."""

    account_id: str
    entities: list[EntityResult] = field(default_factory=list)
    account: IntegrationAccount | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.entities)

    @property
    def failures(self) -> list[EntityResult]:
        return [r for r in self.entities if not r.ok]

    @property
    def message(self) -> str | None:
        """The first failure's sentence (it names the account and the fix), or None."""
        for result in self.entities:
            if result.failure is not None:
                return result.failure.message
        return None

    @property
    def retryable(self) -> bool:
        failed = [r.failure for r in self.entities if r.failure is not None]
        return bool(failed) and all(f.retryable for f in failed)


@cache
def _tls_context() -> object:
    return httpx.create_ssl_context()


def http_transport(max_connections: int = 16) -> httpx.HTTPTransport:
    """A portal's own connection pool with the process's one TLS context: httpx loads the CA bundle
    for every client it builds itself, which was most of a small portal's CPU (~0.05 s)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.HTTPTransport(verify=_tls_context(), limits=limits)  # type: ignore[arg-type]


def slot_of(account_id: str, slots: int) -> int:
    """A stable slot in ``range(slots)`` for an account: spreads sync times without state."""
    digest = hashlib.sha256(account_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, slots)


class FleetSync:
    """Syncs ``entities`` of many accounts, ``workers`` portals at a time.

    Args:
        store: the Core (thread-safe: a connection pool).
        client_for: builds a NEW client for an account; the fleet keeps one per portal for the
            portal's entities and closes it when the portal is done.
        raw: where reads are stored.
        run_id: written into every sync-log row (Dagster's run id, or any label).
        entities: what to sync, in dependency order (the caller's selection of the registry).
        options: how to read (the hourly path: incremental).
        workers: portals in flight at once.
        retry_transient: passes over the portals whose failures a retry can fix.
    """

    def __init__(
        self,
        store: CoreStore,
        client_for: ClientFactory,
        raw: RawStore,
        run_id: str,
        *,
        entities: Sequence[Entity],
        options: SyncOptions | None = None,
        workers: int = 16,
        retry_transient: int = 1,
    ) -> None:
        self.store, self.client_for, self.raw, self.run_id = store, client_for, raw, run_id
        self.entities = list(entities)
        self.options = options or SyncOptions()
        self.workers = max(1, workers)
        self.retry_transient = max(0, retry_transient)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Start no further portals (a canceled run); portals in flight finish."""
        self._stop.set()

    # ---- many portals ------------------------------------------------------------------------------

    def run(self, account_ids: Iterable[str]) -> Iterator[PortalResult]:
        """Each portal's result as soon as it is final (after its retry, if any)."""
        pending = list(dict.fromkeys(account_ids))
        retries: list[PortalResult] = []
        with ThreadPoolExecutor(self.workers, thread_name_prefix="fleet") as pool:
            for result in self._pass(pool, [(a, None) for a in pending]):
                if not result.ok and result.retryable and self.retry_transient:
                    retries.append(result)
                else:
                    yield result
            for attempt in range(self.retry_transient):
                if not retries or self._stop.is_set():
                    break
                again, retries = retries, []
                for result in self._pass(pool, [(r.account_id, r) for r in again]):
                    result.attempts = attempt + 2
                    last = attempt + 1 == self.retry_transient
                    if not result.ok and result.retryable and not last:
                        retries.append(result)
                    else:
                        yield result
        yield from retries  # stopped before their retry

    def _pass(
        self, pool: ThreadPoolExecutor, work: list[tuple[str, PortalResult | None]]
    ) -> Iterator[PortalResult]:
        """Submit at most ``2 x workers`` at a time, so a stop leaves little queued."""
        queue = iter(work)
        running: set[Future[PortalResult]] = set()

        def fill() -> None:
            while len(running) < 2 * self.workers and not self._stop.is_set():
                item = next(queue, None)
                if item is None:
                    return
                running.add(pool.submit(self.sync_portal, item[0], item[1]))

        fill()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.discard(future)
                yield future.result()
            fill()

    # ---- one portal ----------------------------------------------------------------------------------

    def sync_portal(self, account_id: str, previous: PortalResult | None = None) -> PortalResult:
        """Sync the entities of one account (only those ``previous`` did not finish); never raises."""
        result = PortalResult(account_id, started_at=time.time())
        client: list[Bitrix24Client] = []
        lock = threading.Lock()

        def portal_client(account: IntegrationAccount) -> Bitrix24Client:
            with lock:
                if not client:
                    client.append(self.client_for(account))
                return client[0]

        sync = EntitySync(self.store, portal_client, self.raw, self.run_id)
        done = {r.entity.name: r for r in previous.entities if r.ok} if previous else {}
        failed: set[str] = set()
        try:
            for entity in self.entities:
                if entity.name in done:
                    result.entities.append(done[entity.name])
                    continue
                blocked = [d for d in entity.depends_on if d in failed]
                if blocked:
                    failed.add(entity.name)
                    result.entities.append(
                        EntityResult(entity, not_run=f"not run because {', '.join(blocked)} failed")
                    )
                    continue
                entry = self._sync_entity(sync, account_id, entity)
                if entry.outcome is not None:
                    result.account = entry.outcome.account
                else:
                    failed.add(entity.name)
                result.entities.append(entry)
        finally:
            for c in client:
                try:
                    c.close()
                except Exception:  # closing a client must not turn a sync into a failure
                    log.debug("closing the client of %s failed", account_id)
            result.finished_at = time.time()
        return result

    def _sync_entity(self, sync: EntitySync, account_id: str, entity: Entity) -> EntityResult:
        try:
            return EntityResult(entity, outcome=sync.run(account_id, entity, self.options))
        except SyncFailed as failed:  # already recorded in Core by the entity sync
            return EntityResult(entity, failure=failed)
        except Exception as exc:  # a bug outside the entity sync's own handling: this portal only
            message = sentence(exc, None, f"syncing {entity.name}", account_id)
            log.error(message)
            verdict = classify(exc)
            return EntityResult(
                entity,
                failure=SyncFailed(message, Verdict(verdict.retryable, False, False), type(exc).__name__),
            )


def describe(result: PortalResult) -> str:
    """One line for a run's log: the portal and what happened to it."""
    who = account_label(result.account, result.account_id)
    if result.ok:
        return f"{who}: synced in {result.finished_at - result.started_at:.2f} s."
    return result.message or f"{who}: {result.failures[0].not_run}."
