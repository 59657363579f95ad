"""Images in a chat prompt, billed as OpenAI publishes it for its tile models: ``detail: low``
costs the base, anything else ``base + per_tile * tiles`` after scaling the image to fit 2048 x
2048 and its shortest side to 768 (512-pixel tiles). gpt-4o-mini's base and tile are 2,833 and
5,667, other models' 85 and 170. The size comes from an inline PNG's header; a linked image
(size unknown) is billed as the largest image can be, eight tiles: the simulator plays a provider
that bills everything it is allowed to."""

from __future__ import annotations

import base64
import binascii
import math
import struct

from simulator.tokens import NON_TEXT_PART_TOKENS

MAX_TILES = 8


def _size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:") or ";base64," not in url[:200]:
        return None
    try:
        head = base64.b64decode(url.split(",", 1)[1][:64])
    except (binascii.Error, ValueError):
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    return None


def _tiles(size: tuple[int, int] | None) -> int:
    if size is None or min(size) <= 0:
        return MAX_TILES
    width, height = size
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    return math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


def image_part_tokens(model: str, part: dict) -> int:
    base, per_tile = (2833, 5667) if "gpt-4o-mini" in model else (85, 170)
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
    if detail == "low":
        return base
    return base + per_tile * _tiles(_size(url))


def images_tokens(model: str, messages: list) -> int:
    """What the messages' image parts cost beyond the flat ``NON_TEXT_PART_TOKENS`` that
    ``chat_prompt_tokens`` already counts for each."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    total += image_part_tokens(model, part) - NON_TEXT_PART_TOKENS
    return total
