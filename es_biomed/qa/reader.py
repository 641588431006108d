"""The extractive QA reader: start/end logits over ``[CLS] question [SEP] passage [SEP]`` windows, decoded into
character spans of the passage, with a null (no-answer) score per window.

Windowing is exactly the training encoder's (:func:`~es_biomed.train.tf.task_data.encode_squad`): the question is
cut to ``max_query_length`` WordPieces; a passage longer than the room left is read in token windows that overlap
by ``doc_stride`` pieces. A span starts on a piece that begins a word and ends on a piece that ends one (words as
BERT's pre-tokenizer splits them: punctuation is a word of its own), is at most ``max_answer_length`` pieces long,
and scores ``log p_start + log p_end`` under its window's start and end distributions (so scores of different
windows and passages compare; :func:`~es_biomed.qa.spans.best_spans`). The window's **null score** is the
same quantity for the ``[CLS]`` position (the label the model was trained with where a window holds no answer); a
span is kept only if ``score >= null_score + null_threshold`` (SQuAD 2.0's rule, Devlin et al. 2019, sec. 4.3).

Runtimes: ``"onnx"`` (ONNX Runtime on the cached export, see :mod:`es_biomed.qa.onnx`; no torch at use) and
``"torch"`` (transformers' ``BertForQuestionAnswering``). ``"auto"`` takes ONNX when onnxruntime is installed and
an export exists or can be made, else torch. Tokenization is Hugging Face ``tokenizers`` on ``tokenizer.json`` for
both, so both see the same pieces.

Thread safety: :meth:`SpanReader.read` may be called from several threads at once. ONNX Runtime sessions are safe
for concurrent ``run`` calls; the tokenizer is never reconfigured after loading; the torch model runs under a lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from es_biomed.errors import require
from es_biomed.qa.config import ReaderConfig
from es_biomed.qa.errors import ModelFilesError, QaParameterError
from es_biomed.qa.spans import best_spans

__all__ = ["Runtime", "Span", "SpanReader"]

log = logging.getLogger(__name__)

Runtime = Literal["auto", "onnx", "torch"]
_RUNTIMES = ("auto", "onnx", "torch")


#: Windowing settings written beside the model by :func:`~es_biomed.export.qa_reader.export_span_model`.
@dataclass(frozen=True)
class Span:
    """One answer span of one passage.

    Attributes:
        start: Character offset of the span in the passage.
        end: Character offset just past it (``passage[start:end]`` is the answer).
        score: ``log p_start + log p_end`` in its window (<= 0).
        null_score: The same for ``[CLS]`` (no answer) in that window.
    """

    start: int
    end: int
    score: float
    null_score: float


class SpanReader:
    """A span-extraction QA model directory (``config.json``, weights, ``tokenizer.json``, ``qa_config.json``).

    Args:
        model_dir: The model directory (e.g. ``es_biomed/models/weights/biomed-qa``).
        name: Name reported in results; defaults to the directory.
        runtime: ``"auto"``, ``"onnx"`` or ``"torch"`` (see the module docstring).
        threads: ONNX Runtime / torch intra-op threads; defaults to ``$ES_BIOMED_THREADS`` if set (as the
            encoders), else the physical cores (ONNX Runtime) or torch's own default.
        batch_size: Windows per forward pass.

    Raises:
        ModelFilesError: a file the model needs is missing or unreadable.
        QaParameterError: unknown ``runtime`` or ``batch_size < 1``.
        MissingDependencyError: the runtime's packages are not installed.

    Example:
        >>> r = SpanReader("es_biomed/models/weights/biomed-qa")  # doctest: +SKIP
        >>> ctx = "Flumazenil reverses benzodiazepine sedation."
        >>> [ctx[s.start:s.end] for s in r.read("Which drug reverses benzodiazepines?", [ctx])[0][:1]]  # doctest: +SKIP
        ['Flumazenil']
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        name: str | None = None,
        runtime: Runtime = "auto",
        threads: int | None = None,
        batch_size: int = 16,
    ) -> None:
        if runtime not in _RUNTIMES:
            raise QaParameterError("runtime", f"must be one of {_RUNTIMES}, got {runtime!r}")
        if batch_size < 1:
            raise QaParameterError("batch_size", f"must be >= 1, got {batch_size}")
        self.model_dir = Path(model_dir).expanduser()
        self.name = name or str(self.model_dir)
        for needed in ("config.json", "tokenizer.json"):
            if not (self.model_dir / needed).is_file():
                raise ModelFilesError(
                    f"QA model {self.name!r}: {self.model_dir / needed} is missing; a reader directory needs "
                    "config.json, model.safetensors and tokenizer.json (reinstall es-biomed, or re-run "
                    "training/finetune_qa.py --save-dir)"
                )
        self.config = ReaderConfig.read(self.model_dir)
        self.batch_size = int(batch_size)
        self.threads = threads
        self.tokenizer = _load_tokenizer(self.model_dir / "tokenizer.json")
        self._cls, self._sep, self._pad = (self._special(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
        self._lock = threading.Lock()
        self.runtime, self._run = self._make_runner(runtime)

    # -- public ------------------------------------------------------------------------------------------------

    def read(
        self,
        question: str,
        passages: Sequence[str],
        *,
        top_n: int = 20,
        max_answer_length: int | None = None,
        null_threshold: float | None = 0.0,
    ) -> list[list[Span]]:
        """Answer spans of each passage, best first.

        Args:
            question: The question.
            passages: Passages to read (each is tokenized whole, then cut into windows if long).
            top_n: Spans kept per window (before the null rule).
            max_answer_length: Longest span in pieces; defaults to the model's ``qa_config.json``.
            null_threshold: Keep a span only if ``score >= null_score + null_threshold``; ``None`` keeps every
                span (no null handling).

        Returns:
            One list per passage of :class:`Span` (character offsets into that passage), best first; a span found
            in two overlapping windows is listed once, with its better score.

        Raises:
            QaParameterError: an empty question, ``top_n < 1`` or ``max_answer_length < 1``.
        """
        if not isinstance(question, str) or not question.strip():
            raise QaParameterError("question", "must be a non-empty string")
        if top_n < 1:
            raise QaParameterError("top_n", f"must be >= 1, got {top_n}")
        longest = self.config.max_answer_length if max_answer_length is None else int(max_answer_length)
        if longest < 1:
            raise QaParameterError("max_answer_length", f"must be >= 1, got {longest}")
        windows = self.windows(question, passages)
        logits = self._logits([w[0] for w in windows])

        found: list[dict[tuple[int, int], Span]] = [{} for _ in passages]
        for (ids, pi, offsets, begins, ends), lg in zip(windows, logits, strict=True):
            start_l, end_l = lg[: len(ids), 0], lg[: len(ids), 1]
            null = float(_log_softmax(start_l)[0] + _log_softmax(end_l)[0])
            for s, e, score in best_spans(start_l, end_l, begins, ends, top_n=top_n, max_answer_length=longest):
                if null_threshold is not None and score < null + null_threshold:
                    continue
                key = (int(offsets[s, 0]), int(offsets[e, 1]))
                if key not in found[pi] or score > found[pi][key].score:
                    found[pi][key] = Span(key[0], key[1], float(score), null)
        return [sorted(f.values(), key=lambda sp: (-sp.score, sp.start, sp.end)) for f in found]

    def windows(
        self, question: str, passages: Sequence[str]
    ) -> list[tuple[list[int], int, np.ndarray, np.ndarray, np.ndarray]]:
        """The model windows of ``passages``: ``(input ids, passage index, [n, 2] character offsets (-1 outside
        the passage), [n] may-start mask, [n] may-end mask)`` per window (the layout of ``encode_squad``)."""
        cfg = self.config
        q_ids = self.tokenizer.encode(question, add_special_tokens=False).ids[: cfg.max_query_length]
        room = cfg.max_length - len(q_ids) - 3
        if room < 1:
            raise QaParameterError("max_length", f"{cfg.max_length} leaves no room for a passage after the question")
        out = []
        encodings = self.tokenizer.encode_batch(list(passages), add_special_tokens=False) if passages else []
        for pi, enc in enumerate(encodings):
            c_ids, c_off, wid = enc.ids, enc.offsets, enc.word_ids
            n = len(c_ids)
            begins = [i == 0 or wid[i] != wid[i - 1] for i in range(n)]
            ends = [i == n - 1 or wid[i] != wid[i + 1] for i in range(n)]
            win = 0
            while True:
                w_ids = c_ids[win : win + room]
                ids = [self._cls, *q_ids, self._sep, *w_ids, self._sep]
                base = len(q_ids) + 2
                offsets = np.full((len(ids), 2), -1, np.int64)
                if w_ids:
                    offsets[base : base + len(w_ids)] = np.asarray(c_off[win : win + room], np.int64)
                may_start = np.zeros(len(ids), bool)
                may_end = np.zeros(len(ids), bool)
                may_start[base : base + len(w_ids)] = begins[win : win + room]
                may_end[base : base + len(w_ids)] = ends[win : win + room]
                out.append((ids, pi, offsets, may_start, may_end))
                if win + room >= n:
                    break
                win += max(1, room - cfg.doc_stride) if cfg.doc_stride < room else room
        return out

    # -- internals -----------------------------------------------------------------------------------------------

    def _special(self, token: str) -> int:
        tid = self.tokenizer.token_to_id(token)
        if tid is None:
            raise ModelFilesError(
                f"{self.model_dir / 'tokenizer.json'}: no {token} token; not a BERT WordPiece tokenizer"
            )
        return int(tid)

    def _logits(self, inputs: list[list[int]]) -> list[np.ndarray]:
        """``[len(ids), 2]`` start/end logits per window; windows are batched by length."""
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        out: list[np.ndarray] = [np.empty((0, 2), np.float32)] * len(inputs)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(len(inputs[i]) for i in idx)
            ids = np.full((len(idx), width), self._pad, np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            types = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                seq = inputs[i]
                ids[r, : len(seq)] = seq
                mask[r, : len(seq)] = 1
                first_sep = seq.index(self._sep)
                types[r, first_sep + 1 : len(seq)] = 1
            start, end = self._run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
            for r, i in enumerate(idx):
                out[i] = np.stack([start[r, : len(inputs[i])], end[r, : len(inputs[i])]], axis=-1)
        return out

    def _make_runner(self, runtime: Runtime) -> tuple[str, Any]:
        if runtime == "auto":
            runtime = "onnx" if _installed("onnxruntime") else "torch"
            if runtime == "onnx":
                try:
                    return "onnx", self._onnx_runner()
                except ImportError as exc:  # no export yet and no torch to make one: nothing else can run it
                    if not _installed("torch"):
                        raise
                    log.info("QA reader %s: ONNX export unavailable (%s); using torch", self.name, exc)
                    runtime = "torch"
        if runtime == "onnx":
            return "onnx", self._onnx_runner()
        return "torch", self._torch_runner()

    def _onnx_runner(self) -> Any:
        from es_biomed.encode.onnx_backend import physical_cores
        from es_biomed.qa.onnx import ONNX_FILENAME, ensure_qa_exported

        ort: Any = require("onnxruntime", "onnx")
        export = ensure_qa_exported(self.name, self.model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(self.threads or os.environ.get("ES_BIOMED_THREADS") or physical_cores())
        opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(export / ONNX_FILENAME), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors have no common public base class
            raise ModelFilesError(
                f"{export / ONNX_FILENAME}: ONNX Runtime cannot load it ({exc}); delete {export}"
            ) from exc
        names = [i.name for i in session.get_inputs()]
        self.onnx_dir = export

        def run(feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            start, end = session.run(["start_logits", "end_logits"], {k: feeds[k] for k in names})
            return start, end

        return run

    def _torch_runner(self) -> Any:
        torch: Any = require("torch", "torch")
        transformers: Any = require("transformers", "torch")
        try:
            model = transformers.BertForQuestionAnswering.from_pretrained(
                str(self.model_dir), local_files_only=True, dtype=torch.float32
            ).eval()
        except (OSError, ValueError) as exc:
            raise ModelFilesError(f"QA model {self.name!r} in {self.model_dir}: {exc}") from exc
        if self.threads:
            torch.set_num_threads(int(self.threads))

        def run(feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            with self._lock, torch.inference_mode():
                got = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
            return got.start_logits.float().numpy(), got.end_logits.float().numpy()

        return run


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses the name, or a broken module
        return False


def _load_tokenizer(path: Path) -> Any:
    tokenizers: Any = require("tokenizers", "onnx")
    try:
        tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise ModelFilesError(f"{path}: not a tokenizers file ({exc})") from exc
    tok.no_truncation()
    tok.no_padding()
    return tok


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max()
    return x - (m + np.log(np.sum(np.exp(x - m))))
