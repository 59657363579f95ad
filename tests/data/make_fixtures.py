"""Build the trimmed test fixtures in ``tests/data`` from the full public files.

The tests read only the trimmed files next to this script; this script is never run by them. A
developer who has the full files re-runs it to refresh the fixtures (see README.md)::

    python tests/data/make_fixtures.py litellm PATH/model_prices_and_context_window.json
    python tests/data/make_fixtures.py openai PATH/openai-openapi.json

``litellm`` keeps every entry ``tests/gateway/test_import_prices.py`` names or matches, plus the
first few entries of each kind that the importer treats differently (each ``mode``, no token
price, zero price, per-character price, each tiered-price field, provider-prefixed keys), in the
source's order and with every number written exactly as in the source (a float would turn
``0.0000029999900000000002`` into something else, and the tests check such prices digit by
digit).

``openai`` keeps the ``components/schemas`` reachable through ``$ref`` from the schemas the
tests validate against, with ``$ref`` strings unchanged, and records the description's
``info.title`` and ``info.version`` under ``source``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --- LiteLLM's model_prices_and_context_window.json -------------------------------------------

# Keys the import tests look up or count on.
LITELLM_NAMED = (
    "sample_spec",
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-5",
    "databricks/databricks-claude-sonnet-4-1",
    "gemini-2.5-pro",
    "amazon.titan-image-generator-v1",
)
# Upstream names the tests match by the part after "provider/": every key with that tail is
# kept, so that a unique match stays unique and an ambiguous one keeps all its candidates.
LITELLM_TAILS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-5",
    "databricks-claude-sonnet-4-1",
    "gemini-2.5-pro",
    "mistral-large-latest",
    "house-llm",  # the test's model that must match nothing
)
# Provider prefixes of which the first few keys are kept (a prefix the source lacks adds none).
LITELLM_PREFIXES = (
    "azure",
    "azure_ai",
    "bedrock",
    "vertex_ai",
    "openrouter",
    "gemini",
    "mistral",
    "databricks",
    "anthropic",
    "fireworks_ai",
    "together_ai",
    "deepinfra",
    "groq",
    "ollama",
)
PER_MODE = 3
PER_PREFIX = 3
PER_KIND = 6
PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token")


class _Number:
    """A JSON number kept as its source text."""

    def __init__(self, text: str):
        self.text = text


def _dump(value, indent: int = 0) -> str:
    """JSON text in the source's layout (4-space indent), numbers as read."""
    pad = " " * (indent + 4)
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {_dump(v, indent + 4)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [pad + _dump(v, indent + 4) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value)


def _tail(key: str) -> str | None:
    return key.split("/", 1)[1] if "/" in key else None


def _no_token_price(spec: dict) -> bool:
    return all(spec.get(k) is None for k in PRICE_KEYS)


def _zero_token_price(spec: dict) -> bool:
    return all(spec.get(k) == 0 for k in PRICE_KEYS)


def litellm_select(data: dict) -> list[str]:
    """The keys to keep, in the source's order."""
    keep: set[str] = set()
    missing = [k for k in LITELLM_NAMED if k not in data]
    if missing:
        raise SystemExit(f"source lacks entries the tests need: {', '.join(missing)}")
    keep.update(LITELLM_NAMED)
    keep.update(k for k in data if _tail(k) in LITELLM_TAILS)

    def first(predicate, n: int) -> None:
        found = [k for k, spec in data.items() if k != "sample_spec" and predicate(k, spec)]
        keep.update(found[:n])

    modes = dict.fromkeys(spec.get("mode") for key, spec in data.items() if key != "sample_spec")
    for mode in modes:
        first(lambda k, s, mode=mode: s.get("mode") == mode, PER_MODE)
    for prefix in LITELLM_PREFIXES:
        first(lambda k, s, prefix=prefix: k.startswith(prefix + "/"), PER_PREFIX)
    first(lambda k, s: _no_token_price(s), PER_KIND)
    first(lambda k, s: _zero_token_price(s), PER_KIND)
    first(lambda k, s: "input_cost_per_character" in s, PER_KIND)
    first(lambda k, s: "cache_creation_input_token_cost" in s, PER_KIND)
    first(lambda k, s: "max_tokens" in s and "max_output_tokens" not in s, PER_KIND)
    # one entry for every distinct tiered-price field ("..._above_200k_tokens", "..._above_1hr")
    tiered = dict.fromkeys(f for spec in data.values() for f in spec if "_above_" in f)
    for name in tiered:
        if not any(name in data[k] for k in keep):
            first(lambda k, s, name=name: name in s, 1)
    return [k for k in data if k in keep]


def litellm(source: Path, out: Path) -> None:
    text = source.read_text(encoding="utf-8")
    data = json.loads(text)
    raw = json.loads(text, parse_float=_Number, parse_int=_Number)
    keys = litellm_select(data)
    out.write_text(_dump({k: raw[k] for k in keys}) + "\n", encoding="utf-8")
    # the written file must say exactly what the source says about each kept entry
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == {k: data[k] for k in keys}, "round trip changed an entry"
    print(f"{out}: {len(keys)} of {len(data)} entries, {out.stat().st_size:,} bytes")


# --- OpenAI's OpenAPI description (openai/openai-openapi) -------------------------------------

OPENAI_ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateEmbeddingResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    "CreateCompletionResponse",
    "Response",
    "ResponseStreamEvent",  # and through it every Response...Event
)
SCHEMA_REF = "#/components/schemas/"


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def openai_reachable(schemas: dict, roots=OPENAI_ROOTS) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise SystemExit(f"source has no components/schemas/{name}")
        seen.add(name)
        refs: set[str] = set()
        _refs(schemas[name], refs)
        for ref in refs:
            if not ref.startswith(SCHEMA_REF):
                raise SystemExit(f"{name}: $ref {ref!r} points outside components/schemas")
            todo.append(ref.removeprefix(SCHEMA_REF))
    return seen


def openai(source: Path, out: Path) -> None:
    spec = json.loads(source.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    keep = openai_reachable(schemas)
    info = spec.get("info", {})
    trimmed = {
        "source": {
            "title": info.get("title"),
            "version": info.get("version"),
            "openapi": spec.get("openapi"),
            "repository": "https://github.com/openai/openai-openapi",
            "license": (info.get("license") or {}).get("name"),
            "roots": list(OPENAI_ROOTS),
            "note": "components/schemas reachable through $ref from the roots; "
            "made by tests/data/make_fixtures.py",
        },
        "components": {"schemas": {k: v for k, v in schemas.items() if k in keep}},
    }
    out.write_text(json.dumps(trimmed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"{out}: {len(keep)} of {len(schemas)} schemas "
        f"({info.get('title')} {info.get('version')}), {out.stat().st_size:,} bytes"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name, default, help_text in (
        ("litellm", "litellm_model_prices.json", "LiteLLM's model_prices_and_context_window.json"),
        ("openai", "openai_schemas.json", "OpenAI's openai-openapi JSON description"),
    ):
        cmd = sub.add_parser(name, help=f"trim {help_text}")
        cmd.add_argument("source", type=Path, help=f"the full {help_text}")
        cmd.add_argument("--out", type=Path, default=HERE / default, help="default: %(default)s")
    args = parser.parse_args(argv)
    {"litellm": litellm, "openai": openai}[args.what](args.source, args.out)


if __name__ == "__main__":
    sys.exit(main())
