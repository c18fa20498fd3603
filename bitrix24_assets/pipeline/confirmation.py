"""Confirmation codes through Bitrix24: send a one-time code to the employee with a given e-mail
(an ``im`` notification) and verify what the person types in.

Only a salted scrypt hash of the code is stored in Core (``core.confirmation_codes``), with its
expiry and a limit on attempts; the code itself exists only in the notification and in the
returned :class:`SentCode` (hidden from ``repr``), never in logs, errors or Core. Verification
counts the attempt in Core first (so parallel guesses cannot exceed the limit) and compares the
hashes in constant time (:func:`hmac.compare_digest`). A code is good once.

The code goes out directly, not through the commands outbox, because an outbox row would have
to carry the code; the caller passes the portal's client, so the portal's limits are shared.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bitrix24_assets.bitrix24 import Bitrix24Client
from bitrix24_assets.core.commands import CommandOutbox

__all__ = ["CodeNotSent", "SentCode", "Verdict", "hash_code", "send_code", "verify_code"]

DIGITS = 6
TTL_SECONDS = 600
MAX_ATTEMPTS = 5
MESSAGE = "Your confirmation code: {code}. It is valid for {minutes} minutes; do not share it."

Verdict = Literal["ok", "wrong", "expired", "exhausted", "used", "unknown"]
"""``wrong`` (attempts remain), ``exhausted`` (no attempts left), ``used`` (already verified),
``unknown`` (no such confirmation)."""

_CLOSED: dict[str, Verdict] = {"expired": "expired", "exhausted": "exhausted", "verified": "used"}


class CodeNotSent(Exception):
    """No code was sent (no Bitrix24 user with that e-mail); ``str()`` is one sentence."""


@dataclass(frozen=True)
class SentCode:
    """A code that went out: its confirmation id (give it to the verifying form) and expiry.
    ``code`` is there for the caller that needs it (e.g. a test); it never shows in ``repr``."""

    confirmation_id: str
    expires_at: datetime
    code: str = field(repr=False)


def hash_code(code: str, salt: bytes) -> bytes:
    """scrypt (memory-hard): a stolen table cannot be reversed by trying codes cheaply."""
    return hashlib.scrypt(code.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


def send_code(
    outbox: CommandOutbox,
    client: Bitrix24Client,
    account_id: str,
    email: str,
    *,
    ttl_seconds: int = TTL_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
    message: str = MESSAGE,
) -> SentCode:
    """Send a fresh code to the Bitrix24 user whose e-mail is exactly ``email``.

    The hash is stored before the notification goes out, so a code that reached the person is
    always verifiable. Raises :class:`CodeNotSent` when no user has that e-mail.
    """
    user = client.get_user_by_email(email)
    raw_id = str((user or {}).get("ID") or "")
    if not raw_id.isascii() or not raw_id.isdigit():
        raise CodeNotSent(f"No code was sent: no Bitrix24 user of account {account_id} has that e-mail.")
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    salt = secrets.token_bytes(16)
    confirmation_id, expires_at = outbox.create_confirmation(
        account_id,
        email.strip().lower(),
        raw_id,
        salt=salt,
        code_hash=hash_code(code, salt),
        ttl_seconds=ttl_seconds,
        max_attempts=max_attempts,
    )
    client.notify(int(raw_id), message.format(code=code, minutes=max(1, ttl_seconds // 60)))
    return SentCode(confirmation_id, expires_at, code)


def verify_code(outbox: CommandOutbox, confirmation_id: str, code: str) -> Verdict:
    """Check a typed-in code; the attempt counts whether or not it matches."""
    attempt = outbox.confirmation_attempt(confirmation_id)
    if attempt.state != "check":
        return _CLOSED.get(attempt.state, "unknown")
    typed = code.strip()
    given = hash_code(typed, bytes.fromhex(attempt.salt_hex))
    if not hmac.compare_digest(given, bytes.fromhex(attempt.hash_hex)):
        return "wrong" if attempt.attempts_left > 0 else "exhausted"
    return "ok" if outbox.confirmation_verified(confirmation_id) else "used"
