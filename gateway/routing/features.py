"""Transparent features of a chat prompt, cheap enough for the request path.

Everything is bounded whatever the prompt's size: lengths are counted on the whole text (chars
/ 4 stands in for tokens: tiktoken would cost a millisecond on a long document), but the cue
regexes only read the head and the tail of the last user message (``SCAN_HEAD`` + ``SCAN_TAIL``
characters), where the instructions of a long prompt are. The length feature saturates at
``LENGTH_FULL_TOKENS``, so a prompt clipped to more than that (see ``messages_clip``) keeps its
score.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass

SCAN_HEAD = 2000
SCAN_TAIL = 1000
CHARS_PER_TOKEN = 4
LENGTH_FULL_TOKENS = 4096
FEATURE_NAMES = ("length", "code", "math", "multistep", "depth", "system")

_LOG_FULL = math.log2(1 + LENGTH_FULL_TOKENS)

# --- cues ------------------------------------------------------------------------------------
# Python's ``re`` tries every branch of an alternation at every position, which costs
# milliseconds on a long prompt; so words are matched as a set (bytes, split after a byte-level
# punctuation translate), phrases with ``in`` and the few regexes left start with a
# literal, which ``re`` scans for in C.
_PUNCT = bytes(
    32 if chr(b) in string.punctuation and chr(b) not in "_+#" else b for b in range(256)
)


def _words(*items: str) -> frozenset[bytes]:
    return frozenset(w.encode() for item in items for w in item.split())


_CODE_WORDS = _words(
    "python javascript typescript java golang rust c++ c# kotlin swift ruby php sql regex",
    "regexp bash script dockerfile kubernetes yaml api function functions method class",
    "algorithm compiler compile debug refactor stacktrace bug exception recursion async",
    "implement implementation codebase repository traceback segfault",
)
_CODE_VERBS = _words("write implement build create fix optimize optimise refactor debug")
_CODE_NOUNS = _words("function class script program query endpoint parser regex module bug method")
_CODE_LITERALS = (
    "def ",
    "function(",
    "function ",
    "=>",
    "#include",
    "import ",
    "public static",
    "console.log",
    "traceback (most recent",
    "error:",
    "fn ",
    "func ",
    "int main",
    "return ",
    "select ",
    "null pointer",
    "stack trace",
    "race condition",
    "unit test",
)
_CODE_SYNTAX = re.compile(r"\)\s*\{|;\s*\n|\(\)|\[\]")
_MATH_STRONG = _words("prove proof derive derivation theorem lemma corollary rigorous rigorously")
_MATH_STRONG_PHRASES = ("by induction", "show that")
_MATH_WORDS = _words(
    "integral derivative eigenvalue eigenvalues eigenvector matrix matrices probability",
    "variance bayes bayesian polynomial asymptotic optimization optimisation convergence",
    "converges equation equations inequality combinatorics solve determinant",
)
_MATH_SYNTAX = re.compile(
    r"\\(?:frac|int|sum|prod|sqrt|lim|mathbb|partial|cdot|leq|geq|infty)|"
    r"\$[^$\n]{1,200}\$|\^\d|_\{|\([a-z]\)\s*="
)
_MULTISTEP_WORDS = _words(
    "analyze analyse analysis analyzing analysing compare comparison contrast evaluate",
    "tradeoffs trade-offs thoroughly design architecture strategy strategies plan critique",
    "assess justify recommend recommendation investigate",
)
_MULTISTEP_PHRASES = (
    "step by step",
    "step-by-step",
    "each step",
    "pros and cons",
    "trade-off",
    "explain why",
    "explain how",
    "in detail",
    "reason through",
    "root cause",
    "break down",
)
_NUMBERED = re.compile(r"\n\s*(?:\d{1,2}[.)]|[-*•])\s+\S")


@dataclass(slots=True)
class PromptParts:
    last_user: str  # the prompt being answered
    all_chars: int  # every message's text
    system_chars: int
    turns: int  # user messages


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, images …]
        out = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    out.append(text)
            elif isinstance(part, str):
                out.append(part)
        return "\n".join(out)
    return ""


def prompt_parts(messages) -> PromptParts:
    """Split a request's ``messages`` (or a bare prompt string) into what the features read."""
    if isinstance(messages, str):
        return PromptParts(last_user=messages, all_chars=len(messages), system_chars=0, turns=1)
    last_user = ""
    all_chars = system_chars = turns = 0
    for message in messages or ():
        if not isinstance(message, dict):
            continue
        text = _text(message.get("content"))
        all_chars += len(text)
        role = message.get("role")
        if role in ("system", "developer"):
            system_chars += len(text)
        elif role == "user":
            turns += 1
            last_user = text
    if not last_user and messages:
        last_user = _text(messages[-1].get("content")) if isinstance(messages[-1], dict) else ""
    return PromptParts(last_user, all_chars, system_chars, max(turns, 1))


def scan_window(text: str) -> str:
    """The head and the tail of a long text: where its instructions are; bounded work."""
    if len(text) <= SCAN_HEAD + SCAN_TAIL:
        return text
    return text[:SCAN_HEAD] + "\n" + text[-SCAN_TAIL:]


def _log_tokens(chars: int) -> float:
    return min(1.0, math.log2(1 + chars / CHARS_PER_TOKEN) / _LOG_FULL)


def features(parts: PromptParts) -> tuple[float, ...]:
    """The heuristic features, each in [0, 1], in ``FEATURE_NAMES`` order."""
    text = scan_window(parts.last_user)
    lower = text.lower()
    words = set(lower.encode().translate(_PUNCT).split())
    length = _log_tokens(len(parts.last_user) + (parts.all_chars - len(parts.last_user)) * 0.25)
    if "```" in text or "~~~" in text:
        code = 1.0
    else:
        code = 0.3 * len(_CODE_WORDS.intersection(words))
        code += 0.5 * sum(1 for lit in _CODE_LITERALS if lit in lower)
        if _CODE_VERBS.intersection(words) and _CODE_NOUNS.intersection(words):
            code += 0.5
        if len(text) > 80 and len(_CODE_SYNTAX.findall(text)) > len(text) / 200:
            code += 0.5
    math_ = (
        1.0 * len(_MATH_STRONG.intersection(words))
        + sum(1.0 for phrase in _MATH_STRONG_PHRASES if phrase in lower)
        + 0.5 * min(len(_MATH_SYNTAX.findall(text)), 4)
        + 0.35 * len(_MATH_WORDS.intersection(words))
    )
    multistep = (
        0.5 * len(_MULTISTEP_WORDS.intersection(words))
        + sum(0.5 for phrase in _MULTISTEP_PHRASES if phrase in lower)
        + 0.15 * len(_NUMBERED.findall(text))
    )
    depth = (parts.turns - 1) / 6
    system = _log_tokens(parts.system_chars) if parts.system_chars else 0.0
    return (
        length,
        min(code, 1.0),
        min(math_, 1.0),
        min(multistep, 1.0),
        min(depth, 1.0),
        system,
    )


def messages_clip(messages, *, keep: int = 10_000) -> list:
    """A copy for storage: each text longer than 2 x ``keep`` characters keeps its head and its
    tail. ``keep`` is above ``LENGTH_FULL_TOKENS`` tokens and the scan window, so a clipped
    prompt scores as the original."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    out = []
    for message in messages or ():
        if not isinstance(message, dict):
            continue
        text = _text(message.get("content"))
        if len(text) > 2 * keep:
            text = (
                f"{text[:keep]}\n[… {len(text) - 2 * keep} characters left out …]\n{text[-keep:]}"
            )
        out.append({"role": message.get("role", "user"), "content": text})
    return out
