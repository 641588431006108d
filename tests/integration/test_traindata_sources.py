"""The training sources on the real shared data: nothing of a test or dev split leaks into training material."""

from __future__ import annotations

import json

from es_biomed.corpus.bioasq import load_bioasq, load_bioasq_split, split_by_question
from es_biomed.corpus.readers import read_qrels, read_queries
from es_biomed.train.data.build import self_supervised_pairs
from es_biomed.train.data.sources import load_sources, scifact_split


def test_sources_hold_out_test_and_dev(shared_data):
    sources = load_sources(shared_data)
    assert set(sources) == {"bioasq", "scifact", "pubmedqa", "cord19"}
    # SciFact: train claims only, minus the query-disjoint dev claims; no test claim anywhere
    sci = sources["scifact"]
    test_q = set(read_qrels(shared_data / "scifact" / "qrels" / "test.tsv"))
    train_ids, dev_ids = scifact_split(shared_data / "scifact")
    used = {p.qid for p in sci.pairs}
    assert used <= set(train_ids) and not used & set(dev_ids) and not used & test_q
    queries = read_queries(shared_data / "scifact" / "queries.jsonl")
    assert not {queries[q] for q in used} & {queries[q] for q in test_q}
    assert 150 <= len(dev_ids) <= 170 and sci.split["dev_queries"] == len(dev_ids)
    # BioASQ: no dev question, and no context of a dev question, as a pair or a document
    files = [shared_data / "bioasq" / "BioASQ-train-factoid-7b.json"]
    _, bio_dev = split_by_question(load_bioasq(files, None).queries)
    dev_ctx = set(load_bioasq_split(files, bio_dev, None).corpus)
    bio = sources["bioasq"]
    assert not {p.qid for p in bio.pairs} & set(bio_dev)
    assert not {p.doc_id for p in bio.pairs} & dev_ctx and not set(bio.documents) & dev_ctx
    assert len(dev_ctx) == 728
    # PubMedQA: the 500 test questions are left out of pairs and documents
    test_ids = set(json.loads((shared_data / "pubmedqa" / "test_ground_truth.json").read_text()))
    pq = sources["pubmedqa"]
    assert len(pq.pairs) == 500 and not set(pq.documents) & test_ids
    # every source records the sha256 of what it read
    assert all(len(h) == 64 for src in sources.values() for h in src.inputs_sha256.values())
    ss = self_supervised_pairs("cord19", sources["cord19"].documents, ["title", "ict"], seed=13)
    assert {p.kind for p in ss} == {"title", "ict"} and len(ss) > 5000
