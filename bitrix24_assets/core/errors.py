"""Core SDK errors, and the ONE place where vendor exceptions become them.

Hierarchy::

    CoreError                      one sentence: what failed, where (redacted), what to do
    ├── CoreUnavailableError       Core cannot be reached right now (network, timeouts, 5xx); retryable
    ├── CoreConfigurationError     the operator must fix something (DSN, key, grants, schema, migrations)
    ├── AccountNotFoundError       the integration account does not exist
    ├── CoreDataError              Core refused the data (SQLSTATE classes 22 and 23: constraint, bad value)
    └── MassRemovalError           a full merge would remove too many rows (the guard, SQLSTATE BX001)

Only :class:`CoreUnavailableError` is ``retryable``: the same data or configuration fails the same
way again (a NUL byte in a title was once retried three times for nothing).

Every backend wraps each call in :func:`translate_errors`. ``tests/core/test_errors.py`` fails if a
vendor exception class is missing from the tables below, so a library upgrade that adds one is
noticed rather than leaking a raw psycopg/httpx/postgrest exception (and maybe a password) to users.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import psycopg_pool

from .secrets import redact_text

if TYPE_CHECKING:  # imported only with the Supabase backend: importing supabase costs every run ~0.2 s
    from postgrest.exceptions import APIError
    from supabase import SupabaseException

__all__ = [
    "MASS_REMOVAL_SQLSTATE",
    "AccountNotFoundError",
    "CoreConfigurationError",
    "CoreDataError",
    "CoreError",
    "CoreUnavailableError",
    "MassRemovalError",
    "translate_errors",
]

MASS_REMOVAL_SQLSTATE = "BX001"
"""Raised by ``core.check_removal`` (sql/merge_common.sql), with the figures as JSON in DETAIL."""


class CoreError(Exception):
    """Base of all Core SDK errors; ``str()`` is one safe sentence, ``hint`` says what to do."""

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        self.message = redact_text(message)
        self.hint = redact_text(hint) if hint else None
        self.code = code
        super().__init__(self.message + (f"; {self.hint}" if self.hint else ""))

    @property
    def is_configuration_error(self) -> bool:
        """True when retrying cannot help: an operator has to change configuration or data."""
        return isinstance(self, CoreConfigurationError | AccountNotFoundError)

    @property
    def retryable(self) -> bool:
        """True only when Core could not be reached or gave up for now (network, 5xx, deadlock):
        a retry of the same call can succeed. Refused data, configuration and the mass-removal
        guard fail the same way every time."""
        return isinstance(self, CoreUnavailableError)


class CoreUnavailableError(CoreError):
    """Core cannot be reached right now (connection refused, timeout, gateway 5xx)."""


class CoreConfigurationError(CoreError):
    """Core is reachable but misconfigured: credentials, grants, exposed schema or migrations."""


class AccountNotFoundError(CoreError):
    """The integration account (or sync log) named by the caller does not exist."""


class CoreDataError(CoreError):
    """Core refused the data: a constraint or a value out of range (SQLSTATE classes 22 and 23)."""


class MassRemovalError(CoreError):
    """A full merge would have removed too many of an account's live rows; it changed nothing.

    ``entity`` is the Core entity ("employees", "tasks", "calendar_events"), ``live`` the live rows
    the read covered, ``removing`` how many the merge would have deactivated or marked deleted,
    ``max_share`` / ``min_rows`` the guard's limits and ``empty_batch`` whether the read brought no
    rows at all. Never retryable: the same read removes the same rows; an operator confirms it with
    ``RemovalGuard(allow=True)`` once Bitrix24 shows the rows are really gone.
    """

    def __init__(
        self,
        entity: str,
        live: int,
        removing: int,
        max_share: float,
        min_rows: int = 0,
        empty_batch: bool = False,
    ) -> None:
        self.entity = entity
        self.live = live
        self.removing = removing
        self.max_share = max_share
        self.min_rows = min_rows
        self.empty_batch = empty_batch
        what = entity.replace("_", " ")
        if empty_batch:
            message = (
                f"A full read of {what} returned no rows, so the merge would remove all {removing:,} of "
                f"{live:,} live rows; nothing was changed"
            )
        else:
            limit = max(max_share * live, min_rows)
            message = (
                f"A full merge of {what} would remove {removing:,} of {live:,} live rows, more than the "
                f"{limit:,.0f} allowed ({max_share:.0%} of them, at least {min_rows:,}); nothing was changed"
            )
        super().__init__(message, code=MASS_REMOVAL_SQLSTATE)

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its figures (the default would call __init__ with the message only)
        return (
            type(self),
            (self.entity, self.live, self.removing, self.max_share, self.min_rows, self.empty_batch),
        )


def _mass_removal(detail: str | None) -> CoreError:
    """The guard's figures from the error's DETAIL (JSON written by core.check_removal)."""
    try:
        figures = json.loads(detail or "")
        return MassRemovalError(
            entity=str(figures["entity"]),
            live=int(figures["live"]),
            removing=int(figures["removing"]),
            max_share=float(figures["max_share"]),
            min_rows=int(figures.get("min_rows", 0)),
            empty_batch=bool(figures.get("empty_batch", False)),
        )
    except (ValueError, TypeError, KeyError):
        return CoreDataError(
            "Core refused a full merge that would remove too many rows (the figures were not readable)",
            hint="check the read, or confirm the removal",
            code=MASS_REMOVAL_SQLSTATE,
        )


# --------------------------------------------------------------------------------------------- psycopg

_MIGRATE_HINT = "run `bitrix24-core migrate` against this Core"

# SQLSTATE -> (error class, message, hint). Looked up by full code first, then by class (first 2 chars).
_SQLSTATE: dict[str, tuple[type[CoreError], str, str | None]] = {
    "P0002": (AccountNotFoundError, "{detail}", "check the account id in core.integration_accounts"),
    "42501": (
        CoreConfigurationError,
        "Core at {target} refused access ({detail})",
        "grant the role access to schema core (re-run `bitrix24-core migrate` as the owner)",
    ),
    "42P01": (CoreConfigurationError, "Core at {target} is missing a table ({detail})", _MIGRATE_HINT),
    "42883": (CoreConfigurationError, "Core at {target} is missing a function ({detail})", _MIGRATE_HINT),
    "3F000": (CoreConfigurationError, "Core at {target} has no schema core ({detail})", _MIGRATE_HINT),
    "42704": (CoreConfigurationError, "Core at {target} is missing a type ({detail})", _MIGRATE_HINT),
    "28P01": (
        CoreConfigurationError,
        "Core at {target} rejected the password",
        "check the password in CORE_DATABASE_URL",
    ),
    "28": (
        CoreConfigurationError,
        "Core at {target} rejected the login ({detail})",
        "check the user in CORE_DATABASE_URL",
    ),
    "3D000": (
        CoreConfigurationError,
        "Core at {target} has no such database ({detail})",
        "check the database name in CORE_DATABASE_URL",
    ),
    "08": (
        CoreUnavailableError,
        "Core at {target} is unreachable ({detail})",
        "check that the database is running and CORE_DATABASE_URL points at it",
    ),
    "57": (CoreUnavailableError, "Core at {target} is not accepting work ({detail})", "retry later"),
    "53": (CoreUnavailableError, "Core at {target} is out of resources ({detail})", "retry later"),
    "40": (CoreUnavailableError, "Core at {target} aborted the transaction ({detail})", "retry the run"),
    "22": (CoreDataError, "Core at {target} refused a value ({detail})", "check the mapped rows"),
    "23": (CoreDataError, "Core at {target} refused the data ({detail})", "check the mapped rows"),
    "42": (CoreConfigurationError, "Core at {target} rejected a statement ({detail})", _MIGRATE_HINT),
}


def _from_sqlstate(code: str | None, detail: str, target: str) -> CoreError | None:
    if not code:
        return None
    entry = _SQLSTATE.get(code) or _SQLSTATE.get(code[:2])
    if entry is None:
        return None
    cls, message, hint = entry
    return cls(message.format(target=target, detail=detail), hint=hint, code=code)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def _psycopg_error(exc: psycopg.Error, target: str) -> CoreError:
    if exc.sqlstate == MASS_REMOVAL_SQLSTATE:
        return _mass_removal(exc.diag.message_detail)
    detail = _first_line(exc)
    mapped = _from_sqlstate(exc.sqlstate, detail, target)
    if mapped is not None:
        return mapped
    if isinstance(exc, psycopg.OperationalError):
        # errors while connecting carry no SQLSTATE in psycopg: read libpq's message instead
        if "database" in detail and "does not exist" in detail:
            return CoreConfigurationError(
                f"Core at {target} has no such database ({detail})",
                hint="check the database name in CORE_DATABASE_URL",
            )
        if "password" in detail.lower() or "authentication" in detail.lower():
            return CoreConfigurationError(
                f"Core at {target} rejected the login ({detail})",
                hint="check the user and password in CORE_DATABASE_URL",
            )
        return CoreUnavailableError(
            f"Core at {target} is unreachable ({detail})",
            hint="check that the database is running and CORE_DATABASE_URL points at it",
        )
    if isinstance(exc, psycopg.InterfaceError):
        return CoreConfigurationError(
            f"Core connection to {target} was misused ({detail})",
            hint="check CORE_DATABASE_URL (it must be a postgresql:// URL)",
        )
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return CoreDataError(f"Core at {target} refused the data ({detail})", hint="check the mapped rows")
    return CoreError(f"Core at {target} failed ({detail})", hint="see the Core server log")


def _pool_error(
    exc: psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed | psycopg_pool.TooManyRequests, target: str
) -> CoreError:
    if isinstance(exc, psycopg_pool.PoolClosed):
        return CoreConfigurationError(
            f"The connection pool for Core at {target} is closed", hint="open a new store with open_store()"
        )
    return CoreUnavailableError(
        f"Core at {target} did not give a connection in time ({_first_line(exc)})",
        hint="check that the database is running, or raise CORE_POOL_MAX_SIZE",
    )


# ------------------------------------------------------------------------------------- postgrest / http

_POSTGREST: dict[str, tuple[type[CoreError], str, str | None]] = {
    "PGRST106": (
        CoreConfigurationError,
        "Supabase at {target} does not expose schema core",
        "add core to Settings > API > Exposed schemas in the Supabase dashboard",
    ),
    "PGRST202": (
        CoreConfigurationError,
        "Supabase at {target} has no such function ({detail})",
        _MIGRATE_HINT + ", then reload the PostgREST schema cache (NOTIFY pgrst, 'reload schema')",
    ),
    "PGRST205": (CoreConfigurationError, "Supabase at {target} has no such table ({detail})", _MIGRATE_HINT),
    "PGRST301": (
        CoreConfigurationError,
        "Supabase at {target} rejected the key ({detail})",
        "set SUPABASE_SERVICE_ROLE_KEY to the project's service_role key",
    ),
    "PGRST302": (
        CoreConfigurationError,
        "Supabase at {target} requires a key",
        "set SUPABASE_SERVICE_ROLE_KEY to the project's service_role key",
    ),
    "PGRST000": (
        CoreUnavailableError,
        "Supabase at {target} cannot reach its database ({detail})",
        "retry later",
    ),
    "PGRST001": (
        CoreUnavailableError,
        "Supabase at {target} cannot reach its database ({detail})",
        "retry later",
    ),
    "PGRST002": (
        CoreUnavailableError,
        "Supabase at {target} is still loading its schema cache",
        "retry later",
    ),
    "PGRST003": (
        CoreUnavailableError,
        "Supabase at {target} timed out waiting for a connection",
        "retry later",
    ),
    "401": (
        CoreConfigurationError,
        "Supabase at {target} rejected the key",
        "set SUPABASE_SERVICE_ROLE_KEY to the project's service_role key",
    ),
    "403": (
        CoreConfigurationError,
        "Supabase at {target} refused access",
        "use the service_role key, not the anon key",
    ),
    "404": (
        CoreConfigurationError,
        "Supabase at {target} has no REST API at that address",
        "check SUPABASE_URL (https://<project>.supabase.co)",
    ),
    "413": (
        CoreDataError,
        "Supabase at {target} refused a request as too large",
        "lower the chunk size (CORE_SUPABASE_CHUNK_ROWS)",
    ),
}

_TRANSIENT_HTTP = {"500", "502", "503", "504", "520", "522", "524"}


def _api_error(exc: APIError, target: str) -> CoreError:
    code = str(exc.code) if exc.code is not None else None
    if code == MASS_REMOVAL_SQLSTATE:
        return _mass_removal(exc.details)
    detail = redact_text(str(exc.message or code or "no message").splitlines()[0].rstrip("."))
    if code in _POSTGREST:
        cls, message, hint = _POSTGREST[code]
        return cls(message.format(target=target, detail=detail), hint=hint, code=code)
    if code in _TRANSIENT_HTTP:
        return CoreUnavailableError(
            f"Supabase at {target} answered HTTP {code}", hint="retry later", code=code
        )
    mapped = _from_sqlstate(code, detail, target)
    if mapped is not None:
        return mapped
    return CoreError(
        f"Supabase at {target} failed ({code}: {detail})", hint="see the Supabase API logs", code=code
    )


def is_transient_api_error(exc: BaseException) -> bool:
    """Whether a PostgREST error is worth retrying (gateway errors, pool exhaustion, deadlocks)."""
    api_error = getattr(sys.modules.get("postgrest.exceptions"), "APIError", None)
    if api_error is None or not isinstance(exc, api_error):
        return False
    code = str(exc.code or "")
    return (
        code in _TRANSIENT_HTTP
        or code in {"PGRST000", "PGRST001", "PGRST002", "PGRST003"}
        or code[:2] == "40"
    )


def _httpx_error(exc: httpx.HTTPError, target: str) -> CoreError:
    if isinstance(exc, httpx.HTTPStatusError):
        from postgrest.exceptions import APIError

        code = str(exc.response.status_code)
        return _api_error(APIError({"code": code, "message": exc.response.reason_phrase}), target)
    if isinstance(exc, httpx.TransportError):
        return CoreUnavailableError(
            f"Supabase at {target} is unreachable ({type(exc).__name__}: {_first_line(exc)})",
            hint="check SUPABASE_URL and the network",
        )
    return CoreError(
        f"Request to Supabase at {target} failed ({_first_line(exc)})", hint="check SUPABASE_URL"
    )


def _invalid_url(exc: httpx.InvalidURL | httpx.UnsupportedProtocol, target: str) -> CoreError:
    return CoreConfigurationError(
        f"Supabase URL {target} is not valid ({_first_line(exc)})",
        hint="set SUPABASE_URL to https://<project>.supabase.co",
    )


def _supabase_error(exc: SupabaseException, target: str) -> CoreError:
    return CoreConfigurationError(
        f"Supabase client for {target} cannot start ({exc.message})",
        hint="check SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY",
    )


def _stream_error(exc: Exception, target: str) -> CoreError:
    return CoreError(f"Request to Supabase at {target} failed ({type(exc).__name__})", hint="retry the run")


Translator = Callable[[Any, str], CoreError]


# Vendor exception class -> translator. The most specific class wins (checked along the MRO).
# Keep every exception class these libraries export listed here: tests/core/test_errors.py checks it.
class _VendorErrors(dict[type[BaseException], Translator]):
    """The table, with postgrest's and supabase's classes added once those modules are imported (by
    the Supabase backend): the Postgres backend never imports them, and cannot meet their errors."""

    def _load(self) -> None:
        postgrest, supabase = sys.modules.get("postgrest.exceptions"), sys.modules.get("supabase")
        if postgrest is not None and not super().__contains__(postgrest.APIError):
            super().__setitem__(postgrest.APIError, _api_error)
        if supabase is not None and not super().__contains__(supabase.SupabaseException):
            super().__setitem__(supabase.SupabaseException, _supabase_error)

    def get(self, key: type[BaseException], default: Any = None) -> Any:
        self._load()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if not super().__contains__(key):
            self._load()
        return super().__contains__(key)


VENDOR_ERRORS: dict[type[BaseException], Translator] = _VendorErrors(
    {
        psycopg.Error: _psycopg_error,
        psycopg.InterfaceError: _psycopg_error,
        psycopg.DatabaseError: _psycopg_error,
        psycopg.DataError: _psycopg_error,
        psycopg.OperationalError: _psycopg_error,
        psycopg.IntegrityError: _psycopg_error,
        psycopg.InternalError: _psycopg_error,
        psycopg.ProgrammingError: _psycopg_error,
        psycopg.NotSupportedError: _psycopg_error,
        psycopg.errors.ConnectionTimeout: _psycopg_error,
        psycopg.errors.CancellationTimeout: _psycopg_error,
        psycopg.errors.PipelineAborted: _psycopg_error,
        psycopg_pool.PoolTimeout: _pool_error,
        psycopg_pool.PoolClosed: _pool_error,
        psycopg_pool.TooManyRequests: _pool_error,
        httpx.HTTPError: _httpx_error,
        httpx.RequestError: _httpx_error,
        httpx.TransportError: _httpx_error,
        httpx.TimeoutException: _httpx_error,
        httpx.ConnectTimeout: _httpx_error,
        httpx.ReadTimeout: _httpx_error,
        httpx.WriteTimeout: _httpx_error,
        httpx.PoolTimeout: _httpx_error,
        httpx.NetworkError: _httpx_error,
        httpx.ConnectError: _httpx_error,
        httpx.ReadError: _httpx_error,
        httpx.WriteError: _httpx_error,
        httpx.CloseError: _httpx_error,
        httpx.ProtocolError: _httpx_error,
        httpx.LocalProtocolError: _httpx_error,
        httpx.RemoteProtocolError: _httpx_error,
        httpx.ProxyError: _httpx_error,
        httpx.UnsupportedProtocol: _invalid_url,
        httpx.DecodingError: _httpx_error,
        httpx.TooManyRedirects: _httpx_error,
        httpx.HTTPStatusError: _httpx_error,
        httpx.InvalidURL: _invalid_url,
        httpx.CookieConflict: _stream_error,
        httpx.StreamError: _stream_error,
        httpx.StreamConsumed: _stream_error,
        httpx.StreamClosed: _stream_error,
        httpx.ResponseNotRead: _stream_error,
        httpx.RequestNotRead: _stream_error,
    }
)


def translate(exc: BaseException, target: str) -> CoreError | None:
    """The CoreError for a vendor exception, or None if it is not a vendor exception."""
    for cls in type(exc).__mro__:
        translator = VENDOR_ERRORS.get(cls)
        if translator is not None:
            return translator(exc, target)
    return None


@contextmanager
def translate_errors(target: str) -> Iterator[None]:
    """Turn psycopg / psycopg_pool / postgrest / supabase / httpx exceptions into CoreError.

    ``target`` is the already-redacted Core address used in messages. The original exception is
    kept as ``__cause__`` for debugging but is never part of the message.
    """
    try:
        yield
    except CoreError:
        raise
    except Exception as exc:
        mapped = translate(exc, target)
        if mapped is None:
            raise
        raise mapped from exc
