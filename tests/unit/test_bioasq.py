"""BioASQ SQuAD -> retrieval set with the Jaccard rule, on a hand-made file."""

from __future__ import annotations

import json
import re

import pytest

from es_biomed.corpus import jaccard, load_bioasq
from es_biomed.corpus.bioasq import context_id
from es_biomed.errors import RecordError


def test_jaccard_rule_by_hand():
    # {what, causes, brca1, loss} vs {brca1, loss, causes, cancer}: 3 shared / 5 in the union
    assert jaccard("What causes BRCA1 loss?", "BRCA1 loss causes cancer") == pytest.approx(3 / 5)
    assert jaccard("", "") == 0.0
    assert jaccard("α-synuclein", "Α-SYNUCLEIN") == 1.0  # unicode lowercasing, \w+ tokens


def squad(paragraphs):
    return {"version": "test", "data": [{"title": "t", "paragraphs": paragraphs}]}


def test_retrieval_set_dedup_and_jaccard(tmp_path):
    ctx_a = "Spermidine protects neurons from synuclein toxicity in flies and worms."
    ctx_b = "what is spermidine"  # near-duplicate of the question: J = 3/3 -> removed
    f = tmp_path / "b.json"
    f.write_text(
        json.dumps(
            squad(
                [
                    {"context": ctx_a, "qas": [{"id": "Q1_000", "question": "What is spermidine?"}]},
                    {"context": ctx_b, "qas": [{"id": "Q1_001", "question": "What is spermidine?"}]},
                    {
                        "context": " " + ctx_a + "  ",
                        "qas": [{"id": "Q2_000", "question": "Which worms were used?"}],
                    },  # same context
                ]
            )
        )
    )
    rs = load_bioasq([f])
    a, b = context_id(ctx_a), context_id(ctx_b)
    assert set(rs.corpus) == {a, b}  # deduplicated; the removed pair's context stays in the corpus
    assert rs.queries == {"Q1": "What is spermidine?", "Q2": "Which worms were used?"}
    assert rs.qrels == {"Q1": {a: 1}, "Q2": {a: 1}}
    assert rs.ignore == {"Q1": {b}}
    assert rs.stats["pairs_total"] == 3 and rs.stats["pairs_removed"] == 1 and rs.stats["pairs_kept"] == 2
    assert load_bioasq([f], threshold=None).qrels["Q1"] == {a: 1, b: 1}


def test_bad_squad_names_the_json_path(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(squad([{"context": "ok", "qas": [{"id": "Q1_000", "question": "  "}]}])))
    with pytest.raises(RecordError, match=re.escape(f"{f}:data[0].paragraphs[0].qas[0]: field 'question'")):
        load_bioasq([f])
    g = tmp_path / "latin1.json"
    g.write_bytes(b'{"data": "caf\xe9"}')
    with pytest.raises(RecordError, match="not valid UTF-8"):
        load_bioasq([g])


def test_index_format_bioasq_yields_the_deduplicated_contexts(tmp_path):
    from es_biomed.corpus import iter_documents

    f = tmp_path / "b.json"
    f.write_text(
        json.dumps(
            squad(
                [
                    {"context": "Context one.", "qas": [{"id": "Q1_000", "question": "q?"}]},
                    {
                        "context": "Context  one.",
                        "qas": [{"id": "Q2_000", "question": "r?"}],
                    },  # same after whitespace folding
                    {"context": "Context two.", "qas": [{"id": "Q1_001", "question": "q?"}]},
                ]
            )
        )
    )
    docs = list(iter_documents(f, "bioasq"))
    assert [d.abstract for d in docs] == ["Context one.", "Context two."]
    assert {d.source for d in docs} == {"bioasq"} and docs[0].id == context_id("Context one.")
