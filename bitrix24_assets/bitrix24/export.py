"""``bitrix24-export``: a one-time dump of a portal to JSON Lines, for migrations and audits.

    BITRIX24_WEBHOOK_URL=https://acme.bitrix24.ru/rest/1/<code>/ bitrix24-export --out ./dump

Writes ``users.jsonl``, ``departments.jsonl``, ``tasks.jsonl`` and ``events.jsonl`` (raw records as
the portal returned them), shows a progress bar per entity and prints a summary. The webhook URL is
read from ``BITRIX24_WEBHOOK_URL`` so it stays out of shell history (``--webhook-url`` also works);
it is never printed. Errors end in one sentence naming the portal and the fix, without a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from .client import Bitrix24Client
from .errors import Bitrix24Error
from .paging import Progress

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0] if __doc__ else None)


def _write(path: Path, rows: Iterable[dict[str, Any]], bar: tqdm) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            bar.update(1)
    return count


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Directory for the .jsonl files (created if missing).")],
    webhook_url: Annotated[
        str,
        typer.Option(
            envvar="BITRIX24_WEBHOOK_URL",
            show_default=False,
            help="Inbound webhook URL (prefer the env variable).",
        ),
    ],
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
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    counts: dict[str, int] = {}
    try:
        with Bitrix24Client(webhook_url=webhook_url, plan=plan, time_scale=time_scale) as client:
            typer.echo(f"Exporting {client.portal} to {out}/")
            now = datetime.now(UTC)
            jobs = {
                "users": lambda p: client.get_users(progress=p),
                "departments": lambda p: iter(client.get_departments()),
                "tasks": lambda p: client.get_tasks(progress=p),
                "events": lambda p: client.get_events(
                    now - timedelta(days=days_back), now + timedelta(days=days_ahead), progress=p
                ),
            }
            for name, job in jobs.items():
                with tqdm(desc=f"{name:12}", unit=" rec", leave=True) as bar:

                    def progress(p: Progress, bar: tqdm = bar) -> None:
                        if p.estimated_total:
                            bar.total = max(p.estimated_total, p.records)

                    counts[name] = _write(out / f"{name}.jsonl", job(progress), bar)
            stats = client.stats.as_dict()
    except Bitrix24Error as exc:
        typer.echo(f"Error: {exc}", err=True)
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
