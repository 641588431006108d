"""``import es_biomed.qa`` (and the CLI that registers ``ask``) stays light: no torch, TensorFlow or transformers."""

from __future__ import annotations

from tests.unit.test_packaging import run_blocked


def test_qa_package_imports_without_torch_or_tensorflow():
    proc = run_blocked(
        """
        from es_biomed.qa import Asker, Answer, SpanReader, load_reader, QaParameterError
        import es_biomed.cli.qa, es_biomed.eval.qa_e2e, es_biomed.qa.onnx
        import es_biomed.cli
        from es_biomed.cli.eval import eval_group
        assert "ask" in es_biomed.cli.main.commands and "qa" in eval_group.commands
        print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
