"""Configuration of one sandbox portal: data size, profile (limits + costs), time scale, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from .costs import CostModel, Limits

ProfileName = Literal["instant", "cloud", "enterprise"]
BatchBilling = Literal["docs", "batch"]

PROFILE_LIMITS: dict[str, Limits] = {
    # instant: no rate limit, no operating budget, no costs - for unit tests and quick demos
    "instant": Limits(bucket_size=None, operating_limit=None),
    # cloud: every non-Enterprise plan (docs/bitrix24-rest-api.md §4.1: bucket 50, drain 2/s; §4.2: 480 s /
    # 10 min)
    "cloud": Limits(bucket_size=50, drain_per_second=2.0, operating_limit=480.0),
    # enterprise: bucket 250, drain 5/s
    "enterprise": Limits(bucket_size=250, drain_per_second=5.0, operating_limit=480.0),
}


@dataclass
class SandboxConfig:
    """Everything that shapes one sandbox portal. Defaults give a small instant portal.

    ``costs``/``limits`` override the profile's defaults (e.g. a cloud profile with zero costs to
    test the leaky bucket alone). ``freeze_clock`` stops modelled time unless advanced through the
    admin API (deterministic limit tests). ``anchor_date`` pins "today" for seeding (determinism
    across days); ``None`` uses the modelled today.
    """

    users: int = 50
    tasks: int = 300
    events: int = 100
    seed: int = 1
    profile: ProfileName = "instant"
    time_scale: float = 1.0
    event_handler_url: str | None = None
    application_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    costs: CostModel | None = None
    limits: Limits | None = None
    freeze_clock: bool = False
    anchor_date: date | None = None
    utc_offset_hours: int = 3
    # AMBIGUOUS choices of the reference, each selectable (defaults follow the reference's advice)
    bad_token_error: Literal["NO_AUTH_FOUND", "INVALID_CREDENTIALS"] = "NO_AUTH_FOUND"
    keyset_total: Literal["absent", "zero"] = "absent"  # `total` with start=-1
    batch_billing: BatchBilling = "docs"  # who pays a batch's operating time
    calendar_date_format: Literal["ru", "en"] = "ru"  # site culture format of calendar dates
    missing_task: Literal["empty", "error"] = "empty"  # tasks.task.get of an unknown id
    event_delay: float = 0.0  # modelled seconds before an event POST
    event_handler_id: int = 1
    webhook_token: str | None = None  # None -> derived from the seed
    domain: str | None = None  # None -> host:port
    extra_scopes: list[str] = field(default_factory=list)

    def resolved_costs(self) -> CostModel:
        if self.costs is not None:
            return self.costs
        return CostModel.zero() if self.profile == "instant" else CostModel()

    def resolved_limits(self) -> Limits:
        if self.limits is not None:
            return self.limits
        try:
            return PROFILE_LIMITS[self.profile]
        except KeyError:
            raise ValueError(
                f"Unknown sandbox profile {self.profile!r}; use one of {', '.join(PROFILE_LIMITS)}."
            ) from None
