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

import logging
import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from es_biomed.errors import EsBiomedError, require
from es_biomed.models.files import sha256_file
from es_biomed.train.data.mining import build_bm25_index, merge_sets, mine_hard_negatives
from es_biomed.train.data.provenance import (
    META_FILENAME,
    ids_sha256,
    read_training_meta,
    update_training_meta,
    write_training_meta,
)
from es_biomed.train.tf.retrieval_config import RetrievalTrainConfig, TrainResult
from es_biomed.train.tf.retrieval_data import (
    TrainExample,
    TrainingData,
    batch_mask,
    iter_batches,
)
from es_biomed.train.tf.retrieval_export import export_sentence_transformers, tf_torch_max_abs_diff
from es_biomed.train.tf.retrieval_objective import embed, info_nce_loss

__all__ = [
    "META_FILENAME",
    "build_bm25_index",
    "mine_hard_negatives",
    "merge_sets",
    "train_retrieval",
    "sha256_file",
    "ids_sha256",
    "write_training_meta",
    "read_training_meta",
    "update_training_meta",
    "train_and_export",
]

logger = logging.getLogger(__name__)


# -- objective -------------------------------------------------------------------------------------------------


# -- data ------------------------------------------------------------------------------------------------------


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
