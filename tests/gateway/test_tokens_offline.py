"""Exact token counts with no network: the bundled encodings are used when tiktoken's cache
lacks them, and with nothing readable counting falls back to bytes and marks rows estimated."""

from __future__ import annotations

import hashlib

import pytest

from gateway import tokens
from gateway.metering import estimate_usage
from tests.records import model_record

HELLO = [{"role": "user", "content": "hello world"}]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No encoding loaded, and an empty tiktoken cache the test owns."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    tokens.encodings_unload()
    yield tmp_path
    tokens.encodings_unload()
    monkeypatch.undo()
    tokens.encodings_load()


def _model(name: str):
    return model_record(name, prices=())


def test_bundled_encodings_are_tiktokens_published_files():
    published = {
        "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    }
    for name, digest in published.items():
        data = (tokens.BUNDLED_DIR / f"{name}.tiktoken").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest


def test_an_empty_cache_loads_the_bundled_copies_without_a_download(fresh):
    loaded = tokens.encodings_load(download=False)
    assert sorted(loaded) == ["cl100k_base", "o200k_base"]
    assert tokens.count_text("hello world", model="gpt-4o-mini") == (2, True)
    assert tokens.count_text("tiktoken is great!", model="gpt-4") == (6, True)
    assert not (fresh / "cache").exists()  # read only: nothing written into the user's cache


def test_a_users_cache_is_read_before_the_bundled_copy(fresh):
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache = fresh / "cache"
    cache.mkdir()
    key = hashlib.sha1(url.encode()).hexdigest()
    (cache / key).write_bytes((tokens.BUNDLED_DIR / "cl100k_base.tiktoken").read_bytes())
    empty = fresh / "no-bundle"
    empty.mkdir()
    assert tokens.encodings_load(("cl100k_base",), bundled_dir=empty, download=False) == [
        "cl100k_base"
    ]


def test_a_corrupt_cached_file_is_ignored_for_the_bundled_copy(fresh):
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cache = fresh / "cache"
    cache.mkdir()
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"aGVsbG8= 0\n")
    assert tokens.encodings_load(("o200k_base",), download=False) == ["o200k_base"]
    assert tokens.count_text("hello world", model="gpt-4o") == (2, True)


def test_with_nothing_readable_counts_fall_back_to_bytes_and_rows_are_estimated(fresh):
    empty = fresh / "no-bundle"
    empty.mkdir()
    assert tokens.encodings_load(bundled_dir=empty, download=False) == []
    assert tokens.count_text("hello world", model="gpt-4o") == (len(b"hello world"), False)
    usage = estimate_usage(
        api="chat", body={"messages": HELLO}, model=_model("gpt-4o"), completion_text="héllo"
    )
    assert usage.estimated
    assert usage.output == len("héllo".encode())
    assert usage.prompt_tokens >= len(b"hello world")
