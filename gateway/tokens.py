"""Token counting for calls whose upstream reports no usage.

Encodings are loaded once at start-up, never from the network on the request path. tiktoken
downloads them on first use, which fails on an air-gapped host, so the product carries
``cl100k_base`` and ``o200k_base`` itself (``gateway/encodings/``, byte-identical to OpenAI's
published files, checked by SHA-256). Lookup order per encoding: the cache tiktoken would use
(``TIKTOKEN_CACHE_DIR`` if the user set it, else tiktoken's default cache folder), then the
bundled copy, then tiktoken's own download. With no encoding readable, the UTF-8 byte length
is the count: an upper bound for byte-level BPE. Counts made here mark the ledger row as
estimated.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "encodings"
_ENCODINGS: dict[str, object] = {}
_LOAD_LOCK = threading.Lock()
_PER_MESSAGE = 4  # role/name framing per message, as OpenAI's cookbook counts it
_PER_REPLY = 3


def _tiktoken_cache_dir() -> Path | None:
    """The folder tiktoken's own loader reads (None when the user disabled its cache)."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if configured == "":
        return None
    return Path(configured or Path(tempfile.gettempdir()) / "data-gym-cache")


def _read_ranks(path: Path, expected_hash: str | None) -> dict[bytes, int] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
        log.warning("tiktoken file %s does not match its published hash; ignored", path)
        return None
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _offline_loader(bundled_dir: Path, fallback):
    """A stand-in for tiktoken's ``load_tiktoken_bpe`` that reads local copies first
    (``fallback``, tiktoken's download, only when neither has the file)."""

    def load(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        cache = _tiktoken_cache_dir()
        if cache is not None:
            cached = cache / hashlib.sha1(blobpath.encode()).hexdigest()  # noqa: S324 - tiktoken's cache key
            if (ranks := _read_ranks(cached, expected_hash)) is not None:
                return ranks
        bundled = bundled_dir / blobpath.rsplit("/", 1)[-1]
        if (ranks := _read_ranks(bundled, expected_hash)) is not None:
            return ranks
        if fallback is None:
            raise FileNotFoundError(f"no local copy of {blobpath}")
        return fallback(blobpath, expected_hash=expected_hash)

    return load


def _build(name: str, bundled_dir: Path, download: bool):
    """tiktoken's own definition of ``name`` (pattern, special tokens), ranks read offline.
    The definition calls the module's ``load_tiktoken_bpe``, swapped for the call's duration
    (under ``_LOAD_LOCK``) so the patterns are tiktoken's rather than a copy of them."""
    import tiktoken
    from tiktoken_ext import openai_public

    constructor = openai_public.ENCODING_CONSTRUCTORS[name]
    real = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = _offline_loader(bundled_dir, real if download else None)
    try:
        return tiktoken.Encoding(**constructor())
    finally:
        openai_public.load_tiktoken_bpe = real


def encodings_load(
    names: tuple[str, ...] = ("o200k_base", "cl100k_base"),
    *,
    bundled_dir: Path = BUNDLED_DIR,
    download: bool = True,
) -> list[str]:
    """Load encodings (blocking; call at start-up, off the event loop). Returns those loaded."""
    with _LOAD_LOCK:
        for name in names:
            if name in _ENCODINGS:
                continue
            try:
                _ENCODINGS[name] = _build(name, bundled_dir, download)
            except Exception as exc:  # noqa: BLE001 - nothing readable: fall back to bytes
                log.warning(
                    "tiktoken encoding %s unavailable (%s); token counts fall back to bytes",
                    name,
                    type(exc).__name__,
                )
        return list(_ENCODINGS)


def encodings_unload() -> None:
    """Forget the loaded encodings (tests of the no-encoding path)."""
    with _LOAD_LOCK:
        _ENCODINGS.clear()


def _encoding_for(model: str):
    if not _ENCODINGS:
        return None
    name = model.lower()
    if any(p in name for p in ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")):
        return _ENCODINGS.get("o200k_base") or _ENCODINGS.get("cl100k_base")
    if any(p in name for p in ("gpt-4", "gpt-3.5", "text-embedding")):
        return _ENCODINGS.get("cl100k_base") or _ENCODINGS.get("o200k_base")
    return None  # other families: byte length is the safe upper bound


# Counting a long text is the costliest step of a call with a long prompt (about 13 ms for
# 400 KB), and the long texts repeat: a coding agent resends its whole context every turn. So
# the counts of long texts are kept, by a digest of the text (never the text), per encoding.
_LONG_TEXT = 4096  # characters: shorter texts are counted every time (cheaper than a digest)
_COUNTS_MAX = 8192
_counts: dict[tuple[str, bytes], int] = {}
_counts_lock = threading.Lock()


def count_text(text: str, *, model: str) -> tuple[int, bool]:
    """(tokens, exact_for_family). Unknown families count UTF-8 bytes (an upper bound)."""
    enc = _encoding_for(model)
    if enc is None:
        return len(text.encode("utf-8")), False
    if len(text) < _LONG_TEXT:
        return len(enc.encode(text, disallowed_special=())), True
    key = (
        enc.name,
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest(),
    )
    tokens = _counts.get(key)
    if tokens is None:
        tokens = len(enc.encode(text, disallowed_special=()))
        with _counts_lock:
            if len(_counts) >= _COUNTS_MAX:
                _counts.pop(next(iter(_counts)))  # the oldest
            _counts[key] = tokens
    return tokens, True


def _message_text(message) -> str:
    if not isinstance(message, dict):
        return str(message)
    parts = [str(message.get("role", "")), str(message.get("name", "") or "")]
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            fn = call.get("function") or {}
            parts.append(str(fn.get("name", "")))
            parts.append(str(fn.get("arguments", "")))
    return "\n".join(parts)


def count_messages(messages, *, model: str) -> int:
    if not isinstance(messages, list):
        return 0
    total = _PER_REPLY
    for message in messages:
        tokens, _ = count_text(_message_text(message), model=model)
        total += tokens + _PER_MESSAGE
    return total


def count_input(value, *, model: str) -> int:
    """Embeddings input: a string, a list of strings, or token arrays."""
    if isinstance(value, str):
        return count_text(value, model=model)[0]
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += count_text(item, model=model)[0]
            elif isinstance(item, int):
                total += 1
            elif isinstance(item, list):
                total += len(item)
        return total
    return 0
