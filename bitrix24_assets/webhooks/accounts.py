"""A short-lived cache of what the receiver needs to authenticate an account's events.

Every event costs one primary-key lookup otherwise; a burst of 1,000 task updates would be 1,000
lookups of the same row. Entries live ``ttl`` seconds, so a rotated token or a new account is seen
within that time; unknown ids are cached too (as ``None``) so random paths cannot hammer Core.
The cache is bounded: the oldest entries go first when it is full.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = ["AccountAuth", "AccountAuthCache"]


@dataclass(frozen=True)
class AccountAuth:
    """What an event for one account is checked against. ``repr()`` never shows the token."""

    account_id: str
    name: str
    application_token: SecretStr | None
    domain: str | None = None
    member_id: str | None = None


class AccountAuthCache:
    """``get(id)`` returns the cached :class:`AccountAuth` (or ``None`` for an unknown account).

    Args:
        load: blocking loader, called on a miss; returns ``None`` when the account does not exist.
        ttl: seconds an entry (hit or miss) is trusted.
        max_entries: bound on memory; least recently loaded entries are evicted first.
        clock: monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        load: Callable[[str], AccountAuth | None],
        *,
        ttl: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, AccountAuth | None]] = OrderedDict()
        self._lock = threading.Lock()  # get() runs in worker threads; the loader runs outside the lock

    def get(self, account_id: str) -> AccountAuth | None:
        cached = self._entries.get(account_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        return self.refresh(account_id)

    def age(self, account_id: str) -> float | None:
        """Seconds since the entry was loaded, or ``None`` if it is not cached."""
        cached = self._entries.get(account_id)
        return None if cached is None else self._clock() - cached[0]

    def refresh(self, account_id: str) -> AccountAuth | None:
        """Load the account again, ignoring the cache (e.g. after a token mismatch)."""
        value = self._load(account_id)
        with self._lock:
            self._entries[account_id] = (self._clock(), value)
            self._entries.move_to_end(account_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value
