"""``bitrix24-export`` against the sandbox: files, counts, and no secret in the output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bitrix24_assets.bitrix24.export import app


def test_export_writes_jsonl_and_hides_the_token(sandbox: Any, tmp_path: Path) -> None:
    token = sandbox.webhook_url.rstrip("/").rsplit("/", 1)[1]
    result = CliRunner().invoke(
        app,
        ["--out", str(tmp_path), "--time-scale", "0.001"],
        env={"BITRIX24_WEBHOOK_URL": sandbox.webhook_url},
    )
    assert result.exit_code == 0, result.output
    tasks = (tmp_path / "tasks.jsonl").read_text().splitlines()
    assert len(tasks) == len(sandbox.state.tasks) and json.loads(tasks[0])["id"]
    assert len((tmp_path / "users.jsonl").read_text().splitlines()) == len(sandbox.state.users)
    assert (tmp_path / "events.jsonl").exists() and (tmp_path / "departments.jsonl").exists()
    assert token not in result.output and "Done in" in result.output


def test_export_bad_webhook_is_one_sentence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--webhook-url", "https://x.example/rest/"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "Inbound webhook" in result.output
