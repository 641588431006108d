"""The fast subset of the reproducibility table (benchmarks/repro.yaml, tier fast): the shipped sample's numbers,
rerun with their exact commands and compared within the table's tolerance."""

from __future__ import annotations

import pytest

from es_biomed.eval.repro import compare, document_precision, load_repro, run_conditions
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.precision]


def test_fast_conditions_reproduce():
    table = load_repro(REPO / "benchmarks" / "repro.yaml")
    conds = table.select(["fast"])
    assert len(conds) >= 4
    run_conditions(conds, REPO)
    # bf16 document vectors where the CPU has AMX / AVX512-BF16, else fp32: dense and hybrid carry both figures
    assert compare(table, conds, REPO, document_precision()) == []
