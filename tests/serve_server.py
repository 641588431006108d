"""A real ``es-biomed serve`` for the integration tests: an index of real CORD-19 abstracts (from ../shared) plus
two documents of our own, embedded with the real MiniLM, served by uvicorn on a free loopback port in its own
process, stopped by PID (also when a test fails). Also: Debian's ``chromium`` for the browser test, installed
when missing, as tests/redis_server.py does for redis-server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from es_biomed.corpus import Document

CORD19 = "cord19/merged_dedup_cord_uid.jsonl"
XSS_TITLE = "<script>alert(1)</script>"
#: Our own documents: one whose title is markup (it must show as text), one with a known answer.
OWN_DOCS = [
    Document(
        id="xss-1",
        title=XSS_TITLE,
        abstract='Escaping check: the <b>bold</b> tag and <img src=x onerror="alert(2)"> stay text. Zanamivir.',
        source="test",
        date="2024",
    ),
    Document(
        id="answer-1",
        title="Oseltamivir for influenza in adults",
        abstract=(
            "Influenza is treated with antivirals. The neuraminidase inhibitor oseltamivir shortened the duration "
            "of influenza symptoms by about one day in otherwise healthy adults."
        ),
        source="test",
        date="2019-05-01",
        doi="10.1000/example.123",
        pmid="31000001",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cord19_documents(shared: Path, n: int) -> list[Document]:
    """The first ``n`` CORD-19 abstracts of the shared sample, with their source, date, DOI and PubMed id."""
    docs = []
    with open(shared / CORD19, encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            meta = rec.get("metadata") or {}
            if not rec.get("text"):
                continue
            docs.append(
                Document(
                    id=rec["_id"],
                    title=rec.get("title") or "",
                    abstract=rec["text"],
                    source=str(meta.get("source_x") or ""),
                    date=str(meta.get("publish_time") or ""),
                    doi=str(meta.get("doi") or ""),
                    pmid=str(meta.get("pubmed_id") or ""),
                    journal=str(meta.get("journal") or ""),
                )
            )
            if len(docs) == n:
                break
    return docs


def build_index(path: Path, shared: Path, encoder, n: int = 150) -> Path:
    from es_biomed.backends import EmbeddedIndex

    idx = EmbeddedIndex.create(path, encoder.info)
    with idx.writer() as w:
        w.add(cord19_documents(shared, n) + OWN_DOCS, encoder)
    return path


class ServeProcess:
    """``python -m es_biomed serve`` on a free loopback port. ``start()`` waits for ``/health``; ``stop()`` sends
    SIGTERM to its PID (uvicorn shuts down gracefully), then SIGKILL if it does not exit."""

    def __init__(self, index: Path, log: Path, *args: str) -> None:
        self.index, self.log_path, self.args = index, log, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> ServeProcess:
        cmd = [sys.executable, "-m", "es_biomed", "serve", "--index", str(self.index), "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*cmd, *self.args], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"es-biomed serve exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"es-biomed serve did not answer on {self.url} in {timeout:.0f} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def ensure_chromium() -> str | None:
    """Path of Debian's ``chromium``; installs the package when it is missing and apt-get can (root). None when
    it cannot be had."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True)
    return shutil.which("chromium")


# ---------------------------------------------------------------------------------- fixtures (import them)
@pytest.fixture(scope="session")
def serve_index(tmp_path_factory, shared_data, minilm) -> Path:
    """150 real CORD-19 abstracts plus :data:`OWN_DOCS`, embedded with the real MiniLM."""
    return build_index(tmp_path_factory.mktemp("serve") / "cord19-150", shared_data, minilm)


@pytest.fixture(scope="session")
def server(serve_index, tmp_path_factory):
    """The real service over :func:`serve_index` (with /ask where es_biomed.qa and its model load)."""
    proc = ServeProcess(serve_index, tmp_path_factory.mktemp("serve-log") / "serve.log")
    try:
        yield proc.start()
    finally:
        proc.stop()
