"""The cross-encoder stage (``rerank_ce``): its arithmetic worked out by hand, exact rankings on the 4-document
corpus with a toy scorer (arithmetic only; the real model is in tests/integration/test_cross_encoder.py), and the
errors that name the parameter."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from es_biomed.backends import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.errors import EsBiomedError, PlanError
from es_biomed.query import SearchPlan
from es_biomed.query.cross_stage import apply_cross_encoder, document_text, minmax_normalize, rerank_score
from es_biomed.search.searcher import Searcher
from es_biomed.search.stages import cross_encoder_stage

E = math.exp(-1.0)  # rerank_score(-1) = 0 + min(e^-1, 1)

DOCS = [
    Document(id="d1", title="Aspirin", abstract="aspirin aspirin lowers fever", source="pubmed", date="2010-01-01"),
    Document(id="d2", abstract="aspirin and heart attacks in older adults", source="pmc", date="2015"),
    Document(id="d3", abstract="aspirin after stroke", source="pubmed", date="2020"),
    Document(id="d4", abstract="ibuprofen lowers fever in children", source="pmc", date="2021"),
]


class ToyScorer:
    """Logit 2 for a text about stroke, 1 for one about fever, else -1; records what it was asked."""

    name = "toy-ce"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, query, texts, batch_size=32):
        self.calls.append((query, list(texts)))
        return np.array([2.0 if "stroke" in t else 1.0 if "fever" in t else -1.0 for t in texts], np.float32)


@pytest.fixture
def index(tmp_path, toy_encoder):
    idx = EmbeddedIndex.create(tmp_path / "ix", toy_encoder.info)
    with idx.writer() as w:
        w.add(DOCS, toy_encoder)
    return idx


# ------------------------------------------------------------------------------------------------ arithmetic
def test_rerank_score_is_elasticsearchs_normalization():
    # max(z, 0) + min(exp(z), 1): negatives into (0, 1), the rest into [1, inf); never overflows
    assert [rerank_score(z) for z in (2.0, 0.0, -1.0)] == [3.0, 1.0, pytest.approx(E)]
    assert rerank_score(800.0) == 801.0 and 0.0 < rerank_score(-50.0) < 1e-21


def test_minmax_normalize_and_its_epsilon():
    assert minmax_normalize([10.0, 8.0, 4.0]) == [1.0, pytest.approx(4 / 6), 0.0]
    # spread below 1e-6: every value becomes the minimum, as Elasticsearch's MinMaxScoreNormalizer
    assert minmax_normalize([5.0, 5.0 + 1e-7]) == [5.0, 5.0]
    assert minmax_normalize([]) == []


def test_pure_cross_encoder_sort_and_the_tail_below_it():
    hits = [("a", 9.0), ("b", 8.0), ("c", 7.0), ("d", 6.0), ("e", 5.0)]
    # window 3: scores e^-1, 3, 1.5 -> b, c, a; the tail d, e keeps its order under the window's lowest score
    got = apply_cross_encoder(hits, [-1.0, 2.0, 0.5], ce_window=3)
    assert got == [
        ("b", 3.0),
        ("c", 1.5),
        ("a", pytest.approx(E)),
        ("d", pytest.approx(E - 1)),
        ("e", pytest.approx(E - 2)),
    ]


def test_ties_keep_the_previous_order():
    assert [d for d, _ in apply_cross_encoder([("a", 3.0), ("b", 2.0), ("c", 1.0)], [1.0, 1.0, 1.0], 3)] == [
        "a",
        "b",
        "c",
    ]
    assert [d for d, _ in apply_cross_encoder([("a", 3.0), ("b", 2.0)], [-1.0, 0.5], 2, ce_weight=0.0)] == ["a", "b"]


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        # rescore s = 10, 8, 4 -> mm(s) = 1, 2/3, 0; logits 0, 2, 1 -> c = 1, 3, 2 -> mm(c) = 0, 1, 1/2
        (1.0, [("b", 3.0), ("c", 2.0), ("a", 1.0)]),  # c itself
        (0.75, [("b", 0.75 + 0.25 * 2 / 3), ("c", 0.375), ("a", 0.25)]),  # .75 mm(c) + .25 mm(s)
        (0.5, [("b", 0.5 + 0.5 * 2 / 3), ("a", 0.5), ("c", 0.25)]),
        (0.0, [("a", 1.0), ("b", 2 / 3), ("c", 0.0)]),  # the rescore order, normalized
    ],
)
def test_interpolation_by_hand(weight, expected):
    got = apply_cross_encoder([("a", 10.0), ("b", 8.0), ("c", 4.0)], [0.0, 2.0, 1.0], ce_window=3, ce_weight=weight)
    assert [d for d, _ in got] == [d for d, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-12)


def test_interpolation_with_one_hit_in_the_window_uses_the_minimum():
    # n = 1: max == min for both parts, so each normalizes to itself: 0.5 * (0.7 + 1) + 0.5 * 5 = 3.35
    got = apply_cross_encoder([("a", 5.0), ("b", 3.0)], [0.7], ce_window=1, ce_weight=0.5)
    assert got == [("a", pytest.approx(3.35)), ("b", pytest.approx(2.35))]


def test_a_window_larger_than_the_hits_and_no_hits():
    assert apply_cross_encoder([("a", 1.0)], [2.0], ce_window=20) == [("a", 3.0)]
    assert apply_cross_encoder([], [], ce_window=20) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ce_window": 0}, "ce_window must be a positive integer, got 0"),
        ({"ce_window": 2.0}, "ce_window must be a positive integer, got 2.0"),
        ({"ce_weight": 1.5}, "ce_weight must be a number in [0, 1], got 1.5"),
        ({"ce_weight": -0.1}, "ce_weight must be a number in [0, 1], got -0.1"),
        ({"ce_weight": True}, "ce_weight must be a number in [0, 1], got True"),
    ],
)
def test_stage_parameters_are_checked(kwargs, message):
    with pytest.raises(PlanError, match=re.escape(message)):
        apply_cross_encoder([("a", 1.0), ("b", 0.5)], [0.0, 0.0], **{"ce_window": 2, **kwargs})


def test_logits_must_fit_the_window():
    with pytest.raises(
        ValueError, match=re.escape("logits: expected 2 (one per hit in the cross-encoder window), got 3")
    ):
        apply_cross_encoder([("a", 1.0), ("b", 0.5), ("c", 0.1)], [0.0, 0.0, 0.0], ce_window=2)
    with pytest.raises(ValueError, match="non-finite"):
        apply_cross_encoder([("a", 1.0)], [float("nan")], ce_window=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "rerank_ce", "window_size": 10, "ce_window": 11}, "ce_window 11 exceeds window_size 10"),
        ({"ce_window": 0}, "ce_window must be a positive integer, got 0"),
        ({"ce_weight": 2}, "ce_weight must be a number in [0, 1], got 2"),
        ({"ce_weight": "1"}, "ce_weight must be a number in [0, 1], got '1'"),
        ({"cross_encoder": ""}, "cross_encoder must be a model name or directory, got ''"),
    ],
)
def test_plan_rejects_bad_cross_encoder_parameters(kwargs, message):
    with pytest.raises(PlanError, match=re.escape(message)):
        SearchPlan("q", **kwargs)


def test_plan_defaults_and_the_window_rule_applies_to_rerank_ce_only():
    plan = SearchPlan("q")
    assert (plan.ce_window, plan.ce_weight, plan.cross_encoder) == (20, 1.0, None)
    assert SearchPlan("q", window_size=10).ce_window == 20  # a plain rerank with a small window stays valid
    assert SearchPlan("q", mode="rerank_ce", window_size=20, k=50).first_pass_size == 50


def test_document_text():
    assert document_text({"title": "Aspirin", "abstract": "It thins blood."}) == "Aspirin. It thins blood."
    assert document_text({"title": "Aspirin"}) == "Aspirin"
    assert document_text({"abstract": "It thins blood.", "title": ""}) == "It thins blood."
    assert document_text({}) == ""


# ------------------------------------------------------------------------------------------------ execution
def test_search_with_cross_encoder_exact_ranking(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["heart fever"])[0]
    plan = SearchPlan("aspirin", mode="rerank_ce", window_size=10, rescore_query_weight=5.0, ce_window=2, k=3)
    # rerank (tests/unit/test_embedded.py, total): d2 7.82358, d1 6.65859, d3 5.39731; the window is d2, d1:
    # d2 (no fever, no stroke) -> -1 -> e^-1; d1 (fever) -> 1 -> 2.0; d3 below the window scores e^-1 - 1
    scorer = ToyScorer()
    res = cross_encoder_stage(index, plan, qvec, scorer, with_sources=True)
    assert [(h.doc_id, round(h.score, 5)) for h in res.hits] == [
        ("d1", 2.0),
        ("d2", round(E, 5)),
        ("d3", round(E - 1, 5)),
    ]
    # the model read title ". " abstract (d2 has no title), in the rescore order, with the user's query
    assert scorer.calls == [
        ("aspirin", ["aspirin and heart attacks in older adults", "Aspirin. aspirin aspirin lowers fever"])
    ]
    assert res.parts["d1"]["cross_encoder"] == 1.0 and res.parts["d1"]["rescore"] == pytest.approx(6.65859, abs=1e-5)
    assert set(res.parts["d1"]) == {"bm25", "cosine", "rescore", "cross_encoder"}
    assert "cross_encoder" not in res.parts["d3"] and res.parts["d3"]["bm25"] == pytest.approx(0.39731, abs=1e-5)
    assert set(res.sources) == {"d1", "d2", "d3"} and res.sources["d1"]["title"] == "Aspirin"
    # the whole window: d3 (stroke) 3.0 first
    res = cross_encoder_stage(index, plan.replace(ce_window=3), qvec, scorer)
    assert [h.doc_id for h in res.hits] == ["d3", "d1", "d2"] and res.sources == {}


def test_k_below_the_window_still_scores_the_whole_window(index, toy_encoder):
    qvec = toy_encoder.encode_queries(["heart fever"])[0]
    plan = SearchPlan("aspirin", mode="rerank_ce", window_size=10, rescore_query_weight=5.0, ce_window=3, k=1)
    assert [h.doc_id for h in cross_encoder_stage(index, plan, qvec, ToyScorer()).hits] == ["d3"]


def test_searcher_runs_rerank_ce_and_batch_search_agrees(index, toy_encoder):
    s = Searcher(index, toy_encoder, cross_encoder=ToyScorer())
    over = {"mode": "rerank_ce", "window_size": 10, "rescore_query_weight": 5.0, "ce_window": 2}
    # query "aspirin": rerank d1 10.284, d3 8.933, d2 8.859; window d1 (fever, 1 -> 2.0), d3 (stroke, 2 -> 3.0)
    res = s.search("aspirin", k=3, **over)
    assert [(h.doc_id, round(h.score, 5)) for h in res.hits] == [("d3", 3.0), ("d1", 2.0), ("d2", 1.0)]
    assert s.batch_search(["aspirin"], ["q1"], k=3, **over) == {"q1": {h.doc_id: h.score for h in res.hits}}


def test_a_rerank_ce_search_without_a_cross_encoder_names_the_parameter(index, toy_encoder):
    with pytest.raises(PlanError, match=re.escape("cross_encoder: mode rerank_ce needs a cross-encoder model")):
        Searcher(index, toy_encoder).search("aspirin", mode="rerank_ce")
    with pytest.raises(PlanError, match=re.escape("cross_encoder: mode rerank_ce needs a cross-encoder model")):
        cross_encoder_stage(index, SearchPlan("aspirin", mode="rerank_ce"), None, None)
    with pytest.raises(PlanError, match=re.escape("mode 'rerank_ce' needs a cross-encoder: search through Searcher")):
        index.search(SearchPlan("aspirin", mode="rerank_ce"), toy_encoder.encode_queries(["aspirin"])[0])


# ------------------------------------------------------------------------------------------------ model files
def test_a_directory_without_model_files_names_each_missing_one(tmp_path):
    from es_biomed.encode.cross_encoder import check_cross_encoder_dir

    msg = (
        f"{tmp_path} is not a cross-encoder directory: missing config.json, weights (model.safetensors or "
        "pytorch_model.bin), tokenizer files (tokenizer.json or vocab.txt)"
    )
    with pytest.raises(EsBiomedError, match=re.escape(msg)):
        check_cross_encoder_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(EsBiomedError, match=re.escape("missing tokenizer files (tokenizer.json or vocab.txt)")):
        check_cross_encoder_dir(tmp_path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "NO", "1": "YES"}},
            "num_labels is 2, but a cross-encoder scores a pair with one logit (num_labels=1)",
        ),
        ({"architectures": ["BertForSequenceClassification"]}, "num_labels is 2"),  # transformers' default
        ({"architectures": ["BertModel"]}, "architectures ['BertModel'] has no *ForSequenceClassification head"),
    ],
)
def test_a_model_that_is_not_a_one_logit_classifier_is_refused(tmp_path, config, message):
    from es_biomed.encode.cross_encoder import load_cross_encoder

    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(EsBiomedError, match=re.escape(message)):
        load_cross_encoder(tmp_path)


def test_cross_encoders_have_their_own_registry():
    from es_biomed.encode import known_encoders
    from es_biomed.encode.cross_encoder import known_cross_encoders, load_cross_encoder, resolve_cross_encoder

    assert "biomed-ce" in known_cross_encoders() and "biomed-ce" not in known_encoders()
    assert resolve_cross_encoder("biomed-cross-encoder")[0] == "biomed-ce"  # alias
    if not resolve_cross_encoder("biomed-ce")[1].is_dir():  # registered before it is trained: where its files go
        with pytest.raises(EsBiomedError, match=re.escape("cross-encoder 'biomed-ce' should be at ")):
            load_cross_encoder("biomed-ce")
    with pytest.raises(
        EsBiomedError, match=re.escape("unknown cross-encoder 'no-such-ce': not a registered name (biomed-ce")
    ):
        load_cross_encoder("no-such-ce")
