"""The receiver's access log never records a query string: the real ``bitrix24-webhooks`` command
(uvicorn on 127.0.0.1, its own logging set-up) is started, sent requests whose queries carry
tokens, and its output is read."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bitrix24_assets.webhooks.access_log import QueryStringFilter, without_query

from .conftest import FORM, Accounts, event_body

SECRETS = ("QSECRETauth1234567", "QSECRETapp7654321", "QSECRETother999", "QSECRETpath4242")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_access_log_of_the_real_command_has_no_query_strings(
    core_dsn: str, accounts: Accounts, tmp_path: Path
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "CORE_"))}
    env["CORE_DATABASE_URL"] = core_dsn
    log_path = tmp_path / "receiver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bitrix24_assets.webhooks.cli",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, timeout=5) as http:
            while True:  # wait for the server to listen (bounded; no fixed sleep)
                assert proc.poll() is None, log_path.read_text()
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.05)
            stored = http.post(
                f"/bitrix24/events/{accounts.a}?auth={SECRETS[0]}&application_token={SECRETS[1]}",
                content=event_body(),
                headers=FORM,
            )
            refused = http.post(
                f"/bitrix24/events/{accounts.a}?x={SECRETS[2]}", content=event_body(token="no"), headers=FORM
            )
            probe = http.get(f"/rest/1/{SECRETS[3]}/user.get?auth={SECRETS[0]}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (stored.status_code, refused.status_code, probe.status_code) == (200, 401, 404)
    text = log_path.read_text()
    # the requests were logged (so the filter had something to do) ...
    assert f'"POST /bitrix24/events/{accounts.a}?*** HTTP/1.1" 200' in text, text
    assert f'"POST /bitrix24/events/{accounts.a}?*** HTTP/1.1" 401' in text, text
    assert '"GET /rest/1/***/user.get?*** HTTP/1.1" 404' in text, text
    # ... without their queries or a token in the path
    for secret in SECRETS:
        assert secret not in text


def test_filter_handles_preformatted_lines_and_plain_paths() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '1.2.3.4:5 - "POST /x?auth=tok123456 HTTP/1.1" 200',
        None,
        None,
    )
    QueryStringFilter().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "POST /x?*** HTTP/1.1" 200'
    assert without_query("/bitrix24/events/abc") == "/bitrix24/events/abc"
    assert without_query("/bitrix24/events/abc?") == "/bitrix24/events/abc?***"
