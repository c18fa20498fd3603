"""Start the services of a deployment as real child processes on 127.0.0.1 and stop them all.

Every process runs in its own session with its output in a log file (read back when a wait fails).
:meth:`Services.stop` ends each service and then every process it had started (a code server's
``dagster api grpc`` child, run workers), so a test can prove nothing was left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Services:
    """The child processes of one test, started in order and stopped in reverse."""

    log_dir: Path
    env: dict[str, str]
    cwd: Path
    started: list[Service] = field(default_factory=list)
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)

    def start(self, name: str, argv: Sequence[str]) -> Service:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, proc, log)
        self.started.append(service)
        return service

    def check_alive(self) -> None:
        for service in self.started:
            if service.name not in self.stopped and service.proc.poll() is not None:
                raise AssertionError(
                    f"{service.name} exited with {service.proc.returncode}:\n{self.tail(service)}"
                )

    def tail(self, service: Service, chars: int = 4000) -> str:
        return service.log.read_text(errors="replace")[-chars:]

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{self.tail(s, 2500)}" for s in self.started)

    def remember_descendants(self) -> None:
        """Note every process the services have started so far (run workers come and go)."""
        for service in self.started:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(service.proc.pid)
                for proc in [root, *root.children(recursive=True)]:
                    self.seen.setdefault(proc.pid, proc)

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
        """Poll ``check`` until it returns a value; fail with every service's log tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            self.remember_descendants()
            value = check()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")
            time.sleep(interval)

    def stop_service(self, name: str, timeout: float = 20.0) -> None:
        """Stop one service (SIGTERM, then SIGKILL after ``timeout``); the others keep running."""
        self.remember_descendants()
        (service,) = [s for s in self.started if s.name == name]
        self.stopped.add(name)
        _terminate(service, timeout)

    def stop(self, timeout: float = 20.0) -> list[str]:
        """SIGTERM every service (the receiver, Dagster's processes shut down on it), SIGKILL what
        is left after ``timeout``; return what was still running after that (should be nothing)."""
        self.remember_descendants()
        for service in reversed(self.started):
            if service.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    service.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in reversed(self.started):
            _terminate(service, max(0.1, deadline - time.monotonic()))
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=max(1.0, deadline - time.monotonic()))
        alive = [p for p in alive if _running(p)]
        leaked = [f"{p.pid} {_cmdline(p)}" for p in alive]
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        return leaked


def _terminate(service: Service, timeout: float) -> None:
    if service.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            service.proc.send_signal(signal.SIGTERM)
    try:
        service.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.proc.pid, signal.SIGKILL)
        service.proc.wait(timeout=5)


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie: a worker that exited after its parent did stays a zombie until the
    machine's init reaps it, and a container's init may never do so; it holds nothing."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[:200]
    except psutil.Error:
        return "?"
