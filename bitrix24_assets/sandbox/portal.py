"""One sandbox portal: state, clock, limits, costs, auth, and the call pipeline.

The pipeline for one REST request (docs/bitrix24-rest-api.md §9): leaky bucket -> auth -> method lookup ->
scope
-> operating budget -> a worker slot -> handler -> modelled cost (``asyncio.sleep``) -> billing ->
envelope. ``batch`` runs its sub-commands one after another inside the same worker slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .clock import ModelledClock
from .config import SandboxConfig
from .costs import CostModel, Limits
from .errors import (
    RestError,
    insufficient_scope,
    internal_error,
    method_not_found,
    operation_time_limit,
    query_limit_exceeded,
)
from .faults import Faults
from .limits import LeakyBucket, OperatingBudget
from .methods import CallContext, MethodResult, MethodSpec, load_all
from .methods.system import ALL_SCOPES
from .oauth import OAuthRegistry
from .outgoing import EventSender
from .seed import seed_portal
from .store import PortalState, Webhook

log = logging.getLogger("bitrix24_assets.sandbox")
router = load_all()


@dataclass
class Counters:
    requests: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    operating: dict[str, float] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    events_sent: int = 0
    events_failed: int = 0
    notifications: int = 0
    max_concurrent: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "calls": dict(self.calls),
            "rejections": dict(self.rejections),
            "errors": dict(self.errors),
            "operating": {k: round(v, 6) for k, v in self.operating.items()},
            "faults": dict(self.faults),
            "events_sent": self.events_sent,
            "events_failed": self.events_failed,
            "max_concurrent": self.max_concurrent,
        }


@dataclass
class CallOutcome:
    """A finished call: the method's result plus its timing in modelled seconds."""

    result: MethodResult
    start: float
    finish: float
    processing: float
    operating: float | None = None
    operating_reset_at: int | None = None


class Portal:
    """Everything one running sandbox portal needs."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = ModelledClock(
            config.time_scale, frozen=config.freeze_clock, utc_offset_hours=config.utc_offset_hours
        )
        self.tz = self.clock.tz
        self.costs: CostModel = config.resolved_costs()
        self.limits: Limits = config.resolved_limits()
        self.state = PortalState()
        self.counters = Counters()
        self.budget = OperatingBudget(self.limits, self.clock)
        self.bucket = self._new_bucket()
        self.faults = Faults()
        self.oauth = OAuthRegistry(self.clock)
        self.events = EventSender(self, config.event_handler_url, config.application_token)
        self.base_url = f"http://{config.host}:{config.port}"
        self.webhooks: dict[str, Webhook] = {}
        self.member_id = hashlib.md5(f"sandbox-member-{config.seed}".encode()).hexdigest()
        token = (
            config.webhook_token or hashlib.sha1(f"sandbox-webhook-{config.seed}".encode()).hexdigest()[:16]
        )
        self.admin_webhook = self.add_webhook(
            user_id=1, scopes=ALL_SCOPES + tuple(config.extra_scopes), token=token
        )
        self._workers: asyncio.Semaphore | None = None
        self._active = 0
        self.anchor: date = config.anchor_date or self.clock.now_dt().date()
        self.reseed()

    # ---- setup ---------------------------------------------------------------------------------

    def _new_bucket(self) -> LeakyBucket | None:
        if self.limits.bucket_size is None:
            return None
        return LeakyBucket(self.limits.bucket_size, self.limits.drain_per_second, self.clock)

    def reseed(self) -> None:
        self.state = PortalState()
        seed_portal(
            self.state,
            users=self.config.users,
            tasks=self.config.tasks,
            events=self.config.events,
            seed=self.config.seed,
            anchor=self.anchor,
            utc_offset_hours=self.config.utc_offset_hours,
            # a pinned anchor date is for determinism; otherwise "today" must not run ahead of the clock
            not_after=None if self.config.anchor_date else self.clock.now(),
        )

    def reset(self) -> None:
        """Back to the seeded data with fresh counters, limits and faults (webhooks/apps stay)."""
        self.reseed()
        self.counters = Counters()
        self.budget.reset()
        self.bucket = self._new_bucket()
        self.faults.clear()

    def bind(self, host: str, port: int) -> None:
        self.base_url = f"http://{host}:{port}"

    @property
    def domain(self) -> str:
        return self.config.domain or self.base_url.split("://", 1)[1]

    def webhook_url(self, hook: Webhook) -> str:
        return f"{self.base_url}/rest/{hook.user_id}/{hook.token}/"

    def add_webhook(
        self, *, user_id: int, scopes: tuple[str, ...] | list[str], token: str | None = None
    ) -> Webhook:
        hook = Webhook(
            id=len(self.webhooks) + 1,
            user_id=user_id,
            token=token or secrets.token_hex(8),
            scopes=frozenset(scopes) | {"basic"},
        )
        self.webhooks[hook.token] = hook
        return hook

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.events.emit(event, data)

    def count(self, bucket: dict[str, int], key: str) -> None:
        bucket[key] = bucket.get(key, 0) + 1

    @property
    def workers(self) -> asyncio.Semaphore:
        if self._workers is None:
            self._workers = asyncio.Semaphore(max(self.costs.workers, 1))
        return self._workers

    # ---- auth ----------------------------------------------------------------------------------

    def authenticate_webhook(self, user_id: str, token: str) -> CallContext:
        hook = self.webhooks.get(token)
        if hook is None or str(hook.user_id) != user_id:
            if self.config.bad_token_error == "INVALID_CREDENTIALS":
                raise RestError(401, "INVALID_CREDENTIALS", "Invalid request credentials")
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        return CallContext(
            self, hook.user_id, hook.scopes, auth_kind="webhook", auth_key=f"webhook:{hook.id}"
        )

    def authenticate_oauth(self, token: Any) -> CallContext:
        if not token:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        app = self.oauth.authenticate(str(token))
        return CallContext(
            self, app.user_id, app.scopes | {"basic"}, auth_kind="oauth", auth_key=f"app:{app.client_id}"
        )

    def oauth_portal_info(self) -> dict[str, Any]:
        return {"client_endpoint": f"{self.base_url}/rest/", "member_id": self.member_id}

    # ---- the pipeline --------------------------------------------------------------------------

    def admit(self) -> None:
        """Leaky bucket: one request = one drop, batch included."""
        if self.bucket is not None and not self.bucket.try_acquire():
            self.count(self.counters.rejections, "QUERY_LIMIT_EXCEEDED")
            raise query_limit_exceeded()

    def resolve(self, ctx: CallContext, method: str) -> MethodSpec:
        spec = router.get(method)
        if spec is None:
            raise method_not_found()
        if spec.scopes and not (spec.scopes & ctx.scopes):
            raise insufficient_scope(oauth=ctx.auth_kind == "oauth", in_batch=ctx.in_batch)
        return spec

    def check_budget(self, ctx: CallContext, method: str) -> None:
        if self.budget.blocked(ctx.auth_key, method):
            self.count(self.counters.rejections, "OPERATION_TIME_LIMIT")
            raise operation_time_limit()

    def run_handler(
        self, ctx: CallContext, spec: MethodSpec, params: dict[str, Any]
    ) -> tuple[MethodResult, float]:
        """Run a handler synchronously; returns its result and modelled cost. Errors carry a cost too."""
        self.count(self.counters.calls, spec.name)
        try:
            result = spec.handler(ctx, params)
        except RestError as exc:
            exc.cost = self.costs.base
            self.count(self.counters.errors, exc.code or "(empty)")
            raise
        except Exception:
            log.exception("sandbox handler for %s failed", spec.name)
            self.count(self.counters.errors, "INTERNAL_SERVER_ERROR")
            error = internal_error()
            error.cost = self.costs.base
            raise error from None
        return result, self.costs.call_cost(spec.name, result.work)

    def bill(self, ctx: CallContext, method: str, seconds: float) -> None:
        self.budget.bill(ctx.auth_key, method, seconds)
        if self.budget.enabled and seconds >= self.limits.operating_floor:
            self.counters.operating[method] = self.counters.operating.get(method, 0.0) + seconds

    def operating_fields(self, ctx: CallContext, method: str) -> tuple[float | None, int | None]:
        if not self.budget.enabled:
            return None, None
        used, reset_at = self.budget.used(ctx.auth_key, method)
        return round(used, 4), reset_at

    async def call(
        self, ctx: CallContext, method: str, params: dict[str, Any], *, start: float | None = None
    ) -> CallOutcome:
        """One top-level REST call (not batch): budget, worker slot, handler, modelled cost, billing."""
        from .batch import run_batch

        start = self.clock.now() if start is None else start
        spec = self.resolve(ctx, method)
        if spec.name == "batch":
            return await run_batch(self, ctx, params, start)
        self.check_budget(ctx, spec.name)
        async with self.workers:
            self._active += 1
            self.counters.max_concurrent = max(self.counters.max_concurrent, self._active)
            try:
                try:
                    result, cost = self.run_handler(ctx, spec, params)
                except RestError as exc:
                    await self.clock.sleep(getattr(exc, "cost", 0.0))
                    self.bill(ctx, spec.name, getattr(exc, "cost", 0.0))
                    raise
                await self.clock.sleep(cost)
            finally:
                self._active -= 1
        self.bill(ctx, spec.name, cost)
        operating, reset_at = self.operating_fields(ctx, spec.name)
        return CallOutcome(result, start, self.clock.now(), cost, operating, reset_at)

    def time_block(self, outcome: CallOutcome) -> dict[str, Any]:
        block: dict[str, Any] = {
            "start": round(outcome.start, 6),
            "finish": round(outcome.finish, 6),
            "duration": round(outcome.finish - outcome.start, 6),
            "processing": round(outcome.processing, 6),
            "date_start": self.clock.iso(outcome.start),
            "date_finish": self.clock.iso(outcome.finish),
        }
        if outcome.operating is not None:
            if outcome.operating_reset_at is not None and outcome.operating > 0:
                block["operating_reset_at"] = outcome.operating_reset_at
            block["operating"] = outcome.operating
        return block

    def envelope(self, outcome: CallOutcome) -> dict[str, Any]:
        body: dict[str, Any] = {"result": outcome.result.result}
        if outcome.result.next is not None:
            body["next"] = int(outcome.result.next)
        if outcome.result.total is not None:
            body["total"] = int(outcome.result.total)
        body["time"] = self.time_block(outcome)
        return body
