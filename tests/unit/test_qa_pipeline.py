"""Asker end to end on a 4-document embedded index with the toy encoder and a scripted reader (arithmetic only:
the real biomed-qa runs in tests/integration/test_qa_ask.py).

The scripted reader "finds" a fixed answer string wherever it occurs in a passage, with a fixed score, so the
expected answers, their merge, offsets and evidence are known exactly.
"""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.errors import PlanError
from es_biomed.eval.qa_e2e import evaluate_qa, qa_markdown
from es_biomed.qa import Asker, ModelFilesError, QaParameterError, ReaderConfig, Span, SpanReader
from es_biomed.search.searcher import Searcher

DOCS = [
    Document(
        id="d1",
        title="Aspirin and fever",
        abstract="Aspirin lowers fever. It blocks COX-1 in platelets.",
        date="2010-05-01",
    ),
    Document(id="d2", abstract="In stroke, aspirin blocks cox 1 too. Heart attacks are fewer.", date="2015"),
    Document(id="d3", title="Stroke", abstract="Aspirin after stroke inhibits COX-1; bleeding is rare."),
    Document(id="d4", abstract="Ibuprofen lowers fever in children."),
]


class ScriptedReader(SpanReader):
    """Every occurrence (case-insensitive) of a scripted answer in a passage is a span with the scripted score."""

    def __init__(self, answers: dict[str, float]) -> None:
        self.name, self.runtime, self.config = "scripted", "none", ReaderConfig()
        self.answers = answers
        self.seen: list[list[str]] = []
        self._lock = threading.Lock()

    def read(self, question, passages, *, top_n=20, max_answer_length=None, null_threshold=0.0):
        with self._lock:
            self.seen.append(list(passages))
        out = []
        for p in passages:
            spans = []
            for text, score in self.answers.items():
                i = p.lower().find(text.lower())
                while i >= 0:
                    spans.append(Span(i, i + len(text), score, -50.0))
                    i = p.lower().find(text.lower(), i + 1)
            out.append(sorted(spans, key=lambda s: -s.score))
        return out


@pytest.fixture
def searcher(tmp_path, toy_encoder):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    with idx.writer() as w:
        w.add(DOCS, toy_encoder)
    return Searcher(EmbeddedIndex(tmp_path / "ix"), toy_encoder)


def test_answers_merge_across_documents_with_exact_evidence(searcher):
    reader = ScriptedReader({"COX-1": -1.0, "fever": -2.0})
    asker = Asker(searcher, reader, passages=3)
    answers = asker.ask("aspirin stroke cox", k=5, plan_overrides={"mode": "bm25"})
    # BM25 top 3 for "aspirin stroke cox": d3 (all three terms, title Stroke), d2, d1; "cox 1" in d2 and "COX-1"
    # in d1 and d3 are one answer after normalization; every occurrence scores -1.0, so the first seen (d3) wins
    assert [(a.text, a.doc_id) for a in answers] == [("COX-1", "d3"), ("fever", "d1")]
    cox, fever = answers
    doc = DOCS[2].abstract
    assert (cox.field, cox.start, cox.end) == ("abstract", doc.index("COX-1"), doc.index("COX-1") + 5)
    assert doc[cox.start : cox.end] == cox.text
    assert cox.sentence == "Aspirin after stroke inhibits COX-1; bleeding is rare."
    assert doc[cox.sentence_start : cox.sentence_start + len(cox.sentence)] == cox.sentence
    assert "sentence_start" not in cox.to_dict()
    # fever stands in d1's first sentence, at offset 0
    assert DOCS[0].abstract[fever.sentence_start :].startswith(fever.sentence) and fever.sentence_start == 0
    assert (cox.title, cox.year, cox.score) == ("Stroke", None, -1.0)
    assert (fever.title, fever.year, fever.sentence) == ("Aspirin and fever", 2010, "Aspirin lowers fever.")
    assert json.loads(json.dumps(cox.to_dict()))["start"] == cox.start


def test_passages_bound_what_the_reader_reads(searcher):
    reader = ScriptedReader({"aspirin": -1.0})
    Asker(searcher, reader, passages=2).ask("aspirin", plan_overrides={"mode": "bm25"})
    assert len(reader.seen[-1]) == 2
    Asker(searcher, reader, passages=20).ask("aspirin", plan_overrides={"mode": "bm25"})
    assert len(reader.seen[-1]) == 3  # three documents match "aspirin"


def test_rerank_is_the_default_plan(searcher):
    asker = Asker(searcher, ScriptedReader({"x": -1.0}), passages=4)
    plan = asker._plan("aspirin", None)
    assert (plan.mode, plan.k, plan.window_size, plan.rescore_query_weight) == ("rerank", 4, 30, 75.0)
    assert asker._plan("q", {"mode": "bm25", "k": 7}).k == 7


def test_no_answer_gives_an_empty_list(searcher):
    assert Asker(searcher, ScriptedReader({"warfarin": -1.0})).ask("aspirin") == []


def test_k_cuts_the_ranked_answers(searcher):
    reader = ScriptedReader({"aspirin": -0.5, "fever": -1.0, "stroke": -2.0, "heart": -3.0})
    assert [a.text.lower() for a in Asker(searcher, reader).ask("aspirin fever", k=2)] == ["aspirin", "fever"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 10_001}, "question"),
        ({"question": "aspirin", "k": 0}, "k"),
        ({"question": "aspirin", "k": -3}, "k"),
        ({"question": "aspirin", "k": 2.5}, "k"),
        ({"question": "aspirin", "plan_overrides": {"windw_size": 3}}, "plan_overrides"),
    ],
)
def test_bad_ask_input_names_the_parameter(searcher, kwargs, param):
    asker = Asker(searcher, ScriptedReader({}))
    with pytest.raises(QaParameterError) as info:
        asker.ask(**kwargs)
    assert info.value.param == param and str(info.value).startswith(f"{param}: ")


def test_bad_plan_values_are_plan_errors(searcher):
    with pytest.raises(PlanError):
        Asker(searcher, ScriptedReader({})).ask("aspirin", plan_overrides={"mode": "telepathy"})


def test_bad_constructor_input(searcher, tmp_path):
    with pytest.raises(QaParameterError, match="passages: must be a positive integer, got 0"):
        Asker(searcher, ScriptedReader({}), passages=0)
    with pytest.raises(QaParameterError, match="reader: unknown QA reader 'no-such-reader'") as info:
        Asker(searcher, "no-such-reader")
    assert "biomed-qa" in str(info.value)
    with pytest.raises(ModelFilesError, match="config.json is missing"):
        Asker(searcher, tmp_path)  # a directory without model files
    with pytest.raises(QaParameterError, match="searcher_or_backend"):
        Asker(42, ScriptedReader({}))


def test_concurrent_asks_give_the_same_answers(searcher):
    asker = Asker(searcher, ScriptedReader({"COX-1": -1.0, "fever": -2.0, "stroke": -3.0}), passages=3)
    questions = ["aspirin stroke cox", "fever", "aspirin heart"] * 8
    alone = [asker.ask(q) for q in questions]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(asker.ask, questions))
    assert together == alone


SQUAD = {
    "data": [
        {
            "paragraphs": [
                {
                    "context": "Flumazenil reverses benzodiazepine sedation.",
                    "qas": [{"id": f"{q}_001", "question": text, "answers": [{"text": ans, "answer_start": 0}]}],
                }
                for q, text, ans in [
                    ("qa", "Which drug reverses benzodiazepines?", "Flumazenil"),
                    ("qb", "What reverses sedation?", "Flumazenil reverses"),
                ]
            ]
        }
    ]
}


def test_eval_gold_context_metrics_by_hand(tmp_path):
    from es_biomed.corpus.tasks import read_squad, split_questions

    path = tmp_path / "BioASQ-train-factoid-7b-tiny.json"
    path.write_text(json.dumps(SQUAD))
    _, dev = split_questions(read_squad(path), 1.0)  # dev_fraction 1.0: every question is dev
    assert {e.question_id for e in dev} == {"qa", "qb"}
    # the reader answers "benzodiazepine" first, then "flumazenil": qa's gold (Flumazenil) is at rank 2 -> 1/2;
    # qb's gold "Flumazenil reverses" is never proposed -> 0. strict 0/2, lenient 1/2, MRR (0.5 + 0) / 2
    reader = ScriptedReader({"benzodiazepine": -0.1, "flumazenil": -0.2})
    result = evaluate_qa([path], None, None, reader, dev_fraction=1.0, settings=["gold context"])
    row = result["table"]["gold context"]
    assert (row["strict_acc"], row["lenient_acc"], row["mrr"], row["questions"]) == (0.0, 0.5, 0.25, 2)
    assert row["answer_in_passages"] == 1.0  # both gold answers occur in the gold context
    assert result["predictions"]["gold context"]["qa"] == ["benzodiazepine", "Flumazenil"]
    assert "| gold context | 0.0000 | 0.5000 | 0.2500 | 1.0000 |" in qa_markdown(result)


def test_eval_refuses_leaky_test_files_and_bad_settings(tmp_path):
    leaky = tmp_path / "BioASQ-test-factoid-6b-3.json"
    leaky.write_text(json.dumps(SQUAD))
    with pytest.raises(QaParameterError, match="recur in 7b-train") as info:
        evaluate_qa([leaky], None, None, ScriptedReader({}))
    assert info.value.param == "files"
    ok = tmp_path / "train.json"
    ok.write_text(json.dumps(SQUAD))
    with pytest.raises(QaParameterError, match="settings"):
        evaluate_qa([ok], None, None, ScriptedReader({}), settings=["oracle"])
    with pytest.raises(QaParameterError, match="passages"):
        evaluate_qa([ok], None, None, ScriptedReader({}), passages=0)


def test_rank_weight_is_a_retrieval_prior_on_document_rank(searcher):
    # BM25 for "aspirin stroke cox": d3 (rank 0), d2 (rank 1), d1 (rank 2). "fever" occurs only in d1 (rank 2),
    # "stroke" in d3 and d2. Reader scores: fever -1.0, stroke -1.2.
    reader = ScriptedReader({"fever": -1.0, "stroke": -1.2})
    plain = Asker(searcher, reader, passages=3, rank_weight=0.0).ask(
        "aspirin stroke cox", plan_overrides={"mode": "bm25"}
    )
    assert [(a.text.lower(), a.score) for a in plain] == [("fever", -1.0), ("stroke", -1.2)]
    # weight 1: fever -1.0 - ln(3) = -2.0986; stroke from d3 (rank 0) keeps -1.2
    prior = Asker(searcher, reader, passages=3, rank_weight=1.0).ask(
        "aspirin stroke cox", plan_overrides={"mode": "bm25"}
    )
    assert [a.text.lower() for a in prior] == ["stroke", "fever"]
    assert (prior[0].doc_id, prior[0].score) == ("d3", -1.2)
    assert prior[1].score == pytest.approx(-1.0 - math.log(3))
    with pytest.raises(QaParameterError, match="rank_weight: must be >= 0"):
        Asker(searcher, reader, rank_weight=-1.0)


class FakeClusterBackend:
    """What Asker uses of a cluster backend: ``encoder_meta``, ``check_encoder`` and ``search`` (with ``_source``
    holding the body, as Elasticsearch returns it)."""

    alias = "es-biomed"

    def __init__(self, encoder):
        self.encoder = encoder
        self.plans = []

    def encoder_meta(self):
        return {"name": self.encoder.name}

    def check_encoder(self, info):
        assert info.fingerprint == self.encoder.fingerprint

    def search(self, plan, vector, with_sources=False, encoder_fingerprint=None):
        from es_biomed.query.results import Hit, SearchResults

        # the vector's encoder travels with it (a BM25 search has neither)
        assert encoder_fingerprint == (None if vector is None else self.encoder.fingerprint)
        self.plans.append((plan, vector))
        src = {"title": "Body only", "body": "Intro words. The answer is warfarin here.", "year": 2021}
        return SearchResults([Hit("b1", 3.0)], {"b1": src} if with_sources else {})


def test_cluster_backend_path_reads_the_body_and_the_year(toy_encoder):
    backend = FakeClusterBackend(toy_encoder)
    asker = Asker(backend, ScriptedReader({"warfarin": -0.3}), passages=2, encoder=toy_encoder)
    (ans,) = asker.ask("which anticoagulant?")
    body = "Intro words. The answer is warfarin here."
    assert (ans.doc_id, ans.field, ans.start, ans.end, ans.year) == ("b1", "body", body.index("warfarin"), 35, 2021)
    assert ans.sentence == "The answer is warfarin here." and ans.title == "Body only"
    plan, vector = backend.plans[-1]
    assert plan.mode == "rerank" and plan.k == 2 and vector is not None and len(vector) == toy_encoder.dims
    asker.ask("which anticoagulant?", plan_overrides={"mode": "bm25"})
    assert backend.plans[-1][1] is None  # BM25 needs no query vector
