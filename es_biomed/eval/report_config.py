"""The configuration of ``es-biomed report``: what to index and evaluate, validated before any work starts.

A YAML (or JSON) file; relative paths are resolved against the current directory, like the CLI's own
arguments, and a value with ``*``, ``?`` or ``[`` is a glob pattern. Layout::

    name: shared-data                  # the report's title
    encoder: null                      # encoder name or path (default all-MiniLM-L6-v2)
    index_dir: indexes/report          # embedded indexes: one per entry, or per shared ``index`` name
    significance: randomization        # or t-test, or none
    n_resamples: 10000
    beir:                              # BEIR-style sets: NDCG@10 / Recall@100 / MRR@10 of the four modes
      - {name: scifact, path: ../shared/data/scifact, split: test, distractors: [], k: 100}
    bioasq:                            # Table 9 sets
      - {name: 4b, files: [...], distractors: [...], windows: [20, 30, 40, 50], jaccard: 0.30, index: pool}
    qa:                                # optional: BioASQ factoid QA (the paper's Table 8)
      {files: [...], reader: biomed-qa, passages: 20, k: 5, max_questions: null}
    jaccard: {thresholds: [0.1, 0.2, 0.3, 0.4, 0.5]}

Every problem is a :class:`ReportConfigError` naming the key (``bioasq[1].windows``), the file, or the split.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from es_biomed.corpus.readers import expand_paths
from es_biomed.errors import EsBiomedError

__all__ = [
    "ReportConfigError",
    "BeirEntry",
    "BioasqEntry",
    "QaEntry",
    "ReportConfig",
    "load_report_config",
    "parse_report_config",
]


class ReportConfigError(ValueError, EsBiomedError):
    """A report configuration is invalid: the message names the key, file or split."""


@dataclass(frozen=True)
class BeirEntry:
    name: str
    path: str
    split: str = "test"
    distractors: tuple[str, ...] = ()
    k: int = 100
    index: str | None = None


@dataclass(frozen=True)
class BioasqEntry:
    name: str
    files: tuple[str, ...]
    distractors: tuple[str, ...] = ()
    windows: tuple[int, ...] = (20, 30, 40, 50)
    jaccard: float = 0.30
    index: str | None = None


@dataclass(frozen=True)
class QaEntry:
    files: tuple[str, ...]
    reader: str = "biomed-qa"
    passages: int = 20
    k: int = 5
    max_questions: int | None = None
    index: str | None = None


@dataclass(frozen=True)
class ReportConfig:
    name: str = "report"
    encoder: str | None = None
    index_dir: str = "indexes/report"
    significance: str = "randomization"
    n_resamples: int = 10_000
    beir: tuple[BeirEntry, ...] = ()
    bioasq: tuple[BioasqEntry, ...] = ()
    qa: QaEntry | None = None
    jaccard: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if hasattr(v, "__dataclass_fields__"):
                return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            return v

        return plain(self)

    def input_files(self) -> list[str]:
        """Every data file the report reads (for the hashes): BEIR corpus, queries and qrels, BioASQ and
        distractor files (a BEIR directory counts as its ``corpus.jsonl``)."""
        out: list[str] = []
        for b in self.beir:
            out += [str(Path(b.path) / "corpus.jsonl"), str(Path(b.path) / "queries.jsonl")]
            out.append(str(Path(b.path) / "qrels" / f"{b.split}.tsv"))
            out += [_corpus_file(d) for d in b.distractors]
        for e in self.bioasq:
            out += list(e.files) + [_corpus_file(d) for d in e.distractors]
        if self.qa is not None:
            out += list(self.qa.files)
        return list(dict.fromkeys(out))


def _corpus_file(path: str) -> str:
    return str(Path(path) / "corpus.jsonl") if Path(path).is_dir() else path


_JACCARD_KEYS = {"thresholds", "buckets"}


def _check_keys(obj: Any, cls: type, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ReportConfigError(f"{where}: expected a mapping, got {type(obj).__name__}")
    allowed = {f.name for f in fields(cls)} - {"source"}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ReportConfigError(f"{where}.{unknown[0]}: unknown key; expected one of {', '.join(sorted(allowed))}")
    return obj


def _paths(value: Any, where: str, required: bool = False) -> tuple[str, ...]:
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ReportConfigError(f"{where}: expected a list of paths")
    try:
        out = expand_paths(value)
    except FileNotFoundError as exc:
        raise ReportConfigError(f"{where}: {exc}") from None
    if required and not out:
        raise ReportConfigError(f"{where}: at least one file is required")
    return tuple(out)


def _typed(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> None:
    if key in obj and obj[key] is not None and (isinstance(obj[key], bool) or not isinstance(obj[key], kind)):
        raise ReportConfigError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {obj[key]!r}")


def _name(obj: dict[str, Any], where: str) -> str:
    name = obj.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise ReportConfigError(f"{where}.name: required, a name without spaces or slashes")
    return name


def _beir(obj: Any, where: str) -> BeirEntry:
    obj = _check_keys(obj, BeirEntry, where)
    name = _name(obj, where)
    path = obj.get("path")
    if not isinstance(path, str) or not Path(path).is_dir():
        raise ReportConfigError(f"{where}.path: BEIR directory {path!r} does not exist")
    split = obj.get("split", "test")
    if not isinstance(split, str) or not (Path(path) / "qrels" / f"{split}.tsv").is_file():
        have = sorted(p.stem for p in (Path(path) / "qrels").glob("*.tsv"))
        raise ReportConfigError(
            f"{where}.split: split {split!r} is absent from the qrels of {path} (qrels/{split}.tsv); it has "
            f"{', '.join(have) or 'none'}"
        )
    for f in ("corpus.jsonl", "queries.jsonl"):
        if not (Path(path) / f).is_file():
            raise ReportConfigError(f"{where}.path: {Path(path) / f} does not exist")
    _typed(obj, "k", int, where)
    return BeirEntry(
        name=name,
        path=path,
        split=split,
        distractors=_paths(obj.get("distractors"), f"{where}.distractors"),
        k=obj.get("k", 100),
        index=obj.get("index"),
    )


def _bioasq(obj: Any, where: str) -> BioasqEntry:
    obj = _check_keys(obj, BioasqEntry, where)
    name = _name(obj, where)
    windows = obj.get("windows", [20, 30, 40, 50])
    if not isinstance(windows, list) or not windows or not all(isinstance(w, int) and w > 0 for w in windows):
        raise ReportConfigError(f"{where}.windows: expected a list of positive integers, got {windows!r}")
    _typed(obj, "jaccard", (int, float), where)
    return BioasqEntry(
        name=name,
        files=_paths(obj.get("files"), f"{where}.files", required=True),
        distractors=_paths(obj.get("distractors"), f"{where}.distractors"),
        windows=tuple(windows),
        jaccard=float(obj.get("jaccard", 0.30)),
        index=obj.get("index"),
    )


def _qa(obj: Any, where: str) -> QaEntry:
    obj = _check_keys(obj, QaEntry, where)
    for key in ("passages", "k", "max_questions"):
        _typed(obj, key, int, where)
    return QaEntry(
        files=_paths(obj.get("files"), f"{where}.files", required=True),
        reader=str(obj.get("reader", "biomed-qa")),
        passages=obj.get("passages", 20),
        k=obj.get("k", 5),
        max_questions=obj.get("max_questions"),
        index=obj.get("index"),
    )


def parse_report_config(data: Any, source: str = "<config>") -> ReportConfig:
    """Validate a parsed configuration (see the module docstring) and return it with globs expanded."""
    where = source
    data = _check_keys(data, ReportConfig, where)
    sig = data.get("significance", "randomization")
    if sig not in ("randomization", "t-test", "none"):
        raise ReportConfigError(f"{where}.significance: expected randomization, t-test or none, got {sig!r}")
    for key in ("n_resamples",):
        _typed(data, key, int, where)
    for key in ("name", "encoder", "index_dir"):
        _typed(data, key, str, where)
    for key in ("beir", "bioasq"):
        if not isinstance(data.get(key, []), list):
            raise ReportConfigError(f"{where}.{key}: expected a list of entries")
    beir = tuple(_beir(e, f"{where}.beir[{i}]") for i, e in enumerate(data.get("beir", [])))
    bioasq = tuple(_bioasq(e, f"{where}.bioasq[{i}]") for i, e in enumerate(data.get("bioasq", [])))
    names = [e.name for e in beir] + [e.name for e in bioasq]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ReportConfigError(f"{where}: entry name {dup[0]!r} is used twice; names must be unique")
    if not beir and not bioasq:
        raise ReportConfigError(f"{where}: nothing to evaluate; give at least one beir or bioasq entry")
    jac = data.get("jaccard") or {}
    if not isinstance(jac, dict) or set(jac) - _JACCARD_KEYS:
        bad = sorted(set(jac) - _JACCARD_KEYS)[0] if isinstance(jac, dict) else ""
        raise ReportConfigError(
            f"{where}.jaccard{'.' + bad if bad else ''}: unknown key; expected thresholds, buckets"
        )
    return ReportConfig(
        name=data.get("name", "report"),
        encoder=data.get("encoder"),
        index_dir=data.get("index_dir", "indexes/report"),
        significance=sig,
        n_resamples=data.get("n_resamples", 10_000),
        beir=beir,
        bioasq=bioasq,
        qa=_qa(data["qa"], f"{where}.qa") if data.get("qa") else None,
        jaccard=dict(jac),
        source=source,
    )


def load_report_config(path: str | os.PathLike[str]) -> ReportConfig:
    """Read and validate a YAML or JSON report configuration.

    Raises:
        ReportConfigError: the file is missing or malformed, or a key, file or split is wrong (named).
    """
    p = Path(path)
    if not p.is_file():
        raise ReportConfigError(f"report config {str(path)!r} does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportConfigError(f"{p}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    else:
        from es_biomed.errors import require

        yaml = require("yaml", "report")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ReportConfigError(f"{p}: malformed YAML: {exc}") from None
    return parse_report_config(data, str(p))
