"""Extractive question answering over search results: ``Asker(searcher).ask(question, k)`` returns ranked
:class:`Answer` objects with their evidence (document, title, year, sentence, character offsets).

The reader is ``biomed-qa`` (all-MiniLM-L6-v2 fine-tuned for span extraction on BioASQ 7b-train's train questions,
shipped as fp16 safetensors in ``es_biomed/models/weights/biomed-qa``), run on ONNX Runtime (exported once into the ONNX
cache) or torch. Importing this package imports neither torch nor TensorFlow.
"""

from es_biomed.qa.answers import Answer, merge_answers, normalize_answer_text
from es_biomed.qa.config import ReaderConfig
from es_biomed.qa.errors import ModelFilesError, QaParameterError
from es_biomed.qa.loading import DEFAULT_READER, known_readers, load_reader
from es_biomed.qa.pipeline import Asker, read_windows
from es_biomed.qa.reader import Span, SpanReader
from es_biomed.qa.windows import Window, select_windows

__all__ = [
    "DEFAULT_READER",
    "Answer",
    "Asker",
    "ModelFilesError",
    "QaParameterError",
    "ReaderConfig",
    "Span",
    "SpanReader",
    "Window",
    "known_readers",
    "load_reader",
    "merge_answers",
    "normalize_answer_text",
    "read_windows",
    "select_windows",
]
