"""The real biomed-qa end to end: Asker and `es-biomed ask` on a tiny real index (six SciFact-sample abstracts and
all-MiniLM-L6-v2), the --json round trip, CLI errors, and `es-biomed eval qa` on a few BioASQ 7b dev questions."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_biomed.cli import main
from es_biomed.corpus.readers import load_beir
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.precision]

SAMPLE = REPO / "data" / "scifact-sample"
DOC_IDS = ["33370", "12486491", "5864770", "23557241", "70490", "13734012"]
QUESTION = "Which ribosomal protein gene is mutated in mice with homeotic transformations of the axial skeleton?"


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, minilm):
    from es_biomed.ingest import index_documents

    corpus = load_beir(SAMPLE).corpus
    docs = [corpus[d] for d in DOC_IDS if d in corpus]
    assert len(docs) == len(DOC_IDS)
    path = tmp_path_factory.mktemp("qa-ix") / "tiny"
    index_documents(docs, path, minilm, show_progress=False)
    return path


@pytest.fixture(scope="module")
def asker(tiny_index, minilm):
    from es_biomed.qa import Asker
    from es_biomed.search.searcher import Searcher

    return Asker(Searcher(tiny_index, minilm), "biomed-qa", passages=6)


def test_the_answer_and_its_evidence(asker):
    answers = asker.ask(QUESTION, k=3)
    best = answers[0]
    abstract = load_beir(SAMPLE).corpus["12486491"].abstract
    assert best.text == "Rpl38"
    assert (best.doc_id, best.field) == ("12486491", "abstract")
    assert best.title == "Ribosome-Mediated Specificity in Hox mRNA Translation and Vertebrate Tissue Patterning"
    assert abstract[best.start : best.end] == "Rpl38"
    # the best-scored of its occurrences is the one kept as evidence
    at = abstract.index("Rpl38 expression is markedly enriched")
    assert (best.start, best.end) == (at, at + 5)
    assert best.sentence == (
        "We further show that Rpl38 expression is markedly enriched in regions of the embryo where loss-of-function "
        "phenotypes occur."
    )
    assert best.year is None  # the SciFact sample has no dates
    assert -5.0 < best.score <= 0.0
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)


def test_ask_json_round_trip_matches_the_api(asker, tiny_index):
    res = CliRunner().invoke(
        main, ["ask", QUESTION, "--index", str(tiny_index), "--passages", "6", "-k", "3", "--json"]
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert (payload["question"], payload["k"], payload["mode"]) == (QUESTION, 3, "rerank")
    assert payload["reader"]["name"] == "biomed-qa"
    api = [a.to_dict() for a in asker.ask(QUESTION, k=3)]
    assert [a["text"] for a in payload["answers"]] == [a["text"] for a in api]
    for got, want in zip(payload["answers"], api, strict=True):
        assert {k: v for k, v in got.items() if k != "score"} == {k: v for k, v in want.items() if k != "score"}
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)


def test_ask_text_output_shows_answer_and_evidence(tiny_index):
    res = CliRunner().invoke(main, ["ask", QUESTION, "--index", str(tiny_index), "-k", "1"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"Q: {QUESTION}"
    assert lines[1].startswith(" 1. Rpl38    score -")
    assert lines[2].startswith("    12486491 Ribosome-Mediated Specificity")
    at = load_beir(SAMPLE).corpus["12486491"].abstract.index("Rpl38 expression")
    assert lines[3] == (
        f"    abstract[{at}:{at + 5}]: We further show that [Rpl38] expression is markedly enriched in regions of the "
        "embryo where loss-of-function phenotypes occur."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "-k", "1"], "Error: question: must be a non-empty string"),
        (["q?", "-k", "0"], "Error: k: must be a positive integer, got 0"),
        (["q?", "--passages", "0"], "Error: passages: must be a positive integer, got 0"),
        (["q?", "--reader", "no-such-reader"], "Error: reader: unknown QA reader 'no-such-reader'"),
    ],
)
def test_ask_bad_input_is_one_line_naming_the_parameter(tiny_index, args, message):
    res = CliRunner().invoke(main, ["ask", *args, "--index", str(tiny_index)])
    assert res.exit_code == 1
    assert res.output.startswith(message), res.output
    assert "Traceback" not in res.output


def test_eval_qa_on_a_few_dev_questions(shared_data, tmp_path, minilm):
    out = tmp_path / "qa.json"
    args = [
        "eval",
        "qa",
        str(shared_data / "bioasq" / "BioASQ-train-factoid-7b.json"),
        "--index",
        str(tmp_path / "ix"),
    ]
    args += ["--encoder", "all-MiniLM-L6-v2", "--max-questions", "6", "--passages", "5", "--output", str(out)]
    res = CliRunner().invoke(main, [*args, "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert list(result["table"]) == ["gold context", "bm25", "bm25+rerank"]
    assert result["config"]["split"]["dev_questions"] == 109 and result["config"]["split"]["questions_scored"] == 6
    # the table is the metric of the predictions written beside it
    from es_biomed.corpus.tasks import gold_answers, read_squad, split_questions
    from es_biomed.eval.task_metrics import bioasq_factoid_scores

    _, dev = split_questions(read_squad(shared_data / "bioasq" / "BioASQ-train-factoid-7b.json"), 0.2)
    gold = {q: g for q, g in gold_answers(dev).items() if q in result["predictions"]["gold context"]}
    assert len(gold) == 6
    for setting, row in result["table"].items():
        want = bioasq_factoid_scores(result["predictions"][setting], gold)
        assert {k: row[k] for k in want} == want
        assert all(len(p) <= 5 for p in result["predictions"][setting].values())
    gold_row = result["table"]["gold context"]
    # the first six dev questions: 4 answered at rank 1, CRISPR-Cas at rank 5 (1/5), one missed (gold "development")
    assert (gold_row["strict_acc"], gold_row["lenient_acc"]) == (4 / 6, 5 / 6)
    assert gold_row["mrr"] == pytest.approx((4 + 1 / 5) / 6)
    assert gold_row["answer_in_passages"] == 1.0
    firsts = [p[0] for _, p in sorted(result["predictions"]["gold context"].items())]
    assert firsts == ["AmnSINE1", "flumazenil", "Prolactinoma", "CRISPR-Cas system", "valproate", "centrosome"]
    assert (out.with_suffix(".md")).read_text().startswith("BioASQ 7b dev questions (6)")
    assert "| gold context |" in res.output


def test_concurrent_asks_on_the_real_reader(asker):
    from concurrent.futures import ThreadPoolExecutor

    alone = [a.to_dict() for a in asker.ask(QUESTION, k=3)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda _: [a.to_dict() for a in asker.ask(QUESTION, k=3)], range(8)))
    assert all(t == alone for t in together)
