"""Fault injection for reliability tests: a share of REST requests fail in chosen ways.

Kinds: ``500`` (JSON ``INTERNAL_SERVER_ERROR``), ``502``/``503`` (an HTML gateway page, as a
proxy in front of a real portal sends), ``drop`` (headers, then the connection closes without a
body), ``truncate`` (HTTP 200 with half a JSON body), ``slow`` (the call waits ``slow_seconds``
modelled seconds first). Deterministic: faults are drawn from their own seeded RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("500", "502", "503", "drop", "truncate", "slow")


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
        if self._rng.random() >= plan.rate:
            return None
        if plan.remaining is not None:
            plan.remaining -= 1
        return self._rng.choice(plan.kinds)
