"""A small, valid instance of a JSON Schema: what the simulator answers with when a request asks
for structured output (chat ``response_format: json_schema``, Responses ``text.format``,
Anthropic ``output_config.format``) and what it passes as a tool call's arguments.

It covers what pydantic and the SDKs' strict-schema helpers emit: ``type`` (or a list of them),
``properties`` / ``required`` / ``additionalProperties``, ``items`` / ``prefixItems`` /
``minItems`` / ``maxItems`` / ``uniqueItems``, ``enum``, ``const``, ``default``, ``anyOf`` /
``oneOf`` / ``allOf``, ``$ref`` into ``$defs`` or ``definitions``, string ``format``,
``minLength`` / ``maxLength`` / ``pattern`` (simple ones: the shortest string their structure
suggests), and number ``minimum`` / ``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum`` /
``multipleOf``.

The instance is deterministic: every property is present (optional ones too, while the nesting
is shallow; deeper down a nullable value is null, so recursive models end), strings are
``"sim"``, numbers their lowest allowed value, arrays hold ``max(minItems, 1)`` items. A
``variant`` makes the items of one array differ, so that ``uniqueItems`` holds. A schema the
generator cannot satisfy (a ``pattern`` none of its candidates match, say) still gets an
instance of the right type; it never raises.
"""

from __future__ import annotations

import math
import re

MAX_DEPTH = 12  # $ref recursion (a tree of models) stops here
OPTIONAL_DEPTH = 4  # optional properties are filled in only above this depth
MAX_ITEMS = 256  # an array's length, whatever its minItems
MAX_NODES = 10_000  # values built for one instance; past it, the rest is null
MAX_STRING = 4096  # a string's length, whatever its minLength

_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "duration": "PT0S",
    "email": "sim@example.com",
    "idn-email": "sim@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_PATTERN_CANDIDATES = ("sim", "a", "A", "0", "1", "abc", "ABC", "a1", "sim-0", "x_0", "")
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def instance(schema, *, root=None) -> object:
    """A value that validates against ``schema`` (a JSON Schema as a dict or a bool)."""
    return _Builder(schema if root is None else root).build(schema, 0, 0)


def object_instance(schema) -> dict:
    """An instance that is a JSON object (tool arguments must be one): ``{}`` when the schema
    describes something else or nothing."""
    value = instance(schema) if isinstance(schema, dict) else {}
    return value if isinstance(value, dict) else {}


class _Builder:
    def __init__(self, root) -> None:
        self.root = root if isinstance(root, dict) else {}
        self.nodes = 0

    def build(self, schema, depth: int, variant: int):
        if not isinstance(schema, dict):
            return None if schema is False else "sim"
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            return None
        if "$ref" in schema:
            target = self._resolve(schema["$ref"])
            if target is not None:
                merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
                return self.build(merged, depth + 1, variant)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[variant % len(enum)]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.build(_pick(options, depth), depth + 1, variant)
        if isinstance(schema.get("allOf"), list):
            return self._all_of(schema, depth, variant)
        if "default" in schema and depth > 0:
            return schema["default"]
        return self._typed(schema, _type_of(schema), depth, variant)

    def _typed(self, schema: dict, kind: str | None, depth: int, variant: int):
        if kind == "object":
            return self._object(schema, depth, variant)
        if kind == "array":
            return self._array(schema, depth)
        if kind in ("integer", "number"):
            try:
                return _integer(schema, variant) if kind == "integer" else _number(schema, variant)
            except (OverflowError, ValueError):  # bounds too far apart for a float: give up
                return 0
        if kind == "boolean":
            return variant % 2 == 1
        if kind == "null":
            return None
        return _string(schema, variant)

    def _resolve(self, ref) -> dict | None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node = self.root
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return None
        return node if isinstance(node, dict) else None

    def _object(self, schema: dict, depth: int, variant: int) -> dict:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        names = list(props) if depth < OPTIONAL_DEPTH else [n for n in props if n in required]
        names += [n for n in required if n not in names]
        out = {}
        for name in names:
            out[name] = self.build(props.get(name, {}), depth + 1, variant)
        return out

    def _array(self, schema: dict, depth: int) -> list:
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), MAX_ITEMS)
        count = min(max(low, 1), high, MAX_ITEMS)
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        items = schema.get("items", {})
        out = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            if sub is False:
                break
            out.append(self.build(sub, depth + 1, i))
        return out

    def _all_of(self, schema: dict, depth: int, variant: int):
        parts = [p for p in schema["allOf"] if isinstance(p, dict)]
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        values = [self.build(p, depth + 1, variant) for p in parts]
        if rest:
            values.append(self.build(rest, depth + 1, variant))
        if values and all(isinstance(v, dict) for v in values):
            merged: dict = {}
            for value in values:
                merged.update(value)
            return merged
        return values[0] if values else None


def _pick(options: list, depth: int):
    """The first option that is not ``null`` (pydantic's ``Optional[X]`` is X or null); deep
    down, ``null`` when it is an option, so that a recursive model ends."""
    nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
    if nulls and depth >= OPTIONAL_DEPTH:
        return nulls[0]
    for option in options:
        if isinstance(option, dict) and option.get("type") != "null":
            return option
    return options[0]


def _type_of(schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        return next(
            (k for k in _TYPE_ORDER if k in kinds and k != "null"), kinds[0] if kinds else None
        )
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return "number"
    return None


def _int(value, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def _number_value(value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def _integer(schema: dict, variant: int) -> int:
    low = _number_value(schema.get("minimum"))
    exclusive = _number_value(schema.get("exclusiveMinimum"))
    start = 0
    if low is not None:
        start = math.ceil(low)
    if exclusive is not None:
        start = (
            max(start, math.floor(exclusive) + 1) if low is not None else math.floor(exclusive) + 1
        )
    high = _number_value(schema.get("maximum"))
    step = _number_value(schema.get("multipleOf"))
    value = start + variant
    if step and step > 0 and float(step).is_integer():
        step = int(step)
        value = -(-value // step) * step
    if high is not None and value > high:
        value = math.floor(high)
    return value


def _number(schema: dict, variant: int) -> float | int:
    low = _number_value(schema.get("minimum"))
    exclusive = _number_value(schema.get("exclusiveMinimum"))
    high = _number_value(schema.get("maximum"))
    value: float = low if low is not None else 0
    if exclusive is not None and value <= exclusive:
        value = exclusive + 1
    value += variant
    step = _number_value(schema.get("multipleOf"))
    if step and step > 0:
        value = math.ceil(value / step) * step
    if high is not None and value > high:
        value = high if exclusive is None else (max(exclusive, low or exclusive) + high) / 2
    return value


def _string(schema: dict, variant: int) -> str:
    fmt = schema.get("format")
    base = _FORMATS.get(fmt, "sim") if isinstance(fmt, str) else "sim"
    if variant and base == "sim":
        base = f"sim{variant}"
    low = _int(schema.get("minLength"), 0)
    high = _int(schema.get("maxLength"), 1 << 20)
    if len(base) < low:
        base += "x" * (min(low, MAX_STRING) - len(base))
    base = base[:high]
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _matches(pattern, base):
        candidates = (_from_pattern(pattern), *_PATTERN_CANDIDATES)
        base = next((c for c in candidates if c is not None and _matches(pattern, c)), base)
    return base


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except (re.error, RecursionError):
        return True


_CATEGORY_CHARS = {"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " ", "CATEGORY_WORD": "a"}


def _from_pattern(pattern: str) -> str | None:
    """The shortest string the regular expression's structure suggests (the first branch,
    each repeat at its minimum, the first character of each class), or None."""
    try:
        from re import _parser  # the stdlib's own regex parser; private, hence the guard

        return _emit(_parser.parse(pattern), 0)
    except Exception:  # any failure just means "no candidate"
        return None


def _emit(items, depth: int) -> str:
    if depth > 20:
        raise ValueError("pattern too deep")
    out = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_class_char(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = arg
            out.append(_emit(sub, depth + 1) * min(low, MAX_STRING))
        elif name == "SUBPATTERN":
            out.append(_emit(arg[-1], depth + 1))
        elif name == "BRANCH":
            out.append(_emit(arg[1][0], depth + 1))
        elif name == "CATEGORY":
            out.append(_CATEGORY_CHARS.get(str(arg), "a"))
    return "".join(out)


def _class_char(items) -> str:
    op, arg = items[0]
    name = str(op)
    if name == "LITERAL":
        return chr(arg)
    if name == "RANGE":
        return chr(arg[0])
    if name == "CATEGORY":
        return _CATEGORY_CHARS.get(str(arg), "a")
    if name == "NEGATE":
        return "a"
    return "a"
