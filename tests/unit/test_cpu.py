"""Which CPUs compute in bf16 (es_biomed.encode.cpu): AMX by default, AVX512-BF16 only when asked, none when off."""

from __future__ import annotations

import pytest

from es_biomed.encode.cpu import BF16_ENV, bf16_capable, bf16_enabled, cpu_kind

AVX2 = frozenset({"avx2", "fma"})
AVX512 = AVX2 | {"avx512f", "avx512_vnni"}
AVX512_BF16 = AVX512 | {"avx512_bf16"}
AMX = AVX512_BF16 | {"amx_bf16", "amx_int8"}


def test_kinds():
    assert [cpu_kind(f) for f in (AMX, AVX512_BF16, AVX512, AVX2, frozenset())] == [
        "amx", "avx512_bf16", "avx512", "avx2", "other"
    ]  # fmt: skip
    assert [bf16_capable(f) for f in (AMX, AVX512_BF16, AVX512, AVX2)] == [True, True, False, False]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [True, False, False, False]),  # AVX512-BF16's kernels move pinned figures: fp32 unless asked
        ("auto", [True, False, False, False]),
        ("on", [True, True, False, False]),  # never bf16 on a CPU without it
        ("YES", [True, True, False, False]),
        ("off", [False, False, False, False]),
        ("0", [False, False, False, False]),
    ],
)
def test_the_switch(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(BF16_ENV, raising=False)
    else:
        monkeypatch.setenv(BF16_ENV, value)
    assert [bf16_enabled(f) for f in (AMX, AVX512_BF16, AVX512, AVX2)] == expected


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(BF16_ENV, "sometimes")
    with pytest.raises(ValueError, match="ES_BIOMED_BF16='sometimes': expected auto, on"):
        bf16_enabled(AMX)
