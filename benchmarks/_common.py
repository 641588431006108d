"""Timing and memory helpers for the benchmarks (after bm25s ``utils/benchmark.py``)."""

from __future__ import annotations

import json
import platform
import resource
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).with_name("results")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


def machine() -> dict[str, object]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}


def save(name: str, result: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    return out
