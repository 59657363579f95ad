"""The simulator's deterministic arithmetic: text and prompt token counts, the completion length
and its generated words (whole or in stream pieces), and embedding vectors.

Text counts ``ceil(len(text) / 4)``; a non-text content part (image, audio, file) counts 85. A
chat prompt counts 3 per message + its content (and ``name``) + 3, plus the JSON of ``tools``
and the ``system`` prompt when given."""

from __future__ import annotations

import hashlib
import math
from array import array
from functools import lru_cache

import orjson

DEFAULT_COMPLETION_TOKENS = 16
DEFAULT_EMBEDDING_DIMS = 256
NON_TEXT_PART_TOKENS = 85

_SENTENCE = (
    "The simulated upstream answers every prompt with this deterministic sentence, so tests "
    "and benchmarks always see the same words, token counts and costs from one run to the next."
)
_WORDS = tuple(_SENTENCE.split())


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _part_tokens(part) -> int:
    """One element of a content array (OpenAI or Anthropic)."""
    if isinstance(part, str):
        return text_tokens(part)
    if not isinstance(part, dict):
        return 0
    text = part.get("text")
    if isinstance(text, str):
        return text_tokens(text)
    if part.get("type") == "tool_result":
        return content_tokens(part.get("content"))
    if part.get("type") == "tool_use":
        return text_tokens(orjson.dumps(part.get("input")).decode())
    return NON_TEXT_PART_TOKENS


def content_tokens(content) -> int:
    """A message's ``content``: a string or an array of parts; anything else counts 0."""
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        return sum(_part_tokens(part) for part in content)
    return 0


def chat_prompt_tokens(messages: list, tools=None, system=None) -> int:
    """3 per message + its content (and name) + 3 priming tokens; tools and system added."""
    total = 3
    for message in messages:
        total += 3
        if isinstance(message, dict):
            total += content_tokens(message.get("content"))
            name = message.get("name")
            if isinstance(name, str):
                total += text_tokens(name)
    if tools:
        total += text_tokens(orjson.dumps(tools).decode())
    if system:
        total += content_tokens(system)
    return total


def completion_tokens(limit) -> tuple[int, bool]:
    """(tokens generated, whether the limit cut the answer short)."""
    if (
        isinstance(limit, int)
        and not isinstance(limit, bool)
        and 0 < limit < DEFAULT_COMPLETION_TOKENS
    ):
        return limit, True
    return DEFAULT_COMPLETION_TOKENS, False


@lru_cache(maxsize=512)
def generated_text(tokens: int) -> str:
    words = len(_WORDS)
    return " ".join(_WORDS[i % words] for i in range(tokens))


@lru_cache(maxsize=512)
def pieces(tokens: int, chunks: int) -> tuple[str, ...]:
    """The answer split into ``chunks`` near-equal, non-empty pieces (fewer if it is shorter)."""
    text = generated_text(tokens)
    if not text:
        return ()
    count = min(chunks, len(text))
    size = len(text)
    return tuple(text[i * size // count : (i + 1) * size // count] for i in range(count))


def embedding_vector(item: str | list, dims: int) -> array:
    """A deterministic unit vector (float32) for one input."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = array("H")
    raw.frombytes(hashlib.shake_128(seed).digest(dims * 2))
    values = [v / 32767.5 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])
