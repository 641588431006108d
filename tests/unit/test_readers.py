"""Corpus readers, including bad records: each error names file, line and field; quarantine keeps going."""

from __future__ import annotations

import json
import re

import pytest

from es_biomed.corpus import (
    Document,
    PassageConfig,
    RejectSink,
    detect_format,
    iter_documents,
    load_beir,
    split_passages,
)
from es_biomed.errors import RecordError


def write_jsonl(path, lines):
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(
                line
                if isinstance(line, bytes)
                else (json.dumps(line) if isinstance(line, dict) else line).encode() + b"\n"
            )
            if isinstance(line, bytes):
                fh.write(b"\n")
    return path


@pytest.fixture
def beir_dir(tmp_path):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    write_jsonl(
        d / "corpus.jsonl",
        [
            {
                "_id": "1",
                "title": "Aspirin",
                "text": "Aspirin reduces fever.",
                "metadata": {"source_x": "PMC", "publish_time": "2020-03-01", "pubmed_id": "99"},
            },
            {"_id": "2", "title": "", "text": "Stroke prevention."},
        ],
    )
    write_jsonl(d / "queries.jsonl", [{"_id": "q1", "text": "fever drug"}, {"_id": "q2", "text": "unjudged"}])
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t1\t1\n")
    return d


def test_beir_reader_maps_fields(beir_dir):
    docs = list(iter_documents(beir_dir))
    assert [d.id for d in docs] == ["1", "2"]
    assert docs[0] == Document(
        id="1", title="Aspirin", abstract="Aspirin reduces fever.", source="PMC", pmid="99", date="2020-03-01"
    )
    assert docs[0].year == 2020 and docs[1].year is None
    ds = load_beir(beir_dir, "test")
    assert ds.queries == {"q1": "fever drug"} and ds.qrels == {"q1": {"1": 1}} and len(ds.corpus) == 2


def test_breathe_reader_full_schema(tmp_path):
    rec = {
        "id": "b1",
        "title": "T",
        "abstract": "A",
        "body": "B " * 10,
        "source": "biorxiv",
        "doi": "10.1/x",
        "pmid": "7",
        "date": "2019",
        "authors": ["Ada Lovelace", "Alan Turing"],
        "journal": "J",
    }
    p = write_jsonl(tmp_path / "c.jsonl", [rec])
    (doc,) = iter_documents(p, "breathe")
    assert doc.to_json() == {**rec, "body": rec["body"].strip()}
    assert detect_format(p) == "breathe"


BAD_LINES = [
    (b'{"id": "x", "title": "ok"', "(record)", "malformed JSON"),
    (b"", "(record)", "empty record (blank line)"),
    (b'{"id": "x", "title": "caf\xe9"}', "(record)", "not valid UTF-8"),
    (b'{"id": "", "title": "t"}', "id", "empty value"),
    (b'{"title": "no id"}', "id", "missing required field"),
    (b'{"id": "x", "title": "", "abstract": ""}', "title/abstract/body", "empty record: no text to index"),
    (b'{"id": "x", "title": ["not", "a", "string"]}', "title", "expected a string, got list"),
    (b'{"id": "x", "title": "t", "authors": 5}', "authors", "expected a list of strings"),
    (b"[1, 2]", "(record)", "expected a JSON object, got list"),
]


@pytest.mark.parametrize(("raw", "field", "reason"), BAD_LINES)
def test_bad_record_raises_naming_file_line_field(tmp_path, raw, field, reason):
    p = tmp_path / "c.jsonl"
    p.write_bytes(b'{"id": "ok1", "title": "fine"}\n' + raw + b"\n" + b'{"id": "ok2", "title": "fine"}\n')
    it = iter_documents(p, "breathe")
    assert next(it).id == "ok1"  # what came before the bad record was yielded
    with pytest.raises(RecordError, match=re.escape(f"{p}:2: field {field!r}: {reason}")) as info:
        next(it)
    assert (info.value.path, info.value.line, info.value.field) == (str(p), 2, field)


def test_oversized_record(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_bytes(json.dumps({"id": "big", "title": "x" * 500}).encode() + b"\n")
    with pytest.raises(RecordError, match=r"c\.jsonl:1: field '\(record\)': oversized record: 5\d\d bytes > 100"):
        list(iter_documents(p, "breathe", max_record_bytes=100))


def test_quarantine_keeps_every_valid_record(tmp_path):
    p = tmp_path / "c.jsonl"
    lines = (
        [b'{"id": "ok1", "title": "fine"}'] + [raw for raw, _, _ in BAD_LINES] + [b'{"id": "ok2", "title": "fine"}']
    )
    p.write_bytes(b"\n".join(lines) + b"\n")
    with RejectSink(tmp_path / "rejects.jsonl") as sink:
        docs = list(iter_documents(p, "breathe", on_error="quarantine", sink=sink))
    assert [d.id for d in docs] == ["ok1", "ok2"]
    assert sink.count == len(BAD_LINES)
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == list(range(2, 2 + len(BAD_LINES)))
    assert [r["field"] for r in rejects] == [f for _, f, _ in BAD_LINES]
    assert rejects[0]["raw"] == '{"id": "x", "title": "ok"' and rejects[0]["file"] == str(p)


def test_quarantine_without_sink_is_refused(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "title": "t"}])
    with pytest.raises(ValueError, match="needs a RejectSink"):
        list(iter_documents(p, "breathe", on_error="quarantine"))


CSV_HEADER = "cord_uid,title,abstract,source_x,doi,pubmed_id,publish_time,authors,journal\n"


def test_cord19_csv_reader_and_bad_rows(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_bytes(
        CSV_HEADER.encode()
        + b'u1,"Multi\nline title",An abstract.,PMC,10.1/a,123,2020-05-01,"Doe, J.; Roe, R.",Lancet\n'
        + b"u2,,,PMC,,,,,\n"  # no text
        + b"u3,Caf\xe9 au lait,abs,WHO,,,2021,,\n"  # latin-1 byte in the title
        + b"u4,ok,fine,Medline,,,2019-01-01,,\n"
    )
    with RejectSink(tmp_path / "rej.jsonl") as sink:
        docs = list(iter_documents(p, on_error="quarantine", sink=sink))
    assert [d.id for d in docs] == ["u1", "u4"]
    assert docs[0].title == "Multi\nline title" and docs[0].authors == ("Doe, J.", "Roe, R.")
    assert docs[0].journal == "Lancet" and docs[0].year == 2020 and docs[0].pmid == "123"
    rej = [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()]
    # u1 spans lines 2-3, so u2 starts on line 4 and u3 on line 5
    assert [(r["line"], r["field"]) for r in rej] == [(4, "title/abstract/body"), (5, "title")]
    assert "not valid UTF-8" in rej[1]["error"]
    with pytest.raises(RecordError, match=re.escape(f"{p}:4: field 'title/abstract/body'")):
        list(iter_documents(p))


def test_passages_split_long_bodies_with_overlap():
    doc = Document(id="1", title="T", abstract="A", body=" ".join(f"w{i}" for i in range(10)))
    ps = split_passages(doc, PassageConfig(max_words=4, overlap=2))
    assert ps == ["T A", "T w0 w1 w2 w3", "T w2 w3 w4 w5", "T w4 w5 w6 w7", "T w6 w7 w8 w9"]
    assert split_passages(Document(id="2", abstract="only")) == ["only"]
    with pytest.raises(ValueError, match="0 <= overlap < max_words"):
        PassageConfig(max_words=4, overlap=4)
