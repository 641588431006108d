"""The fine-tuning tasks' data, framework-neutral: readers for the BioMedBERT paper's NER, RE and QA sets.

Each reader validates every record; bad input raises :class:`~es_biomed.errors.RecordError` naming ``file:line`` and
the field:

* :func:`read_ner_tsv`: BioBERT NER files, one ``token TAB tag`` per line, a blank line between sentences,
  tags ``B``/``I``/``O`` (NCBI-disease, BC5CDR-chem, BC5CDR-disease).
* :func:`read_re_tsv`: BioBERT RE folds (GAD, EU-ADR). ``train.tsv`` has no header and two columns
  ``sentence TAB label``; ``test.tsv`` starts with the header ``index TAB sentence TAB label``. Labels are 0/1.
* :func:`read_squad`: SQuAD v1 JSON (BioBERT's BioASQ factoid sets). BioBERT repeats each question once per
  snippet with ids ``<question id>_<nnn>``; :func:`question_id` recovers the question.

The TensorFlow trainer encodes them (:mod:`es_biomed.train.tf.task_data`); the QA evaluation reads them too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from es_biomed.corpus.records import read_json_file
from es_biomed.errors import EsBiomedError, RecordError

__all__ = [
    "BIO_TAGS",
    "Answer",
    "NerSentence",
    "QaExample",
    "ReExample",
    "gold_answers",
    "question_id",
    "read_ner_tsv",
    "read_re_tsv",
    "read_squad",
    "split_questions",
]

#: Tag set of the BioBERT NER files (one entity type per dataset).
BIO_TAGS = ("B", "I", "O")


_RE_HEADER = ["index", "sentence", "label"]


@dataclass(frozen=True)
class NerSentence:
    """One NER sentence.

    Attributes:
        tokens: The words.
        tags: One BIO tag per word.
        path: Source file.
        line: 1-based line of the sentence's first word.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class ReExample:
    """One relation-classification sentence (entities masked as ``@GENE$`` / ``@DISEASE$``) and its 0/1 label."""

    sentence: str
    label: int
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class Answer:
    """A gold answer: its text and the character offset where it starts in the context."""

    text: str
    start: int


@dataclass(frozen=True)
class QaExample:
    """One SQuAD question–context pair.

    Attributes:
        id: The SQuAD ``qas.id`` (BioBERT: ``<question id>_<nnn>``).
        question_id: The question it belongs to (see :func:`question_id`).
        question: Question text.
        context: The snippet that holds the answer.
        answers: Gold answers in this context.
    """

    id: str
    question_id: str
    question: str
    context: str
    answers: tuple[Answer, ...]


def _read_lines(path: str | os.PathLike[str]) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise EsBiomedError(f"{p}: no such file")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecordError(str(p), line, "(record)", f"not valid UTF-8 ({exc.reason})") from None
    return text.split("\n")


def read_ner_tsv(path: str | os.PathLike[str], tags: Sequence[str] = BIO_TAGS) -> list[NerSentence]:
    """Read a BioBERT NER file: ``token TAB tag`` per line, sentences separated by blank lines.

    Args:
        path: The ``.tsv`` file.
        tags: Allowed tags.

    Returns:
        The sentences, in file order.

    Raises:
        RecordError: a line does not have exactly two tab-separated fields (field ``(record)``), an empty token
            (``token``) or a tag outside ``tags`` (``tag``); names the file and the 1-based line.
        EsBiomedError: the file does not exist or holds no sentence.

    Example:
        >>> read_ner_tsv("train.tsv")[0].tags  # doctest: +SKIP
        ('O', 'O', 'B', 'O', ...)
    """
    allowed = set(tags)
    out: list[NerSentence] = []
    words: list[str] = []
    labels: list[str] = []
    first = 0
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            if words:
                out.append(NerSentence(tuple(words), tuple(labels), str(path), first))
                words, labels = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise RecordError(str(path), lineno, "(record)", f"expected 'token<TAB>tag', got {len(parts)} field(s)")
        word, tag = parts[0].strip(), parts[1].strip()
        if not word:
            raise RecordError(str(path), lineno, "token", "empty token")
        if tag not in allowed:
            raise RecordError(str(path), lineno, "tag", f"unknown tag {tag!r}; expected one of {sorted(allowed)}")
        if not words:
            first = lineno
        words.append(word)
        labels.append(tag)
    if words:
        out.append(NerSentence(tuple(words), tuple(labels), str(path), first))
    if not out:
        raise EsBiomedError(f"{path}: no sentence found")
    return out


def read_re_tsv(path: str | os.PathLike[str]) -> list[ReExample]:
    """Read a BioBERT RE fold file (``train.tsv`` without header, or ``test.tsv`` with ``index sentence label``).

    The header, when line 1 is exactly ``index TAB sentence TAB label``, switches the file to three columns.

    Args:
        path: The ``.tsv`` file.

    Returns:
        The examples, in file order.

    Raises:
        RecordError: wrong number of fields (``(record)``), an empty ``sentence`` or a ``label`` other than
            ``0``/``1``; names the file and the 1-based line.
        EsBiomedError: the file does not exist or holds no example.
    """
    lines = _read_lines(path)
    header = lines[0].rstrip("\r").split("\t") == _RE_HEADER if lines else False
    width = 3 if header else 2
    layout = "index<TAB>sentence<TAB>label" if header else "sentence<TAB>label"
    out: list[ReExample] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if (header and lineno == 1) or (not line and lineno == len(lines)):
            continue
        parts = line.split("\t")
        if len(parts) != width:
            raise RecordError(str(path), lineno, "(record)", f"expected '{layout}', got {len(parts)} field(s)")
        sentence, label = parts[-2].strip(), parts[-1].strip()
        if not sentence:
            raise RecordError(str(path), lineno, "sentence", "empty sentence")
        if label not in ("0", "1"):
            raise RecordError(str(path), lineno, "label", f"expected 0 or 1, got {label!r}")
        out.append(ReExample(sentence, int(label), str(path), lineno))
    if not out:
        raise EsBiomedError(f"{path}: no example found")
    return out


def question_id(squad_id: str) -> str:
    """The question a BioBERT SQuAD id belongs to: the id up to its first ``_``.

    Example:
        >>> question_id("56bc751eac7ad10019000013_001")
        '56bc751eac7ad10019000013'
    """
    return squad_id.split("_", 1)[0]


def read_squad(path: str | os.PathLike[str]) -> list[QaExample]:
    """Read a SQuAD v1 file (``data[].paragraphs[].{context, qas[].{id, question, answers[]}}``).

    Args:
        path: The JSON file.

    Returns:
        One :class:`QaExample` per ``qas`` entry, in file order.

    Raises:
        RecordError: malformed JSON (``file:line``), or a record missing a field, with an empty string, or an
            answer whose ``answer_start`` does not point at its ``text`` in the context; the ``line`` is the JSON
            path (e.g. ``data[0].paragraphs[3].qas[0].answers[0]``).
    """
    p = str(path)
    if not Path(p).is_file():
        raise EsBiomedError(f"{p}: no such file")
    data = read_json_file(p)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise RecordError(p, "(root)", "data", "expected a SQuAD object with a 'data' list")
    out: list[QaExample] = []
    for i, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise RecordError(p, f"data[{i}]", "paragraphs", "expected a list")
        for j, para in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            context = _str_field(p, where, para, "context")
            qas = para.get("qas")
            if not isinstance(qas, list):
                raise RecordError(p, where, "qas", "expected a list")
            for k, qa in enumerate(qas):
                qwhere = f"{where}.qas[{k}]"
                qid = _str_field(p, qwhere, qa, "id")
                question = _str_field(p, qwhere, qa, "question")
                answers = qa.get("answers")
                if not isinstance(answers, list) or not answers:
                    raise RecordError(p, qwhere, "answers", "expected a non-empty list")
                parsed = []
                for a, ans in enumerate(answers):
                    awhere = f"{qwhere}.answers[{a}]"
                    text = _str_field(p, awhere, ans, "text")
                    start = ans.get("answer_start")
                    if not isinstance(start, int) or isinstance(start, bool):
                        raise RecordError(p, awhere, "answer_start", "expected an integer")
                    if context[start : start + len(text)] != text:
                        raise RecordError(
                            p, awhere, "answer_start", f"context[{start}:{start + len(text)}] is not {text!r}"
                        )
                    parsed.append(Answer(text, start))
                out.append(QaExample(qid, question_id(qid), question, context, tuple(parsed)))
    if not out:
        raise EsBiomedError(f"{p}: no question found")
    return out


def _str_field(path: str, where: str, record: Any, name: str) -> str:
    if not isinstance(record, dict):
        raise RecordError(path, where, "(record)", f"expected an object, got {type(record).__name__}")
    val = record.get(name)
    if not isinstance(val, str):
        raise RecordError(path, where, name, "missing or not a string")
    if not val.strip():
        raise RecordError(path, where, name, "empty value")
    return val


def gold_answers(examples: Sequence[QaExample]) -> dict[str, list[str]]:
    """Gold synonyms per question: every distinct answer text over all of the question's contexts.

    Example:
        >>> ex = [QaExample("q_000", "q", "?", "Bazex syndrome", (Answer("Bazex syndrome", 0),)),
        ...       QaExample("q_001", "q", "?", "acrokeratosis", (Answer("acrokeratosis", 0),))]
        >>> gold_answers(ex)
        {'q': ['Bazex syndrome', 'acrokeratosis']}
    """
    out: dict[str, list[str]] = {}
    for ex in examples:
        seen = out.setdefault(ex.question_id, [])
        for ans in ex.answers:
            if ans.text not in seen:
                seen.append(ans.text)
    return out


def split_questions(
    examples: Sequence[QaExample], dev_fraction: float | None = None
) -> tuple[list[QaExample], list[QaExample]]:
    """Train/dev split **by question** with :func:`es_biomed.corpus.bioasq.split_by_question`.

    The split is the one the retrieval evaluation uses (deterministic, from the question texts), so all the
    contexts of a question, and a question asked twice under two ids, land on the same side.

    Args:
        examples: SQuAD examples.
        dev_fraction: Expected share of dev questions (default: ``split_by_question``'s, 0.20).

    Returns:
        ``(train, dev)`` examples, each in input order.
    """
    from es_biomed.corpus.bioasq import DEFAULT_DEV_FRACTION, split_by_question

    texts: dict[str, str] = {}
    for ex in examples:
        texts.setdefault(ex.question_id, ex.question)
    _, dev_ids = split_by_question(texts, DEFAULT_DEV_FRACTION if dev_fraction is None else dev_fraction)
    dev_set = set(dev_ids)
    train = [ex for ex in examples if ex.question_id not in dev_set]
    dev = [ex for ex in examples if ex.question_id in dev_set]
    return train, dev
