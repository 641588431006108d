"""Encoders: text to L2-normalized float32 vectors (torch, TensorFlow and ONNX Runtime backends)."""

from es_biomed.encode.base import Encoder, EncoderInfo
from es_biomed.encode.loading import DEFAULT_ENCODER, known_encoders, load_encoder
from es_biomed.encode.onnx_backend import OnnxEncoder, OnnxModelError
from es_biomed.encode.onnx_build import export_onnx

__all__ = [
    "Encoder",
    "EncoderInfo",
    "DEFAULT_ENCODER",
    "OnnxEncoder",
    "OnnxModelError",
    "export_onnx",
    "known_encoders",
    "load_encoder",
]
