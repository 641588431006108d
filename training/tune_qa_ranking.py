"""Choose the QA retrieval prior (``rank_weight``) on BioASQ 7b **train** questions, never on the dev split.

An answer's score is the reader's span log-probability minus ``rank_weight * ln(1 + rank)`` of its document's
search rank (:class:`es_biomed.qa.Asker`). The train questions' passages are retrieved with the default plan
(BM25 + rerank, 20 passages) from an index of the train questions' contexts, read once by biomed-qa, and scored
for each weight; the weight with the best MRR becomes ``es_biomed.qa.pipeline.DEFAULT_RANK_WEIGHT``. (The reader
was trained on these questions, so its absolute scores here are optimistic; only the choice of weight is used.)

Example:
    flock /tmp/es-biomed-cpu.lock python training/tune_qa_ranking.py \\
        --squad ../shared/data/bioasq/BioASQ-train-factoid-7b.json --index runs/qa/bioasq7b-train \\
        --encoder biomed-minilm --results training/results/qa_rank_weight.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--squad", required=True, type=Path, help="BioASQ-train-factoid-7b.json")
    ap.add_argument(
        "--index", required=True, type=Path, help="embedded index of the train contexts (built if missing)"
    )
    ap.add_argument("--encoder", default="biomed-minilm")
    ap.add_argument("--reader", default="biomed-qa")
    ap.add_argument("--passages", type=int, default=20)
    ap.add_argument("--max-questions", type=int, default=None)
    ap.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    ap.add_argument("--results", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from es_biomed.encode import load_encoder
    from es_biomed.eval.qa_e2e import tune_rank_weight
    from es_biomed.qa import load_reader

    result = tune_rank_weight(
        [args.squad],
        args.index,
        load_encoder(args.encoder),
        load_reader(args.reader),
        args.weights,
        passages=args.passages,
        max_questions=args.max_questions,
        show_progress=True,
    )
    result["command"] = "training/tune_qa_ranking.py " + " ".join(argv or __import__("sys").argv[1:])
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({w: round(m["mrr"], 4) for w, m in result["grid"].items()}), "best", result["best"])
    return result


if __name__ == "__main__":
    main()
