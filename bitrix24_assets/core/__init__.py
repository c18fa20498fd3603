"""Layer 2 - the Core SDK: migrations, merges, sync logs and the event inbox over Core.

Core is the platform's database (Supabase = Postgres + PostgREST, schema ``core``). One
:class:`CoreStore` interface, two backends running the same SQL functions (Postgres via psycopg,
Supabase via RPC), and an embedded Postgres as the local default. See ``README.md``.

Imports nothing from Dagster or from layers 3-6 (sync, defs, webhooks, sandbox).
"""

from .config import CoreSettings, open_store, seed_demo
from .errors import (
    AccountNotFoundError,
    CoreConfigurationError,
    CoreDataError,
    CoreError,
    CoreUnavailableError,
)
from .models import InboxEvent, IntegrationAccount, MergeCounts, SyncLog
from .postgres import PostgresStore
from .rows import CalendarEventRow, DepartmentRow, EmployeeRow, TaskRow
from .store import CoreStore

__all__ = [
    "AccountNotFoundError",
    "CalendarEventRow",
    "CoreConfigurationError",
    "CoreDataError",
    "CoreError",
    "CoreSettings",
    "CoreStore",
    "CoreUnavailableError",
    "DepartmentRow",
    "EmployeeRow",
    "InboxEvent",
    "IntegrationAccount",
    "MergeCounts",
    "PostgresStore",
    "SyncLog",
    "TaskRow",
    "open_store",
    "seed_demo",
]
