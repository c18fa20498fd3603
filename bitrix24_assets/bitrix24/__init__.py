"""Layer 1: the Bitrix24 REST client (no Dagster, no database; imports nothing of this project above it).

Fast (keyset ``>ID`` pages with ``start=-1`` chained inside ``batch``, parallel ID-range lanes),
polite (a per-portal leaky bucket and a per-method operating-time budget, waits on the portal's
clock), honest (a full read is proven complete or fails: ``ListRead``/``EventsRead`` say what was
proven), and hard to misuse (typed errors with a one-sentence fix, secrets never shown). Records
come back as the portal sent them (dicts); reading their values is the mapping layer's job
(``bitrix24_assets.sync.values``, the one reader of Bitrix24's value formats). See README.md.
"""

from . import errors
from .batch import BatchResult
from .client import PLANS, Bitrix24Client, EventsRead
from .errors import Bitrix24Error
from .oauth import OAuthCredentials
from .paging import ListRead, ListSpec, Progress
from .redaction import redact

__all__ = [
    "PLANS",
    "BatchResult",
    "Bitrix24Client",
    "Bitrix24Error",
    "EventsRead",
    "ListRead",
    "ListSpec",
    "OAuthCredentials",
    "Progress",
    "errors",
    "redact",
]
