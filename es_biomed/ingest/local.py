"""Index a corpus into the embedded engine: read, validate, split, embed, upsert, commit."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus.formats import CorpusFormat
from es_biomed.corpus.passages import PassageConfig
from es_biomed.corpus.readers import iter_documents
from es_biomed.corpus.records import OnError, RejectSink
from es_biomed.corpus.types import Document
from es_biomed.encode.base import Encoder

__all__ = ["IndexReport", "index_documents", "index_corpus"]

logger = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """Summary of an indexing run."""

    index: str
    read: int = 0
    written: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects_path: str | None = None
    seconds: float = 0.0
    total_docs: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _ReadError(Exception):
    """Carries an error raised by the document iterator, with the records read before it."""

    def __init__(self, partial: list[Document], cause: BaseException) -> None:
        self.partial, self.cause = partial, cause


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """Batches of ``size``; if reading fails mid-batch, the records read so far travel with the error."""
    it = iter(docs)
    while True:
        batch: list[Document] = []
        try:
            for doc in it:
                batch.append(doc)
                if len(batch) == size:
                    break
        except Exception as exc:
            raise _ReadError(batch, exc) from exc
        if not batch:
            return
        yield batch


def index_documents(
    docs: Iterable[Document],
    index_path: str | os.PathLike[str],
    encoder: Encoder,
    *,
    passages: PassageConfig | None = None,
    batch_size: int = 256,
    encode_batch_size: int = 32,
    show_progress: bool = False,
    report: IndexReport | None = None,
    commit_every: int | None = None,
    commit_interval: float | None = None,
    ann: str = "auto",
    on_batch: Callable[[IndexReport, list[Document]], None] | None = None,
) -> IndexReport:
    """Upsert ``docs`` into the embedded index at ``index_path`` (created if missing).

    Each batch of ``batch_size`` documents is embedded and written, then committed atomically (the protocol of
    :mod:`es_biomed.backends.embedded.store`), so a crash loses at most the batch in flight and a re-run completes
    it. ``commit_every`` (documents) and ``commit_interval`` (seconds) commit on that policy instead. ``ann``:
    the writer's ANN graph policy (``auto``: built once the index holds 50,000 vector rows; ``on``; ``off``). The writer
    also commits when an error escapes, so documents accepted before a bad record are kept. ``on_batch(report,
    batch)`` is called after each batch is written (and, with the default policy, committed): a progress hook.
    """
    per_batch = commit_every is None and commit_interval is None
    t0 = time.perf_counter()
    report = report or IndexReport(index=str(index_path))
    index = EmbeddedIndex.create(index_path, encoder.info, passages=passages)
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="index", unit="doc")
    try:
        with index.writer(commit_every=commit_every, commit_interval=commit_interval, ann=ann) as writer:  # type: ignore[arg-type]

            def write(batch: list[Document]) -> None:
                report.read += len(batch)
                report.written += writer.add(batch, encoder, batch_size=encode_batch_size)
                report.unchanged = writer.unchanged
                if per_batch:
                    writer.commit()
                if on_batch is not None:
                    on_batch(report, batch)
                if bar is not None:
                    bar.update(len(batch))

            try:
                for batch in _batches(docs, batch_size):
                    write(batch)
            except _ReadError as err:
                write(err.partial)  # the records before the bad one were accepted: keep them
                logger.warning("reading stopped at a bad record after %d documents: %s", report.read, err.cause)
                raise err.cause from None
    finally:
        if bar is not None:
            bar.close()
        report.seconds = round(time.perf_counter() - t0, 3)
        report.total_docs = index.count()
    return report


def index_corpus(
    path: str | os.PathLike[str],
    index_path: str | os.PathLike[str],
    encoder: Encoder,
    *,
    fmt: CorpusFormat | None = None,
    on_error: OnError = "raise",
    rejects_path: str | os.PathLike[str] | None = None,
    **kwargs: object,
) -> IndexReport:
    """Read a corpus file or BEIR directory and index it.

    Args:
        path: Corpus (see :func:`~es_biomed.corpus.iter_documents`).
        index_path: Embedded index directory.
        encoder: Document encoder.
        fmt: Corpus format, guessed when None.
        on_error: ``"raise"`` stops at the first bad record (after committing what came before it);
            ``"quarantine"`` writes bad records to ``rejects_path`` and goes on.
        rejects_path: Dead-letter JSONL; defaults to ``<index_path>/rejects.jsonl``.
        **kwargs: Passed to :func:`index_documents`.

    Returns:
        An :class:`IndexReport`; ``rejected > 0`` means records were quarantined.
    """
    report = IndexReport(index=str(index_path))
    sink = RejectSink(rejects_path or Path(index_path) / "rejects.jsonl") if on_error == "quarantine" else None
    try:
        docs = iter_documents(path, fmt, on_error=on_error, sink=sink)
        index_documents(docs, index_path, encoder, report=report, **kwargs)  # type: ignore[arg-type]
    finally:
        if sink is not None:
            sink.close()
            report.rejected = sink.count
            report.rejects_path = str(sink.path) if sink.count else None
    return report
