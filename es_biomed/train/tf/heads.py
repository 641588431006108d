"""Fine-tuning heads on the Keras BERT (``transformers.TFBertModel``), a seeded training loop and span decoding.

Heads (as in BERT/BioBERT fine-tuning, Devlin et al. 2019; Lee et al. 2020):

* ``"token"``: token classification (NER, BIO tags): dropout + dense layer on every token's last hidden state.
  Loss: cross-entropy over positions whose label is not :data:`~es_biomed.train.tf.task_data.IGNORE_INDEX`.
* ``"sequence"``: sequence classification (RE, binary): dropout + dense layer on BERT's pooled ``[CLS]`` output.
* ``"span"``: span extraction (QA): a dense layer giving start and end logits per token. Padding positions are
  masked out; loss is the mean of the start and end cross-entropies.

Training (:func:`fit`) is AdamW with linear warm-up then linear decay, global-norm gradient clipping, bias and
LayerNorm weights excluded from weight decay, over padded-per-batch :class:`~es_biomed.train.tf.task_data.Features`.

Example:
    >>> from es_biomed.train.tf.bert import load_bert
    >>> from es_biomed.train.tf.heads import TrainConfig, build_head, fit, predict
    >>> bert, tokenizer = load_bert("all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> model = build_head(bert, "token", num_labels=3)  # doctest: +SKIP
    >>> report = fit(model, features, TrainConfig(epochs=1, batch_size=32))  # doctest: +SKIP
    >>> logits = predict(model, features)  # one [tokens, 3] array per feature  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from es_biomed.corpus.tasks import QaExample
from es_biomed.errors import EsBiomedError, require
from es_biomed.qa.answers import bioasq_normalize
from es_biomed.qa.spans import best_spans
from es_biomed.train.tf.task_data import IGNORE_INDEX, Features, iter_batches

__all__ = [
    "HeadKind",
    "TrainConfig",
    "TrainReport",
    "build_head",
    "fit",
    "predict",
    "rank_answers",
]

logger = logging.getLogger(__name__)

HeadKind = Literal["token", "sequence", "span"]
_LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "token": ("labels",),
    "sequence": ("label",),
    "span": ("start_positions", "end_positions"),
}
_NEG = -1e4  # logit given to padding positions of the span head


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters.

    Attributes:
        epochs: Passes over the training features.
        batch_size: Features per step.
        learning_rate: Peak learning rate.
        warmup_fraction: Share of the steps spent warming up linearly from 0 to ``learning_rate``.
        weight_decay: Decoupled weight decay (AdamW); not applied to biases and LayerNorm weights.
        max_grad_norm: Gradients are clipped to this global norm.
        seed: Seed for weight init of the head, dropout and the shuffling of each epoch.
        max_steps: Stop after this many steps (throughput probes); ``None`` runs every epoch. The schedule
            is sized on the smaller of the two.
        bucket: Shuffle, then sort by length within windows of ``bucket`` batches, so each batch pads less
            (batches are shuffled again afterwards). ``0`` disables it.
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    max_steps: int | None = None
    bucket: int = 50

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainReport:
    """What :func:`fit` did.

    Attributes:
        steps: Optimizer steps taken.
        examples: Features seen (counting repeats over epochs).
        seconds: Wall time of the whole loop.
        examples_per_s: Training throughput, measured after the first step (which includes tracing).
        tokens_per_s: Unpadded tokens per second, same window.
        losses: Mean loss of each logging interval, in order.
    """

    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    examples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tf_keras() -> tuple[Any, Any]:
    """TensorFlow and the Keras 2 (``tf_keras``) that transformers' TF models are built with."""
    tf = require("tensorflow", "tf")
    require("transformers", "tf")
    from transformers.modeling_tf_utils import keras

    return tf, keras


_CLASSES: dict[str, Any] = {}


def _classes() -> dict[str, Any]:
    """Define the Keras classes once TensorFlow is imported (keeps ``import es_biomed`` light)."""
    if _CLASSES:
        return _CLASSES
    tf, keras = _tf_keras()

    class BertTaskModel(keras.Model):  # type: ignore[misc, name-defined]
        """A ``TFBertModel`` with one task head; ``call`` takes a batch dict and returns the logits."""

        def __init__(
            self, bert: Any, kind: str, num_labels: int, dropout: float, initializer_range: float, seed: int
        ) -> None:
            super().__init__(name=f"bert_{kind}_model")
            self.bert = bert
            self.kind = kind
            self.num_labels = num_labels
            self.dropout = keras.layers.Dropout(dropout, seed=seed)
            self.head = keras.layers.Dense(
                2 if kind == "span" else num_labels,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range, seed=seed),
                name=f"{kind}_head",
            )

        def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
            out = self.bert(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                token_type_ids=inputs["token_type_ids"],
                training=training,
            )
            if self.kind == "sequence":
                return self.head(self.dropout(out.pooler_output, training=training))
            logits = self.head(self.dropout(out.last_hidden_state, training=training))
            if self.kind == "span":
                keep = tf.cast(inputs["attention_mask"], tf.bool)[:, :, None]
                logits = tf.where(keep, logits, tf.constant(_NEG, logits.dtype))
            return logits

        def task_loss(self, batch: dict[str, Any], logits: Any) -> Any:
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits
            if self.kind == "token":
                labels = batch["labels"]
                keep = tf.not_equal(labels, IGNORE_INDEX)
                losses = ce(labels=tf.where(keep, labels, 0), logits=logits)
                keep_f = tf.cast(keep, losses.dtype)
                return tf.reduce_sum(losses * keep_f) / tf.maximum(tf.reduce_sum(keep_f), 1.0)
            if self.kind == "sequence":
                return tf.reduce_mean(ce(labels=batch["label"], logits=logits))
            start = ce(labels=batch["start_positions"], logits=logits[:, :, 0])
            end = ce(labels=batch["end_positions"], logits=logits[:, :, 1])
            return tf.reduce_mean((start + end) / 2.0)

    class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc, name-defined]
        """Linear warm-up from 0 to ``peak`` over ``warmup`` steps, then linear decay to 0 at ``total``."""

        def __init__(self, peak: float, warmup: int, total: int) -> None:
            self.peak, self.warmup, self.total = float(peak), int(warmup), int(total)

        def __call__(self, step: Any) -> Any:
            s = tf.cast(step, tf.float32)
            up = self.peak * s / float(max(1, self.warmup))
            down = self.peak * tf.maximum(0.0, float(self.total) - s) / float(max(1, self.total - self.warmup))
            return tf.where(s < float(self.warmup), up, down)

        def get_config(self) -> dict[str, Any]:
            return {"peak": self.peak, "warmup": self.warmup, "total": self.total}

    _CLASSES.update(BertTaskModel=BertTaskModel, WarmupLinear=WarmupLinear)
    return _CLASSES


def build_head(bert: Any, kind: HeadKind, num_labels: int = 2, *, dropout: float | None = None, seed: int = 42) -> Any:
    """Put a task head on a Keras BERT.

    Args:
        bert: A ``transformers.TFBertModel`` (e.g. from :func:`~es_biomed.train.tf.bert.load_bert`).
        kind: ``"token"`` (NER), ``"sequence"`` (RE) or ``"span"`` (QA).
        num_labels: Classes of a token or sequence head (ignored for ``"span"``: start and end).
        dropout: Dropout before the head; defaults to ``bert.config.hidden_dropout_prob``.
        seed: Seed of the head's weight initialisation and its dropout.

    Returns:
        A Keras model. ``model(batch)`` takes a dict with ``input_ids``, ``attention_mask`` and
        ``token_type_ids`` (``int32 [batch, seq]``) and returns logits ``[batch, seq, num_labels]`` (token),
        ``[batch, num_labels]`` (sequence) or ``[batch, seq, 2]`` (span: start, end).

    Raises:
        EsBiomedError: unknown ``kind`` or ``num_labels < 2``.
    """
    if kind not in _LABEL_COLUMNS:
        raise EsBiomedError(f"unknown head kind {kind!r}; expected one of {sorted(_LABEL_COLUMNS)}")
    if kind != "span" and num_labels < 2:
        raise EsBiomedError(f"num_labels must be >= 2 for a {kind} head, got {num_labels}")
    cfg = bert.config
    rate = float(cfg.hidden_dropout_prob if dropout is None else dropout)
    model = _classes()["BertTaskModel"](bert, kind, num_labels, rate, float(cfg.initializer_range), seed)
    one = np.array([[1, 1]], np.int32)
    model({"input_ids": one, "attention_mask": one, "token_type_ids": one * 0})  # build the weights
    return model


def _signature(tf: Any, kind: str) -> dict[str, Any]:
    mat = tf.TensorSpec([None, None], tf.int32)
    vec = tf.TensorSpec([None], tf.int32)
    spec = {"input_ids": mat, "attention_mask": mat, "token_type_ids": mat}
    for col in _LABEL_COLUMNS[kind]:
        spec[col] = mat if kind == "token" else vec
    return spec


def _feed(batch: dict[str, np.ndarray], kind: str, with_labels: bool) -> dict[str, np.ndarray]:
    cols = ["input_ids", "attention_mask", "token_type_ids"] + (list(_LABEL_COLUMNS[kind]) if with_labels else [])
    return {c: batch[c] for c in cols}


def fit(
    model: Any,
    features: Features,
    config: TrainConfig | None = None,
    *,
    log_every: int = 50,
    compiled: bool = True,
) -> TrainReport:
    """Fine-tune ``model`` (from :func:`build_head`) on ``features``.

    Args:
        model: The model with its head.
        features: Training features with the head's label columns (``labels``; ``label``; ``start_positions``
            and ``end_positions``).
        config: Hyper-parameters (default :class:`TrainConfig`).
        log_every: Log (``logging.INFO``) and record the mean loss every this many steps.
        compiled: Run the training step as a ``tf.function`` (traced once, then fast). ``False`` runs it
            eagerly, which is quicker for a handful of steps on a tiny model (tests) and easier to debug.

    Returns:
        A :class:`TrainReport`.

    Raises:
        EsBiomedError: ``features`` lacks the head's label columns or is empty.
    """
    config = config or TrainConfig()
    tf, keras = _tf_keras()
    missing = [c for c in _LABEL_COLUMNS[model.kind] if c not in features.columns]
    if missing or not len(features):
        raise EsBiomedError(f"{model.kind} head needs non-empty features with columns {missing or 'any'}")
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    schedule = _classes()["WarmupLinear"](config.learning_rate, int(config.warmup_fraction * total), total)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay, epsilon=1e-6, beta_1=0.9, beta_2=0.999
    )
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "layer_norm", "bias"])

    def train_step(batch: dict[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            loss = model.task_loss(batch, model(batch, training=True))
        # BERT's pooler gets no gradient under the token and span heads: leave it out
        pairs = [
            (g, v)
            for g, v in zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
            if g is not None
        ]
        grads, _ = tf.clip_by_global_norm([g for g, _ in pairs], config.max_grad_norm)
        optimizer.apply_gradients(zip(grads, [v for _, v in pairs], strict=True))
        return loss

    step = tf.function(train_step, input_signature=[_signature(tf, model.kind)]) if compiled else train_step

    report = TrainReport()
    window: list[float] = []
    t0 = time.perf_counter()
    t_first = t0
    n_after = tok_after = 0
    for epoch in range(config.epochs):
        for batch in _training_batches(features, config, seed=config.seed + epoch):
            if report.steps >= total:
                break
            loss = float(step(_feed(batch, model.kind, True)))
            if not math.isfinite(loss):
                raise EsBiomedError(f"loss became {loss} at step {report.steps + 1}; lower the learning rate")
            report.steps += 1
            report.examples += len(batch["index"])
            if report.steps == 1:
                t_first = time.perf_counter()
            else:
                n_after += len(batch["index"])
                tok_after += int(batch["attention_mask"].sum())
            window.append(loss)
            if len(window) == log_every:
                report.losses.append(float(np.mean(window)))
                logger.info("epoch %d step %d/%d loss %.4f", epoch + 1, report.steps, total, report.losses[-1])
                window = []
    if window:
        report.losses.append(float(np.mean(window)))
    end = time.perf_counter()
    report.seconds = end - t0
    if end > t_first and n_after:
        report.examples_per_s = n_after / (end - t_first)
        report.tokens_per_s = tok_after / (end - t_first)
    return report


def _training_batches(features: Features, config: TrainConfig, seed: int) -> list[dict[str, np.ndarray]]:
    """One epoch of shuffled batches; with ``bucket``, lengths are sorted within windows to cut padding."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(features))
    if config.bucket > 0:
        lengths = np.array([len(x) for x in features.columns["input_ids"]])
        window = config.bucket * config.batch_size
        order = np.concatenate(
            [w[np.argsort(lengths[w], kind="stable")] for w in np.array_split(order, max(1, len(order) // window))]
        )
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    if config.bucket > 0:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return [next(iter_batches(features, len(b), indices=b)) for b in batches]


def predict(model: Any, features: Features, batch_size: int = 64, *, compiled: bool = True) -> list[np.ndarray]:
    """Run the model over ``features`` (batches sorted by length) and return one logits array per feature.

    Args:
        model: A model from :func:`build_head`.
        features: Encoded features (labels, if any, are not used).
        batch_size: Features per forward pass.
        compiled: Run the forward pass as a ``tf.function``; ``False`` runs it eagerly (see :func:`fit`).

    Returns:
        In feature order: ``[tokens, num_labels]`` (token head), ``[num_labels]`` (sequence head) or
        ``[tokens, 2]`` (span head: start, end), with ``tokens`` the feature's unpadded length.
    """
    tf, _ = _tf_keras()
    mat = tf.TensorSpec([None, None], tf.int32)

    def run(batch: dict[str, Any]) -> Any:
        return model(batch, training=False)

    spec = {"input_ids": mat, "attention_mask": mat, "token_type_ids": mat}
    forward = tf.function(run, input_signature=[spec]) if compiled else run

    lengths = np.array([len(x) for x in features.columns["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    out: list[np.ndarray] = [np.empty(0)] * len(features)
    for batch in iter_batches(features, batch_size, indices=order):
        logits = forward(_feed(batch, model.kind, False)).numpy()
        for r, i in enumerate(batch["index"]):
            out[i] = logits[r] if model.kind == "sequence" else logits[r, : lengths[i]]
    return out


def rank_answers(
    examples: Sequence[QaExample],
    features: Features,
    logits: Sequence[np.ndarray],
    *,
    k: int = 5,
    top_n: int = 20,
    max_answer_length: int = 30,
) -> dict[str, list[tuple[str, float]]]:
    """Ranked candidate answers per **question**, pooled over all its contexts and windows.

    Each window contributes its ``top_n`` spans (:func:`~es_biomed.qa.spans.best_spans`) as context substrings; spans start and end
    on word boundaries (``features.meta["word_bounds"]``) so no answer cuts a word. Candidates equal
    after BioASQ normalisation (:func:`~es_biomed.qa.answers.bioasq_normalize`) merge, keeping the best
    score and the first surface form seen with it.

    Args:
        examples: The QA examples encoded by :func:`~es_biomed.train.tf.task_data.encode_squad`.
        features: The features it returned.
        logits: :func:`predict` output for them (``[tokens, 2]`` per feature).
        k: Candidates kept per question (BioASQ: 5).
        top_n: Spans per window.
        max_answer_length: Longest span, in tokens.

    Returns:
        ``{question_id: [(answer, score), ...]}`` with at most ``k`` answers, best first.
    """
    pooled: dict[str, dict[str, tuple[float, str]]] = {}
    for f, ei in enumerate(features.example_index):
        ex = examples[ei]
        offsets = features.meta["offsets"][f]
        bounds = features.meta["word_bounds"][f]
        lg = np.asarray(logits[f])
        bucket = pooled.setdefault(ex.question_id, {})
        for s, e, score in best_spans(
            lg[:, 0], lg[:, 1], bounds[:, 0], bounds[:, 1], top_n=top_n, max_answer_length=max_answer_length
        ):
            text = ex.context[int(offsets[s, 0]) : int(offsets[e, 1])].strip()
            key = bioasq_normalize(text)
            if key and (key not in bucket or score > bucket[key][0]):
                bucket[key] = (score, text)
    return {
        q: [(text, score) for score, text in sorted(c.values(), key=lambda t: -t[0])[:k]] for q, c in pooled.items()
    }
