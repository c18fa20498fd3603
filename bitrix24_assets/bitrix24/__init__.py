"""Layer 1: the Bitrix24 REST client (no Dagster, no database; imports nothing of this project above it).

Fast (keyset ``>ID`` pages with ``start=-1`` chained inside ``batch``, parallel ID-range lanes),
polite (a per-portal leaky bucket and a per-method operating-time budget, waits on the portal's
clock), honest (a full read is proven complete or fails: ``ListRead``/``EventsRead`` say what was
proven), and hard to misuse (typed errors with a one-sentence fix, secrets never shown).
See README.md in this folder.
"""

from . import errors
from .batch import BatchResult
from .client import PLANS, Bitrix24Client, EventsRead
from .errors import Bitrix24Error
from .models import CalendarEvent, Department, Task, User
from .oauth import OAuthCredentials
from .paging import ListRead, ListSpec, Progress
from .redaction import redact

__all__ = [
    "PLANS",
    "BatchResult",
    "Bitrix24Client",
    "Bitrix24Error",
    "CalendarEvent",
    "Department",
    "EventsRead",
    "ListRead",
    "ListSpec",
    "OAuthCredentials",
    "Progress",
    "Task",
    "User",
    "errors",
    "redact",
]
