"""TREC run / qrels files: round trips, pytrec_eval compatibility, malformed lines."""

from __future__ import annotations

import re

import pytest

from es_biomed.errors import RecordError
from es_biomed.eval import evaluate
from es_biomed.eval.trec import read_run, write_qrels, write_run

# q2 has a tie (a and c at 0.5, a inserted first) and its docs inserted out of score order.
RUN = {
    "q2": {"z": 0.1, "a": 0.5, "c": 0.5, "b": 0.9},
    "q1": {"d1": 1.0 / 3.0, "d2": -2.5e-17, "d3": 12.0},
}


def test_write_run_lines(tmp_path):
    path = tmp_path / "sub" / "dir" / "run.trec"
    assert write_run(RUN, path, tag="bm25") == 7
    assert path.read_text().splitlines() == [
        "q1 Q0 d3 1 12.0 bm25",
        "q1 Q0 d1 2 0.3333333333333333 bm25",
        "q1 Q0 d2 3 -2.5e-17 bm25",
        "q2 Q0 b 1 0.9 bm25",
        "q2 Q0 a 2 0.5 bm25",  # tie: insertion order, scores unchanged
        "q2 Q0 c 3 0.5 bm25",
        "q2 Q0 z 4 0.1 bm25",
    ]


def test_round_trip_keeps_scores_and_order(tmp_path):
    path = tmp_path / "run.trec"
    write_run(RUN, path)
    back = read_run(path)
    assert back == RUN
    assert list(back["q1"]) == ["d3", "d1", "d2"]
    assert list(back["q2"]) == ["b", "a", "c", "z"]


def test_read_run_uses_rank_column(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q 0 y 2 1.0 t\n\nq 0 x 1 1.0 t\n")
    assert list(read_run(path)["q"]) == ["x", "y"]


def test_pytrec_eval_parses_written_run(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    path = tmp_path / "run.trec"
    write_run(RUN, path)
    with open(path) as fh:
        parsed = pytrec_eval.parse_run(fh)
    assert parsed == RUN


def test_k_cut(tmp_path):
    path = tmp_path / "run.trec"
    assert write_run(RUN, path, k=2) == 4
    assert read_run(path) == {"q1": {"d3": 12.0, "d1": 1.0 / 3.0}, "q2": {"b": 0.9, "a": 0.5}}
    with pytest.raises(ValueError, match="k must be >= 1"):
        write_run(RUN, path, k=0)


def test_write_run_validation(tmp_path):
    path = tmp_path / "run.trec"
    with pytest.raises(ValueError, match=re.escape("docid 'a b' (query 'q') must be a non-empty string")):
        write_run({"q": {"a b": 1.0}}, path)
    with pytest.raises(ValueError, match=re.escape("qid '' must be")):
        write_run({"": {"a": 1.0}}, path)
    with pytest.raises(ValueError, match=re.escape("tag 'my run' must be")):
        write_run({"q": {"a": 1.0}}, path, tag="my run")
    with pytest.raises(ValueError, match=re.escape("score of docid 'a' (query 'q') is NaN")):
        write_run({"q": {"a": float("nan")}}, path)
    assert not path.exists()


@pytest.mark.parametrize(
    "bad, field, reason",
    [
        ("q1 Q0 d2 2 0.5\n", "(record)", "expected 6 columns qid Q0 docid rank score tag, got 5"),
        ("q1 Q0 d2 two 0.5 t\n", "rank", "not an integer: 'two'"),
        ("q1 Q0 d2 2 high t\n", "score", "not a number: 'high'"),
        ("q1 Q0 d1 2 0.5 t\n", "docid", "docid 'd1' of query 'q1' already listed at line 1"),
    ],
)
def test_malformed_lines(tmp_path, bad, field, reason):
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d1 1 0.9 t\n" + bad)
    with pytest.raises(RecordError, match=re.escape(f"{path}:2: field {field!r}: {reason}")) as info:
        read_run(path)
    assert (info.value.line, info.value.field) == (2, field)


def test_qrels_round_trip(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = {"q2": {"y": 0, "x": 2}, "q1": {"a": 1}}
    path = tmp_path / "qrels" / "test.tsv"
    assert write_qrels(qrels, path) == 3
    assert path.read_text() == "q1 0 a 1\nq2 0 x 2\nq2 0 y 0\n"
    with open(path) as fh:
        assert pytrec_eval.parse_qrel(fh) == qrels
    with pytest.raises(ValueError, match=re.escape("grade of docid 'a' (query 'q') must be an integer, got 1.5")):
        write_qrels({"q": {"a": 1.5}}, path)


def test_recip_rank_same_on_files(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = {"q1": {"a": 1}, "q2": {"x": 1}, "q3": {"m": 1}}
    run = {
        "q1": {"b": 2.0, "a": 1.0, "c": 0.5},  # relevant at rank 2 -> 1/2
        "q2": {"x": 3.0, "y": 1.0},  # rank 1 -> 1
        "q3": {"k": 0.7, "l": 0.7, "m": 0.2},  # tie between non-relevant docs, relevant at rank 3 -> 1/3
    }
    write_run(run, tmp_path / "run.trec")
    write_qrels(qrels, tmp_path / "qrels.txt")
    with open(tmp_path / "run.trec") as fh:
        run_back = pytrec_eval.parse_run(fh)
    with open(tmp_path / "qrels.txt") as fh:
        qrels_back = pytrec_eval.parse_qrel(fh)
    memory = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    files = pytrec_eval.RelevanceEvaluator(qrels_back, {"recip_rank"}).evaluate(run_back)
    assert {q: v["recip_rank"] for q, v in files.items()} == {q: v["recip_rank"] for q, v in memory.items()}
    assert {q: v["recip_rank"] for q, v in files.items()} == pytest.approx({"q1": 0.5, "q2": 1.0, "q3": 1 / 3})


def test_tie_order_survives_for_our_metrics(tmp_path):
    # b and a tie; b was inserted first, so our convention ranks b first -> MRR 1/2 (trec_eval may differ)
    run = {"q": {"b": 1.0, "a": 1.0}}
    write_run(run, tmp_path / "run.trec")
    back = read_run(tmp_path / "run.trec")
    assert evaluate({"q": {"a": 1}}, back, ["MRR@10"]) == evaluate({"q": {"a": 1}}, run, ["MRR@10"]) == {"MRR@10": 0.5}
