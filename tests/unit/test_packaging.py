"""The core installs light: ``import es_biomed`` must work with torch, TensorFlow and transformers absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {"torch", "tensorflow", "transformers", "sentence_transformers", "tf_keras", "tensorflow_hub"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked for this test")
            return None
    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_import_without_torch_or_tensorflow():
    proc = run_blocked(
        """
        import es_biomed
        from es_biomed import SearchPlan, EmbeddedIndex, Searcher, load_beir, evaluate
        import es_biomed.cli
        print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_missing_extra_names_the_install_line():
    proc = run_blocked(
        """
        from es_biomed import load_encoder, MissingDependencyError
        try:
            load_encoder("all-MiniLM-L6-v2")
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'es-biomed[torch]'" in proc.stdout


def test_errors_pickle_round_trip():
    import pickle

    from es_biomed.errors import RecordError, RejectedRecordsError

    err = pickle.loads(pickle.dumps(RecordError("f.jsonl", 3, "title", "empty value")))
    assert (err.path, err.line, err.field, str(err)) == (
        "f.jsonl",
        3,
        "title",
        "f.jsonl:3: field 'title': empty value",
    )
    rej = pickle.loads(pickle.dumps(RejectedRecordsError(2, "r.jsonl")))
    assert str(rej) == "2 record(s) rejected; see r.jsonl"
