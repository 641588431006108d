"""``fingerprint_files`` remembers digests by file stat, and never serves a stale one."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from es_biomed.models.files import fingerprint_cache_path, fingerprint_files


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "fingerprints.json"
    monkeypatch.setenv("ES_BIOMED_FINGERPRINT_CACHE", str(path))
    return path


def by_hand(files, extra):
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for f in sorted(files):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def test_cached_digest_equals_the_hash_and_is_reused(cache, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"weights" * 1000)
    b.write_bytes(b"tokenizer")
    assert fingerprint_cache_path() == cache
    first = fingerprint_files([b, a], {"dims": 4})
    assert first == by_hand([a, b], {"dims": 4}) and cache.is_file()
    assert list(json.loads(cache.read_text()).values()) == [first]
    # A forged cache entry is served as long as the files' stats are unchanged: proof the bytes were not re-read.
    key = next(iter(json.loads(cache.read_text())))
    cache.write_text(json.dumps({key: "f" * 16}))
    assert fingerprint_files([a, b], {"dims": 4}) == "f" * 16
    assert fingerprint_files([a, b], {"dims": 8}) == by_hand([a, b], {"dims": 8})  # other settings, other key


def test_rewritten_file_is_hashed_again_even_with_the_same_size(cache, tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"x" * 64)
    before = fingerprint_files([a], {})
    st = os.stat(a)
    a.write_bytes(b"y" * 64)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert fingerprint_files([a], {}) == by_hand([a], {}) != before


def test_cache_off_damaged_or_unwritable(tmp_path, monkeypatch):
    a = tmp_path / "a.bin"
    a.write_bytes(b"z")
    monkeypatch.setenv("ES_BIOMED_FINGERPRINT_CACHE", "")
    assert fingerprint_files([a], {}) == by_hand([a], {})
    assert not (tmp_path / "fingerprints.json").exists()
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    monkeypatch.setenv("ES_BIOMED_FINGERPRINT_CACHE", str(damaged))
    assert fingerprint_files([a], {}) == by_hand([a], {})
    monkeypatch.setenv("ES_BIOMED_FINGERPRINT_CACHE", str(a / "under-a-file.json"))  # cannot be created
    assert fingerprint_files([a], {}) == by_hand([a], {})


def test_missing_file_still_raises(cache, tmp_path):
    with pytest.raises(FileNotFoundError):
        fingerprint_files([tmp_path / "absent.bin"], {})
