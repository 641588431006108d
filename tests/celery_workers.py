"""Real Celery worker processes for the tests (integration and live tiers): started in their own process group,
stopped by PID (SIGTERM, then SIGKILL), their logs kept beside the test's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

__all__ = ["RESTORE", "VISIBILITY", "Worker", "wait_for"]

#: Seconds before kombu redelivers the message of a vanished worker, and between its restore sweeps.
VISIBILITY, RESTORE = 20, 1


class Worker:
    """A ``celery worker`` in its own process group (so SIGKILL can take the main process and its children)."""

    def __init__(self, env: dict[str, str], queue: str, name: str, log_dir: Path, concurrency: int = 1) -> None:
        self.args = [
            sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", queue, "-c", str(concurrency), "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
        ]  # fmt: skip
        self.env, self.log = env, log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
