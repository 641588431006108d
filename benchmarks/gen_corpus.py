"""N distinct biomedical documents and vectors, generated from the real texts of ``../shared/data`` (issue 23).

    .venv/bin/python benchmarks/gen_corpus.py --docs 1000000 --out /tmp/es-biomed-1m [--seed 0] [--shared ../shared/data]
        [--encoder all-MiniLM-L6-v2] [--keep 0.5] [--noise auto|FLOAT] [--no-vectors]

What is real and what is generated:

* **Real:** every sentence and every title word. The 14,597 real texts (SciFact, the CORD-19 sample, BioASQ
  contexts, PubMedQA abstracts: ``bench_search_100k.real_documents``) are cut into sentences; each source keeps
  its own pool, years and titles.
* **Generated:** the combinations. A document takes a real document as its template (each real document once per
  round, in a random order, so sources keep their real shares) and keeps each of
  its sentences with probability ``--keep``; every other sentence is a real sentence from the same relative place
  (background, methods, results...) of another document of the same source. Its title is the template's (the
  first time that template is used) or the template title's first half with another title's second half. No
  abstract is emitted twice (checked by hash), and no text is a copy of a real one past the first use of a
  template with all of its sentences kept.
* **Vectors:** the real document vectors (the encoder run over the real texts, cached in ``--out``) mixed with the
  weights of the sentences each document borrowed, plus Gaussian noise, normalised. ``--noise auto`` picks the
  noise whose median nearest-neighbour cosine, over a set of generated vectors the size of the real set, equals
  the real vectors' own (bisection; reported in ``stats.json``).

It writes ``corpus.jsonl`` (BREATHE fields: ``id``, ``title``, ``abstract``, ``source``, ``date``: readable by
``es-biomed index``), ``vectors.npy`` (float32, row i = line i) and ``stats.json``: vocabulary growth and the
document-frequency distribution against the real texts, and nearest-neighbour cosines against the real vectors.
Deterministic for a seed; never commit what it writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: How many times a generated document may be drawn again when it collides with one already made.
MAX_TRIES = 50
#: Each real sentence may be used at most this many times on average: past it, df of every term would be a
#: multiple of the real one rather than a corpus's (the limit on ``--docs`` said before any work).
MAX_REUSE = 400

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_YEAR = re.compile(r"(19|20)\d\d")


class GeneratorError(ValueError):
    """Arguments out of range, or a corpus that cannot give that many distinct documents (names the argument)."""


@dataclass
class SourcePool:
    """The real material of one source: its documents as sentence lists, their titles, years and vector rows."""

    name: str
    docs: list[list[str]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    years: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # row of each document in the real vector matrix

    @property
    def sentences(self) -> int:
        return sum(len(d) for d in self.docs)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (the QA reader's splitter: abbreviations and decimals kept whole)."""
    from es_biomed.qa.sentences import sentence_spans

    return [text[a:b].strip() for a, b in sentence_spans(text) if text[a:b].strip()]


def build_pools(docs: Sequence[Any]) -> dict[str, SourcePool]:
    """Per-source pools from real :class:`~es_biomed.corpus.Document` s (``source`` names the pool; row = position)."""
    pools: dict[str, SourcePool] = {}
    for row, d in enumerate(docs):
        sents = split_sentences(d.abstract)
        if not sents:
            continue
        pool = pools.setdefault(d.source or "unknown", SourcePool(d.source or "unknown"))
        pool.docs.append(sents)
        pool.titles.append(d.title)
        m = _YEAR.search(d.date or "")
        pool.years.append(m.group(0) if m else "")
        pool.rows.append(row)
    return pools


def capacity(pools: dict[str, SourcePool]) -> int:
    """The most documents :func:`generate` accepts: :data:`MAX_REUSE` uses per real sentence on average."""
    sentences = sum(p.sentences for p in pools.values())
    docs = sum(len(p.docs) for p in pools.values())
    return int(MAX_REUSE * sentences / max(1.0, sentences / max(1, docs)))


def check_args(n: Any, seed: Any, keep: Any, pools: dict[str, SourcePool]) -> None:
    """Refuse arguments out of range before any work, naming the argument."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise GeneratorError(f"--seed must be an integer, got {seed!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GeneratorError(f"--docs must be a positive integer, got {n!r}")
    if not isinstance(keep, (int, float)) or not 0.0 <= float(keep) < 1.0:
        raise GeneratorError(f"--keep must be in [0, 1), got {keep!r}")
    if not pools:
        raise GeneratorError("no real document with an abstract to generate from")
    most = capacity(pools)
    if n > most:
        raise GeneratorError(
            f"--docs {n} is more than these sentences allow: {sum(p.sentences for p in pools.values())} real "
            f"sentences give at most {most} documents ({MAX_REUSE} uses per sentence on average)"
        )


def _mixed_title(a: str, b: str) -> str:
    wa, wb = a.split(), b.split()
    return " ".join(wa[: max(1, len(wa) // 2)] + wb[len(wb) // 2 :]).strip()


def generate(
    pools: dict[str, SourcePool], n: int, seed: int, keep: float = 0.5
) -> Iterator[tuple[dict[str, str], list[tuple[int, float]]]]:
    """``n`` distinct documents (BREATHE fields) with the real vector rows they borrow from, and their weights.

    Raises:
        GeneratorError: an argument out of range (before any document), or a document that stays a duplicate after
            :data:`MAX_TRIES` draws (names its number).
    """
    check_args(n, seed, keep, pools)
    rng = np.random.default_rng(int(seed))
    names = sorted(pools)
    templates = [(s, t) for s in names for t in range(len(pools[s].docs))]
    order: list[int] = []  # every real document is a template once per round, in a random order
    donors: dict[str, list[int]] = {s: [] for s in names}  # and a donor once per round of its source

    def donor(name: str) -> int:
        if not donors[name]:
            donors[name] = rng.permutation(len(pools[name].docs)).tolist()
        return int(donors[name].pop())

    all_years = [y for s in names for y in pools[s].years if y]
    seen: set[bytes] = set()
    used_template: set[tuple[str, int]] = set()
    for i in range(n):
        for _ in range(MAX_TRIES):
            if not order:
                order = rng.permutation(len(templates)).tolist()[::-1]
            name, t = templates[order.pop()]
            src = pools[name]
            template = src.docs[t]
            picked: list[tuple[str, int]] = []  # (sentence, vector row)
            for j, sent in enumerate(template):
                if rng.random() < keep:
                    picked.append((sent, src.rows[t]))
                    continue
                d = donor(name)
                other = src.docs[d]
                k = min(len(other) - 1, round(j / max(1, len(template) - 1) * (len(other) - 1)))
                picked.append((other[k], src.rows[d]))
            abstract = " ".join(s for s, _ in picked)
            key = hashlib.blake2b(abstract.encode("utf-8"), digest_size=16).digest()
            if key in seen:
                continue
            seen.add(key)
            if (src.name, t) in used_template:
                title = _mixed_title(src.titles[t], src.titles[int(rng.integers(len(src.titles)))])
            else:
                used_template.add((src.name, t))
                title = src.titles[t]
            year = src.years[t] or (all_years[int(rng.integers(len(all_years)))] if all_years else "")
            share = Counter(r for _, r in picked)
            mix = [(r, c / len(picked)) for r, c in sorted(share.items())]
            yield {"id": f"gen-{i:08d}", "title": title, "abstract": abstract, "source": src.name, "date": year}, mix
            break
        else:
            raise GeneratorError(
                f"document {i}: still a duplicate after {MAX_TRIES} draws; --docs {n} is more than these sentences "
                f"allow with --keep {keep}"
            )


def mix_vectors(real: np.ndarray, mixes: Sequence[list[tuple[int, float]]], noise: float, seed: int) -> np.ndarray:
    """Rows ``Σ weight · real[row]`` plus Gaussian noise of norm about ``noise``, L2-normalised (float32)."""
    rng = np.random.default_rng([int(seed), 1])
    out = np.zeros((len(mixes), real.shape[1]), dtype=np.float32)
    for i, mix in enumerate(mixes):
        for r, w in mix:
            out[i] += w * real[r]
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(noise / np.sqrt(real.shape[1]))
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def nn_cosines(vectors: np.ndarray, sample: int = 2000, seed: int = 0, block: int = 4096) -> np.ndarray:
    """Cosine of each of ``sample`` rows with its nearest other row (rows are unit vectors)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    q = vectors[idx]
    best = np.full(len(idx), -1.0, dtype=np.float32)
    for start in range(0, len(vectors), block):
        sims = q @ vectors[start : start + block].T
        own = (idx >= start) & (idx < start + block)
        sims[np.flatnonzero(own), idx[own] - start] = -1.0
        best = np.maximum(best, sims.max(axis=1))
    return best


def calibrate_noise(real: np.ndarray, mixes: Sequence[list[tuple[int, float]]], seed: int, steps: int = 12) -> float:
    """The noise whose generated vectors (as many as the real ones) have the real median nearest-neighbour cosine."""
    target = float(np.median(nn_cosines(real, seed=seed)))
    trial = list(mixes[: len(real)])
    lo, hi = 0.0, 2.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        got = float(np.median(nn_cosines(mix_vectors(real, trial, mid, seed), seed=seed)))
        lo, hi = (mid, hi) if got > target else (lo, mid)
    return round((lo + hi) / 2, 4)


def percentiles(x: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(x, q)), 4) for q in (5, 25, 50, 75, 95)}


def term_stats(texts: Iterator[str], checkpoints: Sequence[int]) -> dict[str, Any]:
    """Vocabulary size after each checkpoint (Heaps' law) and the document-frequency distribution at the end
    (lowercased alphanumeric words: the shape, not the engine's exact analyzer)."""
    df: Counter[str] = Counter()
    growth: dict[str, int] = {}
    n = 0
    marks = sorted(set(checkpoints))
    for text in texts:
        df.update(set(_WORD.findall(text.lower())))
        n += 1
        if marks and n == marks[0]:
            growth[str(n)] = len(df)
            marks.pop(0)
    growth[str(n)] = len(df)
    counts = np.array(sorted(df.values()), dtype=np.float64)
    return {
        "docs": n,
        "vocabulary_growth": growth,
        "share_of_terms_with_df_1": round(float(np.mean(counts == 1)), 4),
        "share_of_terms_with_df_le_10": round(float(np.mean(counts <= 10)), 4),
        "df_over_docs_percentiles": {k: round(v / n, 6) for k, v in percentiles(counts).items()},
        "top_term_df_over_docs": round(float(counts[-1]) / n, 4) if len(counts) else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", default="0", help="an integer")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2")
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--noise", default="auto", help="auto (calibrated) or a float")
    ap.add_argument("--no-vectors", action="store_true")
    ap.add_argument(
        "--real-limit",
        type=int,
        default=None,
        help="use only this many real documents (an even spread over every source): a small, fast corpus for tests",
    )
    args = ap.parse_args(argv)
    try:
        seed = int(args.seed)
    except ValueError:
        ap.error(f"--seed must be an integer, got {args.seed!r}")

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_search_100k import real_documents

    real, kept = real_documents(args.shared)
    real = [dataclasses.replace(d, source=d.source or name) for d, name in _with_source(real, kept)]
    if args.real_limit is not None:
        if not 1 <= args.real_limit <= len(real):
            ap.error(f"--real-limit must be in [1, {len(real)}], got {args.real_limit}")
        real = [real[i] for i in np.linspace(0, len(real) - 1, args.real_limit).round().astype(int)]
    pools = build_pools(real)
    try:
        check_args(args.docs, seed, args.keep, pools)
        if args.noise != "auto":
            float(args.noise)
    except (GeneratorError, ValueError) as exc:
        ap.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    mixes: list[list[tuple[int, float]]] = []
    with (args.out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc, mix in generate(pools, args.docs, seed, args.keep):
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
            mixes.append(mix)
    checkpoints = [10**k for k in range(3, 8)] + [3 * 10**k for k in range(3, 7)]
    stats: dict[str, Any] = {
        "seed": seed,
        "docs": args.docs,
        "keep": args.keep,
        "real_docs": len(real),
        "real_sentences": sum(p.sentences for p in pools.values()),
        "terms_real": term_stats((d.text for d in real), checkpoints),
        "terms_generated": term_stats(_abstracts(args.out / "corpus.jsonl"), checkpoints),
        "terms_generated_same_size_as_real": term_stats(
            _abstracts(args.out / "corpus.jsonl", limit=len(real)), checkpoints
        ),
    }
    if not args.no_vectors:
        real_vecs = _real_vectors(real, args.encoder, args.out)
        noise = calibrate_noise(real_vecs, mixes, seed) if args.noise == "auto" else float(args.noise)
        vecs = np.lib.format.open_memmap(args.out / "vectors.npy", "w+", np.float32, (len(mixes), real_vecs.shape[1]))
        for start in range(0, len(mixes), 65536):
            vecs[start : start + 65536] = mix_vectors(real_vecs, mixes[start : start + 65536], noise, seed + start)
        vecs.flush()
        same = np.asarray(vecs[: len(real_vecs)])
        stats["vectors"] = {
            "encoder": args.encoder,
            "noise": noise,
            "nn_cosine_real": percentiles(nn_cosines(real_vecs, seed=seed)),
            "nn_cosine_generated_same_size_as_real": percentiles(nn_cosines(same, seed=seed)),
            "nn_cosine_generated_all": percentiles(nn_cosines(np.asarray(vecs), sample=1000, seed=seed)),
        }
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(stats, indent=2))
    return 0


def _with_source(real: list[Any], kept: dict[str, int]) -> Iterator[tuple[Any, str]]:
    """Each real document with the source it was read from (``real_documents`` keeps them in source order)."""
    i = 0
    for name, count in kept.items():
        for d in real[i : i + count]:
            yield d, name
        i += count


def _abstracts(path: Path, limit: int | None = None) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if limit is not None and n >= limit:
                return
            rec = json.loads(line)
            yield f"{rec['title']} {rec['abstract']}"


def _real_vectors(real: list[Any], encoder: str, out: Path) -> np.ndarray:
    """The real documents' vectors with the document encoder, cached in ``out`` under its fingerprint."""
    from es_biomed.encode.loading import load_document_encoder

    enc = load_document_encoder(encoder)
    cache = out / f"real-{enc.fingerprint}-{len(real)}.npy"
    if cache.is_file():
        return np.load(cache)
    vecs = enc.encode_documents([d.text for d in real], batch_size=64, show_progress=True).astype(np.float32)
    np.save(cache, vecs)
    return vecs


if __name__ == "__main__":
    raise SystemExit(main())
