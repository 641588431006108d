"""Build data/scifact-sample: 500 SciFact abstracts (every document judged for the test queries, plus
seeded random fillers), the test queries and their qrels, in BEIR layout.

    python benchmarks/make_sample.py ../shared/data/scifact data/scifact-sample
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def main(src: str, dst: str, size: int = 500, seed: int = 42) -> None:
    s, d = Path(src), Path(dst)
    (d / "qrels").mkdir(parents=True, exist_ok=True)
    qrels_lines = (s / "qrels" / "test.tsv").read_text().splitlines()
    judged = {line.split("\t")[1] for line in qrels_lines[1:]}
    corpus = [json.loads(line) for line in (s / "corpus.jsonl").read_text().splitlines()]
    others = sorted(doc["_id"] for doc in corpus if doc["_id"] not in judged)
    keep = judged | set(random.Random(seed).sample(others, size - len(judged)))
    with open(d / "corpus.jsonl", "w") as fh:
        for doc in corpus:
            if doc["_id"] in keep:
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    qids = {line.split("\t")[0] for line in qrels_lines[1:]}
    with open(d / "queries.jsonl", "w") as fh:
        for line in (s / "queries.jsonl").read_text().splitlines():
            q = json.loads(line)
            if q["_id"] in qids:
                fh.write(json.dumps({"_id": q["_id"], "text": q["text"], "metadata": {}}, ensure_ascii=False) + "\n")
    (d / "qrels" / "test.tsv").write_text("\n".join(qrels_lines) + "\n")
    print(f"{len(keep)} documents ({len(judged)} judged), {len(qids)} queries")


if __name__ == "__main__":
    main(*sys.argv[1:3])
