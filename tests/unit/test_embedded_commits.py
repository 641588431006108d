"""The embedded engine's commit protocol, recovery on open, integrity checks, repair and compaction (issue 21).

Crashes are real: the writer runs in a child process (spawned, so no thread of the test process is copied into it)
that dies with ``os._exit`` at a chosen step of the protocol, and the parent reopens the index the way the next
process would.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from es_biomed.backends import EmbeddedIndex
from es_biomed.backends.embedded.maintenance import check_index, compact_index, repair_index
from es_biomed.backends.embedded.store import read_snapshot
from es_biomed.cli import main
from es_biomed.corpus import Document
from es_biomed.errors import IndexCorruptError, IndexLockedError
from es_biomed.query import SearchPlan
from tests.conftest import KeywordEncoder

VOCAB = ["aspirin", "fever", "heart", "stroke", "statin"]


def _doc(i: int, text: str = "") -> Document:
    words = text or f"{VOCAB[i % len(VOCAB)]} trial number{i} {VOCAB[(i + 1) % len(VOCAB)]}"
    return Document(id=f"d{i}", title=f"Title {i}", abstract=words, source="pubmed", date=str(2000 + i % 20))


def _docs(lo: int, hi: int) -> list[Document]:
    return [_doc(i) for i in range(lo, hi)]


@pytest.fixture
def enc() -> KeywordEncoder:
    return KeywordEncoder(VOCAB)


def _bm25_ids(idx: EmbeddedIndex, query: str) -> set[str]:
    return {h.doc_id for h in idx.search(SearchPlan(query, mode="bm25", k=1000)).hits}


class _DieOnCommit:
    """Stands in for the tantivy writer in the child: ``before`` dies instead of committing BM25, ``after`` dies
    right after BM25 committed (so the translog is not emptied yet)."""

    def __init__(self, tw, when: str) -> None:
        self._tw, self._when = tw, when

    def commit(self):
        if self._when == "after":
            self._tw.commit()
        os._exit(0)

    def __getattr__(self, name):
        return getattr(self._tw, name)


def _child(path: str, crash: str) -> None:
    enc = KeywordEncoder(VOCAB)
    idx = EmbeddedIndex(path)
    w = idx.writer()
    w.add(_docs(0, 5), enc)
    w.commit()  # the first batch is committed
    w.add([_doc(0, "statin statin replaced"), *_docs(5, 9)], enc)  # the second updates d0 and adds d5..d8
    if crash == "before_sqlite":
        w._vec.flush()  # as a large batch would: its vector rows reach the file
        os._exit(0)  # vectors appended (maybe flushed), SQLite transaction open: not a commit
    w._tw = _DieOnCommit(w._tw, "before" if crash == "before_bm25" else "after")
    w.commit()


def _crash(path: Path, crash: str) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=_child, args=(str(path), crash))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0


@pytest.fixture
def empty(tmp_path, enc) -> Path:
    EmbeddedIndex.create(tmp_path / "ix", enc.info)
    return tmp_path / "ix"


def test_crash_before_the_commit_point_keeps_the_last_commit(empty, enc):
    _crash(empty, "before_sqlite")
    idx = EmbeddedIndex(empty)
    assert sorted(idx.doc_ids()) == ["d0", "d1", "d2", "d3", "d4"]
    assert _bm25_ids(idx, "statin") == {"d3", "d4"} and "d0" not in _bm25_ids(idx, "replaced")
    assert check_index(empty).ok
    with idx.writer() as w:  # the next writer truncates the rows of the commit that never happened
        assert w.recovery.truncated_rows > 0
        assert w.add(_docs(0, 9), enc) == 4  # a re-run completes the batch; d0..d4 are unchanged
    assert check_index(empty).ok and len(EmbeddedIndex(empty)) == 9


@pytest.mark.parametrize("when", ["before_bm25", "after_bm25"])
def test_crash_after_the_commit_point_is_replayed_on_open(empty, enc, when):
    _crash(empty, when)
    snap = read_snapshot(empty, enc.dims)
    assert snap.pending_ops == 5 and len(snap.ids) == 9  # committed: 4 new documents and d0's new version
    idx = EmbeddedIndex(empty)  # a reader finds no writer holding the index: it finishes the commit itself
    assert idx.recovery is not None and idx.recovery.replayed_ops == 5
    assert read_snapshot(empty, enc.dims).pending_ops == 0
    assert _bm25_ids(idx, "replaced") == {"d0"} and {"d5", "d6", "d7", "d8"} <= _bm25_ids(idx, "trial")
    assert idx.bm25_doc_count() == 9  # d0 replaced, not doubled
    report = check_index(empty)
    assert report.ok, report.to_dict()


def test_readers_read_the_last_commit_while_a_writer_holds_a_transaction(empty, enc):
    with EmbeddedIndex(empty).writer() as w:
        w.add(_docs(0, 3), enc)
        w.commit()
        w.add(_docs(3, 50), enc)  # open transaction, not committed
        reader = EmbeddedIndex(empty)
        assert len(reader) == 3 and sorted(reader.get(["d1", "d4"])) == ["d1"]
        hits = reader.search(SearchPlan("aspirin", k=10), enc.encode_queries(["aspirin"])[0]).hits
        assert {h.doc_id for h in hits} <= {"d0", "d1", "d2"} and hits
        with pytest.raises(IndexLockedError):
            EmbeddedIndex(empty).writer()
    assert reader.refresh(min_interval=0) and len(reader) == 50


def test_commit_every_and_commit_interval(empty, enc):
    with EmbeddedIndex(empty).writer(commit_every=4) as w:
        w.add(_docs(0, 3), enc)
        assert read_snapshot(empty, enc.dims).commit_seq == 0
        w.add(_docs(3, 5), enc)
        assert read_snapshot(empty, enc.dims).commit_seq == 1 and w.commits == 1
    with pytest.raises(ValueError, match="commit_every must be at least 1"):
        EmbeddedIndex(empty).writer(commit_every=0)


def test_truncated_vector_file_is_refused_naming_it_and_repaired(empty, enc):
    with EmbeddedIndex(empty).writer() as w:
        w.add(_docs(0, 10), enc)
    vec = empty / "vectors.f32"
    os.truncate(vec, 6 * enc.dims * 4 + 7)  # 6 whole rows of 10, and a torn seventh
    with pytest.raises(IndexCorruptError, match=r"vectors\.f32: holds 6 vector rows of 5 dims but 10 are committed"):
        EmbeddedIndex(empty)
    size = vec.stat().st_size
    with pytest.raises(IndexCorruptError, match="es-biomed repair"):
        EmbeddedIndex.create(empty, enc.info).writer()
    assert vec.stat().st_size == size  # nothing written past the mismatch
    res = CliRunner().invoke(main, ["check", str(empty)])
    assert res.exit_code == 1 and "FAIL  opens" in res.output and "vectors.f32" in res.output
    report = repair_index(empty)
    assert report.dropped == ["d6", "d7", "d8", "d9"]
    idx = EmbeddedIndex(empty)
    assert sorted(idx.doc_ids()) == [f"d{i}" for i in range(6)] and check_index(empty).ok
    with idx.writer() as w:  # the re-run restores exactly the dropped documents
        assert w.add(_docs(0, 10), enc) == 4
    idx.reload()
    assert len(idx) == 10 and check_index(empty).ok
    assert idx.vector_scores(enc.encode_queries(["heart"])[0], ["d7"]) == pytest.approx(
        {"d7": float(enc.encode_documents([_doc(7).text])[0] @ enc.encode_queries(["heart"])[0])}, abs=1e-6
    )


def test_missing_document_table_is_named(empty, enc):
    (empty / "docs.sqlite").unlink()
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite: the document table is missing"):
        EmbeddedIndex(empty)
    assert not (empty / "docs.sqlite").exists()  # never created empty by a reader
    res = CliRunner().invoke(main, ["search", "aspirin", "--index", str(empty), "--no-rerank"])
    assert res.exit_code == 1 and "docs.sqlite: the document table is missing" in res.output
    assert "Traceback" not in res.output


def test_dims_disagreeing_with_the_encoder_are_refused(empty, enc):
    con = sqlite3.connect(empty / "docs.sqlite")
    con.execute("UPDATE meta SET value = '7' WHERE key = 'dims'")
    con.commit()
    con.close()
    with pytest.raises(IndexCorruptError, match="recorded with 7 dims but es_biomed.json's encoder has 5"):
        EmbeddedIndex(empty)


def _old_format(path: Path) -> None:
    """Turn an index into the pre-issue-21 format: no meta or translog, rollback journal."""
    con = sqlite3.connect(path / "docs.sqlite")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("DROP TABLE meta")
    con.execute("DROP TABLE translog")
    con.commit()
    con.close()


def _hot_journal_child(path: str) -> None:
    con = sqlite3.connect(Path(path) / "docs.sqlite")
    con.execute("PRAGMA cache_size=1")  # spill at once: the journal turns hot
    con.execute("BEGIN")
    for i in range(2000):
        con.execute("INSERT INTO docs VALUES (?, 0, 1, 2000, 'x', 'h', ?)", (f"junk{i}", "x" * 200))
    os._exit(0)


def test_old_format_index_with_a_hot_journal_opens_and_is_migrated(empty, enc):
    with EmbeddedIndex(empty).writer() as w:
        w.add(_docs(0, 4), enc)
    _old_format(empty)
    proc = multiprocessing.get_context("spawn").Process(target=_hot_journal_child, args=(str(empty),))
    proc.start()
    proc.join(120)
    journal = empty / "docs.sqlite-journal"
    assert journal.exists() and journal.stat().st_size > 0
    idx = EmbeddedIndex(empty)  # read-write open: SQLite rolls the journal back, no "readonly database"
    assert sorted(idx.doc_ids()) == ["d0", "d1", "d2", "d3"]
    with idx.writer() as w:  # migrated to the commit protocol
        w.add(_docs(4, 6), enc)
    con = sqlite3.connect(empty / "docs.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(con.execute("SELECT key, value FROM meta"))["vector_rows"] == "6"
    con.close()
    assert check_index(empty).ok


def test_compaction_reclaims_dead_rows_while_a_reader_keeps_working(empty, enc):
    with EmbeddedIndex(empty).writer(auto_compact=None) as w:
        w.add(_docs(0, 10), enc)
        w.commit()
        w.add([_doc(i, f"statin version two {i}") for i in range(6)], enc)  # 6 dead rows
    reader = EmbeddedIndex(empty)
    q = enc.encode_queries(["statin heart"])[0]
    before = reader.search(SearchPlan("statin", k=10), q).hits
    assert reader.view_of_commit().dead_rows.tolist() == [0, 1, 2, 3, 4, 5]
    out = compact_index(empty)
    assert out["before"]["rows"] == 16 and out["after"]["rows"] == 10
    assert out["reclaimed_bytes"] == 6 * enc.dims * 4 and not (empty / "vectors.f32").exists()
    assert reader.search(SearchPlan("statin", k=10), q).hits == before  # its mapped file is still readable
    assert reader.refresh(min_interval=0)
    assert reader.search(SearchPlan("statin", k=10), q).hits == before and not len(reader.view_of_commit().dead_rows)
    assert reader.knn(q, 3) == EmbeddedIndex(empty).knn(q, 3)
    assert check_index(empty).ok


def test_automatic_compaction_at_close(empty, enc):
    big = KeywordEncoder(VOCAB * 60)  # 300 dims: 16 rows of 1200 bytes... pushed past 1 MiB below
    EmbeddedIndex.create(empty.parent / "big", big.info)
    path = empty.parent / "big"
    docs = _docs(0, 1000)
    with EmbeddedIndex(path).writer() as w:
        w.add(docs, big)
    with EmbeddedIndex(path).writer() as w:  # rewrite every document: half of the file is dead -> compacted
        w.add([_doc(i, f"statin d{i}") for i in range(1000)], big)
    snap = read_snapshot(path, big.dims)
    assert snap.dead_rows == 0 and snap.vector_rows == 1000 and snap.vector_file != "vectors.f32"


def test_stale_compaction_file_is_removed_on_open(empty, enc):
    with EmbeddedIndex(empty).writer() as w:
        w.add(_docs(0, 3), enc)
    (empty / "vectors.9.f32").write_bytes(b"\0" * 40)  # a compaction that died before its commit
    with EmbeddedIndex(empty).writer() as w:
        assert w.recovery.stale_files_removed == 1
    assert not (empty / "vectors.9.f32").exists()


def test_check_and_compact_commands(empty, enc):
    with EmbeddedIndex(empty).writer(auto_compact=None) as w:
        w.add(_docs(0, 4), enc)
        w.commit()
        w.add([_doc(0, "statin again")], enc)
    res = CliRunner().invoke(main, ["check", str(empty), "--json"])
    assert res.exit_code == 0, res.output
    assert '"dead_rows": 1' in res.output and '"ok": true' in res.output
    res = CliRunner().invoke(main, ["compact", str(empty)])
    assert res.exit_code == 0 and "5 -> 4 vector rows" in res.output
    res = CliRunner().invoke(main, ["repair", str(empty)])
    assert res.exit_code == 0 and "0 documents dropped" in res.output


def test_bm25_documents_without_a_row_are_deleted_on_open(empty, enc):
    """An interrupted commit of the old format: BM25 committed, the document table not."""
    with EmbeddedIndex(empty).writer() as w:
        w.add(_docs(0, 3), enc)
    con = sqlite3.connect(empty / "docs.sqlite")
    con.execute("DELETE FROM docs WHERE doc_id = 'd2'")
    con.commit()
    con.close()
    idx = EmbeddedIndex(empty)
    assert idx.bm25_doc_count() == 3 and "d2" not in _bm25_ids(idx, "trial")  # readers ignore it
    assert not check_index(empty).ok
    with idx.writer() as w:
        assert w.recovery.orphans_deleted == 1
    assert check_index(empty).ok


def test_unchanged_vectors_survive_a_reopen(empty, enc):
    with EmbeddedIndex(empty).writer() as w:
        w.add(_docs(0, 5), enc)
    idx = EmbeddedIndex(empty)
    want = enc.encode_documents([_doc(3).text])[0]
    got = np.asarray(idx.view_of_commit().vectors[idx.view_of_commit().docs.row_start[idx.view_of_commit().ord["d3"]]])
    assert np.allclose(got, want, atol=1e-6)


def test_equal_scores_rank_in_writing_order_whatever_the_commits(tmp_path, enc):
    """tantivy orders ties by segment and position, which per-batch commits and merges change; the engine orders them
    by writing order, so one commit or many rank alike (and as a single segment, or a one-shard cluster, does)."""
    order = [5, 3, 9, 1, 7, 12, 0, 8, 2, 11, 4, 10, 6]
    docs = [Document(id=f"t{i}", abstract="aspirin stroke trial") for i in order]
    one = EmbeddedIndex.create(tmp_path / "one", enc.info)
    with one.writer() as w:
        w.add(docs, enc)
    many = EmbeddedIndex.create(tmp_path / "many", enc.info)
    with many.writer() as w:
        for d in docs:  # a segment per document, merged in the background as tantivy pleases
            w.add([d], enc)
            w.commit()
    many.reload()
    want = [f"t{i}" for i in order]
    for idx in (one, many):
        assert [h.doc_id for h in idx.search(SearchPlan("aspirin", mode="bm25", k=13)).hits] == want
        assert [h.doc_id for h in idx.search(SearchPlan("aspirin", mode="bm25", k=4)).hits] == want[:4]
