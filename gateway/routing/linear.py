"""The learned scorer's model: logistic regression on hashed word n-grams plus the heuristic
features; numpy only, inference included.

Words are the lower-cased last user message's UTF-8 bytes split at whitespace and punctuation
(a byte-level translate: fast), read in its head and tail only (bounded work). Unigrams and
bigrams are hashed with CRC-32 (stable across processes, unlike Python's salted ``hash``) into
``2**bits`` buckets with a sign taken from the hash's top bit, so collisions cancel out on
average rather than add up. Counts are scaled by 1/sqrt(words) so a long prompt does not
out-vote a short one by its length alone (the length has its own feature).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from itertools import chain, repeat

import numpy as np

from gateway.routing.features import _PUNCT, FEATURE_NAMES, SCAN_HEAD, features, prompt_parts

DEFAULT_BITS = 18
_MAGIC = b"FOL1"
NGRAM_HEAD = 1200  # characters of the last user message read for n-grams: head …
NGRAM_TAIL = 600  # … and tail
assert NGRAM_HEAD <= SCAN_HEAD  # a stored (clipped) prompt keeps what the n-grams read


def term_hashes(text: str) -> tuple[np.ndarray, int]:
    """CRC-32 of each unigram and bigram of the text's head and tail, and the word count.

    Every step is a C-level ``map`` (a bigram's CRC continues the CRC of "previous word "), so
    there is no Python frame per term."""
    if len(text) > NGRAM_HEAD + NGRAM_TAIL:
        text = text[:NGRAM_HEAD] + " " + text[-NGRAM_TAIL:]
    words = text.lower().encode().translate(_PUNCT).split()
    if not words:
        return np.zeros(0, dtype=np.uint32), 0
    uni = list(map(zlib.crc32, words))
    bi = map(zlib.crc32, words[1:], map(zlib.crc32, repeat(b" "), uni))
    return np.fromiter(chain(uni, bi), dtype=np.uint32, count=2 * len(words) - 1), len(words)


def _buckets(hashes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    buckets = (hashes & np.uint32((1 << bits) - 1)).astype(np.intp)
    signs = np.where(hashes >> np.uint32(31), 1.0, -1.0)
    return buckets, signs


def hashed_terms(text: str, bits: int = DEFAULT_BITS) -> tuple[list[int], list[float]]:
    """Signed bucket counts of the text's unigrams and bigrams, scaled by 1/sqrt(words):
    (buckets, values), without the buckets where collisions cancelled out."""
    hashes, n = term_hashes(text)
    if not n:
        return [], []
    buckets, signs = _buckets(hashes, bits)
    unique, inverse = np.unique(buckets, return_inverse=True)
    values = np.bincount(inverse, weights=signs) / math.sqrt(n)
    keep = values != 0
    return unique[keep].tolist(), values[keep].tolist()


def example(messages, bits: int = DEFAULT_BITS) -> tuple[list[int], list[float]]:
    """One prompt as sparse (indices, values): hashed terms, then the dense features after the
    ``2**bits`` buckets."""
    parts = prompt_parts(messages)
    idx, vals = hashed_terms(parts.last_user, bits)
    base = 1 << bits
    for i, value in enumerate(features(parts)):
        if value:
            idx.append(base + i)
            vals.append(value)
    return idx, vals


@dataclass
class LinearModel:
    """P(strong) = sigmoid(bias + w . x). ``weights`` is dense (2**bits + features) float32."""

    weights: np.ndarray
    bias: float = 0.0
    bits: int = DEFAULT_BITS
    feature_names: tuple[str, ...] = FEATURE_NAMES
    meta: dict = field(default_factory=dict)

    def score(self, messages) -> float:
        """The same sum as training's sparse examples, computed straight from the hashes."""
        parts = prompt_parts(messages)
        w = self.weights
        z = self.bias
        hashes, n = term_hashes(parts.last_user)
        if n:
            buckets, signs = _buckets(hashes, self.bits)
            z += float(np.dot(w[buckets], signs)) / math.sqrt(n)
        base = 1 << self.bits
        for i, value in enumerate(features(parts)):
            z += float(w[base + i]) * value
        return _sigmoid(z)

    def score_many(self, prompts) -> np.ndarray:
        return np.array([self.score(p) for p in prompts], dtype=np.float64)

    # --- storage: only the non-zero weights ----------------------------------------------------
    def to_bytes(self) -> bytes:
        """zlib of: magic, count, bias, then the non-zero buckets (int32) and weights (float32)."""
        nz = np.flatnonzero(self.weights).astype("<i4")
        head = _MAGIC + struct.pack("<Id", len(nz), self.bias)
        return zlib.compress(head + nz.tobytes() + self.weights[nz].astype("<f4").tobytes(), 6)

    def params(self) -> dict:
        """What describes the model besides its weights (stored next to them)."""
        return {
            "bits": self.bits,
            "features": list(self.feature_names),
            "nonzero": int(np.count_nonzero(self.weights)),
            **self.meta,
        }

    @classmethod
    def from_bytes(cls, data: bytes, params: dict) -> LinearModel:
        bits = int(params.get("bits", DEFAULT_BITS))
        names = tuple(params.get("features") or FEATURE_NAMES)
        if names != FEATURE_NAMES:
            raise ValueError(f"model trained on features {names}, this gateway has {FEATURE_NAMES}")
        raw = zlib.decompress(bytes(data))
        if raw[:4] != _MAGIC:
            raise ValueError("not a stored linear model")
        count, bias = struct.unpack_from("<Id", raw, 4)
        at = 4 + struct.calcsize("<Id")
        indices = np.frombuffer(raw, dtype="<i4", count=count, offset=at)
        values = np.frombuffer(raw, dtype="<f4", count=count, offset=at + 4 * count)
        weights = np.zeros((1 << bits) + len(names), dtype=np.float32)
        weights[indices] = values
        meta = {k: v for k, v in params.items() if k not in ("bits", "features", "nonzero")}
        return cls(weights=weights, bias=bias, bits=bits, feature_names=names, meta=meta)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
