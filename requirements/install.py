"""Install into a virtual environment with the least disk at the peak.

    python requirements/install.py .venv/bin/pip -e '.[torch,tf]'
    python requirements/install.py .venv-eland/bin/pip -r requirements/eland.txt

A plain ``pip install`` of es-biomed's test set downloads every wheel (about 4 GB: torch and TensorFlow with the
CUDA libraries PyPI's torch wheels pull in) into a temporary folder, keeps them until the last one is installed,
and copies them into pip's cache as well; the CI machine ran out of disk that way. Here pip first resolves the
arguments without downloading anything (``--dry-run --report``, from the index's metadata), then installs what it
chose, without its cache: every heavy wheel on its own (the peak is the environment plus the largest wheel, about
0.9 GB), the rest in one batch, all with ``--no-deps`` so the resolution is pip's own, made once. A last plain
``pip install`` of the same arguments finds everything in place, checks the dependencies and installs the editable
project. The packages and versions are exactly those of a plain ``pip install`` of the same arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

# Wheels of several hundred MB each; installed one at a time. Everything else goes in one batch.
HEAVY_PREFIXES = (
    "torch",
    "triton",
    "tensorflow",
    "nvidia-",
    "cusparselt",
    "jaxlib",
    "pyarrow",
    "playwright",
    "openvino",
    "onnxruntime",
    "xgboost",
)
QUIET = ["-q", "--no-cache-dir", "--disable-pip-version-check"]


def _pip(pip: str, *args: str) -> None:
    cmd = [pip, "install", *QUIET, *args]
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed with exit code {result.returncode}")


def plan(pip: str, args: list[str]) -> list[tuple[str, str]]:
    """(name, ``name==version``) of every distribution pip would install for ``args``, in its order; local projects left out."""
    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, "report.json")
        cmd = [pip, "install", *QUIET, "--dry-run", "--report", report_path, *args]
        result = subprocess.run(cmd)
        if result.returncode != 0:
            raise SystemExit(f"error: resolving {' '.join(args)} failed (exit code {result.returncode})")
        with open(report_path, encoding="utf-8") as fh:
            report = json.load(fh)
    chosen = []
    for item in report.get("install", []):
        info = item.get("download_info", {})
        if "dir_info" in info:  # the project itself (-e .): the final install builds it
            continue
        meta = item["metadata"]
        chosen.append((meta["name"].lower(), f"{meta['name']}=={meta['version']}"))
    return chosen


def split(chosen: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The pins of ``chosen`` as (heavy, light), each in pip's order."""
    heavy, light = [], []
    for name, pin in chosen:
        (heavy if name.replace("_", "-").startswith(HEAVY_PREFIXES) else light).append(pin)
    return heavy, light


def install(pip: str, args: list[str]) -> None:
    heavy, light = split(plan(pip, args))
    for n, pin in enumerate(heavy, 1):
        print(f"[{n}/{len(heavy)}] {pin}", flush=True)
        _pip(pip, "--no-deps", pin)
    if light:
        print(f"{len(light)} smaller distributions", flush=True)
        _pip(pip, "--no-deps", *light)
    _pip(pip, *args)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: install.py PIP PIP_INSTALL_ARGS...")
    install(argv[0], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
