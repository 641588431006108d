"""The retrieval encoder's forward pass and objective: mean pooling over the Keras BERT and InfoNCE over in-batch and hard negatives (Oord et al. 2018; Karpukhin et al. 2020)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from es_biomed.errors import require
from es_biomed.train.tf.retrieval_config import DEFAULT_SCALE

__all__ = ["info_nce_loss", "mean_pool", "embed"]


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
