"""Continued masked-language-model pretraining of a Keras BERT (``TFBertForMaskedLM``).

Three pieces, each usable alone:

* :func:`build_mlm_corpus` writes a BREATHE-style JSONL corpus (one :class:`~es_biomed.corpus.types.Document` per
  line) from any corpus :func:`~es_biomed.corpus.readers.iter_documents` reads, split into ``train.jsonl`` and
  ``heldout.jsonl`` **by document** (a hash of the document id, so the split does not depend on file order);
* :class:`MlmMasker` masks word pieces as BERT does (Devlin et al., 2019, section 3.1 and Google's
  ``create_pretraining_data.py``): 15% of the non-special tokens of each sequence are chosen, of which 80% become
  ``[MASK]``, 10% a random token and 10% stay unchanged; with ``whole_word=True`` the pieces of a word
  (``play ##ing``) are chosen together (BERT's whole-word masking release);
* :func:`pretrain_mlm` trains with AdamW, linear warm-up and decay (``transformers.create_optimizer``, the BERT
  recipe) and reports the held-out MLM loss before and after, on the same fixed masks.

The MLM loss is computed on the masked positions only (the hidden states are gathered before the output layer,
as Google BERT's ``max_predictions_per_seq`` does), which makes a CPU step several times cheaper than scoring
every position against the whole vocabulary.

Example:
    >>> from es_biomed.train.tf import load_bert
    >>> from es_biomed.train.tf.mlm import MlmConfig, encode_documents, pretrain_mlm, read_jsonl_texts
    >>> model, tok = load_bert("all-MiniLM-L6-v2", for_mlm=True)  # doctest: +SKIP
    >>> train = encode_documents(tok, read_jsonl_texts("corpus/train.jsonl"), max_seq_length=128)  # doctest: +SKIP
    >>> held = encode_documents(tok, read_jsonl_texts("corpus/heldout.jsonl"), max_seq_length=128)  # doctest: +SKIP
    >>> result = pretrain_mlm(model, tok, train, held, MlmConfig(max_steps=100))  # doctest: +SKIP
    >>> result.heldout_loss_before > result.heldout_loss_after  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import EsBiomedError, RecordError, require

__all__ = [
    "IGNORE_INDEX",
    "PRESETS",
    "CorpusStats",
    "MlmConfig",
    "MlmMasker",
    "MlmResult",
    "build_mlm_corpus",
    "encode_documents",
    "evaluate_mlm",
    "mlm_loss",
    "pretrain_mlm",
    "read_jsonl_texts",
    "seed_everything",
    "set_mixed_precision",
    "transfer_encoder_weights",
]

logger = logging.getLogger(__name__)

#: Label of positions that are not predicted.
IGNORE_INDEX = -100


# -- corpus ------------------------------------------------------------------------------------------------------


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


# -- masking -----------------------------------------------------------------------------------------------------


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


# -- training ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlmConfig:
    """Continued-pretraining settings; saved next to the results.

    The defaults are the CPU configuration. For a GPU, raise ``batch_size`` (256 fits MiniLM-L6 at 128 tokens
    in 16 GiB), set ``mixed_precision=True`` and ``learning_rate`` about 1e-4 (see ``training/README.md``).
    """

    max_seq_length: int = 128
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    #: Steps to train; ``None``: one pass over the training sequences.
    max_steps: int | None = None
    #: Stop early after this many seconds of training (the schedule still assumes ``max_steps``).
    time_budget_s: float | None = None
    mlm_probability: float = 0.15
    whole_word: bool = False
    max_predictions: int | None = 20
    #: Float16 compute with loss scaling (``tf.keras.mixed_precision``); GPU only. Call
    #: :func:`set_mixed_precision` *before* building the model.
    mixed_precision: bool = False
    #: Train only the masked-LM head's transform and output bias (encoder and tied word embeddings frozen): the
    #: baseline that separates learning a fresh head from adapting the encoder.
    head_only: bool = False
    eval_batch_size: int = 64
    seed: int = 42
    #: Log the training loss every this many steps.
    log_every: int = 50

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named configurations. ``cpu``: what runs on a 2-core machine in minutes. ``gpu``: one A100/H100-class GPU,
#: float16 compute with dynamic loss scaling, the batch size of BERT's own pretraining (256) and a learning rate
#: for it; not run in this repository's recorded results (no GPU was available).
PRESETS: dict[str, MlmConfig] = {
    "cpu": MlmConfig(),
    "gpu": MlmConfig(batch_size=256, learning_rate=1e-4, mixed_precision=True, eval_batch_size=512, log_every=20),
}


@dataclass
class MlmResult:
    """What :func:`pretrain_mlm` measured."""

    heldout_loss_before: float
    heldout_loss_after: float
    heldout_sequences: int
    heldout_predictions: int
    steps: int
    train_examples: int
    train_seconds: float
    examples_per_s: float
    #: Examples per second after the first (tracing) step.
    steady_examples_per_s: float
    stopped_by: str
    train_loss_first: float
    train_loss_last: float
    loss_log: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["heldout_perplexity_before"] = math.exp(min(self.heldout_loss_before, 50.0))
        out["heldout_perplexity_after"] = math.exp(min(self.heldout_loss_after, 50.0))
        return out


def set_mixed_precision(enabled: bool) -> None:
    """Switch the Keras global dtype policy used by transformers' TF models (``mixed_float16`` or ``float32``).

    Must run before the model is built (before :func:`~es_biomed.train.tf.bert.load_bert`).
    """
    keras = _keras()
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight initialisation, dropout) through Keras."""
    _keras().utils.set_random_seed(seed)


def _keras() -> Any:
    require("tensorflow", "tf")
    from transformers.modeling_tf_utils import keras

    return keras


def mlm_loss(model: Any, input_ids: Any, labels: Any, *, training: bool) -> tuple[Any, Any]:
    """Summed cross-entropy over the labelled positions of a batch, and their count.

    Hidden states of the labelled positions are gathered before ``model.mlm`` (the transform and the
    tied output layer), so only those positions are scored against the vocabulary.

    Args:
        model: ``TFBertForMaskedLM``.
        input_ids: int32 ``[batch, seq]`` masked ids (padding is the tokenizer's pad id, attended to never).
        labels: int32 ``[batch, seq]``; :data:`IGNORE_INDEX` where nothing is predicted.
        training: Dropout on.

    Returns:
        ``(loss_sum, count)`` as float32 scalars.
    """
    import tensorflow as tf

    pad_id = model.config.pad_token_id or 0
    attention_mask = tf.cast(tf.not_equal(input_ids, pad_id), tf.int32)
    hidden = model.bert(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=tf.zeros_like(input_ids),
        training=training,
    ).last_hidden_state
    where = tf.where(tf.not_equal(labels, IGNORE_INDEX))
    picked = tf.gather_nd(hidden, where)[None]  # [1, n, hidden]
    logits = tf.cast(model.mlm(picked, training=training)[0], tf.float32)  # [n, vocab]
    targets = tf.gather_nd(labels, where)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.reduce_sum(losses), tf.cast(tf.size(targets), tf.float32)


def _masked_batches(
    masker: MlmMasker, ids: np.ndarray, batch_size: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [masker(ids[i : i + batch_size], rng) for i in range(0, len(ids), batch_size)]


def evaluate_mlm(
    model: Any,
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[float, int]:
    """Mean MLM cross-entropy (nats per predicted token) over fixed masked batches, and the prediction count."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def step(input_ids: Any, labels: Any) -> tuple[Any, Any]:
        return mlm_loss(model, input_ids, labels, training=False)

    total, count = 0.0, 0.0
    for inputs, labels in batches:
        loss_sum, n = step(tf.constant(inputs), tf.constant(labels))
        total += float(loss_sum)
        count += float(n)
    if not count:
        raise EsBiomedError("no predicted positions in the evaluation batches (empty held-out set?)")
    return total / count, int(count)


def pretrain_mlm(
    model: Any,
    tokenizer: Any,
    train_ids: np.ndarray,
    heldout_ids: np.ndarray,
    config: MlmConfig | None = None,
) -> MlmResult:
    """Continue MLM pretraining of ``model`` in place; held-out loss before and after on the same masks.

    Args:
        model: ``TFBertForMaskedLM`` (``load_bert(..., for_mlm=True)``). With ``config.mixed_precision`` it must
            have been built under :func:`set_mixed_precision`.
        tokenizer: Its tokenizer (masking ids).
        train_ids: ``[n, seq]`` sequences from :func:`encode_documents`; shuffled each epoch.
        heldout_ids: Held-out sequences; masked once with a fixed seed.
        config: Settings; defaults to :class:`MlmConfig` ().

    Returns:
        Losses, throughput and the training-loss log.

    Raises:
        EsBiomedError: No training or held-out sequences.
    """
    import tensorflow as tf

    transformers: Any = require("transformers", "tf")
    config = config or MlmConfig()
    if not len(train_ids) or not len(heldout_ids):
        raise EsBiomedError(f"need training and held-out sequences, got {len(train_ids)} and {len(heldout_ids)}")
    masker = MlmMasker(
        tokenizer,
        mlm_probability=config.mlm_probability,
        whole_word=config.whole_word,
        max_predictions=config.max_predictions,
    )
    held_batches = _masked_batches(masker, heldout_ids, config.eval_batch_size, config.seed + 1)
    loss_before, n_pred = evaluate_mlm(model, held_batches)
    logger.info("held-out MLM loss before: %.4f over %d predictions", loss_before, n_pred)

    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    total_steps = config.max_steps or steps_per_epoch
    optimizer, _ = transformers.create_optimizer(
        init_lr=config.learning_rate,
        num_train_steps=total_steps,
        num_warmup_steps=int(config.warmup_fraction * total_steps),
        weight_decay_rate=config.weight_decay,
    )
    if config.mixed_precision:
        optimizer = _keras().mixed_precision.LossScaleOptimizer(optimizer)
    variables = model.mlm.trainable_variables if config.head_only else model.trainable_variables
    if config.head_only:
        embeddings = {id(v) for v in model.bert.embeddings.trainable_variables}
        variables = [v for v in variables if id(v) not in embeddings]  # the tied output matrix stays frozen
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def train_step(input_ids: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            loss_sum, count = mlm_loss(model, input_ids, labels, training=True)
            loss = loss_sum / tf.maximum(count, 1.0)
            scaled = optimizer.get_scaled_loss(loss) if config.mixed_precision else loss
        grads = tape.gradient(scaled, variables)
        if config.mixed_precision:
            grads = optimizer.get_unscaled_gradients(grads)
        grads, _ = tf.clip_by_global_norm(grads, config.max_grad_norm)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    rng = np.random.default_rng(config.seed)
    step, examples, log = 0, 0, []
    stopped_by = "max_steps" if config.max_steps else "epoch"
    first_loss = last_loss = float("nan")
    first_examples = 0
    start = time.perf_counter()
    after_first = start
    while step < total_steps:
        order = rng.permutation(len(train_ids))
        for i in range(0, len(order), config.batch_size):
            if step >= total_steps:
                break
            if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
                stopped_by = "time_budget"
                break
            inputs, labels = masker(train_ids[order[i : i + config.batch_size]], rng)
            last_loss = float(train_step(tf.constant(inputs), tf.constant(labels)))
            step += 1
            examples += len(inputs)
            if step == 1:
                first_loss, after_first = last_loss, time.perf_counter()
                first_examples = examples
            if step % config.log_every == 0 or step == 1:
                log.append((step, last_loss))
                logger.info("step %d/%d loss %.4f", step, total_steps, last_loss)
        if stopped_by == "time_budget":
            break
    seconds = time.perf_counter() - start
    steady_s = time.perf_counter() - after_first
    loss_after, _ = evaluate_mlm(model, held_batches)
    logger.info("held-out MLM loss after %d steps: %.4f", step, loss_after)
    return MlmResult(
        heldout_loss_before=loss_before,
        heldout_loss_after=loss_after,
        heldout_sequences=len(heldout_ids),
        heldout_predictions=n_pred,
        steps=step,
        train_examples=examples,
        train_seconds=seconds,
        examples_per_s=examples / seconds if seconds else 0.0,
        steady_examples_per_s=(examples - first_examples) / steady_s if step > 1 and steady_s else 0.0,
        stopped_by=stopped_by,
        train_loss_first=first_loss,
        train_loss_last=last_loss,
        loss_log=log,
    )


def transfer_encoder_weights(source: Any, target: Any) -> int:
    """Copy the shared encoder weights (``bert/*``) from one Keras BERT into another, by Google BERT name.

    Used to put MLM-trained encoder weights back into a ``TFBertModel`` that keeps its original pooler.

    Returns:
        The number of weights copied.

    Raises:
        EsBiomedError: A target encoder weight has no counterpart of the same shape in ``source``.
    """
    from es_biomed.train.tf.bert import google_name

    src = {google_name(w.name): w for w in source.weights}
    copied = 0
    for weight in target.weights:
        name = google_name(weight.name)
        if not name.startswith("bert/") or name.startswith("bert/pooler/"):
            continue
        if name not in src or src[name].shape != weight.shape:
            raise EsBiomedError(f"source model has no weight {name!r} of shape {weight.shape.as_list()}")
        weight.assign(src[name])
        copied += 1
    return copied
