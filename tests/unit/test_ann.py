"""The embedded engine's ANN graph (issue 23): recall against the exact scan, exact scores on the candidates,
upserts and deletes, a graph behind the commits, stale and damaged graphs, crashes in the middle of a save, and
the ``es-biomed ann`` commands."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("usearch", reason="the ANN graph needs usearch (the ann extra)")

from es_biomed.backends import EmbeddedIndex
from es_biomed.backends.embedded.ann import ANN_META, EXACT_BELOW_ROWS, AnnSettings
from es_biomed.backends.embedded.maintenance import build_ann, check_index, compact_index, drop_ann_index
from es_biomed.cli import main
from es_biomed.corpus import Document
from es_biomed.errors import IndexCorruptError, PlanError
from es_biomed.query import SearchPlan
from es_biomed.query.plan import Filters

DIMS = 32
N = 4000
ENCODER = {"name": "clustered-32", "dims": DIMS, "fingerprint": "clustered-32-v1"}


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres: neighbours are close, as an encoder's are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIMS))
    v = (centres[rng.integers(40, size=n)] + 0.6 * rng.standard_normal((n, DIMS))).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _docs(lo: int, hi: int) -> list[Document]:
    return [
        Document(
            id=f"d{i}",
            title=f"title {i}",
            abstract=f"aspirin trial {i}",
            source="pmc" if i % 7 == 0 else "pubmed",
            date=str(2000 + i % 20),
        )
        for i in range(lo, hi)
    ]


def _queries(n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(7)
    q = _vectors(n, seed=3) + 0.2 * rng.standard_normal((n, DIMS)).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, np.ndarray]:
    vecs = _vectors(N)
    idx = EmbeddedIndex.create(tmp_path / "ix", ENCODER)
    with idx.writer(ann="on") as w:
        w.upsert(_docs(0, N), [vecs[i : i + 1] for i in range(N)])
    return tmp_path / "ix", vecs


def _ids(hits) -> list[str]:
    return [h.doc_id for h in hits]


def test_ann_recall_and_exact_scores(built):
    path, _ = built
    ann, exact = EmbeddedIndex(path, vector_search="ann"), EmbeddedIndex(path, vector_search="exact")
    assert ann.vector_search_info()["method"] == "ann"
    recall = []
    for q in _queries():
        a, e = ann.knn(q, 10), exact.knn(q, 10)
        recall.append(len(set(_ids(a)) & set(_ids(e))) / 10)
        exact_score = {h.doc_id: h.score for h in exact.knn(q, N)}
        for h in a:  # every score is the exact one (float rescore of the candidates)
            assert h.score == pytest.approx(exact_score[h.doc_id], abs=1e-6)
        assert [h.score for h in a] == sorted((h.score for h in a), reverse=True)
    assert np.mean(recall) >= 0.95


def test_filters_and_hybrid_through_the_graph(built):
    path, _ = built
    ann, exact = EmbeddedIndex(path, vector_search="ann"), EmbeddedIndex(path, vector_search="exact")
    q = _queries()[0]
    selective = Filters(("pmc",), None, None)  # 1 in 7 documents: 572 rows, scanned exactly
    assert _ids(ann.knn(q, 10, selective)) == _ids(exact.knn(q, 10, selective))
    broad = Filters((), 2005, None)  # three quarters of the documents: the graph, oversampled by the share
    got = ann.knn(q, 10, broad)
    assert all(int(ann.get([h.doc_id])[h.doc_id]["date"]) >= 2005 for h in got)
    assert len(set(_ids(got)) & set(_ids(exact.knn(q, 10, broad)))) >= 9
    plan = SearchPlan("aspirin trial", mode="hybrid", k=10, window_size=50)
    assert len(set(_ids(ann.search(plan, q).hits)) & set(_ids(exact.search(plan, q).hits))) >= 9


def test_upserts_and_deletes_reach_the_graph(built):
    path, vecs = built
    idx = EmbeddedIndex(path)
    target = _queries()[5]
    with idx.writer() as w:  # d1 moves onto the query; d2 (the old best) is deleted
        best_before = _ids(EmbeddedIndex(path, vector_search="ann").knn(target, 1))[0]
        w.upsert(_docs(1, 2), [target[None, :]])
        w.delete([best_before] if best_before != "d1" else ["d2"])
    ann = EmbeddedIndex(path, vector_search="ann")
    info = ann.vector_search_info()
    assert info["ann"]["lag_rows"] == 0  # saved at close
    top = ann.knn(target, 10)
    assert top[0].doc_id == "d1" and top[0].score == pytest.approx(1.0, abs=1e-6)
    assert best_before == "d1" or best_before not in _ids(top)
    saved = json.loads((path / ANN_META).read_text())
    assert saved["generation"] == 2 and saved["rows"] == N + 1


def _write_then_die(path: str, lo: int, hi: int) -> None:
    vecs = _vectors(hi, seed=11)[lo:hi]
    idx = EmbeddedIndex(path)
    w = idx.writer(ann_save_interval=1e9)  # commits, but the graph is never saved: it lags
    w.upsert(_docs(lo, hi), [vecs[i : i + 1] for i in range(hi - lo)])
    w.commit()
    os._exit(0)  # a crash: no close, no save


def test_a_graph_behind_the_commits_scans_the_rest_exactly(built):
    path, _ = built
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_write_then_die, args=(str(path), N, N + 300))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    ann, exact = EmbeddedIndex(path, vector_search="ann"), EmbeddedIndex(path, vector_search="exact")
    info = ann.vector_search_info()
    assert info["ann"]["lag_rows"] == 300 and "exactly" in info["reason"]
    new = _vectors(N + 300, seed=11)[N + 10]
    assert _ids(ann.knn(new, 1)) == [f"d{N + 10}"] == _ids(exact.knn(new, 1))
    with ann.writer():  # the next writer catches the graph up
        pass
    assert EmbeddedIndex(path, vector_search="ann").vector_search_info()["ann"]["lag_rows"] == 0


def test_missing_damaged_or_foreign_graph_is_refused_by_name(built):
    path, _ = built
    meta = json.loads((path / ANN_META).read_text())
    graph = path / meta["file"]
    keep = graph.read_bytes()
    graph.unlink()
    with pytest.raises(IndexCorruptError, match=r"ann\.1\.usearch.*missing.*es-biomed ann build"):
        EmbeddedIndex(path)
    assert EmbeddedIndex(path, vector_search="exact").vector_search_info()["reason"] == "exact requested (--exact)"
    graph.write_bytes(keep[: len(keep) // 2])
    with pytest.raises(IndexCorruptError, match="truncated or replaced.*es-biomed ann build"):
        EmbeddedIndex(path)
    graph.write_bytes(keep)
    (path / ANN_META).write_text(json.dumps({**meta, "encoder_fingerprint": "other"}))
    with pytest.raises(IndexCorruptError, match="encoder fingerprint other"):
        EmbeddedIndex(path)
    assert not check_index(path).ok
    build_ann(path)  # the command the message names rebuilds it
    assert EmbeddedIndex(path, vector_search="ann").vector_search_info()["method"] == "ann"


def test_crash_in_the_middle_of_a_save_keeps_the_previous_graph(built):
    path, _ = built
    meta = json.loads((path / ANN_META).read_text())
    # what a save killed before its commit point leaves: the next generation's file, half written, and a tmp
    (path / "ann.2.usearch").write_bytes(b"half a graph")
    (path / "ann.2.usearch.tmp").write_bytes(b"more")
    (path / (ANN_META + ".tmp")).write_text("{")
    ann = EmbeddedIndex(path, vector_search="ann")
    assert ann.vector_search_info()["ann"]["file"] == meta["file"]
    assert len(ann.knn(_queries()[0], 10)) == 10
    with ann.writer():  # the next writer removes what the dead save left
        pass
    assert sorted(p.name for p in path.glob("ann.*")) == [meta["file"], ANN_META]


def test_compaction_makes_the_graph_stale_until_the_writer_rebuilds_it(built):
    path, vecs = built
    idx = EmbeddedIndex(path)
    with idx.writer(auto_compact=None) as w:  # 1,500 documents rewritten: their old rows die
        w.upsert(_docs(0, 1500), [vecs[i : i + 1] for i in range(1500)])
    stale_copy = path.parent / "stale"
    shutil.copytree(path, stale_copy)
    compact_index(path)
    ann = EmbeddedIndex(path, vector_search="ann")
    assert ann.vector_search_info()["ann"]["rows"] == N  # rebuilt over the compacted file at close
    q = _queries()[1]
    assert _ids(ann.knn(q, 5)) == _ids(EmbeddedIndex(path, vector_search="exact").knn(q, 5))
    # a graph over a vector file the index no longer uses: exact, and said so
    old_meta = json.loads((stale_copy / ANN_META).read_text())
    (path / "ann.99.usearch").write_bytes((stale_copy / old_meta["file"]).read_bytes())
    (path / ANN_META).write_text(json.dumps({**old_meta, "file": "ann.99.usearch"}))
    info = EmbeddedIndex(path).vector_search_info()
    assert info["method"] == "exact" and "compaction" in info["reason"]
    with pytest.raises(PlanError, match="no usable ANN index"):
        EmbeddedIndex(path, vector_search="ann").knn(q, 5)


def test_auto_is_exact_below_the_threshold_and_says_why(built):
    path, _ = built
    assert N < EXACT_BELOW_ROWS
    info = EmbeddedIndex(path).vector_search_info()
    assert info["method"] == "exact" and str(EXACT_BELOW_ROWS) in info["reason"]


def test_no_graph_without_ann_and_bad_settings_name_the_parameter(tmp_path):
    idx = EmbeddedIndex.create(tmp_path / "ix", ENCODER)
    vecs = _vectors(50)
    with idx.writer() as w:  # auto, 50 rows: no graph
        w.upsert(_docs(0, 50), [vecs[i : i + 1] for i in range(50)])
    assert not (tmp_path / "ix" / ANN_META).exists()
    info = EmbeddedIndex(tmp_path / "ix").vector_search_info()
    assert info["method"] == "exact" and "no ANN index" in info["reason"]
    with pytest.raises(PlanError, match="no usable ANN index") as err:
        EmbeddedIndex(tmp_path / "ix", vector_search="ann").knn(vecs[0], 3)
    assert err.value.param == "vector_search"
    with pytest.raises(PlanError, match="ann dtype") as err:
        AnnSettings(dtype="f64")
    with pytest.raises(PlanError, match="connectivity"):
        AnnSettings(connectivity=0)
    with pytest.raises(PlanError, match="vector_search"):
        EmbeddedIndex(tmp_path / "ix", vector_search="approximate")  # type: ignore[arg-type]


def test_ann_commands(built):
    path, _ = built
    runner = CliRunner()
    out = runner.invoke(main, ["ann", "status", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["method"] == "exact"  # below the threshold
    out = runner.invoke(main, ["ann", "build", str(path), "--dtype", "b1", "--oversample", "32", "--json"])
    assert out.exit_code == 0, out.output
    rec = json.loads(out.output)
    assert rec["settings"]["dtype"] == "b1" and rec["added"] == N  # another dtype: rebuilt
    ann = EmbeddedIndex(path, vector_search="ann")
    exact = EmbeddedIndex(path, vector_search="exact")
    recall = [len(set(_ids(ann.knn(q, 10))) & set(_ids(exact.knn(q, 10)))) / 10 for q in _queries(20)]
    # 32 sign bits are coarse (384 keep far more): the float rescore of 32x the candidates lifts recall to this
    assert np.mean(recall) >= 0.7, recall
    out = runner.invoke(main, ["ann", "drop", str(path)])
    assert out.exit_code == 0 and "dropped" in out.output
    assert not list(path.glob("ann.*")) and EmbeddedIndex.read_config(path).ann is None
    out = runner.invoke(main, ["ann", "build", str(path / "nope")])
    assert out.exit_code != 0
    drop_ann_index(path)  # dropping twice is no error


def test_ingest_builds_the_graph_on_request(tmp_path):
    from es_biomed.ingest import index_documents
    from tests.conftest import KeywordEncoder

    enc = KeywordEncoder(["aspirin", "fever", "heart", "stroke"])
    docs = [Document(id=f"p{i}", title="aspirin fever", abstract=f"heart {i} stroke" * (i % 3 + 1)) for i in range(6)]
    index_documents(docs, tmp_path / "auto", enc)  # 6 rows: auto builds none
    assert not (tmp_path / "auto" / ANN_META).exists()
    index_documents(docs, tmp_path / "on", enc, ann="on")
    assert json.loads((tmp_path / "on" / ANN_META).read_text())["rows"] == 6
    out = CliRunner().invoke(main, ["index", "--help"])
    assert "--ann [auto|on|off]" in out.output
