"""Fine-tuning data for the BioMedBERT paper's tasks: readers, WordPiece encoding and batching.

Readers (each validates every record; bad input raises :class:`~es_biomed.errors.RecordError` naming
``file:line`` and the field):

* :func:`read_ner_tsv`: BioBERT NER files, one ``token TAB tag`` per line, a blank line between sentences,
  tags ``B``/``I``/``O`` (NCBI-disease, BC5CDR-chem, BC5CDR-disease).
* :func:`read_re_tsv`: BioBERT RE folds (GAD, EU-ADR). ``train.tsv`` has no header and two columns
  ``sentence TAB label``; ``test.tsv`` starts with the header ``index TAB sentence TAB label``. Labels are 0/1.
* :func:`read_squad`: SQuAD v1 JSON (BioBERT's BioASQ factoid sets). BioBERT repeats each question once per
  snippet with ids ``<question id>_<nnn>``; :func:`question_id` recovers the question.

Encoders turn examples into :class:`Features` (ragged token ids, padded per batch by :func:`iter_batches`):

* :func:`encode_ner`: the first WordPiece of each word carries the word's tag, the other pieces and the special
  tokens get :data:`IGNORE_INDEX`. Sentences longer than ``max_length`` pieces are cut into consecutive word
  chunks (no word is dropped); :func:`decode_ner` stitches the chunks' predictions back into one tag per word.
* :func:`encode_re`: ``[CLS] sentence [SEP]`` truncated to ``max_length``; the entity markers ``@GENE$`` and
  ``@DISEASE$`` are kept as BioBERT keeps them.
* :func:`encode_squad`: ``[CLS] question [SEP] context [SEP]`` windows over long contexts (``doc_stride``); the
  label is the answer's first/last token, or ``(0, 0)`` (``[CLS]``) in a window that does not hold the answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.corpus.records import read_json_file
from es_biomed.errors import EsBiomedError, RecordError
from es_biomed.train.tf.retrieval import sha256_file

__all__ = [
    "BIO_TAGS",
    "IGNORE_INDEX",
    "Answer",
    "Features",
    "NerSentence",
    "QaExample",
    "ReExample",
    "decode_ner",
    "encode_ner",
    "encode_re",
    "encode_squad",
    "file_sha256",
    "gold_answers",
    "iter_batches",
    "question_id",
    "read_ner_tsv",
    "read_re_tsv",
    "read_squad",
    "split_questions",
]

#: Tag set of the BioBERT NER files (one entity type per dataset).
BIO_TAGS = ("B", "I", "O")
#: Label of positions that take no part in the loss or the metrics (Keras/PyTorch convention).
IGNORE_INDEX = -100
_RE_HEADER = ["index", "sentence", "label"]


# -- records ------------------------------------------------------------------------------------------------------


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


@dataclass
class Features:
    """Encoded examples: ragged per-example columns, padded per batch by :func:`iter_batches`.

    Attributes:
        columns: Column name -> one 1-D ``int32`` array per feature (``input_ids``, ``token_type_ids``, and the
            labels: ``labels`` per token for NER, ``label`` (shape ``[1]``) for RE, ``start_positions`` and
            ``end_positions`` (shape ``[1]``) for QA).
        example_index: For each feature, the index of the example it came from (QA windows and long NER
            sentences give several features per example).
        meta: Per-feature decoding data (NER: ``word_positions``, ``word_start``; QA: ``offsets``).
        pad_id: Token id used to pad ``input_ids``.
    """

    columns: dict[str, list[np.ndarray]]
    example_index: list[int]
    meta: dict[str, list[Any]] = field(default_factory=dict)
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def num_tokens(self) -> int:
        """Total unpadded tokens over all features."""
        return int(sum(len(ids) for ids in self.columns["input_ids"]))


# -- readers ------------------------------------------------------------------------------------------------------


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


#: Hex SHA-256 of a file's bytes (recorded beside results so a run names the exact data it used).
file_sha256 = sha256_file


# -- encoders -----------------------------------------------------------------------------------------------------


def _special_ids(tokenizer: Any) -> tuple[int, int, int]:
    return int(tokenizer.cls_token_id), int(tokenizer.sep_token_id), int(tokenizer.pad_token_id or 0)


def _word_pieces(tokenizer: Any, words: Sequence[str]) -> dict[str, list[int]]:
    """WordPiece ids of each distinct word (a word with no piece maps to ``[UNK]``)."""
    distinct = sorted(set(words))
    ids = tokenizer(distinct, add_special_tokens=False, verbose=False)["input_ids"] if distinct else []
    unk = int(tokenizer.unk_token_id)
    return {w: (list(p) or [unk]) for w, p in zip(distinct, ids, strict=True)}


def encode_ner(
    sentences: Sequence[NerSentence], tokenizer: Any, max_length: int = 128, tags: Sequence[str] = BIO_TAGS
) -> Features:
    """Encode NER sentences; the first WordPiece of a word carries its tag, the rest :data:`IGNORE_INDEX`.

    Args:
        sentences: From :func:`read_ner_tsv`.
        tokenizer: A BERT WordPiece tokenizer (``transformers``).
        max_length: Maximum pieces per feature, ``[CLS]`` and ``[SEP]`` included. Longer sentences are cut into
            consecutive word chunks; a single word longer than the limit keeps only its first pieces.
        tags: Tag list; a tag's label id is its index.

    Returns:
        :class:`Features` with ``input_ids``, ``token_type_ids`` and ``labels``; ``meta["word_positions"]`` holds
        the position of each word's first piece and ``meta["word_start"]`` the index of the chunk's first word.

    Raises:
        ValueError: ``max_length < 3`` or a tag is not in ``tags``.
    """
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3, got {max_length}")
    tag_id = {t: i for i, t in enumerate(tags)}
    cls, sep, pad = _special_ids(tokenizer)
    pieces = _word_pieces(tokenizer, [w for s in sentences for w in s.tokens])
    budget = max_length - 2
    feats = Features(
        {"input_ids": [], "token_type_ids": [], "labels": []}, [], {"word_positions": [], "word_start": []}
    )
    feats.pad_id = pad
    for si, sent in enumerate(sentences):
        start = 0
        while start < len(sent.tokens) or start == 0:
            ids, labels, positions = [cls], [IGNORE_INDEX], []
            w = start
            while w < len(sent.tokens):
                wp = pieces[sent.tokens[w]][:budget]
                if len(ids) - 1 + len(wp) > budget:
                    break
                positions.append(len(ids))
                try:
                    labels.append(tag_id[sent.tags[w]])
                except KeyError:
                    raise ValueError(f"{sent.path}:{sent.line}: tag {sent.tags[w]!r} not in {list(tags)}") from None
                labels.extend([IGNORE_INDEX] * (len(wp) - 1))
                ids.extend(wp)
                w += 1
            ids.append(sep)
            labels.append(IGNORE_INDEX)
            feats.columns["input_ids"].append(np.asarray(ids, np.int32))
            feats.columns["token_type_ids"].append(np.zeros(len(ids), np.int32))
            feats.columns["labels"].append(np.asarray(labels, np.int32))
            feats.example_index.append(si)
            feats.meta["word_positions"].append(np.asarray(positions, np.int32))
            feats.meta["word_start"].append(start)
            if w == start:  # empty sentence
                break
            start = w
    return feats


def decode_ner(
    sentences: Sequence[NerSentence],
    features: Features,
    token_predictions: Sequence[np.ndarray],
    tags: Sequence[str] = BIO_TAGS,
) -> list[list[str]]:
    """Turn per-token predicted label ids back into one tag per word of each sentence.

    Args:
        sentences: The sentences given to :func:`encode_ner`.
        features: What :func:`encode_ner` returned for them.
        token_predictions: For each feature, predicted label ids per token position (at least as long as the
            feature; padding beyond it is ignored).
        tags: The tag list given to :func:`encode_ner`.

    Returns:
        One list of tags per sentence, as long as the sentence.
    """
    out = [["O"] * len(s.tokens) for s in sentences]
    for f, si in enumerate(features.example_index):
        positions = features.meta["word_positions"][f]
        start = features.meta["word_start"][f]
        pred = np.asarray(token_predictions[f])
        for k, pos in enumerate(positions):
            out[si][start + k] = tags[int(pred[pos])]
    return out


def encode_re(examples: Sequence[ReExample], tokenizer: Any, max_length: int = 128) -> Features:
    """Encode relation sentences as ``[CLS] sentence [SEP]`` (truncated) with their 0/1 label.

    Returns:
        :class:`Features` with ``input_ids``, ``token_type_ids`` and ``label``; ``meta["truncated"]`` flags
        sentences cut at ``max_length``.
    """
    enc = tokenizer([e.sentence for e in examples], truncation=True, max_length=max_length)
    full = tokenizer([e.sentence for e in examples], truncation=False, verbose=False)["input_ids"]
    feats = Features({"input_ids": [], "token_type_ids": [], "label": []}, [], {"truncated": []})
    feats.pad_id = _special_ids(tokenizer)[2]
    for i, (ex, ids) in enumerate(zip(examples, enc["input_ids"], strict=True)):
        feats.columns["input_ids"].append(np.asarray(ids, np.int32))
        feats.columns["token_type_ids"].append(np.zeros(len(ids), np.int32))
        feats.columns["label"].append(np.asarray([ex.label], np.int32))
        feats.example_index.append(i)
        feats.meta["truncated"].append(len(full[i]) > max_length)
    return feats


def encode_squad(
    examples: Sequence[QaExample],
    tokenizer: Any,
    max_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> Features:
    """Encode question–context pairs into ``[CLS] question [SEP] context [SEP]`` windows.

    Args:
        examples: From :func:`read_squad`.
        tokenizer: A *fast* BERT tokenizer (character offsets are needed).
        max_length: Pieces per window.
        doc_stride: Overlap between consecutive windows of a long context, in pieces.
        max_query_length: Questions are truncated to this many pieces.

    Returns:
        :class:`Features` with ``input_ids``, ``token_type_ids``, ``start_positions`` and ``end_positions`` (the
        first answer's first/last piece, ``0`` when the window does not hold it); ``meta["offsets"]`` holds, per
        window, an ``[n, 2]`` array of character offsets into the context, ``-1`` for non-context tokens, and
        ``meta["word_bounds"]`` an ``[n, 2]`` boolean array: the piece begins / ends a word of the context (words
        as BERT's basic tokenizer splits them: punctuation is a word of its own).

    Raises:
        EsBiomedError: the tokenizer is not a fast tokenizer.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise EsBiomedError("encode_squad needs a fast tokenizer (transformers.BertTokenizerFast) for offsets")
    cls, sep, pad = _special_ids(tokenizer)
    feats = Features(
        {"input_ids": [], "token_type_ids": [], "start_positions": [], "end_positions": []},
        [],
        {"offsets": [], "word_bounds": []},
    )
    feats.pad_id = pad
    for ei, ex in enumerate(examples):
        q_ids = tokenizer(ex.question, add_special_tokens=False, verbose=False)["input_ids"][:max_query_length]
        ctx = tokenizer(ex.context, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        c_ids, c_off = ctx["input_ids"], ctx["offset_mapping"]
        wid = ctx.word_ids()
        begins = [i == 0 or wid[i] != wid[i - 1] for i in range(len(wid))]
        ends = [i == len(wid) - 1 or wid[i] != wid[i + 1] for i in range(len(wid))]
        room = max_length - len(q_ids) - 3
        if room < 1:
            raise ValueError(f"max_length {max_length} leaves no room for the context after the question")
        ans = ex.answers[0]
        a_start, a_end = ans.start, ans.start + len(ans.text)
        win = 0
        while True:
            w_ids = c_ids[win : win + room]
            w_off = c_off[win : win + room]
            ids = [cls, *q_ids, sep, *w_ids, sep]
            types = [0] * (len(q_ids) + 2) + [1] * (len(w_ids) + 1)
            base = len(q_ids) + 2
            offsets = np.full((len(ids), 2), -1, np.int32)
            if w_off:
                offsets[base : base + len(w_off)] = np.asarray(w_off, np.int32)
            bounds = np.zeros((len(ids), 2), bool)
            bounds[base : base + len(w_ids), 0] = begins[win : win + room]
            bounds[base : base + len(w_ids), 1] = ends[win : win + room]
            s_tok = e_tok = 0
            inside = [k for k, (s, e) in enumerate(w_off) if e > a_start and s < a_end]
            if inside and w_off[inside[0]][0] <= a_start and w_off[inside[-1]][1] >= a_end:
                s_tok, e_tok = base + inside[0], base + inside[-1]
            feats.columns["input_ids"].append(np.asarray(ids, np.int32))
            feats.columns["token_type_ids"].append(np.asarray(types, np.int32))
            feats.columns["start_positions"].append(np.asarray([s_tok], np.int32))
            feats.columns["end_positions"].append(np.asarray([e_tok], np.int32))
            feats.example_index.append(ei)
            feats.meta["offsets"].append(offsets)
            feats.meta["word_bounds"].append(bounds)
            if win + room >= len(c_ids):
                break
            win += max(1, room - doc_stride) if doc_stride < room else room
    return feats


# -- batching -----------------------------------------------------------------------------------------------------

_PAD_VALUES = {"input_ids": None, "token_type_ids": 0, "labels": IGNORE_INDEX}


def iter_batches(
    features: Features, batch_size: int, *, shuffle: bool = False, seed: int = 0, indices: Sequence[int] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Yield padded ``int32`` batches: every ragged column padded to the batch's longest feature.

    ``attention_mask`` is added (1 on real tokens). Per-example columns of length 1 (``label``,
    ``start_positions``, ``end_positions``) come out as ``[batch]`` vectors. Each batch also has ``index``: the
    positions of its features in ``features``.

    Args:
        features: Encoded features.
        batch_size: Features per batch (the last batch may be smaller).
        shuffle: Shuffle the order with ``numpy.random.default_rng(seed)``.
        seed: Shuffle seed.
        indices: Restrict to these features (default: all).

    Raises:
        ValueError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.arange(len(features)) if indices is None else np.asarray(indices)
    if shuffle:
        order = np.random.default_rng(seed).permutation(order)
    ragged = [c for c in features.columns if c in _PAD_VALUES]
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        length = max(len(features.columns["input_ids"][i]) for i in idx)
        batch: dict[str, np.ndarray] = {"index": idx.astype(np.int32)}
        for col in ragged:
            fill = features.pad_id if _PAD_VALUES[col] is None else _PAD_VALUES[col]
            arr = np.full((len(idx), length), fill, np.int32)
            for r, i in enumerate(idx):
                v = features.columns[col][i]
                arr[r, : len(v)] = v
            batch[col] = arr
        mask = np.zeros((len(idx), length), np.int32)
        for r, i in enumerate(idx):
            mask[r, : len(features.columns["input_ids"][i])] = 1
        batch["attention_mask"] = mask
        for col in features.columns:
            if col not in _PAD_VALUES:
                batch[col] = np.concatenate([features.columns[col][i] for i in idx]).astype(np.int32)
        yield batch
