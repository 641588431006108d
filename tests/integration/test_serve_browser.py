"""The search page in a real browser: Debian's chromium driven by Playwright (sync API) against the real service.
It types a query, sees ranked results with highlights, links and score parts, sees the answers, switches the
mode, and saves screenshots under test-artifacts/ (gitignored). A document titled ``<script>alert(1)</script>``
shows as text and runs nothing."""

# ruff: noqa: F811 (the fixtures imported from tests.serve_server are function arguments here)
from __future__ import annotations

import os

import pytest

from tests.conftest import REPO
from tests.serve_server import XSS_TITLE, ensure_chromium, serve_index, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
ARTIFACTS = REPO / "test-artifacts"
QUERY = "neuraminidase inhibitor influenza symptoms"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = ensure_chromium()
    if chromium is None:
        reason = "Debian's chromium is missing and cannot be installed here (apt-get install chromium)"
        if os.environ.get("ES_BIOMED_BROWSER_REQUIRED"):  # .ci/run: skipped is not passed
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
    pg.goto(server.url + "/")
    pg.wait_for_selector("#index-info:has-text('documents')")
    yield pg
    context.close()


def search(page, text):
    page.fill("#q", text)
    page.press("#q", "Enter")
    page.wait_for_selector("#status:has-text('result')")


def test_search_answers_and_mode_switch(page):
    ARTIFACTS.mkdir(exist_ok=True)
    assert "152 documents" in page.inner_text("#index-info")
    search(page, QUERY)
    status = page.inner_text("#status")
    assert "rerank" in status
    hits = page.locator("#hits > li")
    assert hits.count() == 10
    first = hits.first
    assert first.locator("h3").inner_text() == "1.Oseltamivir for influenza in adults"
    assert first.get_by_role("link", name="doi:10.1000/example.123").get_attribute("href") == (
        "https://doi.org/10.1000/example.123"
    )
    assert first.get_by_role("link", name="PubMed 31000001").get_attribute("href") == (
        "https://pubmed.ncbi.nlm.nih.gov/31000001/"
    )
    marks = [m.lower() for m in first.locator(".snippet mark").all_inner_texts()]
    assert {"neuraminidase", "inhibitor", "influenza", "symptoms"} <= set(marks)
    scores = first.locator(".scores").inner_text()
    assert "score" in scores and "BM25" in scores and "cosine" in scores

    page.wait_for_selector("#answers-status:not(:has-text('finding'))", timeout=120_000)
    answers = page.locator("#answers > li")
    assert answers.count() >= 1, page.inner_text("#answers-status")
    first_answer = answers.first
    assert first_answer.locator(".answer-text").inner_text()  # the answer, then its sentence and document
    assert first_answer.locator(".answer-evidence q").count() == 1
    assert "answers" in page.inner_text("#answers-status")
    page.screenshot(path=str(ARTIFACTS / "serve-rerank.png"), full_page=False)

    page.check("input[name=mode][value=bm25]")
    page.wait_for_selector("#status:has-text('bm25')")
    assert "BM25" in hits.first.locator(".scores").inner_text()
    assert "cosine" not in hits.first.locator(".scores").inner_text()
    assert "mode=bm25" in page.url
    page.check("input[name=mode][value=hybrid]")
    page.wait_for_selector("#status:has-text('hybrid')")
    assert "RRF" in hits.first.locator(".scores").inner_text()
    page.screenshot(path=str(ARTIFACTS / "serve-hybrid.png"), full_page=False)
    assert page.errors == []  # type: ignore[attr-defined]


def test_filters_narrow_the_results(page):
    page.select_option("#source", "test")
    page.fill("#year-from", "2019")
    page.fill("#year-to", "2019")
    search(page, QUERY)
    assert page.locator("#hits > li").count() == 1
    assert "1 result" in page.inner_text("#status")


def test_bad_input_shows_the_error(page):
    page.fill("#year-from", "2022")
    page.fill("#year-to", "2020")
    page.fill("#q", QUERY)
    page.press("#q", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "year_from: is after year_to (2022 > 2020)"


def test_a_script_title_shows_as_text_and_runs_nothing(page):
    search(page, "zanamivir escaping")
    hit = page.locator("#hits > li", has_text="Escaping check")
    assert hit.count() == 1
    assert hit.locator("h3").inner_text().endswith(XSS_TITLE)
    assert "<img src=x onerror=" in hit.locator(".snippet").inner_text()
    assert page.locator("#hits script, #hits img, #hits b").count() == 0
    assert page.dialogs == [] and page.errors == []  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "serve-escaping.png"))
