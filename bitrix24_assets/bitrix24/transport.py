"""The one path every request takes, in layers (like httpx's ``send`` chain)::

    send()                      OAuth: refresh on ``expired_token`` and call again once
    └── _send_within_limits()   operating-time budget per method; 429 OPERATION_TIME_LIMIT -> wait for reset
        └── _send_with_retries()  tenacity: backoff + jitter for QUERY_LIMIT_EXCEEDED, 5xx, timeouts, drops,
            │                     and (reads only) answers the caller's ``validate`` calls broken
            └── _send_single()    leaky-bucket slot, one HTTP POST (JSON body), envelope or typed error,
                                  then ``validate(envelope)``

``validate`` is how a reader proves an answer usable before it is accepted: a batch answer without
one of its commands, or list pages that contradict each other, raise
:class:`~.errors.IncompleteReadError` there, so a read is sent again exactly like after a 5xx.

Vendor (httpx) exceptions become :mod:`.errors` exceptions in exactly one place,
:func:`translate_httpx_errors`, and never as a chained cause: their messages and ``request`` objects
carry the webhook URL. The ``httpx`` logger, which logs every request URL at INFO, gets a filter that
masks webhook tokens.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from . import errors
from .clock import Clock
from .envelope import Envelope, TimeInfo
from .limits import OperatingBudget, shared_bucket
from .oauth import OAuthCredentials
from .redaction import Redactor, redact

__all__ = ["HTTPX_ERROR_MAP", "Stats", "Transport", "is_read_method", "translate_httpx_errors"]

log = logging.getLogger(__name__)

Validate = Callable[[Envelope], None]
"""Checks an answer before it is accepted; raises :class:`~.errors.IncompleteReadError` if broken."""

_WEBHOOK_URL = re.compile(r"^(https?://[^/\s]+(?:/[^\s]*?)?/rest/)(\d+)/([^/\s?#]+)/?$")

# Methods that only read: retried after timeouts/5xx because running them twice is harmless.
_READ_SUFFIXES = (".get", ".list", ".fields", ".current", ".getbyid", ".count")
_READ_METHODS = frozenset(
    {
        "profile",
        "scope",
        "methods",
        "method.get",
        "server.time",
        "app.info",
        "user.search",
        "user.current",
        "batch",
    }
)


def is_read_method(method: str) -> bool:
    """True for methods that cannot change data (so a retry cannot duplicate anything)."""
    m = method.lower()
    return m in _READ_METHODS or m.endswith(_READ_SUFFIXES)


# Every exception httpx exports, mapped to ours. tests/bitrix24/test_errors.py fails when httpx grows
# a class that is missing here.
HTTPX_ERROR_MAP: dict[type[Exception], type[errors.Bitrix24Error]] = {
    httpx.ConnectError: errors.ConnectError,
    httpx.ConnectTimeout: errors.ConnectError,
    httpx.PoolTimeout: errors.ConnectError,
    httpx.ReadTimeout: errors.TimeoutError,
    httpx.WriteTimeout: errors.TimeoutError,
    httpx.TimeoutException: errors.TimeoutError,
    httpx.ReadError: errors.TransportError,
    httpx.WriteError: errors.TransportError,
    httpx.CloseError: errors.TransportError,
    httpx.NetworkError: errors.TransportError,
    httpx.RemoteProtocolError: errors.TransportError,
    httpx.LocalProtocolError: errors.TransportError,
    httpx.ProtocolError: errors.TransportError,
    httpx.ProxyError: errors.TransportError,
    httpx.UnsupportedProtocol: errors.ClientConfigError,
    httpx.TransportError: errors.TransportError,
    httpx.DecodingError: errors.TransportError,
    httpx.TooManyRedirects: errors.TransportError,
    httpx.RequestError: errors.TransportError,
    httpx.HTTPStatusError: errors.ServerError,
    httpx.HTTPError: errors.TransportError,
    httpx.InvalidURL: errors.ClientConfigError,
    httpx.CookieConflict: errors.ClientConfigError,
    httpx.StreamError: errors.TransportError,
    httpx.StreamConsumed: errors.TransportError,
    httpx.StreamClosed: errors.TransportError,
    httpx.ResponseNotRead: errors.TransportError,
    httpx.RequestNotRead: errors.TransportError,
}


@contextmanager
def translate_httpx_errors(
    method: str | None, portal: str, scrub: Callable[[str], str] = redact
) -> Iterator[None]:
    """Turn any httpx exception into our typed error, without chaining the vendor exception."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise _translated(exc, method, portal, scrub) from None
    except (httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError) as exc:
        raise _translated(exc, method, portal, scrub) from None


def _translated(
    exc: Exception, method: str | None, portal: str, scrub: Callable[[str], str]
) -> errors.Bitrix24Error:
    cls = next((HTTPX_ERROR_MAP[k] for k in type(exc).__mro__ if k in HTTPX_ERROR_MAP), errors.TransportError)
    text = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return cls(text, code=type(exc).__name__, method=method, portal=portal)


class _RedactingFilter(logging.Filter):
    """Masks webhook tokens in httpx's ``HTTP Request: POST <url>`` log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if isinstance(a, str | httpx.URL) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactingFilter) for f in _logger.filters):
        _logger.addFilter(_RedactingFilter())


@dataclass
class Stats:
    """Counters for progress logs and asset metadata (no secrets)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 503/429 QUERY_LIMIT_EXCEEDED answers seen
    operation_limited: int = 0  # 429 OPERATION_TIME_LIMIT answers seen
    bucket_wait: float = 0.0  # modelled seconds waited for the leaky bucket
    budget_wait: float = 0.0  # modelled seconds waited for the operating budget
    broken_answers: int = 0  # answers a reader's validate refused (IncompleteReadError), retried or not
    operating: dict[str, float] = field(default_factory=dict)  # latest time.operating per method
    processing: dict[str, float] = field(default_factory=dict)  # summed time.processing per method
    server_now: float | None = None  # portal clock of the latest response (time.finish)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "operation_limited": self.operation_limited,
                "broken_answers": self.broken_answers,
                "bucket_wait_s": round(self.bucket_wait, 3),
                "budget_wait_s": round(self.budget_wait, 3),
                "operating_s": dict(self.operating),
                "processing_s": {k: round(v, 3) for k, v in self.processing.items()},
            }


class Transport:
    """Sends one REST call with every policy applied. Thread-safe; one per client."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        oauth: OAuthCredentials | None = None,
        time_scale: float = 1.0,
        timeout: float = 60.0,
        rate_limit: tuple[int, float] = (50, 2.0),
        metered: bool | None = True,
        operating_limit: float = 480.0,
        max_attempts: int = 6,
        max_budget_waits: int = 15,
        on_token_refresh: Callable[[dict[str, Any]], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 16,
        user_agent: str = "bitrix24-assets/0.1",
    ) -> None:
        if (webhook_url is None) == (oauth is None):
            raise errors.ClientConfigError(
                "give exactly one of webhook_url or oauth",
                portal="the portal",
                hint="pass webhook_url='https://<portal>/rest/<user>/<code>/' or oauth=",
            )
        self.redactor = Redactor()
        self.oauth = oauth
        self.on_token_refresh = on_token_refresh
        if webhook_url is not None:
            match = _WEBHOOK_URL.match(webhook_url.strip())
            if not match:
                raise errors.ClientConfigError(
                    f"'{redact(webhook_url)}' is not an inbound webhook URL",
                    portal=redact(webhook_url),
                    hint="copy the URL from Bitrix24 (Developer resources > Other > Inbound webhook); "
                    "it looks like https://<portal>/rest/<user id>/<code>/",
                )
            self.base_url = f"{match.group(1)}{match.group(2)}/{match.group(3)}/"
            self.redactor.add(match.group(3))
        else:
            assert oauth is not None
            self.base_url = str(oauth.client_endpoint)
            for secret in (oauth.access_token, oauth.refresh_token, oauth.client_secret):
                self.redactor.add(secret.get_secret_value())
        self.portal = redact(self.base_url)
        self.clock = Clock(time_scale)
        origin = httpx.URL(self.base_url)
        self.bucket = shared_bucket(
            f"{origin.scheme}://{origin.host}:{origin.port}",
            max(1, rate_limit[0] - 1),
            rate_limit[1],
            self.clock,
        )
        # metered=None: learn it from the answers (see limits.LeakyBucket); True/False: start as
        # declared (an answer with time.operating or a QUERY_LIMIT_EXCEEDED still turns pacing on).
        if metered is not None:
            self.bucket.observe(metered=metered)
        self.budget = OperatingBudget(self.clock, operating_limit)
        self.max_attempts = max_attempts
        self.max_budget_waits = max_budget_waits
        self.stats = Stats()
        self._refresh_lock = threading.Lock()
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": user_agent},
        )

    # -- public --------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
        budget_methods: tuple[str, ...] = (),
        validate: Validate | None = None,
    ) -> Envelope:
        """Call ``method`` and return its envelope. ``budget_methods``: extra methods a batch bills.

        ``validate(envelope)`` runs on every answer before it is accepted; an
        :class:`~.errors.IncompleteReadError` it raises is retried like a 5xx when the call is safe
        to repeat, and raised as is when the attempts are used up (or at once for a write).
        """
        safe = is_read_method(method) if idempotent is None else idempotent
        if self.oauth is None:
            return self._send_within_limits(method, params, safe, budget_methods, validate)
        self._refresh_if_due()
        used = self.oauth.access_token.get_secret_value()
        try:
            return self._send_within_limits(method, params, safe, budget_methods, validate)
        except errors.AuthError as exc:
            if exc.code != "expired_token":
                raise
        self._refresh(used)
        return self._send_within_limits(method, params, safe, budget_methods, validate)

    def close(self) -> None:
        self._http.close()

    # -- layers --------------------------------------------------------------------------------

    def _send_within_limits(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        safe: bool,
        budget_methods: tuple[str, ...],
        validate: Validate | None = None,
    ) -> Envelope:
        methods = (method, *budget_methods)
        for _ in range(self.max_budget_waits):
            waited = self.budget.acquire(methods)
            with self.stats._lock:
                self.stats.budget_wait += waited
            try:
                return self._send_with_retries(method, params, safe, validate)
            except errors.OperationTimeLimitError:
                # Rejected before execution, so even a write may be sent again after the reset.
                with self.stats._lock:
                    self.stats.operation_limited += 1
                wait = self.budget.blocked(method)
                log.warning(
                    "%s on %s hit the operating-time limit; waiting %.1f modelled s for the reset",
                    method,
                    self.portal,
                    wait,
                )
            finally:
                self.budget.release(methods)
        raise errors.OperationTimeLimitError(
            "still blocked after waiting for several budget resets",
            code="OPERATION_TIME_LIMIT",
            status=429,
            method=method,
            portal=self.portal,
        )

    def _send_with_retries(
        self, method: str, params: Mapping[str, Any] | None, safe: bool, validate: Validate | None = None
    ) -> Envelope:
        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, errors.RateLimitError | errors.ConnectError):
                return True  # never executed by the portal
            retried = errors.ServerError | errors.TransportError | errors.IncompleteReadError
            return safe and isinstance(exc, retried)

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception()
            with self.stats._lock:
                self.stats.retries += 1
            if isinstance(exc, errors.RateLimitError):
                self.bucket.fill()
            log.info("retrying %s on %s after %s", method, self.portal, type(exc).__name__)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=0.5, max=30.0, jitter=0.5),
            retry=retry_if_exception(should_retry),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._send_single, method, params, validate)

    def _send_single(
        self, method: str, params: Mapping[str, Any] | None, validate: Validate | None = None
    ) -> Envelope:
        waited = self.bucket.acquire()
        body: dict[str, Any] = dict(params or {})
        if self.oauth is not None:
            body["auth"] = self.oauth.access_token.get_secret_value()
        url = self.base_url + method
        with translate_httpx_errors(method, self.portal, self.redactor):
            response = self._http.post(url, json=body)
            if response.is_redirect and "location" in response.headers:  # the portal moved (it redirects)
                response = self._http.post(response.headers["location"], json=body)
            response.read()
        with self.stats._lock:
            self.stats.requests += 1
            self.stats.bucket_wait += waited
        envelope = self._parse(method, response)
        if validate is not None:
            try:
                validate(envelope)
            except errors.IncompleteReadError:
                with self.stats._lock:
                    self.stats.broken_answers += 1
                raise
        return envelope

    # -- helpers -------------------------------------------------------------------------------

    def _parse(self, method: str, response: httpx.Response) -> Envelope:
        status = response.status_code
        body = _json_body(response)
        if not isinstance(body, dict):
            cls = errors.ServerError if status >= 500 or status < 400 else errors.BadRequestError
            raise cls(
                f"the portal answered HTTP {status} without a JSON envelope",
                code=f"HTTP_{status}",
                status=status,
                method=method,
                portal=self.portal,
            )
        if ("error" in body and "result" not in body) or status >= 400:
            code = body.get("error")
            desc = self.redactor(str(body.get("error_description") or ""))
            err = errors.error_from_response(
                None if code is None else str(code), desc, status, method=method, portal=self.portal
            )
            if isinstance(err, errors.RateLimitError):
                with self.stats._lock:
                    self.stats.rate_limited += 1
            raise err
        envelope = Envelope.parse(body)
        self._observe(method, envelope)
        return envelope

    def _observe(self, method: str, envelope: Envelope) -> None:
        t = envelope.time
        if t is None:
            return
        self.bucket.observe(metered=t.operating is not None)
        self.budget.observe(method, t.operating, t.operating_reset_at, t.finish, t.processing)
        with self.stats._lock:
            if t.operating is not None:
                self.stats.operating[method] = t.operating
            if t.processing is not None:
                self.stats.processing[method] = self.stats.processing.get(method, 0.0) + t.processing
            if t.finish is not None:
                self.stats.server_now = max(self.stats.server_now or 0.0, t.finish)

    def observe_sub(self, method: str, raw_times: list[Any]) -> None:
        """Record a batch's ``result_time`` entries of one sub-method.

        The latest cumulative ``operating`` is what the method has used; the summed ``processing`` is
        what this one batch cost, which is what every concurrent batch must keep in reserve.
        """
        times = [t for t in (TimeInfo.parse(raw) for raw in raw_times) if t is not None]
        billed = [t for t in times if t.operating is not None]
        if not billed:
            return
        last = max(billed, key=lambda t: (t.operating or 0.0, t.finish or 0.0))
        spent = sum(t.processing or 0.0 for t in times)
        self.budget.observe(method, last.operating, last.operating_reset_at, last.finish, spent)
        with self.stats._lock:
            self.stats.operating[method] = max(self.stats.operating.get(method, 0.0), last.operating or 0.0)

    def _refresh_if_due(self) -> None:
        assert self.oauth is not None
        exp = self.oauth.expires_at
        if exp is not None and self.stats.server_now is not None and self.stats.server_now >= exp - 60:
            self._refresh(self.oauth.access_token.get_secret_value())

    def _refresh(self, token_used: str) -> None:
        """Refresh once even when many threads saw ``expired_token`` at the same time."""
        assert self.oauth is not None
        with self._refresh_lock:
            if self.oauth.access_token.get_secret_value() != token_used:
                return  # another thread already refreshed
            params = {
                "grant_type": "refresh_token",
                "client_id": self.oauth.client_id,
                "client_secret": self.oauth.client_secret.get_secret_value(),
                "refresh_token": self.oauth.refresh_token.get_secret_value(),
            }
            with translate_httpx_errors("oauth.token", self.portal, self.redactor):
                response = self._http.post(self.oauth.token_url, data=params)
                response.read()
            body = _json_body(response)
            if not isinstance(body, dict) or "access_token" not in body:
                code = (
                    str(body.get("error", "")) if isinstance(body, dict) else f"HTTP_{response.status_code}"
                )
                desc = self.redactor(str(body.get("error_description", "")) if isinstance(body, dict) else "")
                raise errors.TokenRefreshError(
                    desc or "the OAuth server refused the refresh token",
                    code=code or "expired_token",
                    status=response.status_code,
                    method="oauth.token",
                    portal=self.portal,
                )
            self.oauth.apply_refresh(body)
            if body.get("expires_in") and self.stats.server_now:
                self.oauth.expires_at = self.stats.server_now + float(body["expires_in"])
            for key in ("access_token", "refresh_token"):
                self.redactor.add(str(body.get(key) or ""))
            self.base_url = str(self.oauth.client_endpoint)
            self.portal = redact(self.base_url)
        if self.on_token_refresh is not None:
            self.on_token_refresh(self.oauth.to_storage())


def _json_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when the body is not JSON (an HTML error page).

    orjson first: a batch answer of 2,500 tasks is ~2 MB, and parsing 100k tasks with the standard
    library took a large share of the client's CPU on a 2-core machine whose other core serves
    the portal. The standard library (through httpx) reads what orjson refuses: integers beyond
    64 bits, a byte-order mark, a non-UTF-8 charset.
    """
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        try:
            return response.json()
        except ValueError:
            return None
