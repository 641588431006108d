"""requirements/install.py: pip's own resolution, the heavy wheels split off, nothing reinstalled when satisfied."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("lean_install", REPO / "requirements" / "install.py")
lean_install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lean_install)


def test_split_keeps_pips_order_and_sends_cuda_torch_tensorflow_apart():
    chosen = [
        ("numpy", "numpy==2.4.6"),
        ("nvidia-cublas-cu12", "nvidia-cublas-cu12==12.6.4.1"),
        ("tqdm", "tqdm==4.70.1"),
        ("torch", "torch==2.7.1"),
        ("nvidia_nccl_cu13", "nvidia_nccl_cu13==2.29.7"),
        ("tensorflow", "tensorflow==2.21.0"),
        ("tokenizers", "tokenizers==0.22.2"),
    ]
    heavy, light = lean_install.split(chosen)
    assert heavy == ["nvidia-cublas-cu12==12.6.4.1", "torch==2.7.1", "nvidia_nccl_cu13==2.29.7", "tensorflow==2.21.0"]
    assert light == ["numpy==2.4.6", "tqdm==4.70.1", "tokenizers==0.22.2"]


def test_plan_of_an_installed_requirement_is_empty_offline():
    # pip's real resolver, with no index: numpy is in this environment, so there is nothing to fetch or install.
    pip = str(Path(sys.executable).parent / "pip")
    assert lean_install.plan(pip, ["--no-index", "numpy"]) == []
