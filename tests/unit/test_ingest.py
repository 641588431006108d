"""Ingest keeps what it accepted when reading fails partway (no records lost)."""

from __future__ import annotations

import pytest

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.errors import RecordError
from es_biomed.ingest import index_documents


def docs_then_error():
    yield Document(id="a", abstract="aspirin fever")
    yield Document(id="b", abstract="heart stroke")
    raise RecordError("c.jsonl", 3, "title", "empty value")


def test_records_before_a_bad_one_are_indexed_in_the_same_batch(tmp_path, toy_encoder):
    with pytest.raises(RecordError, match="c.jsonl:3: field 'title'"):
        index_documents(docs_then_error(), tmp_path / "ix", toy_encoder, batch_size=100)
    assert sorted(EmbeddedIndex(tmp_path / "ix").get(["a", "b"])) == ["a", "b"]


def test_batches_across_boundaries(tmp_path, toy_encoder):
    docs = [Document(id=str(i), abstract="aspirin " * (i + 1)) for i in range(7)]
    report = index_documents(docs, tmp_path / "ix", toy_encoder, batch_size=3)
    assert (report.read, report.written, report.total_docs) == (7, 7, 7)
