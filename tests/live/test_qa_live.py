"""``es-biomed ask``'s pipeline on real engine nodes: the same six SciFact-sample abstracts and MiniLM vectors in a
cluster and in the embedded engine give the same best answer with the same evidence (document, field, offsets,
sentence). Needs script_score (the rerank) on the node."""

from __future__ import annotations

import pytest

from es_biomed.corpus.readers import load_beir
from tests.conftest import REPO

SAMPLE = REPO / "data" / "scifact-sample"
DOC_IDS = ["33370", "12486491", "5864770", "23557241", "70490", "13734012"]
QUESTION = "Which ribosomal protein gene is mutated in mice with homeotic transformations of the axial skeleton?"


@pytest.fixture(scope="module")
def docs():
    corpus = load_beir(SAMPLE).corpus
    return [corpus[d] for d in DOC_IDS]


@pytest.fixture(scope="module")
def reader():
    from es_biomed.qa.loading import load_reader

    return load_reader("biomed-qa")


@pytest.mark.needs("scripts")
def test_ask_on_the_cluster_matches_the_embedded_engine(make_backend, cached, text_analyzer, docs, reader, tmp_path):
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.ingest import index_documents
    from es_biomed.qa import Asker
    from es_biomed.query.analysis import AnalyzerConfig
    from es_biomed.search.searcher import Searcher

    be = make_backend()
    be.setup(cached.info, analyzer=text_analyzer)
    report = be.index_documents(docs, cached)
    assert report.failed == [] and report.ok == len(docs)
    if text_analyzer == "standard":
        EmbeddedIndex.create(tmp_path / "ix", cached.info, analyzer=AnalyzerConfig(stopwords=False, stemmer=""))
    index_documents(docs, tmp_path / "ix", cached, show_progress=False)

    on_cluster = Asker(be, reader, passages=6, encoder=cached).ask(QUESTION, k=3)
    embedded = Asker(Searcher(tmp_path / "ix", cached), reader, passages=6).ask(QUESTION, k=3)
    best = on_cluster[0]
    assert best.text == "Rpl38" and best.doc_id == "12486491" and best.field == "abstract"
    assert best.title == "Ribosome-Mediated Specificity in Hox mRNA Translation and Vertebrate Tissue Patterning"
    abstract = docs[DOC_IDS.index("12486491")].abstract
    assert abstract[best.start : best.end] == "Rpl38" and "Rpl38" in best.sentence
    key = [(a.text, a.doc_id, a.field, a.start, a.end, a.sentence) for a in on_cluster]
    assert key == [(a.text, a.doc_id, a.field, a.start, a.end, a.sentence) for a in embedded]
    for a, b in zip(on_cluster, embedded, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-3)  # same rank order, same reader scores
