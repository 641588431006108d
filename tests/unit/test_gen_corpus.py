"""The million-document generator (benchmarks/gen_corpus.py, issue 23) on a tiny corpus: distinct, deterministic,
made only of real sentences of the same source, vectors mixed from the rows it names, bad arguments refused."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from es_biomed.corpus import Document
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("gen_corpus", REPO / "benchmarks" / "gen_corpus.py")
assert _spec is not None and _spec.loader is not None
gc = importlib.util.module_from_spec(_spec)
sys.modules["gen_corpus"] = gc  # dataclasses look their module up
_spec.loader.exec_module(gc)

REAL = [
    Document(id="a1", title="Aspirin and fever in children", abstract="Aspirin lowers fever. It was given daily. "
             "Fever fell in 3 days.", source="alpha", date="2019-04-01"),
    Document(id="a2", title="Heart failure outcomes", abstract="Heart failure is common. We followed 200 patients. "
             "Mortality was 12%.", source="alpha", date="2020"),
    Document(id="a3", title="Stroke after surgery", abstract="Stroke risk rises after surgery. Cohort of 90 adults. "
             "Risk doubled in smokers.", source="alpha"),
    Document(id="b1", title="Viral spike proteins", abstract="Spike proteins bind receptors. Cryo-EM maps were made. "
             "Binding was strong.", source="beta", date="2021"),
    Document(id="b2", title="Vaccine response in the elderly", abstract="Older adults respond less. Titres were "
             "measured. Boosters helped.", source="beta", date="2022"),
]  # fmt: skip


@pytest.fixture
def pools():
    return gc.build_pools(REAL)


def test_sentences_and_pools(pools):
    assert sorted(pools) == ["alpha", "beta"]
    assert pools["alpha"].docs[0] == ["Aspirin lowers fever.", "It was given daily.", "Fever fell in 3 days."]
    assert pools["alpha"].years == ["2019", "2020", ""] and pools["beta"].rows == [3, 4]
    assert gc.capacity(pools) == gc.MAX_REUSE * 15 // 3


def test_documents_are_distinct_deterministic_and_real_sentences_of_one_source(pools):
    got = list(gc.generate(pools, 30, seed=7))
    again = list(gc.generate(pools, 30, seed=7))
    assert got == again and got != list(gc.generate(pools, 30, seed=8))
    abstracts = [d["abstract"] for d, _ in got]
    assert len(set(abstracts)) == 30  # of the 27 + 8 position-aligned combinations
    by_source = {s: {x for x in p.docs for x in x} for s, p in pools.items()}
    for doc, mix in got:
        pool = pools[doc["source"]]
        sents = gc.split_sentences(doc["abstract"])
        assert len(sents) == 3 and all(s in by_source[doc["source"]] for s in sents)
        assert {r for r, _ in mix} <= set(pool.rows) and abs(sum(w for _, w in mix) - 1.0) < 1e-9
        assert doc["date"] in {"2019", "2020", "2021", "2022"}  # a3 has none: drawn from the real years
    assert [d["id"] for d, _ in got[:2]] == ["gen-00000000", "gen-00000001"]


def test_vectors_mix_the_borrowed_rows_and_calibration_moves_the_noise(pools):
    rng = np.random.default_rng(0)
    real = rng.standard_normal((5, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    mixes = [[(0, 1.0)], [(1, 0.5), (2, 0.5)]]
    exact = gc.mix_vectors(real, mixes, noise=0.0, seed=0)
    assert np.allclose(exact[0], real[0], atol=1e-6)
    want = (real[1] + real[2]) / np.linalg.norm(real[1] + real[2])
    assert np.allclose(exact[1], want, atol=1e-6)
    noisy = gc.mix_vectors(real, mixes, noise=0.5, seed=0)
    assert np.allclose(np.linalg.norm(noisy, axis=1), 1.0, atol=1e-5) and not np.allclose(noisy, exact)
    # nearest-neighbour cosines by hand: rows 0 and 1 are each other's nearest
    three = np.array([[1, 0], [0.8, 0.6], [-1, 0]], dtype=np.float32)
    assert np.allclose(np.sort(gc.nn_cosines(three, sample=3)), [-0.8, 0.8, 0.8], atol=1e-6)


def test_term_stats_by_hand():
    st = gc.term_stats(iter(["Aspirin fever", "aspirin heart", "stroke"]), checkpoints=[1, 2])
    assert st["vocabulary_growth"] == {"1": 2, "2": 3, "3": 4}
    assert st["share_of_terms_with_df_1"] == 0.75 and st["top_term_df_over_docs"] == round(2 / 3, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 10**9}, "--docs 1000000000 is more than these sentences allow"),
        ({"n": 0}, "--docs must be a positive integer"),
        ({"seed": "x"}, "--seed must be an integer"),
        ({"seed": 1.5}, "--seed must be an integer"),
        ({"keep": 1.0}, "--keep must be in"),
    ],
)
def test_bad_arguments_are_refused_before_any_document(pools, kwargs, message):
    args = {"n": 5, "seed": 0, "keep": 0.5, **kwargs}
    with pytest.raises(gc.GeneratorError, match=message):
        next(gc.generate(pools, args["n"], args["seed"], args["keep"]))


def test_a_corpus_too_small_for_distinct_documents_names_the_document():
    one = gc.build_pools([REAL[0]])  # one template, one source: every draw is the same text
    with pytest.raises(gc.GeneratorError, match="document 1: still a duplicate after 50 draws"):
        list(gc.generate(one, 2, seed=0))


def test_the_cli_refuses_a_seed_that_is_not_an_integer(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        gc.main(["--docs", "10", "--out", str(tmp_path), "--seed", "abc"])
    assert exc.value.code == 2 and "--seed must be an integer, got 'abc'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
