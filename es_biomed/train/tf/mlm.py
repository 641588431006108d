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

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from es_biomed.errors import EsBiomedError, require
from es_biomed.train.tf.mlm_data import IGNORE_INDEX, MlmMasker

__all__ = [
    "IGNORE_INDEX",
    "PRESETS",
    "MlmConfig",
    "MlmResult",
    "evaluate_mlm",
    "mlm_loss",
    "pretrain_mlm",
    "seed_everything",
    "set_mixed_precision",
    "transfer_encoder_weights",
]

logger = logging.getLogger(__name__)


# -- corpus ------------------------------------------------------------------------------------------------------


# -- masking -----------------------------------------------------------------------------------------------------


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
