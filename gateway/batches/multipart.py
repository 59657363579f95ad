"""``multipart/form-data`` as the OpenAI SDKs send a file upload: a bounded parser of a body
already read (at most ``MAX_PARTS`` parts; a malformed body is a 400 in OpenAI's shape)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import invalid

MAX_PARTS = 16
MAX_HEADER_BYTES = 8192
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;,]{1,200}))', re.I)
_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))')


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _bad(message: str):
    return invalid("invalid_request", f"Malformed multipart/form-data body: {message}")


def boundary_of(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/form-data"):
        raise invalid(
            "invalid_request",
            "Send the file as multipart/form-data (fields 'file' and 'purpose').",
        )
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise _bad("no boundary in the Content-Type header")
    return (match.group(1) or match.group(2)).encode("latin-1")


def _headers(raw: bytes) -> tuple[str, str | None, str]:
    """(field name, filename, content type) from a part's headers."""
    if len(raw) > MAX_HEADER_BYTES:
        raise _bad("a part's headers are too long")
    name = filename = None
    content_type = "application/octet-stream"
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            params = {
                m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                for m in _PARAM.finditer(value)
            }
            name = params.get("name")
            filename = params.get("filename")
        elif key == "content-type":
            content_type = value.strip()
    if name is None:
        raise _bad("a part has no Content-Disposition name")
    return name, filename, content_type


def parse(body: bytes, content_type: str) -> dict[str, Part]:
    """The parts by field name (the first of a repeated name wins)."""
    delimiter = b"--" + boundary_of(content_type)
    start = body.find(delimiter)
    if start < 0:
        raise _bad("the boundary does not occur in the body")
    pos = start + len(delimiter)
    parts: dict[str, Part] = {}
    count = 0
    while body[pos : pos + 2] != b"--":
        if body[pos : pos + 2] != b"\r\n":
            raise _bad("a boundary is not followed by a line break")
        pos += 2
        end = body.find(b"\r\n" + delimiter, pos)
        if end < 0:
            raise _bad("the closing boundary is missing")
        head_end = body.find(b"\r\n\r\n", pos, end + 2)
        if head_end < 0:
            raise _bad("a part has no blank line after its headers")
        count += 1
        if count > MAX_PARTS:
            raise _bad(f"more than {MAX_PARTS} parts")
        name, filename, kind = _headers(body[pos:head_end])
        data = body[head_end + 4 : end] if head_end + 4 <= end else b""
        parts.setdefault(name, Part(name, filename, kind, data))
        pos = end + 2 + len(delimiter)
    return parts
