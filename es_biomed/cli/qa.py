"""``es-biomed ask`` and ``es-biomed eval qa`` (registered on the main CLI in :mod:`es_biomed.cli.main`).

The commands parse arguments and call :class:`~es_biomed.qa.pipeline.Asker` / :func:`~es_biomed.eval.qa_e2e.evaluate_qa`;
heavy modules are imported inside them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from es_biomed.cli.support import cluster_backend, fail, handled_errors, load_encoder_for, require_index

__all__ = ["ask", "qa_eval"]

_BACKENDS = ("embedded", "es", "opensearch")
_MODES = ("bm25", "rerank", "dense", "hybrid", "hybrid_rerank")


def _null_threshold(value: float | None, no_null: bool) -> float | None:
    return None if no_null else (0.0 if value is None else value)


def _target(backend: str, index_path: str | None) -> Any:
    require_index(backend, index_path)
    return index_path if backend == "embedded" else cluster_backend(index_path, backend)


def _mark(answer: Any) -> str:
    """The answer's sentence with the answer in brackets, where it stands."""
    s = answer.sentence
    i = answer.start - answer.sentence_start if answer.sentence_start is not None else s.find(answer.text)
    if not 0 <= i <= len(s) - len(answer.text) or s[i : i + len(answer.text)] != answer.text:
        return s
    return f"{s[:i]}[{answer.text}]{s[i + len(answer.text) :]}"


_common = [
    click.option("--index", "index_path", type=click.Path(), help="Embedded: index directory. ES: alias."),
    click.option(
        "--backend",
        type=click.Choice(_BACKENDS),
        default="embedded",
        show_default=True,
        help="Embedded engine, Elasticsearch or OpenSearch.",
    ),
    click.option("--reader", default="biomed-qa", show_default=True, help="QA reader: registered name or directory."),
    click.option("--passages", type=int, default=20, show_default=True, help="Passages read per question."),
    click.option(
        "--null-threshold",
        type=float,
        default=None,
        help="Keep a span only if its score >= the window's no-answer score + this (default 0).",
    ),
    click.option("--no-null", is_flag=True, help="Switch the no-answer rule off (every window answers)."),
    click.option(
        "--rank-weight",
        type=float,
        default=None,
        help="Retrieval prior: answer score = reader score - W * ln(1 + document rank) (default: tuned).",
    ),
    click.option(
        "--runtime",
        type=click.Choice(["auto", "onnx", "torch"]),
        default="auto",
        show_default=True,
        help="Reader runtime (auto: ONNX Runtime, exported on first use; else torch).",
    ),
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.command()
@click.argument("question")
@_with_common
@click.option("-k", "k", type=int, default=5, show_default=True, help="Answers shown.")
@click.option("--mode", type=click.Choice(_MODES), default="rerank", show_default=True, help="Search mode.")
@click.option("--window", type=int, default=None, help="Rescore window (default: preset).")
@click.option("--encoder", default=None, help="Query encoder; must match the index's (default: the index's).")
@click.option("--json", "as_json", is_flag=True, help="Print the answers and their evidence as JSON.")
def ask(
    question: str,
    index_path: str | None,
    backend: str,
    reader: str,
    passages: int,
    null_threshold: float | None,
    no_null: bool,
    rank_weight: float | None,
    runtime: str,
    k: int,
    mode: str,
    window: int | None,
    encoder: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from the indexed documents: search (BM25 + rerank), read the top passages with the
    extractive QA model, merge equal answers, and show each answer with its evidence."""
    from es_biomed.qa.pipeline import Asker

    overrides: dict[str, Any] = {"mode": mode, **({"window_size": window} if window else {})}
    try:
        t0 = time.perf_counter()
        asker = Asker(
            _target(backend, index_path),
            reader,
            passages,
            encoder=encoder,
            null_threshold=_null_threshold(null_threshold, no_null),
            rank_weight=rank_weight,
            runtime=runtime,
        )
        t1 = time.perf_counter()
        answers = asker.ask(question, k, overrides)
        t2 = time.perf_counter()
    except handled_errors() as exc:
        raise fail(exc) from exc
    if as_json:
        payload = {
            "question": question,
            "k": k,
            "passages": passages,
            "mode": mode,
            "backend": backend,
            "reader": {"name": asker.reader.name, "runtime": asker.reader.runtime},
            "load_ms": round((t1 - t0) * 1000, 1),
            "took_ms": round((t2 - t1) * 1000, 1),
            "answers": [a.to_dict() for a in answers],
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    click.echo(f"Q: {question}")
    if not answers:
        click.echo("no answer found in the top passages")
    for rank, a in enumerate(answers, start=1):
        year = f" ({a.year})" if a.year else ""
        click.echo(f"{rank:>2}. {a.text}    score {a.score:.3f}")
        click.echo(f"    {a.doc_id}{year} {a.title}".rstrip())
        click.echo(f"    {a.field}[{a.start}:{a.end}]: {_mark(a)}")


@click.command(name="qa")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@_with_common
@click.option(
    "--output", required=True, type=click.Path(), help="Result JSON (a Markdown table is written beside it)."
)
@click.option("--encoder", default=None, help="Encoder of the index (default: the index's, else all-MiniLM-L6-v2).")
@click.option("-k", "k", type=int, default=5, show_default=True, help="Answers scored per question (BioASQ: 5).")
@click.option("--dev-fraction", type=float, default=0.2, show_default=True, help="The question split's dev share.")
@click.option(
    "--max-questions",
    type=int,
    default=None,
    help="Score only the first N dev questions, over an index of their contexts only (quick checks).",
)
@click.option("--no-progress", is_flag=True)
def qa_eval(
    files: tuple[str, ...],
    index_path: str | None,
    backend: str,
    reader: str,
    passages: int,
    null_threshold: float | None,
    no_null: bool,
    rank_weight: float | None,
    runtime: str,
    output: str,
    encoder: str | None,
    k: int,
    dev_fraction: float,
    max_questions: int | None,
    no_progress: bool,
) -> None:
    """BioASQ factoid QA end to end (the paper's Table 8): strict / lenient accuracy and MRR of the top-5 answers
    on the dev questions of FILES (BioASQ 7b-train, split by question), with the gold context, with passages
    retrieved by BM25, and by BM25 + rerank. The index holds the dev questions' contexts (built if missing)."""
    from es_biomed.eval.qa_e2e import evaluate_qa, qa_markdown
    from es_biomed.qa.loading import load_reader

    try:
        enc = load_encoder_for(encoder, index_path if backend == "embedded" else None)
        target = _target(backend, index_path)
        if backend != "embedded":
            target.setup(enc.info)
        result = evaluate_qa(
            list(files),
            target,
            enc,
            load_reader(reader, runtime=runtime),  # type: ignore[arg-type]
            passages=passages,
            k=k,
            dev_fraction=dev_fraction,
            null_threshold=_null_threshold(null_threshold, no_null),
            rank_weight=rank_weight,
            max_questions=max_questions,
            show_progress=not no_progress,
        )
        result["config"]["backend"] = backend
        result["config"]["index"] = str(index_path)
    except handled_errors() as exc:
        raise fail(exc) from exc
    md = qa_markdown(result)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    out.with_suffix(".md").write_text(md)
    click.echo(md, nl=False)
