"""``rerank_ce`` in a real Elasticsearch: a ``rerank`` inference endpoint on an eland-uploaded cross-encoder, the
``text_similarity_reranker`` retriever around the ``rescorer`` retriever, and the same ranking as the embedded
engine's cross-encoder stage with the same model run locally.

It needs what our Maven Central node lacks: the ML and inference modules and an Enterprise or trial license. The
skip names them, as ``@pytest.mark.needs`` does for the features :class:`~es_biomed.backends.dialects.Capabilities`
knows (it has no inference property yet, so the check is here). With a node that has them, set
``ES_BIOMED_RERANK_MODEL_ID`` (the trained model id that ``eland_import_hub_model --task-type text_similarity``
uploaded) and ``ES_BIOMED_RERANK_MODEL_DIR`` (the same cross-encoder as a local model directory).
On OpenSearch es-biomed refuses ``rerank_ce`` (ml-commons' rerank processor is not set up): the test there asserts
that refusal, before any request, and that the index still answers the same plan without the cross-encoder stage.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

from es_biomed.backends.embedded.index import EmbeddedIndex
from es_biomed.corpus import Document
from es_biomed.errors import PlanError
from es_biomed.query import SearchPlan
from es_biomed.query.analysis import AnalyzerConfig
from es_biomed.query.cross_stage import document_text
from es_biomed.query.es_compile import compile_search, rerank_endpoint_request
from es_biomed.search.stages import cross_encoder_stage
from tests.conftest import KeywordEncoder
from tests.live.conftest import NOT_ON_CENTRAL, WHY_MISSING

#: Module -> what it brings, for the skip reason (the same wording as tests/live/conftest.py's WHY_MISSING).
ML_MODULES = {
    "x-pack-ml": "x-pack-ml (machine learning: the eland-uploaded cross-encoder)",
    "x-pack-inference": "x-pack-inference (rerank inference endpoints, the text_similarity_reranker retriever)",
}
VOCAB = ["aspirin", "fever", "heart", "stroke", "statin"]
DOCS = [
    Document(id="d1", abstract="aspirin lowers fever in adults with a viral infection"),
    Document(id="d2", abstract="aspirin after a stroke of the heart reduces recurrence"),
    Document(id="d3", abstract="statin therapy for heart disease and aspirin use"),
    Document(id="d4", abstract="fever without aspirin in young children"),
    Document(id="d5", abstract="low dose aspirin prevents a second stroke"),
    Document(id="d6", abstract="aspirin aspirin dose trial in heart failure"),
]


@pytest.fixture
def ml_node(engine, caps):  # type: ignore[no-untyped-def]
    """Skip unless the node can run ``rerank_ce``, naming everything it lacks (``@pytest.mark.needs`` would stop at
    the first feature it knows, lang-painless). On OpenSearch it yields None: the test asserts the refusal."""
    if caps.engine != "elasticsearch":
        return None
    missing = [] if caps.scripts else [WHY_MISSING["scripts"]]  # the cosine rescore under the reranker
    missing += [why for module, why in ML_MODULES.items() if module not in caps.modules]
    if (caps.license or "") not in ("enterprise", "trial"):
        missing.append("an Enterprise or trial license (text_similarity_reranker)")
    if missing:
        extra = f" ({NOT_ON_CENTRAL})" if "x-pack-core" not in caps.modules else ""
        pytest.skip(f"{caps.engine} {caps.version} node lacks {'; '.join(missing)}{extra}")
    model_id, model_dir = os.environ.get("ES_BIOMED_RERANK_MODEL_ID"), os.environ.get("ES_BIOMED_RERANK_MODEL_DIR")
    if not model_id or not model_dir:
        pytest.skip(
            "no cross-encoder in the cluster: set ES_BIOMED_RERANK_MODEL_ID (the eland-uploaded text_similarity "
            "model) and ES_BIOMED_RERANK_MODEL_DIR (the same model as a local directory)"
        )
    return model_id, model_dir


def _plan(ce_weight: float, cross_encoder: str) -> SearchPlan:
    """BM25 top 6, the cosine rescore, then the cross-encoder over the top 5."""
    return SearchPlan(
        "aspirin stroke",
        k=5,
        window_size=6,
        rescore_query_weight=2.0,
        mode="rerank_ce",
        ce_window=5,
        ce_weight=ce_weight,
        cross_encoder=cross_encoder,
    )


def _embedded(tmp_path, encoder, text_analyzer) -> EmbeddedIndex:  # type: ignore[no-untyped-def]
    """DOCS in the embedded engine, analysed as the cluster index is."""
    analyzer = AnalyzerConfig(stopwords=False, stemmer="") if text_analyzer == "standard" else None
    idx = EmbeddedIndex.create(tmp_path / "ix", encoder.info, analyzer=analyzer)
    with idx.writer() as w:
        w.add(DOCS, encoder)
    return idx


def test_ce_text_holds_what_the_cross_encoder_reads(engine, make_backend, text_analyzer):
    """Elasticsearch documents carry ``ce_text`` = title ". " abstract (the embedded stage's text); OpenSearch, which
    refuses rerank_ce, stores none (its strict mapping has no such field)."""
    encoder = KeywordEncoder(VOCAB, name="toy-ce-text")
    be = make_backend()
    be.setup(encoder.info, analyzer=text_analyzer)
    docs = [
        Document(id="t1", title="Aspirin and stroke", abstract="low dose aspirin prevents a second stroke"),
        Document(id="t2", title="Statin", abstract=""),
        Document(id="t3", abstract="fever in children"),
    ]
    assert be.index_documents(docs, encoder).ok == 3
    got = {d: src.get("ce_text") for d, src in be.get(["t1", "t2", "t3"]).items()}
    if engine == "elasticsearch":
        assert be.has_ce_text()
        assert got == {
            "t1": "Aspirin and stroke. low dose aspirin prevents a second stroke",
            "t2": "Statin",
            "t3": "fever in children",
        }
        assert got["t1"] == document_text({"title": docs[0].title, "abstract": docs[0].abstract})
    else:
        assert not be.has_ce_text() and got == {"t1": None, "t2": None, "t3": None}


def test_an_index_made_before_ce_text_still_ingests_and_rerank_ce_names_the_fix(engine, make_backend, text_analyzer):
    """An index whose strict mapping predates ``ce_text`` (made here from today's template minus that field):
    documents still index (the field is sent only where mapped) and ``rerank_ce`` is refused naming the reindex."""
    from es_biomed.backends.es_mappings import index_template, versioned_index

    encoder = KeywordEncoder(VOCAB, name="toy-old-index")
    be = make_backend()
    template = index_template(encoder.info.dims, encoder.info.to_dict(), engine=engine, analyzer=text_analyzer)
    template["template"]["mappings"]["properties"].pop("ce_text", None)
    be.client.indices.create(
        index=versioned_index(be.alias, 1),
        body={**template["template"], "aliases": {be.alias: {"is_write_index": True}}},
    )
    assert not be.has_ce_text()
    assert be.index_documents(DOCS, encoder).ok == len(DOCS)
    vec = encoder.encode_queries(["aspirin stroke"])[0]
    want = (
        "does not map: it was made before that field; `es-biomed es reindex`"
        if engine == "elasticsearch"
        else ("rerank_ce in OpenSearch needs ml-commons")
    )
    with pytest.raises(PlanError, match=re.escape(want)):
        be.request(_plan(1.0, "unused"), vec)  # the body search() sends (before it checks for lang-painless)


@pytest.mark.parametrize("ce_weight", [1.0, 0.5])
def test_text_similarity_reranker_equals_the_embedded_stage(
    engine, ml_node, make_backend, text_analyzer, tmp_path, ce_weight
):
    from es_biomed.encode.cross_encoder import load_cross_encoder

    encoder = KeywordEncoder(VOCAB, name="toy-rerank-ce")
    be = make_backend()
    be.setup(encoder.info, analyzer=text_analyzer)
    assert be.index_documents(DOCS, encoder).ok == len(DOCS)
    if ml_node is None:  # OpenSearch: refused by name before anything is sent; the rescore alone still runs
        plan = _plan(ce_weight, "unused")
        vec = encoder.encode_queries([plan.query])[0]
        with pytest.raises(PlanError, match="rerank_ce in OpenSearch needs ml-commons' rerank search response"):
            be.search(plan, vec)
        if not be.capabilities().scripts:
            pytest.skip(f"OpenSearch refused rerank_ce by name; the rescore check needs {WHY_MISSING['scripts']}")
        rerank = plan.replace(mode="rerank", cross_encoder=None)
        got = [h.doc_id for h in be.search(rerank, vec).hits]
        want = [h.doc_id for h in _embedded(tmp_path, encoder, text_analyzer).search(rerank, vec).hits]
        assert got == want and got[0] == "d5", (got, want)  # d5: aspirin and stroke alone, the shortest such text
        return
    model_id, model_dir = ml_node
    inference_id = f"es-biomed-test-{uuid.uuid4().hex[:8]}"
    req = rerank_endpoint_request(inference_id, model_id)
    headers = {"accept": "application/json", "content-type": "application/json"}
    be.client.perform_request(req.method, "/" + req.path, headers=headers, body=req.body)
    try:
        plan = _plan(ce_weight, model_dir)
        vec = encoder.encode_queries([plan.query])[0]
        body = compile_search(plan, list(vec), inference_id=inference_id, passages=be.passages)  # reads ce_text
        resp = be.client.search(index=be.alias, body=body)
        got = [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]

        idx = _embedded(tmp_path, encoder, text_analyzer)
        want = cross_encoder_stage(idx, plan, vec, load_cross_encoder(model_dir)).hits
        assert [d for d, _ in got] == [h.doc_id for h in want], (got, want)
        assert [s for _, s in got] == pytest.approx([h.score for h in want], rel=1e-3)
    finally:
        be.client.perform_request("DELETE", "/" + req.path, headers={"accept": "application/json"})
