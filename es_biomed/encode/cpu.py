"""What this CPU can compute fast, and the one switch that turns bf16 off.

Every precision decision of the runtime (the document encoder's OpenVINO variant, the cross-encoder's and the
trainers' ``auto`` autocast) asks :func:`bf16_enabled`, so one environment variable moves all of them:

unset, or ``ES_BIOMED_BF16=auto``
    bf16 where the CPU has AMX (``amx``), fp32 everywhere else. On AVX512-BF16 without AMX, bf16 is computed with
    other kernels (dot products, not tiles) whose rounding moves some pinned figures (BioASQ Table 9 on one batch:
    ``bm25+cosine`` MRR 0.951 there, 0.955 on AMX, 0.951 in fp32), so such CPUs run fp32 unless asked.
``ES_BIOMED_BF16=on`` (also ``1``, ``true``, ``yes``)
    bf16 wherever the CPU computes it natively (AMX or AVX512-BF16): faster there, with the same encoder
    identity, but figures pinned for AMX's bf16 may move.
``ES_BIOMED_BF16=off`` (also ``0``, ``false``, ``no``)
    Never compute in bf16, even where the CPU has AMX: OpenVINO compiles in fp32, ``auto`` autocast means fp32.
    This is the fp32 path every CPU without AMX runs (most laptops and cloud VMs: AVX2 only), so a machine with
    AMX can prove the figures an AVX2 machine gets. The reverse, bf16 on a CPU without it, cannot be forced:
    OpenVINO falls back to fp32 there.

Kinds of x86-64 CPU (:func:`cpu_kind`), best first:

* ``amx``: AMX-BF16 tiles (Sapphire Rapids and later): bf16 GEMMs natively;
* ``avx512_bf16``: AVX512-BF16 without AMX (Cooper Lake, Zen 4): bf16 dot products;
* ``avx512``: AVX-512 without bf16 (Skylake-SP to Ice Lake): fp32 and int8 (VNNI where ``avx512_vnni``);
* ``avx2``: AVX2 and FMA only (Haswell to Alder Lake clients, Zen 1-3): fp32 and int8 (``vpmaddubsw``);
* ``other``: anything else (no AVX2, or not x86 / not Linux).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

__all__ = ["BF16_ENV", "CpuKind", "bf16_enabled", "cpu_flags", "cpu_kind", "cpu_summary", "bf16_capable"]

#: The environment variable that switches bf16 off (documented in the README and docs).
BF16_ENV = "ES_BIOMED_BF16"
_OFF = ("0", "off", "false", "no")
_AUTO = ("", "auto")
_ON = ("1", "on", "true", "yes")

CpuKind = Literal["amx", "avx512_bf16", "avx512", "avx2", "other"]


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_kind(flags: frozenset[str] | None = None) -> CpuKind:
    """The kind of this CPU (or of ``flags``), as in the module docstring."""
    f = cpu_flags() if flags is None else flags
    if "amx_bf16" in f:
        return "amx"
    if "avx512_bf16" in f:
        return "avx512_bf16"
    if "avx512f" in f:
        return "avx512"
    if "avx2" in f and "fma" in f:
        return "avx2"
    return "other"


def bf16_capable(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes bf16 natively (AMX-BF16 or AVX512-BF16), whatever the switch says."""
    return cpu_kind(flags) in ("amx", "avx512_bf16")


def bf16_enabled(flags: frozenset[str] | None = None) -> bool:
    """Whether the runtime computes in bf16: by default where the CPU has AMX; with ``ES_BIOMED_BF16=on`` wherever it
    computes bf16 natively; never with ``ES_BIOMED_BF16=off`` (see the module docstring).

    Raises:
        ValueError: ``ES_BIOMED_BF16`` holds something other than auto/on/off words (it names the variable).
    """
    value = os.environ.get(BF16_ENV, "").strip().lower()
    if value in _OFF:
        return False
    if value in _AUTO:
        return cpu_kind(flags) == "amx"
    if value in _ON:
        return bf16_capable(flags)
    raise ValueError(f"{BF16_ENV}={value!r}: expected auto, on (1, true, yes) or off (0, false, no)")


def cpu_summary() -> dict[str, object]:
    """What CI prints and benchmarks record: the model name, the kind, the relevant flags, the bf16 switch."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return {
        "model": model,
        "kind": cpu_kind(),
        "flags": [f for f in wanted if f in cpu_flags()],
        "bf16_capable": bf16_capable(),
        "bf16_enabled": bf16_enabled(),
        BF16_ENV: os.environ.get(BF16_ENV),
        "cores": os.cpu_count(),
    }
