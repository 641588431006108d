"""Distractor pools: documents join the corpus and never the qrels; id collisions; same-question documents;
the BioASQ golden and PubMedQA readers they rely on."""

from __future__ import annotations

import json
import re

import pytest

from es_biomed.corpus.bioasq import context_id, load_bioasq, load_bioasq_golden
from es_biomed.corpus.formats import detect_format
from es_biomed.corpus.pubmedqa import load_pubmedqa
from es_biomed.corpus.readers import iter_documents
from es_biomed.errors import RecordError
from es_biomed.eval.pool import add_distractors

Q1 = "Which gene is mutated in cystic fibrosis?"
CTX1 = "Cystic fibrosis is caused by mutations in the CFTR gene encoding a chloride channel in epithelia."
CTX2 = "BRCA1 loss raises the lifetime risk of breast and ovarian cancer in carriers."


def _squad(tmp_path, name="b.json"):
    f = tmp_path / name
    paras = [{"context": CTX1, "qas": [{"id": "Q1_000", "question": Q1}]}]
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paras}]}))
    return f


def _golden(tmp_path, snippets, qid="Q9", body=Q1):
    f = tmp_path / "golden.json"
    f.write_text(
        json.dumps(
            {
                "questions": [
                    {
                        "id": qid,
                        "body": body,
                        "type": "factoid",
                        "snippets": [
                            {"text": t, "document": "http://www.ncbi.nlm.nih.gov/pubmed/123"} for t in snippets
                        ],
                    }
                ]
            }
        )
    )
    return f


def _beir(tmp_path, rows):
    d = tmp_path / "beir"
    d.mkdir()
    (d / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_distractors_join_the_corpus_not_the_qrels(tmp_path):
    ds = load_bioasq([_squad(tmp_path)])
    extra = _beir(tmp_path, [{"_id": "d1", "title": "", "text": CTX2}, {"_id": "d2", "title": "x", "text": "y"}])
    pooled = add_distractors(ds, [extra])
    assert sorted(pooled.corpus) == sorted([context_id(CTX1), "d1", "d2"])
    assert pooled.qrels == ds.qrels and pooled.queries == ds.queries
    assert pooled.stats["distractors"] == {
        "files": {str(extra): 2},
        "added": 2,
        "duplicates": 0,
        "same_question_ignored": 0,
        "corpus": 3,
    }
    assert len(ds.corpus) == 1  # the input set is not modified


def test_same_text_is_merged_and_same_question_documents_are_ignored(tmp_path):
    ds = load_bioasq([_squad(tmp_path)])
    # golden snippets of the same question (other id, same text): CTX1 again (a duplicate) and a new snippet
    other = "CFTR mutations such as F508del impair chloride transport."
    pooled = add_distractors(
        ds, [_golden(tmp_path, [CTX1, other], qid="OTHER", body="  which GENE is mutated in cystic fibrosis? ")]
    )
    st = pooled.stats["distractors"]
    assert (st["added"], st["duplicates"], st["same_question_ignored"]) == (1, 1, 1)
    # the new snippet answers Q1 but is unjudged: neither relevant nor an error
    assert pooled.ignore == {"Q1": {context_id(other)}}
    assert pooled.qrels == {"Q1": {context_id(CTX1): 1}}


def test_colliding_id_with_other_text_is_refused_naming_both_files(tmp_path):
    sq = _squad(tmp_path)
    ds = load_bioasq([sq])
    cid = context_id(CTX1)
    extra = _beir(tmp_path, [{"_id": "ok", "text": "fine"}, {"_id": cid, "title": "", "text": "another text"}])
    msg = f"{extra / 'corpus.jsonl'}:2: field 'id': distractor id {cid!r} collides with relevant document {cid!r} of {sq}:data[0].paragraphs[0], whose text differs"
    with pytest.raises(RecordError, match=re.escape(msg)):
        add_distractors(ds, [extra])


def test_missing_distractor_file(tmp_path):
    ds = load_bioasq([_squad(tmp_path)])
    with pytest.raises(FileNotFoundError, match=re.escape("distractor corpus")):
        add_distractors(ds, [tmp_path / "nope.jsonl"])


def test_golden_reader(tmp_path):
    f = _golden(tmp_path, [CTX2, " " + CTX2 + " ", CTX1])
    g = load_bioasq_golden([f])
    assert g.queries == {"Q9": Q1}
    assert g.qrels == {"Q9": {context_id(CTX2): 1, context_id(CTX1): 1}}
    assert g.corpus[context_id(CTX2)].pmid == "123" and g.corpus[context_id(CTX2)].source == "bioasq-golden"
    assert detect_format(f) == "bioasq-golden"
    assert [d.id for d in iter_documents(f)] == [context_id(CTX2), context_id(CTX1)]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"questions": [{"id": "Q", "body": "b", "snippets": [{"text": " "}]}]}))
    with pytest.raises(RecordError, match=re.escape(f"{bad}:questions[0].snippets[0]: field 'text'")):
        load_bioasq_golden([bad])


def test_pubmedqa_reader(tmp_path):
    f = tmp_path / "ori_pqal.json"
    f.write_text(
        json.dumps(
            {
                "111": {"QUESTION": "Does X help?", "CONTEXTS": ["Background  one.", "Results two."], "YEAR": "2010"},
                "222": {"QUESTION": "Is Y safe?", "CONTEXTS": "['Only one section.']"},
            }
        )
    )
    p = load_pubmedqa(f)
    assert detect_format(f) == "pubmedqa"
    assert p.corpus["111"].abstract == "Background one. Results two." and p.corpus["111"].year == 2010
    assert p.corpus["222"].abstract == "Only one section."
    assert p.qrels == {"q111": {"111": 1}, "q222": {"222": 1}}
    f.write_text(json.dumps({"333": {"QUESTION": "Q?", "CONTEXTS": []}}))
    with pytest.raises(RecordError, match=re.escape(f"{f}:333: field 'CONTEXTS': empty CONTEXTS")):
        load_pubmedqa(f)
