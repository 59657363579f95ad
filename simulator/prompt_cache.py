"""OpenAI's automatic prompt caching, simulated: a prompt of at least 1,024 tokens is remembered
by its prefixes, and a later prompt that starts the same way reports the shared part as
``cached_tokens`` (chat and legacy completions ``prompt_tokens_details.cached_tokens``,
Responses ``input_tokens_details.cached_tokens``).

As OpenAI does, the cached share is a multiple of 128 tokens, at least 1,024, and never the
whole prompt. The prompt is compared as text (the model, the tools, then each message as JSON)
in blocks of 512 characters (128 tokens at four characters a token); the share of the text that
matches a remembered prefix is that share of the prompt's tokens, rounded down to 128.

Memory is bounded: at most ``MAX_PREFIXES`` block digests, all forgotten when full. Prompts under
1,024 tokens are neither looked up nor remembered, so short requests pay nothing.
"""

from __future__ import annotations

import hashlib

import orjson

MIN_CACHED_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128
BLOCK_CHARS = CACHE_BLOCK_TOKENS * 4
MAX_PREFIXES = 200_000


def prompt_text(model: str, tools, messages) -> bytes:
    """The text a prompt is cached by: what comes first in the prompt comes first here."""
    parts = [model.encode(), b"\x00", orjson.dumps(tools) if tools else b"", b"\x00"]
    parts.extend(orjson.dumps(m) for m in messages)
    return b"".join(parts)


class Prefixes:
    """A prompt text's block digests (each covering the text up to the end of its block) and
    its length: all the cache needs of it, computed once per distinct request body."""

    __slots__ = ("digests", "length")

    def __init__(self, text: bytes) -> None:
        digest = hashlib.blake2b(digest_size=16)
        digests = []
        for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
            digest.update(text[start : start + BLOCK_CHARS])
            digests.append(digest.copy().digest())
        self.digests = tuple(digests)
        self.length = len(text)


def prompt_prefixes(model: str, tools, messages) -> Prefixes:
    return Prefixes(prompt_text(model, tools, messages))


class PromptCache:
    def __init__(self) -> None:
        self._prefixes: set[bytes] = set()

    def cached_tokens(self, prefixes: Prefixes, prompt_tokens: int) -> int:
        """The cached share of a prompt of ``prompt_tokens`` tokens; its prefixes are
        remembered for the next one."""
        if prompt_tokens < MIN_CACHED_TOKENS or not prefixes.length:
            return 0
        known = self._prefixes
        matched = 0
        for i, key in enumerate(prefixes.digests):
            if key not in known:
                break
            matched = i + 1
        fresh = prefixes.digests[matched:]
        if len(known) + len(fresh) > MAX_PREFIXES:
            known.clear()
        known.update(fresh)
        if not matched:
            return 0
        share = prompt_tokens * matched * BLOCK_CHARS // prefixes.length
        share = min(share, prompt_tokens - 1) // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS
        return share if share >= MIN_CACHED_TOKENS else 0
