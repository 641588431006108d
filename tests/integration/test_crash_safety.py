"""Crash safety of the embedded engine with the real model and real CORD-19 abstracts (issue 21).

* the harness (:mod:`tests.crash_harness`): 20 SIGKILLs at seeded random moments (50 over the whole sample in the
  slow tier), every invariant checked after each, a reader searching throughout;
* the issue's report: ``es-biomed index`` SIGKILLed mid-run into an index that already held documents; afterwards
  ``search``, ``check`` and a re-run of ``index`` work, and the re-run completes the index;
* ``es-biomed serve`` keeps answering while a long write runs and after the writer is SIGKILLed, and picks up
  the commits.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from es_biomed.backends import EmbeddedIndex
from es_biomed.backends.embedded.store import read_snapshot
from tests import crash_harness
from tests.conftest import REPO
from tests.serve_server import ServeProcess, cord19_documents

pytestmark = pytest.mark.integration


def test_crash_harness_20_kills(tmp_path, shared_data):
    res = crash_harness.run(tmp_path / "harness", kills=20, seed=21, limit=1500, batch_size=64, max_delay=5.0)
    assert res["kills"] == 20, res["per_kill"]
    assert res["reader"]["errors"] == 0, res["reader_errors"]
    assert res["reader"]["searches"] > 100 and res["reader"]["reloads"] > 1
    assert res["lost_batches_per_kill_max"] <= 1 and res["lost_docs_per_kill_max"] <= 64
    (tmp_path / "harness.json").write_text(json.dumps(res, indent=2))


@pytest.mark.slow
def test_crash_harness_50_kills_whole_sample(tmp_path, shared_data):
    res = crash_harness.run(tmp_path / "harness", kills=50, seed=50, limit=None, batch_size=64, max_delay=6.0)
    assert res["kills"] == 50 and res["reader"]["errors"] == 0, res["reader_errors"]


def _write_jsonl(path, docs):
    with open(path, "w") as fh:
        for d in docs:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.abstract, "date": d.date}) + "\n")


def _cli(*args: str, **kw):
    return subprocess.run([sys.executable, "-m", "es_biomed", *args], capture_output=True, text=True, cwd=REPO, **kw)


def _wait_for_commits(index, dims: int, seq: int, proc, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the indexer finished before it could be killed"
        if read_snapshot(index, dims).commit_seq >= seq:
            return
        time.sleep(0.05)
    raise AssertionError(f"no commit {seq} in {timeout} s")


def test_sigkilled_cli_index_keeps_its_commits_and_the_index_usable(tmp_path, shared_data):
    docs = cord19_documents(shared_data, 900)
    first, corpus = tmp_path / "first.jsonl", tmp_path / "all.jsonl"
    _write_jsonl(first, docs[:200])
    _write_jsonl(corpus, docs)
    index = tmp_path / "ix"
    res = _cli("index", str(first), "--index", str(index), "--no-progress")
    assert res.returncode == 0, res.stderr
    dims = EmbeddedIndex(index).config.dims
    seq0 = read_snapshot(index, dims).commit_seq
    proc = subprocess.Popen(
        [sys.executable, "-m", "es_biomed", "index", str(corpus), "--index", str(index), "--no-progress",
         "--batch-size", "64"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_commits(index, dims, seq0 + 6, proc)  # 200 unchanged in batches 1-4, then new documents
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = len(EmbeddedIndex(index))
    assert committed >= 200 + 64  # the new documents of the committed batches survived the kill
    res = _cli("search", "coronavirus spike protein", "--index", str(index), "-k", "3")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    res = _cli("check", str(index))
    assert res.returncode == 0, res.stdout
    res = _cli("index", str(corpus), "--index", str(index), "--no-progress", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["written"] == 900 - committed and report["unchanged"] == committed
    assert set(EmbeddedIndex(index).doc_ids()) == {d.id for d in docs}


def test_serve_answers_during_a_long_write_and_after_the_writer_dies(tmp_path, shared_data):
    docs = cord19_documents(shared_data, 1200)
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    _write_jsonl(first, docs[:100])
    _write_jsonl(rest, docs[100:])
    index = tmp_path / "ix"
    assert _cli("index", str(first), "--index", str(index), "--no-progress").returncode == 0
    server = ServeProcess(index, tmp_path / "serve.log", "--no-qa").start()
    writer = None
    try:
        # one long transaction (commit only at the end), as the old writer did: readers must not wait on it
        writer = subprocess.Popen(
            [sys.executable, "-m", "es_biomed", "index", str(rest), "--index", str(index), "--no-progress",
             "--commit-every", "100000", "--batch-size", "64"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        statuses, slowest = [], 0.0
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            r = httpx.get(f"{server.url}/search", params={"q": "coronavirus infection", "k": 5}, timeout=30)
            slowest = max(slowest, time.monotonic() - t0)
            statuses.append(r.status_code)
        assert writer.poll() is None, "the long write ended before the readers were tested"
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        for _ in range(10):
            statuses.append(
                httpx.get(f"{server.url}/search", params={"q": "influenza", "k": 5}, timeout=30).status_code
            )
        assert set(statuses) == {200} and slowest < 5.0, (statuses, slowest)
        assert httpx.get(f"{server.url}/health", timeout=30).json()["index"]["documents"] == 100
        # a new commit (a small batch) becomes visible to the running server within its refresh interval
        assert _cli("index", str(first), "--index", str(index), "--no-progress").returncode == 0
        more = tmp_path / "more.jsonl"
        _write_jsonl(more, docs[100:110])
        assert _cli("index", str(more), "--index", str(index), "--no-progress").returncode == 0
        time.sleep(1.2)
        health = httpx.get(f"{server.url}/health", timeout=30).json()
        assert health["status"] == "ok" and health["index"]["documents"] == 110
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
        server.stop()
