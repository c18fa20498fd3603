"""How a failed sync shows in Dagster: the step fails with the one sentence, retried only when a
retry can succeed (``TRANSIENT_RETRY``), never with the original exception chained (its text
could carry a URL with the webhook token)."""

from __future__ import annotations

import dagster as dg

from bitrix24_assets.pipeline import SyncFailed

# Retries for transient Bitrix24/Core errors: 4 attempts over ~35 s, spread by jitter so that many
# portals failing together (a Core hiccup) do not come back in lockstep.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def as_failure(failed: SyncFailed) -> dg.Failure:
    """The Dagster failure of a recorded sync failure."""
    return dg.Failure(
        description=failed.message,
        allow_retries=failed.retryable,
        metadata={
            "configuration_error": failed.configuration_error,
            "retryable": failed.retryable,
            "error_type": failed.error_type,
        },
    )
