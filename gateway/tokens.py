"""Token counting for calls whose upstream reports no usage.

Encodings are loaded once at start-up (tiktoken fetches them on first use, which would block the
event loop or fail offline). With no encoding available, the UTF-8 byte length is the count: an
upper bound for byte-level BPE. Counts made here mark the ledger row as estimated.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_ENCODINGS: dict[str, object] = {}
_PER_MESSAGE = 4  # role/name framing per message, as OpenAI's cookbook counts it
_PER_REPLY = 3


def encodings_load(names: tuple[str, ...] = ("o200k_base", "cl100k_base")) -> list[str]:
    """Load encodings (blocking; call at start-up, off the event loop). Returns those loaded."""
    try:
        import tiktoken
    except ImportError:  # pragma: no cover - tiktoken is a dependency
        return []
    for name in names:
        if name in _ENCODINGS:
            continue
        try:
            _ENCODINGS[name] = tiktoken.get_encoding(name)
        except Exception as exc:  # noqa: BLE001 - offline without a cache: fall back to bytes
            log.warning(
                "tiktoken encoding %s unavailable (%s); token counts fall back to bytes",
                name,
                type(exc).__name__,
            )
    return list(_ENCODINGS)


def _encoding_for(model: str):
    if not _ENCODINGS:
        return None
    name = model.lower()
    if any(p in name for p in ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")):
        return _ENCODINGS.get("o200k_base") or _ENCODINGS.get("cl100k_base")
    if any(p in name for p in ("gpt-4", "gpt-3.5", "text-embedding")):
        return _ENCODINGS.get("cl100k_base") or _ENCODINGS.get("o200k_base")
    return None  # other families: byte length is the safe upper bound


def count_text(text: str, *, model: str) -> tuple[int, bool]:
    """(tokens, exact_for_family). Unknown families count UTF-8 bytes (an upper bound)."""
    enc = _encoding_for(model)
    if enc is None:
        return len(text.encode("utf-8")), False
    return len(enc.encode(text, disallowed_special=())), True


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
