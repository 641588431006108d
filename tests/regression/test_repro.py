"""The whole reproducibility table (benchmarks/repro.yaml): every number of the
README's and docs/ pages' tables, rerun with its exact command.
Slow (indexes SciFact, the BioASQ splits and the 24,045-document pool the first time): ``pytest -m slow``."""

from __future__ import annotations

import pytest

from es_biomed.eval.repro import compare, document_precision, load_repro, run_conditions
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_every_condition_reproduces(shared_data):
    table = load_repro(REPO / "benchmarks" / "repro.yaml")
    run_conditions(table.conditions, REPO)
    problems = compare(table, table.conditions, REPO, document_precision())
    assert problems == [], "\n".join(problems)
