"""Training data: the pair file's validation, self-supervised pairs, dense mining and the false-negative filter,
pair selection, base-model directory checks and the GPU run config (all offline, hand-checkable)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from es_biomed.corpus.types import Document
from es_biomed.errors import EsBiomedError
from es_biomed.models.model_dir import check_model_dir
from es_biomed.train.data.build import self_supervised_pairs
from es_biomed.train.data.mining import dense_candidates, filter_false_negatives
from es_biomed.train.data.pairs import FORMAT, Negative, Pair, PairFileError, read_pairs, write_pairs
from es_biomed.train.pt.data import Selection, pair_columns, select_pairs


def _pair(i: int, kind: str = "supervised", negs: int = 2) -> Pair:
    return Pair(
        f"s:q{i}:d{i}", "s", kind, f"s:q{i}", f"question {i}", f"s:d{i}", f"positive {i}",
        tuple(Negative(f"s:n{i}{j}", f"negative {i}{j}", "bm25" if j == 0 else "dense") for j in range(negs)),
    )  # fmt: skip


def test_pairs_round_trip(tmp_path):
    path = tmp_path / "pairs.jsonl"
    pairs = [_pair(1), _pair(2, "ict", 1)]
    assert write_pairs(path, pairs, {"config": {"seed": 1}}) == 2
    assert json.loads(path.read_text().splitlines()[0]) == {"format": FORMAT, "config": {"seed": 1}}
    assert list(read_pairs(path)) == pairs


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"format": "other/1"}'], "line 1: not a training-pair file"),
        (["query\tdoc"], "line 1: not a training-pair file"),
        ([None, '{"id": "a", "source": "s", "kind": "supervised", "qid": "q", "query": "  ", "pos_id": "d", '
          '"positive": "p"}'], "line 2: field 'query' is empty"),
        ([None, '{"id": "a", "source": "s", "kind": "title", "qid": "q", "query": "x", "pos_id": "d"}'],
         "line 2: field 'positive' must be a string"),
        ([None, '{"id": "a", "source": "s", "kind": "paraphrase", "qid": "q", "query": "x", "pos_id": "d", '
          '"positive": "p"}'], "line 2: unknown kind 'paraphrase'"),
        ([None, "[1, 2]"], "line 2: expected a JSON object"),
        ([None, "{oops"], "line 2: malformed JSON"),
    ],
)  # fmt: skip
def test_bad_pair_files_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    header = json.dumps({"format": FORMAT})
    path.write_text("\n".join(header if line is None else line for line in lines) + "\n")
    with pytest.raises(PairFileError) as err:
        list(read_pairs(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_duplicate_pair_id_names_both_lines(tmp_path):
    path = tmp_path / "dup.jsonl"
    row = json.dumps(_pair(1).to_json())
    path.write_text("\n".join([json.dumps({"format": FORMAT}), row, json.dumps(_pair(2).to_json()), row]) + "\n")
    with pytest.raises(PairFileError, match=r"line 4: duplicate pair id 's:q1:d1' \(first on line 2\)"):
        list(read_pairs(path))
    with pytest.raises(PairFileError, match="duplicate pair id"):
        write_pairs(tmp_path / "out.jsonl", [_pair(1), _pair(1)])


def test_self_supervised_pairs():
    abstract = (
        "Aspirin inhibits platelet cyclooxygenase in most patients. "
        "The effect lasts for the whole life of the platelet. "
        "Low doses are enough to prevent thrombosis in trials."
    )
    docs = {
        "7": Document(id="7", title="Aspirin and platelets", abstract=abstract),
        "8": Document(id="8", title="Short", abstract="Too short to use."),
    }
    pairs = self_supervised_pairs("x", docs, ["title", "ict"], seed=3)
    assert [(p.id, p.kind) for p in pairs] == [("x:title:7", "title"), ("x:ict:7", "ict")]
    title, ict = pairs
    assert (title.query, title.positive, title.pos_id) == ("Aspirin and platelets", abstract, "x:7")
    assert ict.query in abstract and ict.query not in ict.positive
    assert ict.positive.startswith("Aspirin and platelets ")
    # the removed sentence plus the rest gives back every word of the abstract
    assert sorted((ict.query + " " + ict.positive.removeprefix("Aspirin and platelets ")).split()) == sorted(
        abstract.split()
    )
    assert self_supervised_pairs("x", docs, ["title", "ict"], seed=3) == pairs  # seeded


def test_dense_candidates_and_false_negative_filter():
    docs = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    got = dense_candidates(q, docs, ["a", "b", "c", "d"], [{"a"}], depth=2)
    assert [(d, round(s, 4)) for d, s in got[0]] == [("b", 0.8), ("d", 0.6)]
    # positive scores 0.8: with max_ratio 0.95 a candidate above 0.76 is dropped
    assert filter_false_negatives([("b", 0.8), ("d", 0.6), ("c", 0.0)], 0.8, 0.95) == (["d", "c"], 1)
    assert filter_false_negatives([("b", 0.8)], 0.9, 0.95) == (["b"], 0)


def test_select_pairs_budget_and_negatives(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, [_pair(i) for i in range(10)] + [_pair(20 + i, "title", 1) for i in range(5)])
    chosen, counts = select_pairs(path, Selection({"supervised": 4, "title": None}, negatives=1, seed=7))
    assert counts == {"s": {"supervised": 4, "title": 5}}
    assert all(len(p.negatives) == 1 for p in chosen)
    again, _ = select_pairs(path, Selection({"supervised": 4, "title": None}, negatives=1, seed=7))
    assert again == chosen
    cols = pair_columns(chosen, 1)
    assert list(cols) == ["anchor", "positive", "negative_1"] and len(cols["anchor"]) == 9
    with pytest.raises(EsBiomedError, match="no pair of kinds"):
        select_pairs(path, Selection({"title": None}, negatives=2))


def test_base_model_dir_names_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EsBiomedError) as err:
        check_model_dir(tmp_path, "base model")
    msg = str(err.value)
    assert (
        str(tmp_path) in msg
        and "model.safetensors or pytorch_model.bin" in msg
        and "tokenizer.json or vocab.txt" in msg
    )
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(EsBiomedError, match=r"missing weights \(model.safetensors or pytorch_model.bin\)$"):
        check_model_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert check_model_dir(tmp_path) == tmp_path
    with pytest.raises(EsBiomedError, match="does not exist"):
        check_model_dir(tmp_path / "nope")


def test_gpu_run_config_refuses_unknown_keys(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gpu_run", Path(__file__).parents[2] / "training" / "gpu_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"biencoders": [{"name": "m", "config": {"lr": 1}}]}))
    with pytest.raises(EsBiomedError, match=r"biencoders\[0\].config: unknown BiEncoderConfig key\(s\): lr"):
        mod.load_config(str(bad))
    bad.write_text(json.dumps({"epochs": 1}))
    with pytest.raises(EsBiomedError, match="unknown key"):
        mod.load_config(str(bad))
    for name in ("gpu.json", "tiny.json"):
        mod.load_config(str(Path(__file__).parents[2] / "training" / "configs" / name))
