"""``make dev``'s stop path: every way of stopping the stack must reach the same shutdown.

The whole stack (Dagster, Postgres, the sandbox, the receiver) is exercised by hand, not here;
this checks the signal wiring in a real child process, the way a shell starts ``make dev``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    from bitrix24_assets.devstack import _stop_on_signals

    _stop_on_signals()
    # what a service started now inherits for SIGINT ("ignored" survives exec, handlers do not)
    inherited = subprocess.run(
        [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"],
        capture_output=True, text=True,
    ).stdout.strip()
    try:  # the parent signals as soon as it reads this line: it must already be inside the try
        print("service ignores SIGINT:", inherited, flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("stack shut down", flush=True)
    """
)


def _ignore_sigint() -> None:
    """What a non-interactive shell does to a background job (``make dev &``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_stop_signal_runs_the_shutdown_even_as_a_background_job(stop: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "service ignores SIGINT: False"
    proc.send_signal(stop)
    out, _ = proc.communicate(timeout=20)
    assert out.strip() == "stack shut down"
    assert proc.returncode == 0
