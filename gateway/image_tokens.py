"""What an image in a prompt may cost in tokens, by the provider's own rule.

OpenAI (vision guide, as published for each model family):

- *tile* models: ``detail: low`` costs the family's base; otherwise the image is scaled to fit
  2048 x 2048, then down so its shortest side is at most 768, and costs ``base + tile * tiles``
  with 512-pixel tiles. gpt-4o-mini bills images at 2,833 + 5,667 per tile (its tokens are
  cheaper, its images are not).
- *patch* models (gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano): 32-pixel patches, at most 1,536,
  times the family's multiplier.

Anthropic: about ``width * height / 750`` tokens, and an image larger than about 1.15
megapixels is scaled down first, so one image costs at most about 1,600 tokens.

The size is known when the image is inline (a ``data:`` URL whose PNG, GIF or JPEG header
we read); for a linked image it is not, and the bound is the family's maximum. A family we do
not know takes the largest rule of its provider. Everything here is an upper bound, never an
estimate: budgets reserve it.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

# (base, per tile) of the tile families; the first matching prefix wins, so longer ones first
TILE_RULES = (
    ("gpt-4o-mini", 2833, 5667),
    ("gpt-4o", 85, 170),
    ("gpt-4.1", 85, 170),
    ("gpt-4.5", 85, 170),
    ("gpt-4-turbo", 85, 170),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("gpt-5-chat", 70, 140),
)
# patch families: multiplier on the patch count
PATCH_RULES = (
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("gpt-5-mini", 1.62),
    ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
GPT5_TILE = (70, 140)  # gpt-5 itself (after the mini/nano patch families)
MAX_PATCHES = 1536
ANTHROPIC_MAX = 1600
MAX_TILES = 8  # 768 x 2048 after scaling: 2 x 4 tiles, the most any image can take
HEADER_BYTES = 64 * 1024  # enough of a JPEG to reach its frame header in practice


def _rule(model: str):
    name = model.lower().rsplit("/", 1)[-1]
    for prefix, multiplier in PATCH_RULES:
        if name.startswith(prefix):
            return ("patch", multiplier)
    for prefix, base, tile in TILE_RULES:
        if name.startswith(prefix):
            return ("tile", base, tile)
    if name.startswith("gpt-5"):
        return ("tile", *GPT5_TILE)
    return None


def _tiles(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return math.ceil(width / 512) * math.ceil(height / 512)


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= MAX_PATCHES:
        return patches
    shrink = math.sqrt(MAX_PATCHES * 32 * 32 / (width * height))
    return min(MAX_PATCHES, math.ceil(width * shrink / 32) * math.ceil(height * shrink / 32))


def openai_image_tokens(model: str, *, detail: str, size: tuple[int, int] | None) -> int:
    rule = _rule(model)
    if rule is None:  # an unknown family: the largest rule OpenAI has
        return max(2833 + 5667 * MAX_TILES, math.ceil(MAX_PATCHES * max(m for _, m in PATCH_RULES)))
    if rule[0] == "patch":
        patches = _patches(*size) if size else MAX_PATCHES
        return math.ceil(patches * rule[1])
    _, base, tile = rule
    if detail == "low":
        return base
    return base + tile * (_tiles(*size) if size else MAX_TILES)


def image_tokens(kind: str, model: str, *, url: str, detail: str = "auto") -> int:
    """Upper bound of one image's prompt tokens for a provider ``kind`` and model."""
    if kind == "anthropic":
        return ANTHROPIC_MAX
    return openai_image_tokens(model, detail=detail, size=data_url_size(url))


def data_url_size(url: str) -> tuple[int, int] | None:
    """(width, height) of an inline base64 PNG, GIF or JPEG; None when unknown."""
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url[:200]:
        return None
    encoded = url.split(",", 1)[1][: HEADER_BYTES * 4 // 3]
    encoded = encoded[: len(encoded) - len(encoded) % 4]
    try:
        head = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        return None
    size = _png(head) or _gif(head) or _jpeg(head)
    if size and all(0 < side <= 100_000 for side in size):
        return size
    return None


def _png(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    return None


def _gif(head: bytes) -> tuple[int, int] | None:
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(head: bytes) -> tuple[int, int] | None:
    if head[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return width, height
        (length,) = struct.unpack(">H", head[at + 2 : at + 4])
        at += 2 + length
    return None
