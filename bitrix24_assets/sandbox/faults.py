"""Fault injection for reliability tests: a share of REST requests fail in chosen ways.

Kinds, each what a real portal or a proxy in front of it can do:

* before the call runs (the portal never executes it): ``500`` (JSON ``INTERNAL_SERVER_ERROR``),
  ``502``/``503`` (an HTML gateway page), ``drop`` (headers, then the connection closes without a
  body), ``truncate`` (HTTP 200 with half a JSON body), ``query_limit`` (HTTP 503
  ``QUERY_LIMIT_EXCEEDED`` as the portal's limiter sends it, whatever the bucket's level),
  ``slow`` (the call waits ``slow_seconds`` modelled seconds first, then runs);
* after the call ran (its effects and costs stay, only the answer is spoiled): ``garbled``
  (HTTP 200 with a body that is not JSON), ``empty`` (HTTP 200, a well-formed envelope whose
  ``result`` is ``[]``, with its ``time`` object, for ``batch`` too), ``missing_key`` (``batch``
  only: one sub-command's key taken out of every ``result*`` map, as if it had never run),
  ``drop_after`` (headers, then the connection closes without a body: the client cannot tell
  whether a write ran, the case the commands outbox marks ``unknown``).

Deterministic: faults are drawn from their own seeded RNG. ``missing_key`` is only drawn for
``batch`` requests; other requests draw among the remaining kinds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

KINDS = (
    "500",
    "502",
    "503",
    "drop",
    "truncate",
    "slow",
    "query_limit",
    "garbled",
    "empty",
    "missing_key",
    "drop_after",
)
AFTER_CALL = frozenset({"garbled", "empty", "missing_key", "drop_after"})
BATCH_ONLY = frozenset({"missing_key"})


@dataclass
class FaultPlan:
    rate: float = 0.0
    kinds: tuple[str, ...] = ("500",)
    methods: frozenset[str] | None = None  # None = every method
    remaining: int | None = None  # stop after this many faults
    slow_seconds: float = 30.0
    seed: int = 0


@dataclass
class Faults:
    plan: FaultPlan = field(default_factory=FaultPlan)
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def set(self, plan: FaultPlan) -> None:
        unknown = [k for k in plan.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; use {', '.join(KINDS)}")
        if not 0 <= plan.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self.plan = plan
        self._rng = random.Random(plan.seed)

    def clear(self) -> None:
        self.set(FaultPlan())

    def draw(self, method: str) -> str | None:
        plan = self.plan
        if plan.rate <= 0 or not plan.kinds or plan.remaining == 0:
            return None
        if plan.methods is not None and method.lower() not in plan.methods:
            return None
        kinds = [k for k in plan.kinds if k not in BATCH_ONLY or method.lower() == "batch"]
        if not kinds:
            return None
        if self._rng.random() >= plan.rate:
            return None
        if plan.remaining is not None:
            plan.remaining -= 1
        return self._rng.choice(kinds)

    def pick(self, keys: Sequence[str]) -> str | None:
        """The sub-command a ``missing_key`` fault removes (from the same seeded RNG)."""
        return self._rng.choice(list(keys)) if keys else None
