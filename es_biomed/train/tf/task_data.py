"""Fine-tuning data for the BioMedBERT paper's tasks, for the TensorFlow trainer: WordPiece encoding and batching.

The examples come from the framework-neutral readers of :mod:`es_biomed.corpus.tasks`. Encoders turn examples into :class:`Features` (ragged token ids, padded per batch by :func:`iter_batches`):

* :func:`encode_ner`: the first WordPiece of each word carries the word's tag, the other pieces and the special
  tokens get :data:`IGNORE_INDEX`. Sentences longer than ``max_length`` pieces are cut into consecutive word
  chunks (no word is dropped); :func:`decode_ner` stitches the chunks' predictions back into one tag per word.
* :func:`encode_re`: ``[CLS] sentence [SEP]`` truncated to ``max_length``; the entity markers ``@GENE$`` and
  ``@DISEASE$`` are kept as BioBERT keeps them.
* :func:`encode_squad`: ``[CLS] question [SEP] context [SEP]`` windows over long contexts (``doc_stride``); the
  label is the answer's first/last token, or ``(0, 0)`` (``[CLS]``) in a window that does not hold the answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from es_biomed.corpus.tasks import BIO_TAGS, NerSentence, QaExample, ReExample
from es_biomed.errors import EsBiomedError

__all__ = ["IGNORE_INDEX", "Features", "decode_ner", "encode_ner", "encode_re", "encode_squad", "iter_batches"]

#: Label of positions that take no part in the loss or the metrics (Keras/PyTorch convention).
IGNORE_INDEX = -100


# -- records ------------------------------------------------------------------------------------------------------


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


#: Hex SHA-256 of a file's bytes (recorded beside results so a run names the exact data it used).


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
