"""Continued MLM pretraining's data: the corpus (deduplicated, with a held-out split), its WordPiece sequences, and the masker."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import RecordError

#: Label of positions that are not predicted.
IGNORE_INDEX = -100

__all__ = ["IGNORE_INDEX", "CorpusStats", "build_mlm_corpus", "read_jsonl_texts", "encode_documents", "MlmMasker"]


@dataclass(frozen=True)
class CorpusStats:
    """What :func:`build_mlm_corpus` wrote."""

    train_docs: int
    heldout_docs: int
    duplicates_skipped: int
    #: Documents written per input (keyed by its file or directory name).
    per_source: dict[str, int]
    train_path: str
    heldout_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _heldout(doc_key: str, fraction: float, seed: int) -> bool:
    """Deterministic per-document coin: ``True`` for about ``fraction`` of the keys."""
    digest = hashlib.sha1(f"{seed}:{doc_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def build_mlm_corpus(
    sources: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    heldout_fraction: float = 0.05,
    seed: int = 42,
) -> CorpusStats:
    """Write a BREATHE-style JSONL pretraining corpus with a held-out split by document.

    Documents with the same text (title, abstract and body, whitespace-normalised) are written once, under the first
    source that has them. Empty records are rejected by the readers (:class:`~es_biomed.errors.RecordError`).

    Args:
        sources: Corpus files or directories in any format :func:`~es_biomed.corpus.readers.iter_documents`
            reads (BEIR, BREATHE, CORD-19 ``metadata.csv``, BioASQ SQuAD JSON: its deduplicated contexts).
        out_dir: Output directory; receives ``train.jsonl``, ``heldout.jsonl`` and ``stats.json``.
        heldout_fraction: Share of documents held out (decided per document by a hash of the source's file name
            and the document id).
        seed: Changes which documents are held out.

    Returns:
        The counts written.

    Raises:
        ValueError: ``heldout_fraction`` is not in ``(0, 1)``.
        RecordError: A source holds a malformed record (named by file and line).
    """
    from es_biomed.corpus.readers import iter_documents

    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    train_path, heldout_path = out / "train.jsonl", out / "heldout.jsonl"
    seen: set[str] = set()
    counts = {"train": 0, "heldout": 0, "duplicates": 0}
    per_source: dict[str, int] = {}
    with train_path.open("w", encoding="utf-8") as train_fh, heldout_path.open("w", encoding="utf-8") as held_fh:
        for src in sources:
            src_name = Path(src).name
            for doc in iter_documents(src):
                text = " ".join(" ".join((doc.title, doc.abstract, doc.body)).split())
                key = hashlib.sha1(text.encode("utf-8")).hexdigest()
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                record = doc.to_json()
                record["source"] = record.get("source") or src_name
                split = "heldout" if _heldout(f"{src_name}:{doc.id}", heldout_fraction, seed) else "train"
                (held_fh if split == "heldout" else train_fh).write(json.dumps(record, ensure_ascii=False) + "\n")
                counts[split] += 1
                per_source[src_name] = per_source.get(src_name, 0) + 1
    stats = CorpusStats(
        train_docs=counts["train"],
        heldout_docs=counts["heldout"],
        duplicates_skipped=counts["duplicates"],
        per_source=per_source,
        train_path=str(train_path),
        heldout_path=str(heldout_path),
    )
    (out / "stats.json").write_text(
        json.dumps({**stats.to_dict(), "heldout_fraction": heldout_fraction, "seed": seed}, indent=2) + "\n"
    )
    return stats


def read_jsonl_texts(path: str | os.PathLike[str], *, limit: int | None = None) -> list[str]:
    """Texts (title, abstract and body joined) of a BREATHE JSONL corpus file.

    Raises:
        RecordError: A line is not a JSON object with at least one of ``title``, ``abstract``, ``body``, ``text``.
    """
    texts: list[str] = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if limit is not None and len(texts) >= limit:
                break
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise RecordError(str(path), lineno, "(record)", f"malformed JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise RecordError(str(path), lineno, "(record)", "expected a JSON object")
            parts = [obj.get(k) for k in ("title", "abstract", "text", "body")]
            text = " ".join(p for p in parts if isinstance(p, str) and p.strip())
            if not text:
                raise RecordError(str(path), lineno, "abstract", "no text in title/abstract/text/body")
            texts.append(text)
    return texts


def encode_documents(tokenizer: Any, texts: Iterable[str], *, max_seq_length: int = 128) -> np.ndarray:
    """Cut documents into ``[CLS] pieces [SEP]`` sequences of at most ``max_seq_length`` tokens.

    Each document is tokenised whole and split into consecutive chunks, so no text is dropped; every sequence
    holds tokens of one document only. Chunks are right-padded with the pad id.

    Returns:
        int32 array ``[n_sequences, max_seq_length]``.

    Raises:
        ValueError: ``max_seq_length`` < 3.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
    body = max_seq_length - 2
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows: list[list[int]] = []
    texts = list(texts)
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        encoded = tokenizer(batch, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        for ids in encoded:
            for i in range(0, len(ids), body):
                chunk = ids[i : i + body]
                if chunk:
                    rows.append([cls_id, *chunk, sep_id])
    out = np.full((len(rows), max_seq_length), pad_id, dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class MlmMasker:
    """BERT masking of word-piece id batches (Devlin et al., 2019; Google ``create_pretraining_data.py``).

    For each sequence, ``max(1, round(p * n))`` of its ``n`` non-special tokens are chosen (at most
    ``max_predictions``), in random order of candidate words; a word that would overshoot the count is skipped.
    Each chosen position becomes ``[MASK]`` with probability 0.8, a random non-special token with 0.1, and stays
    unchanged with 0.1; its label is the original id. Other positions are labelled :data:`IGNORE_INDEX`.

    Args:
        tokenizer: ``BertTokenizerFast``; gives the ``[MASK]`` id, the special ids and the ``##`` pieces.
        mlm_probability: Share of tokens predicted (0.15 in BERT).
        whole_word: Choose all pieces of a word together (a piece starting with ``##`` continues the word).
        max_predictions: Cap on predicted tokens per sequence (``max_predictions_per_seq``); ``None``: no cap.

    Example:
        >>> masker = MlmMasker(tokenizer, whole_word=True)  # doctest: +SKIP
        >>> inputs, labels = masker(batch_ids, np.random.default_rng(0))  # doctest: +SKIP
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        mlm_probability: float = 0.15,
        whole_word: bool = False,
        max_predictions: int | None = None,
    ) -> None:
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        self.mlm_probability = mlm_probability
        self.whole_word = whole_word
        self.max_predictions = max_predictions
        vocab: dict[str, int] = tokenizer.get_vocab()
        size = max(vocab.values()) + 1
        self.mask_id = int(tokenizer.mask_token_id)
        self.special = np.zeros(size, dtype=bool)
        self.special[[int(i) for i in tokenizer.all_special_ids]] = True
        self.continuation = np.zeros(size, dtype=bool)
        for token, idx in vocab.items():
            if token.startswith("##"):
                self.continuation[idx] = True
        self.random_pool = np.flatnonzero(~self.special)

    def words(self, ids: np.ndarray) -> list[list[int]]:
        """Candidate units of one sequence: lists of positions (one per word piece, or per word if whole-word)."""
        units: list[list[int]] = []
        for pos, tok in enumerate(ids.tolist()):
            if self.special[tok]:
                continue
            if self.whole_word and units and self.continuation[tok] and units[-1][-1] == pos - 1:
                units[-1].append(pos)
            else:
                units.append([pos])
        return units

    def __call__(self, input_ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Mask a ``[batch, seq]`` id array.

        Returns:
            ``(masked_input_ids, labels)``, both int32 ``[batch, seq]``.
        """
        inputs = np.array(input_ids, dtype=np.int32, copy=True)
        labels = np.full(inputs.shape, IGNORE_INDEX, dtype=np.int32)
        for row in range(inputs.shape[0]):
            units = self.words(inputs[row])
            n_tokens = sum(len(u) for u in units)
            if not n_tokens:
                continue
            target = max(1, int(round(n_tokens * self.mlm_probability)))
            if self.max_predictions is not None:
                target = min(target, self.max_predictions)
            chosen: list[int] = []
            for k in rng.permutation(len(units)).tolist():
                if len(chosen) >= target:
                    break
                if len(chosen) + len(units[k]) > target:
                    continue
                chosen.extend(units[k])
            for pos in chosen:
                labels[row, pos] = inputs[row, pos]
                roll = rng.random()
                if roll < 0.8:
                    inputs[row, pos] = self.mask_id
                elif roll >= 0.9:
                    inputs[row, pos] = int(rng.choice(self.random_pool))
        return inputs, labels
