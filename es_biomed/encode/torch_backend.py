"""PyTorch backend: a Hugging Face / sentence-transformers model directory, loaded offline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from es_biomed.encode.base import Encoder, Pooling, read_pooling_config
from es_biomed.errors import require
from es_biomed.models.files import fingerprint_files

__all__ = ["TorchEncoder"]


class TorchEncoder(Encoder):
    """Transformer encoder on torch (CPU by default), pooling as the model's sentence-transformers config says.

    Args:
        model_dir: Directory with ``config.json``, weights (safetensors or bin) and a tokenizer.
        name: Name recorded in indices; defaults to the directory path.
        max_length: Token limit; defaults to the model's ``sentence_bert_config.json`` or 512.
        pooling: Override the pooling mode.
        device: torch device string.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        name: str | None = None,
        max_length: int | None = None,
        pooling: Pooling | None = None,
        device: str = "cpu",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self._torch = require("torch", "torch")
        transformers = require("transformers", "torch")
        self.model_dir = Path(model_dir)
        cfg_pool, cfg_len = read_pooling_config(self.model_dir)
        self.pooling = pooling or cfg_pool
        self.max_length = int(max_length or cfg_len or 512)
        self.name = name or str(self.model_dir)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
        self.model.eval().to(device)
        self.device = device
        self.dims = int(self.model.config.hidden_size)
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            weights = sorted(self.model_dir.glob("*.safetensors")) or sorted(self.model_dir.glob("pytorch_model*.bin"))
            self._fingerprint = fingerprint_files(
                weights, {"pooling": self.pooling, "max_length": self.max_length, "dims": self.dims}
            )
        return self._fingerprint

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Word-piece ids, attention mask and token types as int64 numpy arrays."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        feats = {k: torch.from_numpy(v).to(self.device) for k, v in self.tokenize(texts).items()}
        with torch.inference_mode():
            tokens = self.model(**feats).last_hidden_state
            mask = feats["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            if self.pooling == "cls":
                pooled = tokens[:, 0]
            elif self.pooling == "max":
                pooled = tokens.masked_fill(mask == 0, -1e9).max(dim=1).values
            else:
                pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()
