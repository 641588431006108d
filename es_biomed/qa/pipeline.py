"""``Asker``: search, cut the top documents into passages, read them with the QA model, merge and rank answers.

The pipeline of ``es-biomed ask`` (and of the service's ``/ask``):

1. search with the project's default plan in ``rerank`` mode (BM25 top ``window_size``, cosine rescore;
   :func:`~es_biomed.query.presets.default_plan`), ``k = passages`` documents, ``plan_overrides`` applied last;
2. cut the hits' stored fields into word windows and take the best ``passages`` of them
   (:func:`~es_biomed.qa.windows.select_windows`);
3. read every (question, window) pair (:class:`~es_biomed.qa.reader.SpanReader`: max answer length, null rule);
   an answer scores ``log p_start + log p_end - rank_weight * ln(1 + rank)`` (the reader's span log-probability
   and a retrieval prior on its document's search rank: the reader alone is not calibrated across passages);
4. merge answers whose normalized text is equal and rank them by score (:func:`~es_biomed.qa.answers.merge_answers`);
   each answer keeps its evidence: document, title, year, sentence, offsets into the field.

Example:
    >>> from es_biomed import Searcher
    >>> from es_biomed.qa import Asker
    >>> asker = Asker(Searcher("indexes/scifact-sample"))  # doctest: +SKIP
    >>> [a.text for a in asker.ask("What does A20 regulate?", k=2)]  # doctest: +SKIP
    ['cell survival and the NF-kappaB pathway', 'NF-kappaB pathway']
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from es_biomed.corpus.passages import PassageConfig
from es_biomed.errors import EsBiomedError
from es_biomed.qa.answers import Answer, merge_answers
from es_biomed.qa.errors import QaParameterError
from es_biomed.qa.loading import DEFAULT_READER, load_reader
from es_biomed.qa.reader import SpanReader
from es_biomed.qa.sentences import sentence_at
from es_biomed.qa.windows import Window, select_windows
from es_biomed.query.results import SearchResults

__all__ = ["DEFAULT_RANK_WEIGHT", "Asker", "read_windows"]

#: Weight of the retrieval prior ``-ln(1 + rank)`` in an answer's score (see ``training/tune_qa_ranking.py``).
DEFAULT_RANK_WEIGHT = 4.0
#: Longest question accepted, in characters (the reader cuts it to 64 WordPieces anyway).
MAX_QUESTION_CHARS = 10_000


class Asker:
    """Extractive question answering over a search index.

    Args:
        searcher_or_backend: A :class:`~es_biomed.search.searcher.Searcher`, an embedded index (object or path), or a
            cluster backend (:class:`~es_biomed.backends.cluster.ClusterBackend`; its query encoder is the one
            recorded in the mapping, unless ``encoder`` is given).
        reader: A QA reader name (``biomed-qa``), directory, or a loaded :class:`~es_biomed.qa.reader.SpanReader`.
            Loaded once, here.
        passages: Passages (windows) read per question.
        encoder: Query encoder for a cluster backend (name or instance).
        null_threshold: The reader's null rule (``None``: off); see :meth:`SpanReader.read`.
        rank_weight: Retrieval prior: an answer scores ``reader score - rank_weight * ln(1 + rank)``, ``rank`` the
            0-based search rank of its document (:data:`DEFAULT_RANK_WEIGHT`, chosen on BioASQ 7b *train*
            questions by ``training/tune_qa_ranking.py``; ``0`` ranks by the reader alone).
        max_answer_length: Longest answer in WordPieces (default: the model's, 30).
        window_config: Window sizes (default: 200 words, 50 shared, the index's passage sizes).
        runtime: The reader's runtime when ``reader`` is a name or path (``"auto"``, ``"onnx"``, ``"torch"``).

    Raises:
        QaParameterError: ``passages <= 0``, or an unknown reader name (``param="reader"``).
        ModelFilesError: the reader's files are missing.

    Thread safety: :meth:`ask` may be called from several threads at once: the reader is safe for concurrent use
    (see :mod:`es_biomed.qa.reader`), the query encoder is loaded here rather than on first use, and each search
    opens its own connection to the document table.
    """

    def __init__(
        self,
        searcher_or_backend: Any,
        reader: str | os.PathLike[str] | SpanReader = DEFAULT_READER,
        passages: int = 20,
        *,
        encoder: Any = None,
        null_threshold: float | None = 0.0,
        rank_weight: float | None = None,
        max_answer_length: int | None = None,
        window_config: PassageConfig | None = None,
        runtime: str = "auto",
    ) -> None:
        self.passages = _positive_int("passages", passages)
        if max_answer_length is not None:
            _positive_int("max_answer_length", max_answer_length)
        self.null_threshold = null_threshold
        self.rank_weight = DEFAULT_RANK_WEIGHT if rank_weight is None else float(rank_weight)
        if self.rank_weight < 0:
            raise QaParameterError("rank_weight", f"must be >= 0, got {rank_weight}")
        self.max_answer_length = max_answer_length
        self.window_config = window_config or PassageConfig()
        self._search = _search_function(searcher_or_backend, encoder)
        self.reader = reader if isinstance(reader, SpanReader) else load_reader(reader, runtime=runtime)  # type: ignore[arg-type]

    def ask(self, question: str, k: int = 5, plan_overrides: dict[str, Any] | None = None) -> list[Answer]:
        """The best ``k`` answers to ``question``, best first (fewer, or none, when the passages hold fewer).

        Args:
            question: The question (non-empty, at most 10,000 characters).
            k: Answers returned at most.
            plan_overrides: :class:`~es_biomed.query.SearchPlan` fields applied to the search (``mode``,
                ``window_size``, ``filters``, ``k`` documents...).

        Raises:
            QaParameterError: empty or overlong ``question``, ``k <= 0``, or a ``plan_overrides`` key that is not
                a plan field (``param`` names which).
            PlanError: a plan value is invalid (e.g. an unknown mode).
        """
        k = _positive_int("k", k)
        windows, sources = self.retrieve(question, plan_overrides)
        return read_windows(
            self.reader,
            _question(question),
            windows,
            sources,
            k,
            null_threshold=self.null_threshold,
            rank_weight=self.rank_weight,
            max_answer_length=self.max_answer_length,
        )

    def retrieve(
        self, question: str, plan_overrides: dict[str, Any] | None = None
    ) -> tuple[list[Window], dict[str, dict[str, Any]]]:
        """Steps 1 and 2 alone: the passages :meth:`ask` reads for ``question`` and the hits' stored fields.

        Raises:
            QaParameterError: as :meth:`ask`.
        """
        question = _question(question)
        results = self._search(question, self._plan(question, plan_overrides))
        windows = select_windows(
            [h.doc_id for h in results.hits], results.sources, self.passages, question, self.window_config
        )
        return windows, results.sources

    def _plan(self, question: str, overrides: Mapping[str, Any] | None) -> Any:
        from es_biomed.query.plan import SearchPlan
        from es_biomed.query.presets import default_plan

        extra = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(SearchPlan)}
        unknown = sorted(set(extra) - known)
        if unknown:
            raise QaParameterError("plan_overrides", f"unknown SearchPlan field(s) {unknown}; known: {sorted(known)}")
        extra.pop("query", None)
        return default_plan(question, **{"k": self.passages, "mode": "rerank", **extra})


def read_windows(
    reader: SpanReader,
    question: str,
    windows: Sequence[Window],
    sources: Mapping[str, Mapping[str, Any]],
    k: int = 5,
    *,
    null_threshold: float | None = 0.0,
    rank_weight: float = 0.0,
    max_answer_length: int | None = None,
) -> list[Answer]:
    """Read ``windows`` and return the merged, ranked answers with their evidence (steps 3 and 4 above).

    Args:
        reader: The QA reader.
        question: The question.
        windows: Passages to read; ``windows[i].text`` must be ``sources[doc_id][field][start:end]``.
        sources: Stored fields of the windows' documents (title, year/date, the windowed fields).
        k: Answers returned at most.
        null_threshold: See :meth:`SpanReader.read`.
        rank_weight: An answer scores ``span score - rank_weight * ln(1 + window.rank)``.
        max_answer_length: See :meth:`SpanReader.read`.
    """
    spans = reader.read(
        question, [w.text for w in windows], null_threshold=null_threshold, max_answer_length=max_answer_length
    )
    candidates = []
    for w, found in zip(windows, spans, strict=True):
        src = sources.get(w.doc_id, {})
        field_text = src.get(w.field)
        if not isinstance(field_text, str) or field_text[w.start : w.end] != w.text:
            raise EsBiomedError(f"window of {w.doc_id!r} is not {w.field}[{w.start}:{w.end}] of its stored fields")
        prior = rank_weight * math.log1p(w.rank)
        for sp in found:
            start, end = w.start + sp.start, w.start + sp.end
            s, e = sentence_at(field_text, start, end)
            candidates.append(
                Answer(
                    text=field_text[start:end],
                    score=sp.score - prior,
                    doc_id=w.doc_id,
                    title=str(src.get("title") or ""),
                    year=_year(src),
                    sentence=field_text[s:e],
                    start=start,
                    end=end,
                    field=w.field,
                    sentence_start=s,
                )
            )
    return merge_answers(candidates, k)


def _search_function(target: Any, encoder: Any) -> Any:
    """``f(question, plan) -> SearchResults`` through the :class:`~es_biomed.search.Searcher` of ``target``: a
    Searcher, an embedded index (or its path) or a cluster backend."""
    from es_biomed.search import Searcher

    engine_like = hasattr(target, "search") and hasattr(target, "check_encoder")
    if not isinstance(target, Searcher) and (isinstance(target, (str, os.PathLike)) or engine_like):
        if hasattr(target, "encoder_meta") and encoder is None and not target.encoder_meta().get("name"):
            raise EsBiomedError(f"alias {target.alias!r} records no encoder; pass encoder=NAME")
        target = Searcher(target, encoder)
    if not isinstance(target, Searcher):
        raise QaParameterError(
            "searcher_or_backend", f"expected a Searcher, an embedded index path or a cluster backend, got {target!r}"
        )
    searcher = target
    searcher.encoder  # loaded now, not on the first (possibly concurrent) ask  # noqa: B018

    def run(question: str, plan: Any) -> SearchResults:
        return searcher.run(plan.replace(query=question), with_sources=True)

    return run


def _question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise QaParameterError("question", "must be a non-empty string")
    if len(question) > MAX_QUESTION_CHARS:
        raise QaParameterError("question", f"is {len(question)} characters; at most {MAX_QUESTION_CHARS}")
    return question.strip()


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise QaParameterError(name, f"must be a positive integer, got {value!r}")
    return value


def _year(src: Mapping[str, Any]) -> int | None:
    year = src.get("year")
    if isinstance(year, int) and not isinstance(year, bool):
        return year
    head = str(src.get("date") or "")[:4]
    return int(head) if len(head) == 4 and head.isdigit() else None
