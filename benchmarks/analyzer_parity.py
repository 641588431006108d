"""How close can the embedded (tantivy) analyzer get to Elasticsearch's ``english`` analyzer, and what is it worth?

    .venv/bin/python benchmarks/analyzer_parity.py --scifact ../shared/data/scifact

ES ``english`` is Lucene's ``EnglishAnalyzer``: ``standard`` tokenizer (UAX#29 word boundaries, tokens over 255
chars split), ``EnglishPossessiveFilter`` (drops a trailing ``'s``/``’s``/``＇s``), ``LowerCaseFilter``, the
33-word ``ENGLISH_STOP_WORDS_SET``, ``PorterStemFilter`` (Martin Porter's reference Porter-1 implementation).

For each tantivy analyzer variant this reports, on SciFact test and train, BM25-only NDCG@10 and Recall@100 with
title and abstract as two fields combined ``most_fields`` (title^0.5 + abstract, the project's default preset,
and title + abstract at boost 1.0), plus token-level agreement with ES ``english`` on a fixed sample of 2,000
SciFact documents (title and abstract analyzed separately, tokens pooled): the fraction of documents whose token
multiset is identical, and the mean Jaccard of the token sets.

References for ES ``english``:

* ``py-ES``: a pure-Python approximation (UAX#29-style regex tokenizer, possessive strip, lowercase, Lucene's 33
  stop words, NLTK Porter in ``MARTIN_EXTENSIONS`` mode = Porter's reference implementation, which is what
  Lucene's ``PorterStemmer`` is; ``--porter-mode ORIGINAL_ALGORITHM`` gives the published-paper version).
  Needs ``nltk``.
* ``Lucene``: the real ``org.apache.lucene.analysis.en.EnglishAnalyzer``, used when ``java``/``javac`` and the
  lucene-core and lucene-analyzers-common jars are found (``--lucene-jars``; Debian's ``liblucene8-java``
  installs them in /usr/share/java). A 20-line Java helper is compiled into a temporary directory.
* ``py-ES/P2``: ``py-ES`` with tantivy's Snowball English (Porter2) stemmer instead of Porter: agreement with it
  measures everything but the stemmer, which tantivy cannot change.

The references are also run through retrieval: their tokens are pre-computed in Python/Java and indexed with
tantivy's whitespace tokenizer, so the rows differ from the tantivy variants only in analysis (BM25 is tantivy's
in every row).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from es_biomed.corpus.readers import load_beir  # noqa: E402
from es_biomed.eval.metrics import evaluate  # noqa: E402
from es_biomed.query.analysis import (  # noqa: E402  (the library's definitions: one copy)
    _APOS,
    APOSTROPHES,
    LUCENE_STOP,
    POSSESSIVE_TOKENS,
    UAX29_POSSESSIVE,
)

# tantivy's `simple` tokenizer (runs of char::is_alphanumeric = Alphabetic or N*) plus the possessive token.
SIMPLE_POSSESSIVE = rf"{_APOS}[sS]\b|[\p{{Alphabetic}}\p{{N}}]+"

# name -> settings (tokenizer, remove_long bytes, stop list, stemmer, ascii_fold)
VARIANTS: dict[str, dict] = {
    "1 current": dict(tokenizer="simple", remove_long=40, stop="tantivy-english", stemmer="english"),
    "2 lucene33 stop": dict(tokenizer="simple", remove_long=40, stop="lucene33", stemmer="english"),
    "3 +possessive": dict(tokenizer="simple+possessive", remove_long=40, stop="lucene33+'s", stemmer="english"),
    "4 +uax29 regex": dict(tokenizer="uax29+possessive", remove_long=40, stop="lucene33+'s", stemmer="english"),
    "5a 4 + remove_long 256": dict(
        tokenizer="uax29+possessive", remove_long=256, stop="lucene33+'s", stemmer="english"
    ),
    "5b 5a, no stemmer": dict(tokenizer="uax29+possessive", remove_long=256, stop="lucene33+'s", stemmer=None),
    "5c 5a + ascii_fold": dict(
        tokenizer="uax29+possessive", remove_long=256, stop="lucene33+'s", stemmer="english", ascii_fold=True
    ),
}
TOKENIZERS = {"simple+possessive": SIMPLE_POSSESSIVE, "uax29+possessive": UAX29_POSSESSIVE}
STOPS = {"lucene33": LUCENE_STOP, "lucene33+'s": LUCENE_STOP + POSSESSIVE_TOKENS}

FIELD_SETUPS = {"t^0.5+a": {"title": 0.5, "abstract": 1.0}, "t+a": {"title": 1.0, "abstract": 1.0}}


STOP_SOURCE = {"lucene33": "LUCENE_STOP", "lucene33+'s": "LUCENE_STOP + POSSESSIVE_TOKENS"}
TOKENIZER_SOURCE = {"simple+possessive": "SIMPLE_POSSESSIVE", "uax29+possessive": "UAX29_POSSESSIVE"}


def builder_chain(v: dict) -> str:
    """The tantivy-py builder chain of a variant, as Python source (constants as defined in this file)."""
    tok = v["tokenizer"]
    t = "tantivy.Tokenizer.simple()" if tok == "simple" else f"tantivy.Tokenizer.regex({TOKENIZER_SOURCE[tok]})"
    parts = [f"tantivy.TextAnalyzerBuilder({t})", f".filter(tantivy.Filter.remove_long({v['remove_long']}))"]
    parts.append(".filter(tantivy.Filter.lowercase())")
    if v.get("ascii_fold"):
        parts.append(".filter(tantivy.Filter.ascii_fold())")
    if v["stop"] == "tantivy-english":
        parts.append('.filter(tantivy.Filter.stopword("english"))')
    else:
        parts.append(f".filter(tantivy.Filter.custom_stopword({STOP_SOURCE[v['stop']]}))")
    if v["stemmer"]:
        parts.append(f'.filter(tantivy.Filter.stemmer("{v["stemmer"]}"))')
    return "".join(parts) + ".build()"


def build_tantivy_analyzer(v: dict):
    import tantivy as T

    tok = T.Tokenizer.simple() if v["tokenizer"] == "simple" else T.Tokenizer.regex(TOKENIZERS[v["tokenizer"]])
    b = T.TextAnalyzerBuilder(tok).filter(T.Filter.remove_long(v["remove_long"])).filter(T.Filter.lowercase())
    if v.get("ascii_fold"):
        b = b.filter(T.Filter.ascii_fold())
    b = b.filter(
        T.Filter.stopword("english") if v["stop"] == "tantivy-english" else T.Filter.custom_stopword(STOPS[v["stop"]])
    )
    if v["stemmer"]:
        b = b.filter(T.Filter.stemmer(v["stemmer"]))
    return b.build()


# --- reference 1: ES english in pure Python -------------------------------------------------------------------
# Built from the Unicode Word_Break property itself (the `regex` module, an nltk dependency), not from the
# hand-made classes above, so that it checks them. UAX#29 rules kept: WB4 (Extend/Format attach), WB5-WB13b
# (letter/number runs, letter MID letter, digit MID digit, ExtendNumLet glue); Han and Hiragana are one-char
# tokens, so are pictographs (Lucene's <EMOJI>), and a segment without a letter, digit or katakana is no token
# (Lucene's StandardTokenizer rules).
_WB_TOKEN = (
    r"[\p{Han}\p{Hiragana}\p{Extended_Pictographic}]"
    r"|(?:[\p{WB=ALetter}\p{WB=Hebrew_Letter}]_X(?:[\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=Single_Quote}]_X"
    r"(?=[\p{WB=ALetter}\p{WB=Hebrew_Letter}]))?"
    r"|\p{WB=Numeric}_X(?:[\p{WB=MidNum}\p{WB=MidNumLet}\p{WB=Single_Quote}]_X(?=\p{WB=Numeric}))?"
    r"|\p{WB=Katakana}_X|\p{WB=ExtendNumLet}_X)+"
).replace("_X", r"[\p{WB=Extend}\p{WB=Format}\p{WB=ZWJ}]*")
_WB_CONTENT = (
    r"[\p{WB=ALetter}\p{WB=Hebrew_Letter}\p{WB=Numeric}\p{WB=Katakana}\p{Han}\p{Hiragana}\p{Extended_Pictographic}]"
)


class PyEsEnglish:
    """standard tokenizer (UAX#29 approximation) -> possessive -> lowercase -> 33 stop words -> Porter."""

    def __init__(self, porter_mode: str = "MARTIN_EXTENSIONS", stemmer: str = "porter") -> None:
        """``stemmer``: "porter" (NLTK, ``porter_mode``), "porter2" (tantivy's Snowball English), or "none"."""
        import regex

        self._token = regex.compile(_WB_TOKEN)
        self._content = regex.compile(_WB_CONTENT)
        self._stop = frozenset(LUCENE_STOP)
        self._cache: dict[str, str] = {}
        if stemmer == "porter":
            from nltk.stem.porter import PorterStemmer

            porter = PorterStemmer(mode=porter_mode)
            # Lucene's PorterStemmer leaves words of 1-2 chars alone (NLTK ORIGINAL mode would not).
            self._stem_fn = lambda w: w if len(w) <= 2 else porter.stem(w, to_lowercase=False)
        elif stemmer == "porter2":
            import tantivy as T

            p2 = T.TextAnalyzerBuilder(T.Tokenizer.raw()).filter(T.Filter.stemmer("english")).build()
            self._stem_fn = lambda w: (p2.analyze(w) or [""])[0]
        else:
            self._stem_fn = lambda w: w

    def _stem(self, w: str) -> str:
        s = self._cache.get(w)
        if s is None:
            s = self._cache[w] = self._stem_fn(w)
        return s

    def analyze(self, text: str) -> list[str]:
        out = []
        for m in self._token.finditer(text):
            tok = m.group(0)
            if not self._content.search(tok):  # e.g. a run of underscores: no token
                continue
            for i in range(0, len(tok), 255):  # standard tokenizer splits at max_token_length=255
                t = tok[i : i + 255]
                if len(t) >= 2 and t[-1] in "sS" and t[-2] in APOSTROPHES:
                    t = t[:-2]
                t = t.lower()
                if t and t not in self._stop:
                    out.append(self._stem(t))
        return out


# --- reference 2: the real Lucene EnglishAnalyzer -------------------------------------------------------------
_JAVA = r"""
import java.io.*;
import java.nio.charset.StandardCharsets;
import org.apache.lucene.analysis.*;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
public class EsEnglish {
  public static void main(String[] a) throws Exception {
    Analyzer an = new EnglishAnalyzer();
    BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(new BufferedOutputStream(System.out), false, "UTF-8");
    String line;
    while ((line = r.readLine()) != null) {
      StringBuilder sb = new StringBuilder();
      try (TokenStream ts = an.tokenStream("f", line)) {
        CharTermAttribute t = ts.addAttribute(CharTermAttribute.class);
        ts.reset();
        boolean first = true;
        while (ts.incrementToken()) { if (!first) sb.append(' '); sb.append(t); first = false; }
        ts.end();
      }
      out.print(sb); out.print('\n');
    }
    out.flush();
  }
}
"""


def find_lucene(jars_dir: str | None) -> list[str] | None:
    if not (shutil.which("java") and shutil.which("javac")):
        return None
    d = jars_dir or "/usr/share/java"
    core = sorted(glob.glob(os.path.join(d, "lucene-core-*.jar")))
    common = sorted(glob.glob(os.path.join(d, "lucene-analyzers-common-*.jar")))
    return [core[-1], common[-1]] if core and common else None


def lucene_analyze(jars: list[str], texts: list[str]) -> tuple[list[list[str]], str]:
    """Analyze ``texts`` with Lucene's EnglishAnalyzer; returns the token lists and the Lucene version."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "EsEnglish.java").write_text(_JAVA)
        cp = os.pathsep.join(jars)
        subprocess.run(["javac", "-cp", cp, "-d", tmp, os.path.join(tmp, "EsEnglish.java")], check=True)
        inp = "".join(re.sub(r"[\r\n]", " ", t) + "\n" for t in texts)
        res = subprocess.run(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", cp + os.pathsep + tmp, "EsEnglish"],
            input=inp.encode("utf-8"),
            capture_output=True,
            check=True,
        )
    lines = res.stdout.decode("utf-8").split("\n")[: len(texts)]
    assert len(lines) == len(texts), (len(lines), len(texts))
    version = re.search(r"lucene-core-([\d.]+)\.jar", jars[0])
    return [ln.split(" ") if ln else [] for ln in lines], version.group(1) if version else "?"


# --- retrieval ------------------------------------------------------------------------------------------------
def bm25_runs(corpus, queries: dict[str, str], analyzer, pre_analyzed: dict[str, list[str]] | None = None):
    """Index title/abstract with ``analyzer`` (or pre-analyzed tokens + whitespace tokenizer) and run every query
    in ``queries`` for each field set-up. Returns ``{setup: {qid: {doc_id: score}}}``."""
    import tantivy as T

    name = "variant"
    sb = T.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    for f in ("title", "abstract"):
        sb.add_text_field(f, stored=False, tokenizer_name="whitespace" if pre_analyzed is not None else name)
    schema = sb.build()
    with tempfile.TemporaryDirectory(prefix="analyzer_parity_") as tmp:
        index = T.Index(schema, path=tmp)
        if pre_analyzed is None:
            index.register_tokenizer(name, analyzer)
        w = index.writer(heap_size=50_000_000, num_threads=1)
        for doc in corpus.values():
            if pre_analyzed is None:
                title, abstract = doc.title, doc.abstract
            else:
                title, abstract = (" ".join(pre_analyzed[f"{k}:{doc.id}"]) for k in ("t", "a"))
            w.add_document(T.Document(id=doc.id, title=title, abstract=abstract))
        w.commit()
        w.wait_merging_threads()
        index.reload()
        searcher = index.searcher()
        runs: dict[str, dict[str, dict[str, float]]] = {s: {} for s in FIELD_SETUPS}
        for qid, text in queries.items():
            tokens = pre_analyzed[f"q:{qid}"] if pre_analyzed is not None else list(analyzer.analyze(text))
            for setup, fields in FIELD_SETUPS.items():
                if not tokens:
                    runs[setup][qid] = {}
                    continue
                per_field = []
                for f, boost in fields.items():
                    q = T.Query.boolean_query([(T.Occur.Should, T.Query.term_query(schema, f, t)) for t in tokens])
                    per_field.append(T.Query.boost_query(q, boost) if boost != 1.0 else q)
                query = T.Query.boolean_query([(T.Occur.Should, q) for q in per_field])
                hits = searcher.search(query, 100).hits
                # best first; evaluate() turns this order into rank scores (n - rank) for pytrec_eval
                runs[setup][qid] = {searcher.doc(addr)["id"][0]: float(score) for score, addr in hits}
    return runs


def stemmer_differences(corpus, porter_mode: str, top: int = 25) -> dict:
    """Where tantivy's Snowball English (Porter2) and Lucene's Porter stem the corpus's words differently."""
    words = collections.Counter()
    raw = PyEsEnglish(stemmer="none")
    for doc in corpus.values():
        words.update(raw.analyze(doc.title))
        words.update(raw.analyze(doc.abstract))
    p1, p2 = PyEsEnglish(porter_mode)._stem, PyEsEnglish(stemmer="porter2")._stem
    diff = {w: (p1(w), p2(w)) for w in words if p1(w) != p2(w)}
    total = sum(words.values())
    return {
        "word_types": len(words),
        "types_differing": len(diff) / len(words),
        "tokens_differing": sum(words[w] for w in diff) / total,
        "porter_stems": len({p1(w) for w in words}),
        "porter2_stems": len({p2(w) for w in words}),
        "most_frequent": [
            {"word": w, "count": words[w], "porter": diff[w][0], "porter2": diff[w][1]}
            for w in sorted(diff, key=lambda w: -words[w])[:top]
        ],
    }


def tantivy_stopword_list(corpus) -> dict:
    """Which of the corpus's words (and Lucene's 33) tantivy's ``stopword("english")`` removes."""
    import tantivy as T

    stop = T.TextAnalyzerBuilder(T.Tokenizer.raw()).filter(T.Filter.stopword("english")).build()
    words = set(LUCENE_STOP)
    for doc in corpus.values():
        words.update(re.findall(r"[a-z']+", f"{doc.title} {doc.abstract}".lower()))
    removed = sorted(w for w in words if not stop.analyze(w))
    return {"words_tried": len(words), "removed": removed, "equals_lucene33": removed == sorted(LUCENE_STOP)}


def agreement(tokens: list[list[str]], ref: list[list[str]]) -> dict[str, float]:
    same = jac = 0.0
    for a, b in zip(tokens, ref, strict=True):
        same += collections.Counter(a) == collections.Counter(b)
        sa, sb_ = set(a), set(b)
        jac += len(sa & sb_) / len(sa | sb_) if sa | sb_ else 1.0
    n = len(ref)
    return {"multiset_equal": same / n, "jaccard": jac / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scifact", required=True, help="BEIR SciFact directory (corpus.jsonl, queries.jsonl, qrels/)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results") / "analyzer_parity.json"))
    ap.add_argument("--sample", type=int, default=2000, help="documents in the agreement sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--porter-mode", default="MARTIN_EXTENSIONS", choices=["MARTIN_EXTENSIONS", "ORIGINAL_ALGORITHM"])
    ap.add_argument(
        "--lucene-jars", default=None, help="directory with lucene-core-*.jar, lucene-analyzers-common-*.jar"
    )
    ap.add_argument("--no-lucene", action="store_true", help="skip the real-Lucene reference")
    args = ap.parse_args()
    t0 = time.time()
    try:
        import nltk  # noqa: F401
        import regex  # noqa: F401
    except ImportError:
        sys.exit("the py-ES reference needs nltk (and its dependency regex): .venv/bin/pip install nltk")

    splits = {s: load_beir(args.scifact, s) for s in ("test", "train")}
    corpus = splits["test"].corpus
    all_queries = {**splits["test"].queries, **splits["train"].queries}
    doc_ids = sorted(corpus)
    sample = random.Random(args.seed).sample(doc_ids, min(args.sample, len(doc_ids)))

    def sample_tokens(analyze) -> list[list[str]]:
        return [list(analyze(corpus[d].title)) + list(analyze(corpus[d].abstract)) for d in sample]

    # references ---------------------------------------------------------------------------------------------
    def analyze_all(analyze) -> dict[str, list[str]]:
        return {
            **{f"t:{d}": analyze(doc.title) for d, doc in corpus.items()},
            **{f"a:{d}": analyze(doc.abstract) for d, doc in corpus.items()},
            **{f"q:{q}": analyze(t) for q, t in all_queries.items()},
        }

    refs: dict[str, dict[str, list[str]]] = {}
    refs["ref py-ES english"] = analyze_all(PyEsEnglish(args.porter_mode).analyze)
    # ES english with tantivy's stemmer: agreement with it is everything *but* the stemmer
    refs["ref py-ES english, Porter2 stemmer"] = analyze_all(PyEsEnglish(stemmer="porter2").analyze)
    stem_diff = stemmer_differences(corpus, args.porter_mode)
    checks = {"tantivy_english_stopwords": tantivy_stopword_list(corpus)}
    jars = None if args.no_lucene else find_lucene(args.lucene_jars)
    lucene_version = None
    if jars:
        keys = [f"t:{d}" for d in doc_ids] + [f"a:{d}" for d in doc_ids] + [f"q:{q}" for q in all_queries]
        texts = [corpus[d].title for d in doc_ids] + [corpus[d].abstract for d in doc_ids] + list(all_queries.values())
        toks, lucene_version = lucene_analyze(jars, texts)
        refs[f"ref Lucene {lucene_version} EnglishAnalyzer"] = dict(zip(keys, toks, strict=True))
        lucene_sample = [toks[doc_ids.index(d)] + toks[len(doc_ids) + doc_ids.index(d)] for d in sample]
        checks["py-ES vs Lucene by NLTK Porter mode"] = {
            mode: agreement(sample_tokens(PyEsEnglish(mode).analyze), lucene_sample)
            for mode in ("MARTIN_EXTENSIONS", "ORIGINAL_ALGORITHM")
        }
    else:
        print("(no java/javac + Lucene jars: the real-Lucene reference is skipped)", file=sys.stderr)
    ref_samples = {name: [r[f"t:{d}"] + r[f"a:{d}"] for d in sample] for name, r in refs.items()}
    lucene_key = next((k for k in refs if k.startswith("ref Lucene")), None)

    rows = []
    candidates: list[tuple[str, dict | None]] = [(n, v) for n, v in VARIANTS.items()] + [(n, None) for n in refs]
    for name, v in candidates:
        t1 = time.time()
        if v is not None:
            analyzer = build_tantivy_analyzer(v)
            toks = sample_tokens(analyzer.analyze)
            runs = bm25_runs(corpus, all_queries, analyzer)
        else:
            toks = ref_samples[name]
            runs = bm25_runs(corpus, all_queries, None, pre_analyzed=refs[name])
        row: dict = {"variant": name}
        if v is not None:
            row["config"] = v
            row["builder"] = builder_chain(v)
        row["agreement"] = {ref: agreement(toks, rs) for ref, rs in ref_samples.items()}
        row["tokens_per_doc"] = sum(map(len, toks)) / len(toks)
        row["vocabulary"] = len({t for ts in toks for t in ts})
        row["metrics"] = {}
        for split, ds in splits.items():
            for setup, run in runs.items():
                sub = {q: run[q] for q in ds.queries}
                m = evaluate(ds.qrels, sub, ["NDCG@10", "Recall@100"])
                row["metrics"][f"{split} {setup}"] = {k: round(x, 4) for k, x in m.items()}
        row["seconds"] = round(time.time() - t1, 1)
        rows.append(row)
        print(f"{name}: {row['seconds']}s", file=sys.stderr)

    # report ---------------------------------------------------------------------------------------------------
    ref_cols = list(ref_samples)
    short = {k: ("py-ES/P2" if "Porter2" in k else "py-ES" if "py-ES" in k else "Lucene") for k in ref_cols}
    head = ["variant"]
    for r in ref_cols:
        head += [f"={short[r]}", f"J {short[r]}"]
    cols = [f"{s} {fs}" for s in ("train", "test") for fs in FIELD_SETUPS]
    for c in cols:
        head += [f"{c} nDCG@10", f"{c} R@100"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["variant"]]
        for r in ref_cols:
            a = row["agreement"][r]
            cells += [f"{a['multiset_equal']:.3f}", f"{a['jaccard']:.3f}"]
        for c in cols:
            m = row["metrics"][c]
            cells += [f"{m['NDCG@10']:.4f}", f"{m['Recall@100']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    print(
        f"\nPorter2 (tantivy) vs Porter (Lucene-style) on SciFact words after the ES tokenizer/stop filter: "
        f"{stem_diff['types_differing']:.1%} of word types, {stem_diff['tokens_differing']:.1%} of tokens stem "
        f"differently; {stem_diff['porter_stems']} Porter stems vs {stem_diff['porter2_stems']} Porter2 stems"
    )

    cmd = " ".join([".venv/bin/python", "benchmarks/analyzer_parity.py", *sys.argv[1:]])
    import nltk
    import tantivy

    result = {
        "command": cmd,
        "what": "BM25-only SciFact NDCG@10 / Recall@100 per analyzer variant; token agreement with ES english",
        "field_setups": FIELD_SETUPS,
        "agreement_sample": {
            "documents": len(sample),
            "seed": args.seed,
            "text": "title + abstract, analyzed separately",
        },
        "references": {
            "ref py-ES english": f"pure Python: UAX#29-style regex, possessive, lowercase, Lucene 33 stop, "
            f"NLTK Porter {args.porter_mode} (words <= 2 chars unstemmed, as Lucene)",
            "ref py-ES english, Porter2 stemmer": "the same with tantivy's stemmer('english') (Snowball Porter2)",
            **({lucene_key: f"org.apache.lucene.analysis.en.EnglishAnalyzer from {jars}"} if lucene_key else {}),
        },
        "stemmer_differences": stem_diff,
        "checks": checks,
        "regex": {"UAX29_POSSESSIVE": UAX29_POSSESSIVE, "SIMPLE_POSSESSIVE": SIMPLE_POSSESSIVE},
        "stop_words": {"LUCENE33": LUCENE_STOP, "POSSESSIVE_TOKENS": POSSESSIVE_TOKENS},
        "versions": {
            "tantivy": getattr(tantivy, "__version__", "?"),
            "nltk": nltk.__version__,
            "lucene": lucene_version,
        },
        "rows": rows,
        "table": table,
        "seconds": round(time.time() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
