"""Snippets and highlight ranges of ``es-biomed serve``, with the index's real analyzer (Snowball English)."""

from __future__ import annotations

import pytest

from es_biomed.query.analysis import AnalyzerConfig, build_analyzer
from es_biomed.serve.highlight import ELLIPSIS, Highlighter
from es_biomed.serve.results import doi_url, pubmed_url, year_of


@pytest.fixture(scope="module")
def hl() -> Highlighter:
    analyzer = build_analyzer(AnalyzerConfig())
    return Highlighter(lambda text: list(analyzer.analyze(text)), max_chars=60)


def marked(snippet):
    return [snippet.text[s:e] for s, e in snippet.highlights]


def test_ranges_match_the_stemmed_terms(hl):
    terms = hl.terms("ribosomes in Vertebrates")  # "in" is a stop word
    text = "Ribosome-mediated specificity in vertebrate tissue; the ribosomal proteins"
    # Snowball: ribosomes, Ribosome and ribosomal all stem to "ribosom" (what BM25 matched), vertebrates to "vertebr"
    assert [text[s:e] for s, e in hl.ranges(text, terms)] == ["Ribosome", "vertebrate", "ribosomal"]


def test_short_text_is_whole_with_every_match(hl):
    s = hl.snippet([("abstract", "aspirin lowers fever; Aspirin's dose")], hl.terms("aspirin"))
    assert (s.field, s.text) == ("abstract", "aspirin lowers fever; Aspirin's dose")
    assert marked(s) == ["aspirin", "Aspirin"]


def test_long_text_is_cut_around_the_densest_matches(hl):
    text = "Background words come first here. " * 4 + "Stroke after aspirin, and aspirin again. " + "tail " * 40
    s = hl.snippet([("abstract", text)], hl.terms("aspirin stroke"))
    assert s.text.startswith(ELLIPSIS + "Stroke after aspirin") and s.text.endswith(" …")
    assert len(s.text) <= 60 + len(ELLIPSIS) + 2
    assert marked(s) == ["Stroke", "aspirin", "aspirin"]


def test_the_field_with_more_matches_wins_and_no_match_keeps_the_first(hl):
    fields = [("abstract", "nothing relevant"), ("body", "fever, fever and fever")]
    assert hl.snippet(fields, hl.terms("fever")).field == "body"
    s = hl.snippet(fields, hl.terms("ibuprofen"))
    assert (s.field, s.text, s.highlights) == ("abstract", "nothing relevant", [])
    assert hl.snippet([("abstract", ""), ("body", "")], hl.terms("x")).text == ""


def test_markup_in_text_stays_text(hl):
    s = hl.snippet([("abstract", "<script>alert(1)</script> aspirin")], hl.terms("aspirin script"))
    assert s.text == "<script>alert(1)</script> aspirin"
    assert marked(s) == ["script", "script", "aspirin"]


@pytest.mark.parametrize(
    ("doi", "url"),
    [
        ("10.1056/NEJMoa2002032", "https://doi.org/10.1056/NEJMoa2002032"),
        ("https://doi.org/10.1/abc", "https://doi.org/10.1/abc"),
        ("10.1002/(SICI)1097-4636<x>", "https://doi.org/10.1002/(SICI)1097-4636%3Cx%3E"),
        ("not a doi", None),
        ('10.1/"onmouseover="x', "https://doi.org/10.1/%22onmouseover%3D%22x"),
    ],
)
def test_doi_url(doi, url):
    assert doi_url(doi) == url


def test_pubmed_url_and_year():
    assert pubmed_url(" 32109013 ") == "https://pubmed.ncbi.nlm.nih.gov/32109013/"
    assert pubmed_url("PMC123") is None
    assert (year_of("2020-03-01"), year_of("2020"), year_of(""), year_of("n.d.")) == (2020, 2020, None, None)
