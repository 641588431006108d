"""Export any load_bert source (registered name, Hugging Face directory, Google checkpoint) as a TF-Hub-style
encoder module that ``es_biomed.encode.load_encoder`` (TensorFlow backend) loads.

Example::

    python training/export.py all-MiniLM-L6-v2 /models/minilm-hub
    python -c "from es_biomed.encode import load_encoder; print(load_encoder('/models/minilm-hub').dims)"
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="registered encoder name, HF directory or Google checkpoint")
    parser.add_argument("out_dir", help="new (or empty) output directory")
    parser.add_argument("--pooling", choices=["mean", "cls", "max"], help="default: the source's pooling")
    parser.add_argument("--max-length", type=int, help="default: the source's max_seq_length")
    args = parser.parse_args(argv)

    from es_biomed.export.tf_hub import export_hub_module
    from es_biomed.train.tf import load_bert

    model, tokenizer = load_bert(args.source, max_length=args.max_length)
    print(export_hub_module(model, tokenizer, args.out_dir, pooling=args.pooling, max_length=args.max_length))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
