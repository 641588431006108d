"""Encoders: text to L2-normalized float32 vectors (torch and TensorFlow backends)."""

from es_biomed.encode.base import Encoder, EncoderInfo
from es_biomed.encode.registry import DEFAULT_ENCODER, known_encoders, load_encoder

__all__ = ["Encoder", "EncoderInfo", "DEFAULT_ENCODER", "known_encoders", "load_encoder"]
