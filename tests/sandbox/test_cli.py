"""The console entry point serves a portal and prints its webhook URL."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx


def test_python_dash_m_prints_webhook_url_and_serves():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitrix24_assets.sandbox",
            "--port",
            "0",
            "--users",
            "20",
            "--tasks",
            "30",
            "--events",
            "10",
            "--profile",
            "instant",
            "--seed",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:
            match = re.search(r"Webhook URL: (http://127\.0\.0\.1:\d+/rest/1/\w+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "no webhook URL printed"
        body = httpx.post(url + "user.get", json={}, timeout=10).json()
        assert body["total"] == 20
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_time_scale_is_one_clear_sentence():
    done = subprocess.run(
        [sys.executable, "-m", "bitrix24_assets.sandbox", "--time-scale", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "--time-scale must be positive" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
