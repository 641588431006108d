"""Contrastive fine-tuning of the Keras BERT as a retrieval encoder (question -> passage), with BM25 hard negatives.

Objective: InfoNCE over cosine similarities, as sentence-transformers' ``MultipleNegativesRankingLoss``
(Henderson et al. 2017, "Efficient Natural Language Response Suggestion for Smart Reply"; Karpukhin et al. 2020,
DPR, for BM25 hard negatives). For a batch of ``B`` (question, positive, hard negatives) examples, every question is
scored against all ``B`` positives and all ``B * n`` hard negatives of the batch::

    S[i, j] = scale * cos(q_i, d_j)          (scale 20 = temperature 0.05)
    loss    = mean_i  -log softmax(S[i])[i]   (column i is question i's own positive)

A column holding a document that is *also* relevant to question ``i`` (the same question twice in a batch, a
context shared by two questions) is masked out of row ``i`` instead of being pushed away.

Embeddings are pooled exactly like the encoders at search time (:mod:`es_biomed.encode.torch_backend`): masked
mean over the last hidden states, then L2 normalization. Hard negatives are mined with the project's own engine:
an :class:`~es_biomed.backends.embedded.index.EmbeddedIndex` over the training corpus (BM25 only, no vectors), searched
with a :class:`~es_biomed.query.plan.SearchPlan` in ``bm25`` mode; documents relevant to the question are skipped.

TensorFlow and transformers are imported inside the functions, so importing this module stays light.

Example:
    >>> from es_biomed.train.tf.retrieval import RetrievalTrainConfig, train_retrieval  # doctest: +SKIP
    >>> result = train_retrieval(examples, positives, RetrievalTrainConfig(max_steps=10))  # doctest: +SKIP
    >>> result.losses[:2]  # doctest: +SKIP
    [0.412, 0.398]
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.corpus.types import RetrievalSet
from es_biomed.errors import EsBiomedError, require
from es_biomed.models.files import sha256_file
from es_biomed.query.plan import SearchPlan
from es_biomed.train.data.mining import build_bm25_index, merge_sets, mine_hard_negatives
from es_biomed.train.data.provenance import (
    META_FILENAME,
    ids_sha256,
    read_training_meta,
    update_training_meta,
    write_training_meta,
)

__all__ = [
    "META_FILENAME",
    "DEFAULT_SCALE",
    "RetrievalTrainConfig",
    "TrainExample",
    "TrainResult",
    "info_nce_loss",
    "mean_pool",
    "embed",
    "build_bm25_index",
    "mine_hard_negatives",
    "merge_sets",
    "build_examples",
    "iter_batches",
    "batch_mask",
    "train_retrieval",
    "sha256_file",
    "ids_sha256",
    "write_training_meta",
    "read_training_meta",
    "update_training_meta",
    "TrainingData",
    "prepare_training_data",
    "train_and_export",
    "export_sentence_transformers",
    "tf_torch_max_abs_diff",
]

logger = logging.getLogger(__name__)

#: sentence-transformers ``MultipleNegativesRankingLoss`` default (temperature 0.05).
DEFAULT_SCALE = 20.0


@dataclass(frozen=True)
class RetrievalTrainConfig:
    """Hyper-parameters of one training run; saved in ``training_meta.json`` beside the weights.

    Args:
        base_model: Registered encoder name or Hugging Face BERT directory (see :func:`~es_biomed.train.tf.load_bert`).
        epochs: Passes over the examples.
        batch_size: Examples per step (each brings a question, its positive and ``hard_negatives`` negatives).
        learning_rate: Peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: Share of the steps with a linear warm-up from 0; the rest decays linearly to 0.
        max_grad_norm: Global-norm gradient clipping (``None``: none).
        scale: Similarity scale of the InfoNCE logits (1 / temperature).
        query_max_length: Token limit of questions.
        doc_max_length: Token limit of documents.
        hard_negatives: BM25 hard negatives per example.
        mining_depth: BM25 hits looked at when mining (positives among them are skipped).
        mining_skip: Non-relevant BM25 hits skipped before taking negatives (guards against unjudged positives).
        seed: Seeds TensorFlow, NumPy and Python; the batch order of epoch ``e`` is a permutation drawn from
            ``numpy.random.default_rng(seed + e)``.
        max_steps: Stop after this many optimizer steps (``None``: all epochs).
        mixed_precision: ``mixed_float16`` compute with dynamic loss scaling (for GPUs; slower on CPU).
    """

    base_model: str = "all-MiniLM-L6-v2"
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    scale: float = DEFAULT_SCALE
    query_max_length: int = 64
    doc_max_length: int = 256
    hard_negatives: int = 1
    mining_depth: int = 30
    mining_skip: int = 0
    seed: int = 42
    max_steps: int | None = None
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "query_max_length", "doc_max_length", "mining_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.hard_negatives < 0 or self.mining_skip < 0:
            raise ValueError("hard_negatives and mining_skip must be >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalTrainConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys raise ``TypeError``)."""
        return cls(**dict(d))


@dataclass(frozen=True)
class TrainExample:
    """One (question, positive, hard negatives) training example."""

    qid: str
    query: str
    pos_id: str
    positive: str
    neg_ids: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()
    #: Batches never mix groups (see :func:`iter_batches`); :func:`build_examples` uses the query id's prefix.
    group: str = ""


@dataclass
class TrainResult:
    """What :func:`train_retrieval` returns.

    Attributes:
        model: The trained ``TFBertModel``.
        tokenizer: Its tokenizer.
        losses: Loss of every step, in order.
        steps: Optimizer steps taken.
        seconds: Wall time of the training loop (tokenization included, model loading excluded).
        examples_per_second: ``steps * batch_size / seconds`` (the last, smaller batch counted as it is).
    """

    model: Any
    tokenizer: Any
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    examples_per_second: float = 0.0
    examples_seen: int = 0


# -- objective -------------------------------------------------------------------------------------------------


def info_nce_loss(similarity: Any, scale: float = DEFAULT_SCALE, mask: Any = None) -> Any:
    """InfoNCE with in-batch negatives: row ``i`` of ``similarity`` has its positive in column ``i``.

    Args:
        similarity: ``[B, C]`` cosine similarities (``C >= B``: the ``B`` positives, then any hard negatives).
        scale: Logit scale (1 / temperature).
        mask: Optional boolean ``[B, C]``; ``False`` removes a column from a row's softmax (the diagonal is
            always kept).

    Returns:
        Scalar float32 tensor: mean over rows of ``-log softmax(scale * similarity[i])[i]``.

    Example:
        >>> round(float(info_nce_loss([[0.5, 0.1], [0.2, 0.4]], scale=20.0)), 5)  # (log(1+e^-8) + log(1+e^-4)) / 2
        0.00924
    """
    tf = require("tensorflow", "tf")
    sim = tf.cast(tf.convert_to_tensor(similarity), tf.float32)
    logits = scale * sim
    rows = tf.shape(logits)[0]
    labels = tf.range(rows)
    if mask is not None:
        keep = tf.logical_or(
            tf.convert_to_tensor(mask, dtype=tf.bool), tf.eye(rows, tf.shape(logits)[1], dtype=tf.bool)
        )
        logits = tf.where(keep, logits, tf.fill(tf.shape(logits), tf.constant(-1e9, tf.float32)))
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(losses)


def mean_pool(token_vectors: Any, attention_mask: Any) -> Any:
    """Masked mean over the token axis, as the torch encoder pools: ``[b, L, d], [b, L] -> [b, d]``."""
    tf = require("tensorflow", "tf")
    m = tf.cast(attention_mask, token_vectors.dtype)[..., None]
    return tf.reduce_sum(token_vectors * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1e-9)


def embed(model: Any, features: Mapping[str, Any], training: bool = False) -> Any:
    """Mean-pooled, L2-normalized float32 embeddings of tokenized texts (``input_ids``, ``attention_mask``...)."""
    tf = require("tensorflow", "tf")
    out = model(**features, training=training).last_hidden_state
    pooled = tf.cast(mean_pool(out, features["attention_mask"]), tf.float32)
    return tf.math.l2_normalize(pooled, axis=-1, epsilon=1e-12)


# -- data ------------------------------------------------------------------------------------------------------


def build_examples(
    ds: RetrievalSet,
    negatives: Mapping[str, Sequence[str]] | None = None,
    exclude_docs: Collection[str] = (),
    n: int | None = None,
) -> list[TrainExample]:
    """One example per relevant (question, document) pair of ``ds``, in sorted (qid, doc id) order.

    Args:
        ds: Queries, corpus and qrels (grades > 0 are positives).
        negatives: ``{qid: negative doc ids}`` from :func:`mine_hard_negatives`.
        exclude_docs: Documents never used as positives or negatives (e.g. contexts of held-out questions).
        n: Negatives per example; examples with fewer mined negatives are dropped (``None``: all there are).

    Raises:
        EsBiomedError: a qrel or negative names a document missing from the corpus.
    """
    excluded = set(exclude_docs)
    examples = []
    for qid in sorted(ds.queries):
        negs = [d for d in (negatives or {}).get(qid, []) if d not in excluded]
        if n is not None:
            if len(negs) < n:
                continue
            negs = negs[:n]
        for doc_id in sorted(ds.qrels.get(qid, {})):
            if ds.qrels[qid][doc_id] <= 0 or doc_id in excluded:
                continue
            for d in (doc_id, *negs):
                if d not in ds.corpus:
                    raise EsBiomedError(f"question {qid!r}: document {d!r} is not in the corpus")
            examples.append(
                TrainExample(
                    qid=qid,
                    query=ds.queries[qid],
                    pos_id=doc_id,
                    positive=ds.corpus[doc_id].text,
                    neg_ids=tuple(negs),
                    negatives=tuple(ds.corpus[d].text for d in negs),
                    group=qid.split(":", 1)[0] if ":" in qid else "",
                )
            )
    return examples


def iter_batches(
    examples: Sequence[TrainExample], batch_size: int, seed: int, epoch: int
) -> Iterator[list[TrainExample]]:
    """Batches of one epoch; each batch holds examples of one ``group`` only (one data set: similar lengths, so
    little padding, and in-domain in-batch negatives).

    With ``rng = numpy.random.default_rng(seed + epoch)``: the examples of each group (groups in sorted order) are
    permuted and cut into batches, then the batches are permuted.
    """
    rng = np.random.default_rng(seed + epoch)
    batches: list[list[int]] = []
    for group in sorted({ex.group for ex in examples}):
        idx = np.array([i for i, ex in enumerate(examples) if ex.group == group])
        idx = idx[rng.permutation(len(idx))]
        batches.extend(idx[s : s + batch_size].tolist() for s in range(0, len(idx), batch_size))
    for b in rng.permutation(len(batches)):
        yield [examples[i] for i in batches[b]]


def batch_mask(batch: Sequence[TrainExample], positives: Mapping[str, Collection[str]]) -> np.ndarray:
    """Boolean ``[B, B + B*n]``: ``False`` where a column's document is relevant to the row's question but is not
    the row's own positive (columns: the positives in batch order, then every example's negatives)."""
    cols = [ex.pos_id for ex in batch] + [d for ex in batch for d in ex.neg_ids]
    mask = np.ones((len(batch), len(cols)), dtype=bool)
    for i, ex in enumerate(batch):
        rel = positives.get(ex.qid, ())
        for j, doc_id in enumerate(cols):
            if j != i and (doc_id in rel or doc_id == ex.pos_id):
                mask[i, j] = False
    return mask


# -- training --------------------------------------------------------------------------------------------------


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def train_retrieval(
    examples: Sequence[TrainExample],
    positives: Mapping[str, Collection[str]],
    config: RetrievalTrainConfig,
    model: Any = None,
    tokenizer: Any = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Fine-tune a Keras BERT with InfoNCE over in-batch and hard negatives (custom ``GradientTape`` loop).

    Seeded and deterministic on a given machine: from the same starting weights and ``config``, two runs give the
    same losses and weights bit for bit (tested). TensorFlow op determinism is enabled for the whole process (it
    stays on after the call), dropout draws from the seeded global generator, and the batch order is a seeded
    permutation. ``mixed_precision`` sets the process-wide Keras policy to ``mixed_float16``.

    Args:
        examples: Training examples (see :func:`build_examples`).
        positives: ``{qid: relevant doc ids}`` used to mask false in-batch negatives (see :func:`batch_mask`).
        config: Hyper-parameters.
        model: A ``TFBertModel`` to train in place; loaded from ``config.base_model`` when ``None``.
        tokenizer: Its tokenizer (required when ``model`` is given).
        on_step: Called as ``on_step(step, loss, learning_rate)`` after every step.

    Returns:
        A :class:`TrainResult` with the trained model and the loss curve.

    Raises:
        EsBiomedError: no examples, or a model without its tokenizer.
    """
    if not examples:
        raise EsBiomedError("no training examples")
    if (model is None) != (tokenizer is None):
        raise EsBiomedError("pass both model and tokenizer, or neither")
    tf = require("tensorflow", "tf")
    tf_keras = require("tf_keras", "tf")
    tf_keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        tf_keras.mixed_precision.set_global_policy("mixed_float16")
    if model is None:
        from es_biomed.train.tf.bert import load_bert

        model, tokenizer = load_bert(config.base_model)
    steps_per_epoch = sum(1 for _ in iter_batches(examples, config.batch_size, config.seed, 0))
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = int(config.warmup_ratio * total)
    optimizer = tf_keras.optimizers.AdamW(
        learning_rate=_lr_at(0, total, warmup, config.learning_rate),
        weight_decay=config.weight_decay,
        epsilon=1e-6,
        global_clipnorm=config.max_grad_norm,
    )
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "layer_norm", "bias"])
    if config.mixed_precision:
        optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
    spec = tf.TensorSpec([None, None], tf.int32)
    feats = {"input_ids": spec, "attention_mask": spec, "token_type_ids": spec}

    @tf.function(input_signature=[feats, feats, tf.TensorSpec([None, None], tf.bool)], reduce_retracing=True)
    def train_step(q: dict[str, Any], d: dict[str, Any], mask: Any) -> Any:
        with tf.GradientTape() as tape:
            qv = embed(model, q, training=True)
            dv = embed(model, d, training=True)
            loss = info_nce_loss(tf.matmul(qv, dv, transpose_b=True), config.scale, mask)
            scaled = optimizer.get_scaled_loss(loss) if config.mixed_precision else loss
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        if config.mixed_precision:
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    def tok(texts: list[str], max_length: int) -> dict[str, Any]:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        return {k: tf.constant(enc[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}

    result = TrainResult(model=model, tokenizer=tokenizer)
    t0 = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        for batch in iter_batches(examples, config.batch_size, config.seed, epoch):
            if step >= total:
                break
            lr = _lr_at(step, total, warmup, config.learning_rate)
            inner = optimizer.inner_optimizer if config.mixed_precision else optimizer
            inner.learning_rate.assign(lr)
            q = tok([ex.query for ex in batch], config.query_max_length)
            docs = [ex.positive for ex in batch] + [t for ex in batch for t in ex.negatives]
            d = tok(docs, config.doc_max_length)
            loss = float(train_step(q, d, tf.constant(batch_mask(batch, positives))))
            if not math.isfinite(loss):
                raise EsBiomedError(f"loss became {loss} at step {step}; lower the learning rate")
            result.losses.append(loss)
            result.examples_seen += len(batch)
            step += 1
            if on_step is not None:
                on_step(step, loss, lr)
    result.steps = step
    result.seconds = time.perf_counter() - t0
    result.examples_per_second = result.examples_seen / result.seconds if result.seconds else 0.0
    return result


# -- provenance ------------------------------------------------------------------------------------------------


# -- pipeline --------------------------------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Examples ready for :func:`train_retrieval`, with what produced them.

    Attributes:
        examples: The training examples.
        positives: ``{qid: relevant doc ids}`` (ids prefixed by data set, see :func:`merge_sets`).
        dev_ids: BioASQ question ids held out for evaluation (never trained on).
        provenance: Input files with their sha256, split hashes and counts (goes into ``training_meta.json``).
    """

    examples: list[TrainExample]
    positives: dict[str, set[str]]
    dev_ids: list[str]
    provenance: dict[str, Any]


def prepare_training_data(
    bioasq_files: Sequence[str | os.PathLike[str]],
    config: RetrievalTrainConfig,
    scifact_dir: str | os.PathLike[str] | None = None,
    dev_fraction: float = 0.2,
    plan: SearchPlan | None = None,
) -> TrainingData:
    """BioASQ train-split pairs (and optionally SciFact *train* pairs) with BM25 hard negatives.

    The BioASQ questions are split with :func:`~es_biomed.corpus.bioasq.split_by_question`; every pair of a
    train question is an example (the Jaccard rule is an evaluation rule and does not apply here), except pairs
    whose context is also a context of a dev question: dev contexts are never trained on, as positives or
    negatives. SciFact contributes its ``qrels/train.tsv`` pairs only (never the test queries). Negatives are
    mined per data set (a BioASQ question gets BioASQ contexts) in a BM25-only embedded index.

    Args:
        bioasq_files: BioASQ SQuAD training files (7b train).
        config: Supplies ``hard_negatives``, ``mining_depth`` and ``mining_skip``.
        scifact_dir: BEIR SciFact directory, or ``None`` for BioASQ only.
        dev_fraction: Share of BioASQ questions held out.
        plan: BM25 field boosts for mining (default: ``presets.default_plan()``).
    """
    import tempfile

    from es_biomed.corpus.bioasq import load_bioasq, load_bioasq_split, split_by_question
    from es_biomed.query.presets import default_plan

    files = [Path(f) for f in bioasq_files]
    every = load_bioasq(files, None)
    train_ids, dev_ids = split_by_question(every.queries, dev_fraction)
    train = load_bioasq_split(files, train_ids, None)
    dev = load_bioasq_split(files, dev_ids, None)
    sets: dict[str, RetrievalSet] = {"bioasq": train}
    inputs = {str(f): sha256_file(f) for f in files}
    if scifact_dir is not None:
        from es_biomed.corpus.readers import load_beir

        d = Path(scifact_dir)
        sets["scifact"] = load_beir(d, "train")
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
            inputs[str(d / name)] = sha256_file(d / name)
    ds = merge_sets(sets)
    positives = {q: {doc for doc, g in rels.items() if g > 0} for q, rels in ds.qrels.items()}
    with tempfile.TemporaryDirectory(prefix="es-biomed-mining-") as tmp:
        index = build_bm25_index(ds.corpus.values(), Path(tmp) / "bm25")
        negatives = mine_hard_negatives(
            index,
            ds.queries,
            positives,
            plan or default_plan(),
            n=config.hard_negatives,
            depth=config.mining_depth,
            skip=config.mining_skip,
            sources={q: q.split(":", 1)[0] for q in ds.queries},
        )
    excluded = {f"bioasq:{c}" for c in dev.corpus}
    examples = build_examples(ds, negatives, excluded, n=config.hard_negatives)
    per_set = {name: sum(1 for ex in examples if ex.group == name) for name in sets}
    provenance = {
        "inputs_sha256": inputs,
        "split": {
            "method": "es_biomed.corpus.bioasq.split_by_question (sha1 of normalized question text)",
            "dev_fraction": dev_fraction,
            "train_questions": len(train_ids),
            "dev_questions": len(dev_ids),
            "train_question_ids_sha256": ids_sha256(train_ids),
            "dev_question_ids_sha256": ids_sha256(dev_ids),
        },
        "examples": len(examples),
        "examples_per_set": per_set,
        "dev_contexts_excluded": len(excluded & set(ds.corpus)),
        "queries_per_set": {name: len(s.queries) for name, s in sets.items()},
    }
    return TrainingData(examples=examples, positives=positives, dev_ids=dev_ids, provenance=provenance)


def _versions() -> dict[str, str]:
    import platform

    from es_biomed.version import __version__

    out = {"es_biomed": __version__, "python": platform.python_version()}
    for mod in ("tensorflow", "tf_keras", "transformers", "torch"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def train_and_export(
    data: TrainingData,
    config: RetrievalTrainConfig,
    out_dir: str | os.PathLike[str],
    parity_texts: Sequence[str] = (),
    notice: str | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> dict[str, Any]:
    """Train, then save three directories under ``out_dir``, each with ``training_meta.json`` beside the weights.

    * ``tf/``: the Keras model as trained (``tf_model.h5``, see :func:`~es_biomed.train.tf.save_bert`);
    * ``torch-fp32/``: its PyTorch conversion, float32 (the reference for the checks below);
    * ``fp16/``: the shippable sentence-transformers directory, weights stored in float16.

    Checks recorded in the metadata: the largest absolute difference of normalized embeddings of
    ``parity_texts`` between the Keras model and ``torch-fp32`` (``tf_vs_torch_fp32_max_abs_diff``) and
    between ``torch-fp32`` and ``fp16`` loaded as float32 (``fp16_vs_fp32_max_abs_diff``).

    Args:
        data: From :func:`prepare_training_data`.
        config: Hyper-parameters.
        out_dir: Output directory (must not exist or be empty).
        parity_texts: Texts for the parity checks.
        notice: Text of a ``NOTICE`` file written into ``fp16/`` (licenses, data provenance).
        on_step: Passed to :func:`train_retrieval`.

    Returns:
        The metadata written (also in each directory's ``training_meta.json``).
    """
    from es_biomed.encode.torch_backend import TorchEncoder
    from es_biomed.train.tf.bert import save_bert

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise EsBiomedError(f"{out} is not empty; choose a new output directory")
    result = train_retrieval(data.examples, data.positives, config, on_step=on_step)
    losses = result.losses
    head = losses[: min(10, len(losses))]
    tail = losses[-min(10, len(losses)) :]
    meta: dict[str, Any] = {
        "config": config.to_dict(),
        "seed": config.seed,
        "data": data.provenance,
        "training": {
            "steps": result.steps,
            "examples_seen": result.examples_seen,
            "seconds": round(result.seconds, 1),
            "examples_per_second": round(result.examples_per_second, 3),
            "loss_first10_mean": float(np.mean(head)),
            "loss_last10_mean": float(np.mean(tail)),
            "losses": [round(x, 5) for x in losses],
        },
        "metrics": {},
        "versions": _versions(),
    }
    tf_dir = save_bert(result.model, result.tokenizer, out / "tf")
    max_len = int(config.doc_max_length)
    fp32_dir = export_sentence_transformers(tf_dir, out / "torch-fp32", "float32", max_len)
    fp16_dir = export_sentence_transformers(tf_dir, out / "fp16", "float16", max_len)
    if parity_texts:
        fp32 = TorchEncoder(fp32_dir)
        fp16 = TorchEncoder(fp16_dir)
        texts = list(parity_texts)
        meta["checks"] = {
            "parity_texts": len(texts),
            "tf_vs_torch_fp32_max_abs_diff": tf_torch_max_abs_diff(
                result.model, result.tokenizer, fp32, texts, max_len
            ),
            "fp16_vs_fp32_max_abs_diff": float(np.abs(fp16.encode(texts) - fp32.encode(texts)).max()),
            "fp16_loaded_dtype": str(next(fp16.model.parameters()).dtype),
        }
    for d in (tf_dir, fp32_dir, fp16_dir):
        write_training_meta(d, meta)
    if notice:
        (fp16_dir / "NOTICE").write_text(notice)
    return meta


# -- export ----------------------------------------------------------------------------------------------------

_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def export_sentence_transformers(
    tf_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    dtype: str = "float16",
    max_seq_length: int = 256,
) -> Path:
    """Convert a Keras BERT directory (written by :func:`~es_biomed.train.tf.save_bert`) to a PyTorch
    sentence-transformers directory that :func:`es_biomed.encode.load_encoder` loads with the torch backend.

    Writes ``config.json`` and ``model.safetensors`` (weights stored as ``dtype``; ``transformers`` loads them
    back as float32), the tokenizer files, ``modules.json``, ``1_Pooling/config.json`` (mean pooling) and
    ``sentence_bert_config.json``.

    Args:
        tf_dir: Directory with ``config.json``, ``tf_model.h5`` and ``vocab.txt``.
        out_dir: Output directory; must not hold a model already.
        dtype: ``"float16"`` or ``"float32"``.
        max_seq_length: Token limit recorded for the encoder.

    Raises:
        EsBiomedError: ``out_dir`` already holds a model, or ``dtype`` is not supported.
    """
    if dtype not in ("float16", "float32"):
        raise EsBiomedError(f"dtype must be float16 or float32, got {dtype!r}")
    out = Path(out_dir)
    if (out / "config.json").exists():
        raise EsBiomedError(f"{out} already holds a model (config.json); choose a new output directory")
    torch = require("torch", "torch")
    transformers = require("transformers", "torch")
    from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model

    # BertModel.from_pretrained(..., from_tf=True) leaves meta tensors in transformers 4.57: load the h5 explicitly
    model = transformers.BertModel(transformers.BertConfig.from_pretrained(str(tf_dir), local_files_only=True))
    model, info = load_tf2_checkpoint_in_pytorch_model(
        model, str(Path(tf_dir) / "tf_model.h5"), output_loading_info=True
    )
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    if missing or info.get("unexpected_keys"):
        raise EsBiomedError(
            f"{tf_dir}: TensorFlow weights do not match BertModel (missing {missing}, "
            f"unexpected {info.get('unexpected_keys')})"
        )
    model = model.eval().to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok = transformers.BertTokenizerFast.from_pretrained(str(tf_dir), local_files_only=True)
    tok.model_max_length = max_seq_length
    tok.save_pretrained(str(out))
    for name in _TOKENIZER_FILES:
        if not (out / name).exists() and (Path(tf_dir) / name).exists():
            shutil.copy(Path(tf_dir) / name, out / name)
    hidden = int(model.config.hidden_size)
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": hidden,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
        + "\n"
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2) + "\n"
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    return out


def tf_torch_max_abs_diff(
    tf_model: Any, tokenizer: Any, torch_encoder: Any, texts: Sequence[str], max_length: int
) -> float:
    """Largest absolute difference between the Keras model's normalized embeddings and a torch encoder's.

    Args:
        tf_model: The Keras BERT.
        tokenizer: Its tokenizer.
        torch_encoder: An :class:`~es_biomed.encode.Encoder` (e.g. :class:`~es_biomed.encode.torch_backend.TorchEncoder`).
        texts: Texts to embed with both.
        max_length: Token limit for the Keras side (use the torch encoder's ``max_length``).
    """
    tf = require("tensorflow", "tf")
    worst = 0.0
    ref = torch_encoder.encode(list(texts), batch_size=16)
    for start in range(0, len(texts), 16):
        chunk = list(texts[start : start + 16])
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        feats = {k: tf.constant(enc[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
        mine = embed(tf_model, feats).numpy()
        worst = max(worst, float(np.abs(mine - ref[start : start + len(chunk)]).max()))
    return worst
