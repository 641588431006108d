"""The house in layers (issue 27), checked on every run: the import-linter contract holds, no import loop, no module
imports another's private name or the package face, and no library module passes 600 lines."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "es_biomed"
MAX_LINES = 600


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_layers_contract_holds():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (the dev extra has it)")
    res = subprocess.run([exe, "setup.cfg"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "1 kept, 0 broken" in res.stdout


def _graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("es_biomed")


def test_no_import_loop():
    g = _graph()
    loops = sorted(
        f"{m} -> {n}"
        for m in g.modules
        for n in g.find_modules_directly_imported_by(m)
        if g.chain_exists(importer=n, imported=m)
    )
    assert loops == []


def test_no_module_imports_the_package_face():
    """``es_biomed/__init__.py`` is for users; inside, every import names the module that owns the name."""
    assert sorted(_graph().find_modules_that_directly_import("es_biomed")) == []


def test_no_private_name_crosses_a_module():
    crossing = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("es_biomed"):
                crossing += [
                    f"{path.relative_to(REPO)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name[:1] == "_" and a.name[:2] != "__"
                ]
    assert crossing == []


def test_no_library_module_over_600_lines():
    long = {str(p.relative_to(REPO)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_scripts_run_by_path_are_not_shadowed_by_their_neighbours():
    """``export/eland_trace.py`` runs as a script in the eland environment, so its folder comes first on its
    ``sys.path``: no module beside it may be named like a package it imports (``eland.py`` shadowed eland)."""
    script = PACKAGE / "export" / "eland_trace.py"
    imported = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    neighbours = {p.stem for p in script.parent.glob("*.py")}
    assert "eland" in imported and imported & neighbours == set()
