"""``bitrix24-export``: a one-time dump of a portal to JSON Lines, for migrations and audits.

    BITRIX24_WEBHOOK_URL=https://acme.bitrix24.ru/rest/1/<code>/ bitrix24-export --out ./dump

Writes ``users.jsonl``, ``departments.jsonl``, ``tasks.jsonl`` and ``events.jsonl`` (raw records as
the portal returned them), shows a progress bar per entity and prints a summary. The files hold
personal data, so they are created readable by their owner only (0600, like the pipeline's raw
files) and appear under their names only once complete. The webhook URL is read from
``BITRIX24_WEBHOOK_URL`` so it stays out of shell history (``--webhook-url`` also works); it is
never printed. Errors end in one sentence naming the portal (redacted) and the fix, without a
traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from .client import Bitrix24Client
from .errors import AuthError, Bitrix24Error, PortalUnavailableError
from .paging import Progress, ProgressFn
from .redaction import redact

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0] if __doc__ else None)

FILE_MODE = 0o600
"""Export files are personal data: readable by their owner only."""

WEBHOOK_FIX = (
    "create an inbound webhook in Bitrix24 (Developer resources > Other > Inbound webhook) with the "
    "scopes user, department, task and calendar, and put its URL into BITRIX24_WEBHOOK_URL"
)

# The client's hints speak to the owner of an integration account ("store its URL for this account");
# the export has no account, so these fixes replace them.
_EXPORT_HINTS = {
    "PORTAL_DELETED": "the portal was deleted, so there is nothing to export",
    "PAYMENT_REQUIRED": "the portal's subscription has ended; renew it, then run bitrix24-export again",
}


def export_message(exc: Bitrix24Error) -> str:
    """The error's sentence, with a fix that fits a command-line export (no account to update)."""
    text = str(exc)
    if "account" not in exc.hint or not text.endswith(f"; {exc.hint}."):
        return text
    if isinstance(exc, AuthError):
        hint = f"the webhook was revoked or its URL is mistyped; {WEBHOOK_FIX}"
    elif isinstance(exc, PortalUnavailableError):
        hint = _EXPORT_HINTS.get(exc.code or "", "ask the portal's owner why it cannot serve REST calls")
    else:
        hint = f"check the webhook URL in BITRIX24_WEBHOOK_URL; {WEBHOOK_FIX}"
    return f"{text[: -len(exc.hint) - 1]}{hint}."


def _write(path: Path, rows: Iterable[dict[str, Any]], bar: tqdm[Any]) -> int:
    """Write to a private temporary file in the same directory, then rename it into place.

    ``mkstemp`` creates the file with mode 0600 (``O_EXCL``), so the data is never readable by others,
    not even for a moment, and an existing ``path`` with a wider mode is replaced, not reused.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp's mode already; explicit in case the platform differs
        with open(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
                bar.update(1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return count


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Directory for the .jsonl files (created if missing).")],
    webhook_url: Annotated[
        str,
        typer.Option(
            envvar="BITRIX24_WEBHOOK_URL",
            show_default=False,
            help="Inbound webhook URL (prefer the env variable BITRIX24_WEBHOOK_URL).",
        ),
    ] = "",
    days_back: Annotated[int, typer.Option(help="Calendar window start, days before today.")] = 30,
    days_ahead: Annotated[int, typer.Option(help="Calendar window end, days after today.")] = 90,
    plan: Annotated[
        str,
        typer.Option(
            help="auto (cloud pacing unless the portal answers unmetered), cloud (50 req, 2/s), "
            "enterprise (250, 5/s) or self-hosted (no pacing)."
        ),
    ] = "auto",
    time_scale: Annotated[float, typer.Option(hidden=True)] = 1.0,
) -> None:
    """Export users, departments, tasks and calendar events to JSON Lines."""
    if not webhook_url.strip():
        typer.echo(f"Error: no webhook URL to export from; {WEBHOOK_FIX}.", err=True)
        raise typer.Exit(2)
    started = time.monotonic()
    counts: dict[str, int] = {}
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        with Bitrix24Client(webhook_url=webhook_url, plan=plan, time_scale=time_scale) as client:
            typer.echo(f"Exporting {client.portal} to {out}/")
            now = datetime.now(UTC)
            jobs: dict[str, Callable[[ProgressFn], Iterable[dict[str, Any]]]] = {
                "users": lambda p: client.get_users(progress=p),
                "departments": lambda p: iter(client.get_departments()),
                "tasks": lambda p: client.get_tasks(progress=p),
                "events": lambda p: client.get_events(
                    now - timedelta(days=days_back), now + timedelta(days=days_ahead), progress=p
                ),
            }
            for name, job in jobs.items():
                with tqdm(desc=f"{name:12}", unit=" rec", leave=True) as bar:

                    def progress(p: Progress, bar: tqdm[Any] = bar) -> None:
                        if p.estimated_total:
                            bar.total = max(p.estimated_total, p.records)

                    counts[name] = _write(out / f"{name}.jsonl", job(progress), bar)
            stats = client.stats.as_dict()
    except Bitrix24Error as exc:
        typer.echo(f"Error: {export_message(exc)}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        where = redact(exc.filename) if isinstance(exc.filename, str) else str(out)
        typer.echo(
            f"Error: cannot write {where} ({exc.strerror or type(exc).__name__}); choose a "
            "directory you can write to with --out.",
            err=True,
        )
        raise typer.Exit(2) from None
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{n} {c}" for n, c in counts.items())
    typer.echo(
        f"Done in {elapsed:.1f} s: {summary}; {stats['requests']} requests, "
        f"{stats['retries']} retries, rate-limited {stats['rate_limited']}x."
    )


def main() -> None:
    """Console-script entry point (``bitrix24-export``)."""
    app()


if __name__ == "__main__":
    main()
