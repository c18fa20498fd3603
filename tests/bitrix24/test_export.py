"""``bitrix24-export`` against the sandbox: files, counts, private file modes, and no secret in the output."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bitrix24_assets.bitrix24.export import app

NAMES = ("users", "departments", "tasks", "events")


def run(out: Path, webhook_url: str, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["--out", str(out), "--time-scale", "0.001", *args], env={"BITRIX24_WEBHOOK_URL": webhook_url}
    )


def test_export_writes_jsonl_and_hides_the_token(sandbox: Any, tmp_path: Path) -> None:
    token = sandbox.webhook_url.rstrip("/").rsplit("/", 1)[1]
    result = run(tmp_path, sandbox.webhook_url)
    assert result.exit_code == 0, result.output
    tasks = (tmp_path / "tasks.jsonl").read_text().splitlines()
    assert len(tasks) == len(sandbox.state.tasks) and json.loads(tasks[0])["id"]
    assert len((tmp_path / "users.jsonl").read_text().splitlines()) == len(sandbox.state.users)
    assert (tmp_path / "events.jsonl").exists() and (tmp_path / "departments.jsonl").exists()
    assert token not in result.output and "Done in" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.jsonl" for n in NAMES)  # no temp files


def test_export_files_are_private_from_creation(sandbox: Any, tmp_path: Path) -> None:
    out = tmp_path / "dump"
    out.mkdir()
    (out / "users.jsonl").write_text("old\n")
    os.chmod(out / "users.jsonl", 0o644)  # left by an earlier version: must not keep its mode
    old_umask = os.umask(0o000)  # the most permissive umask: the mode must come from the code
    try:
        result = run(out, sandbox.webhook_url)
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    for name in NAMES:
        assert stat.S_IMODE((out / f"{name}.jsonl").stat().st_mode) == 0o600, name
    assert (out / "users.jsonl").read_text() != "old\n"
    fresh = tmp_path / "new" / "dir"
    assert run(fresh, sandbox.webhook_url).exit_code == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700  # a directory the export creates is private too


def test_export_bad_webhook_is_one_sentence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--webhook-url", "https://x.example/rest/"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "Inbound webhook" in result.output


@pytest.mark.parametrize(
    "mistyped",
    ["{base}/rest/{token}", "{base}/rest/{token}/", "{base}/REST/1/{token}/user.get/x"],
)
def test_export_never_prints_a_mistyped_webhook_url(sandbox: Any, tmp_path: Path, mistyped: str) -> None:
    base, token = sandbox.webhook_url.split("/rest/")[0], sandbox.webhook_url.rstrip("/").rsplit("/", 1)[1]
    result = run(tmp_path, mistyped.format(base=base, token=token))
    assert result.exit_code == 2
    assert token not in result.output and "Traceback" not in result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_export_401_names_the_portal_and_the_fix_not_an_account(sandbox: Any, tmp_path: Path) -> None:
    revoked = sandbox.webhook_url.rstrip("/").rsplit("/", 1)[0] + "/revokedsecret42/"
    result = run(tmp_path, revoked)
    assert result.exit_code == 2
    message = result.stderr.strip().splitlines()[-1]  # after the progress bar
    assert "revokedsecret42" not in result.output
    assert "/rest/1/***/" in message  # the portal, redacted
    assert "revokedsecret42" not in message
    assert "account" not in message  # the export has none
    assert "BITRIX24_WEBHOOK_URL" in message and "Inbound webhook" in message
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_export_without_a_webhook_url_says_where_to_put_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--out", str(tmp_path)], env={"BITRIX24_WEBHOOK_URL": ""})
    assert result.exit_code == 2
    assert "BITRIX24_WEBHOOK_URL" in result.output and "Traceback" not in result.output


def test_export_to_an_unwritable_place_is_one_sentence(sandbox: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run(blocker / "out", sandbox.webhook_url)
    assert result.exit_code == 2
    assert "cannot write" in result.output and "--out" in result.output and "Traceback" not in result.output
