"""The simulator's deterministic arithmetic: text and prompt token counts, the completion length
and its generated words (whole or in stream pieces), and embedding vectors.

Text counts ``ceil(len(text) / 4)``; a non-text content part (image, audio, file) counts 85. A
chat prompt counts 3 per message + its content (and ``name``, and each tool call's name and
arguments) + 3, plus the JSON of ``tools`` and the ``system`` prompt when given.

A generated answer is words of one fixed sentence, one token a word; the ``start`` of
``generated_text`` shifts where in the sentence it begins (the choices of ``n`` differ by it).
Reasoning (OpenAI ``reasoning`` / ``reasoning_effort``) costs ``REASONING_TOKENS[effort]``
output tokens; Anthropic thinking is ``THINKING_TOKENS`` words of another sentence."""

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
_THOUGHT = (
    "Let me think about what is being asked here step by step before I write the answer, "
    "checking each part of the request against what I know."
)
_THOUGHT_WORDS = tuple(_THOUGHT.split())
THINKING_TOKENS = 24
# reasoning tokens an effort costs (OpenAI's ``reasoning.effort`` / ``reasoning_effort``)
REASONING_TOKENS = {"none": 0, "minimal": 8, "low": 16, "medium": 32, "high": 64, "xhigh": 128}


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
    kind = part.get("type")
    if kind in ("thinking", "redacted_thinking", "reasoning"):
        return 0  # earlier turns' reasoning is not part of the prompt
    if kind == "tool_result":
        return content_tokens(part.get("content"))
    if kind == "tool_use":
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
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                total += _tool_calls_tokens(calls)
    if tools:
        total += text_tokens(orjson.dumps(tools).decode())
    if system:
        total += content_tokens(system)
    return total


def _tool_calls_tokens(calls: list) -> int:
    total = 0
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            for key in ("name", "arguments"):
                if isinstance(fn.get(key), str):
                    total += text_tokens(fn[key])
    return total


def reasoning_tokens(effort) -> int:
    """Reasoning tokens for an effort; an unknown or absent effort reasons not at all."""
    return REASONING_TOKENS.get(effort, 0) if isinstance(effort, str) else 0


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
def generated_text(tokens: int, start: int = 0) -> str:
    words = len(_WORDS)
    return " ".join(_WORDS[(start + i) % words] for i in range(tokens))


@lru_cache(maxsize=64)
def thinking_text(tokens: int) -> str:
    words = len(_THOUGHT_WORDS)
    return " ".join(_THOUGHT_WORDS[i % words] for i in range(tokens))


@lru_cache(maxsize=512)
def pieces(tokens: int, chunks: int) -> tuple[str, ...]:
    """The answer split into ``chunks`` near-equal, non-empty pieces (fewer if it is shorter)."""
    return split(generated_text(tokens), chunks)


def split(text: str, chunks: int) -> tuple[str, ...]:
    """``text`` in ``chunks`` near-equal, non-empty pieces (fewer if it is shorter)."""
    if not text:
        return ()
    count = min(chunks, len(text))
    size = len(text)
    return tuple(text[i * size // count : (i + 1) * size // count] for i in range(count))


def capped(text: str, tokens: int) -> str:
    """``text`` cut to what ``tokens`` tokens hold (four characters each)."""
    return text[: tokens * 4]


def embedding_vector(item: str | list, dims: int) -> array:
    """A deterministic unit vector (float32) for one input."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = array("H")
    raw.frombytes(hashlib.shake_128(seed).digest(dims * 2))
    values = [v / 32767.5 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])
