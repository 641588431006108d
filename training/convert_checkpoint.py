"""Convert a Google BERT TensorFlow checkpoint (e.g. the TPU-trained BioMedBERT) to a Hugging Face directory
and/or a TF-Hub-style encoder module; or, with --to-google, any load_bert source to a Google checkpoint.

Examples::

    python training/convert_checkpoint.py /models/biomedbert_ckpt --hf-dir /models/biomedbert-hf \\
        --hub-dir /models/biomedbert-hub --pooling cls --max-length 512
    python training/convert_checkpoint.py all-MiniLM-L6-v2 --to-google /models/minilm-google
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="Google checkpoint directory or prefix (or any load_bert source)")
    parser.add_argument("--hf-dir", help="write a Hugging Face directory (config.json, tf_model.h5, vocab.txt)")
    parser.add_argument("--hub-dir", help="write a TF-Hub-style SavedModel that es_biomed.encode.load_encoder loads")
    parser.add_argument("--to-google", help="write a Google BERT checkpoint directory")
    parser.add_argument("--mlm", action="store_true", help="keep the masked-LM head (for --hf-dir / --to-google)")
    parser.add_argument("--pooling", choices=["mean", "cls", "max"], help="pooling recorded in the hub module")
    parser.add_argument("--max-length", type=int, help="token limit recorded in the hub module")
    parser.add_argument("--uncased", dest="do_lower_case", action="store_true", default=None)
    parser.add_argument("--cased", dest="do_lower_case", action="store_false")
    args = parser.parse_args(argv)
    if not (args.hf_dir or args.hub_dir or args.to_google):
        parser.error("give at least one of --hf-dir, --hub-dir, --to-google")

    from es_biomed.export.tf_hub import export_hub_module
    from es_biomed.train.tf import load_bert, save_bert, write_google_checkpoint

    written: dict[str, str] = {}
    if args.hf_dir or args.to_google:
        model, tokenizer = load_bert(
            args.source, for_mlm=args.mlm, do_lower_case=args.do_lower_case, max_length=args.max_length
        )
        if args.hf_dir:
            written["hf_dir"] = str(save_bert(model, tokenizer, args.hf_dir))
        if args.to_google:
            written["google_checkpoint"] = str(write_google_checkpoint(model, tokenizer, args.to_google))
    if args.hub_dir:
        encoder, tokenizer = load_bert(args.source, do_lower_case=args.do_lower_case, max_length=args.max_length)
        written["hub_dir"] = str(
            export_hub_module(encoder, tokenizer, args.hub_dir, pooling=args.pooling, max_length=args.max_length)
        )
    print(json.dumps(written, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
