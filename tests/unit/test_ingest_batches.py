"""Batches by reference, the Celery settings, and the worker steps run as plain functions (no broker)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.records import RejectSink, Span
from es_biomed.ingest.batches import BatchRef, plan_batches, read_batch
from es_biomed.ingest.jobs import Target, _batch_state
from es_biomed.ingest.queue import celery_settings
from es_biomed.ingest.steps import embed_batch, write_batch

LINES = [
    b'{"_id": "d1", "title": "Aspirin", "text": "aspirin and fever"}\n',
    b'{"_id": "d2", "title": "Heart", "text": "heart attack"}\n',
    b"{not json\n",
    b'{"_id": "d4", "title": "Stroke", "text": "stroke after fever"}\n',
    b'{"_id": "d5", "title": "", "text": ""}\n',
]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.jsonl"
    p.write_bytes(b"".join(LINES))
    return p


def test_plan_batches_cuts_whole_lines_into_byte_ranges(corpus):
    refs = plan_batches(corpus, batch_size=2)
    sizes = [len(x) for x in LINES]
    assert [(r.start, r.end, r.first_line, r.records, r.n) for r in refs] == [
        (0, sizes[0] + sizes[1], 1, 2, 0),
        (sizes[0] + sizes[1], sum(sizes[:4]), 3, 2, 1),
        (sum(sizes[:4]), sum(sizes), 5, 1, 2),
    ]
    assert {r.fmt for r in refs} == {"beir"} and refs[0].path == str(corpus.resolve())


def test_read_batch_keeps_file_line_numbers_and_quarantines(corpus, tmp_path):
    refs = plan_batches(corpus, batch_size=2)
    sink = RejectSink(tmp_path / "rejects.jsonl")
    docs = [d for r in refs for d in read_batch(r, sink=sink)]
    sink.close()
    assert [(d.id, d.origin.line) for d in docs] == [("d1", 1), ("d2", 2), ("d4", 4)]
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(3, "(record)"), (5, "title/abstract/body")]
    assert rejects[0]["raw"] == "{not json"


def test_record_ranges_for_csv(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_text('cord_uid,title,abstract\nc1,"Multi\nline title",a1\nc2,t2,a2\nc3,t3,a3\n', encoding="utf-8")
    refs = plan_batches(p, batch_size=2)
    assert [(r.start, r.end, r.records) for r in refs] == [(0, 2, 2), (2, 3, 1)]
    assert [[(d.id, d.origin.line) for d in read_batch(r, on_error="raise")] for r in refs] == [
        [("c1", 2), ("c2", 4)],
        [("c3", 5)],
    ]


def test_batch_ref_from_a_bad_message_names_the_problem():
    with pytest.raises(ValueError, match="malformed batch reference"):
        BatchRef.from_dict({"path": "x", "fmt": "beir"})
    with pytest.raises(ValueError, match=re.escape("invalid span")):
        Span(5, 2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        plan_batches("data/scifact-sample", batch_size=0)


def test_celery_settings_are_json_only_and_late_acking():
    s = celery_settings({"BROKER_URL": "redis://h:1/2", "ES_BIOMED_VISIBILITY_TIMEOUT": "7200"})
    assert s["broker_url"] == s["result_backend"] == "redis://h:1/2"
    assert s["accept_content"] == s["result_accept_content"] == ["json"]
    assert s["task_serializer"] == s["result_serializer"] == "json"
    assert s["task_acks_late"] and s["task_reject_on_worker_lost"] and s["worker_prefetch_multiplier"] == 1
    assert s["broker_transport_options"] == {
        "visibility_timeout": 7200,
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
    assert celery_settings({})["broker_url"] == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError, match="ES_BIOMED_VISIBILITY_TIMEOUT must be an integer, got 'soon'"):
        celery_settings({"ES_BIOMED_VISIBILITY_TIMEOUT": "soon"})


def test_target_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend must be 'local', 'es' or 'opensearch'"):
        Target("solr", "x", "minilm")  # type: ignore[arg-type]
    assert Target("opensearch", "es-biomed", "minilm").backend == "opensearch"  # issue 22: both engines


@pytest.mark.parametrize(
    ("embed", "write", "state"),
    [
        ("PENDING", "PENDING", "pending"),
        ("STARTED", "PENDING", "running"),
        ("RETRY", "PENDING", "running"),
        ("SUCCESS", "PENDING", "running"),
        ("SUCCESS", "STARTED", "running"),
        ("SUCCESS", "SUCCESS", "done"),
        ("FAILURE", "PENDING", "failed"),
        ("SUCCESS", "FAILURE", "failed"),
    ],
)
def test_batch_state_of_the_embedded_chain(embed, write, state):
    metas = {"a": {"status": embed}, "a:w": {"status": write}}
    assert _batch_state(metas, "a", "a:w")[0] == state


def test_embed_then_write_is_idempotent(corpus, tmp_path, toy_encoder):
    index = tmp_path / "ix"
    sink = RejectSink(tmp_path / "rejects.jsonl")
    refs = plan_batches(corpus, batch_size=2)
    results = []
    for ref in refs:
        embedded = embed_batch(ref, "job1", str(index), toy_encoder, sink)
        assert json.loads(json.dumps(embedded)) == embedded  # travels as JSON
        results.append(write_batch(embedded, str(index)))
        assert write_batch(embedded, str(index)) == results[-1]  # a redelivered write is a no-op
    assert [r["written"] for r in results] == [2, 1, 0]
    assert [r["rejected"] for r in results] == [0, 1, 1]
    # the embed step runs again (a redelivered batch): same ids, so the index does not grow
    again = embed_batch(refs[0], "job2", str(index), toy_encoder, sink)
    write_batch(again, str(index))
    ix = EmbeddedIndex(index)
    assert sorted(ix.doc_ids()) == ["d1", "d2", "d4"] and ix.bm25_doc_count() == 3
    d1 = ix.vector_scores(np.array([1, 1, 0, 0], np.float32) / np.sqrt(2), ["d1"])["d1"]
    # passage "Aspirin aspirin and fever" -> counts [2, 1, 0, 0]; cosine with [1, 1, 0, 0] = 3 / sqrt(10)
    assert d1 == pytest.approx(3 / np.sqrt(10), abs=1e-6)


def test_write_batch_without_its_spool_says_where_it_should_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="must run on the machine"):
        write_batch({"spool": str(tmp_path / "gone.npz")}, str(tmp_path / "ix"))
