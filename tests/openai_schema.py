"""Validate bodies against OpenAI's published OpenAPI description.

``assert_valid("CreateChatCompletionResponse", body)`` checks ``body`` (a dict, or JSON bytes/str)
against ``components/schemas/<name>`` of ``tests/data/openai_schemas.json``, resolving every
``$ref`` within that file. That file holds only the schemas reachable through ``$ref`` from the
response, stream-chunk, embedding, model-list, error and Responses-API schemas, cut from OpenAI's
published description (openai/openai-openapi; its version is under ``source`` in the file) by
``tests/data/make_fixtures.py``; see ``tests/data/README.md``. Set ``OPENAI_OPENAPI_PATH`` to
the full description (or another trimmed one) to validate against that instead.

The description marks nullability inconsistently (stream chunks carry ``"finish_reason": null``
where the schema says string, real responses send ``"system_fingerprint": null``), so nulls are
admitted where it is reasonable: wherever the description says ``nullable: true``, and for every
property that is not ``required``. Required properties must still be present and non-null
unless the description allows null.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path

import jsonschema
import pytest

_DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "openai_schemas.json"
_NULL = {"type": "null"}


def spec_path() -> Path:
    return Path(os.environ.get("OPENAI_OPENAPI_PATH") or _DEFAULT_PATH)


def _admits_null(schema: dict) -> bool:
    if schema.get("type") == "null" or schema == _NULL:
        return True
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        return True
    return any(_NULL in schema.get(key, ()) for key in ("anyOf", "oneOf"))


def _nullable(schema):
    if not isinstance(schema, dict) or _admits_null(schema):
        return schema
    return {"anyOf": [schema, _NULL]}


def _relax(node):
    """Rewrite OpenAPI's ``nullable`` into JSON Schema and let optional properties be null."""
    if isinstance(node, list):
        return [_relax(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _relax(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        required = set(out.get("required") or ())
        out["properties"] = {
            name: (sub if name in required else _nullable(sub))
            for name, sub in out["properties"].items()
        }
    if out.pop("nullable", False) is True:
        return _nullable(out)
    return out


@cache
def _components() -> dict:
    path = spec_path()
    if not path.exists():  # the trimmed file ships with the repository: missing is a failure
        raise FileNotFoundError(f"OpenAI's schemas not found at {path} (OPENAI_OPENAPI_PATH?)")
    with path.open("rb") as fh:
        spec = json.load(fh)
    return _relax(spec["components"])


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    components = _components()
    if name not in components["schemas"]:
        raise KeyError(
            f"no schema named {name!r} in {spec_path()} (the trimmed file keeps only the "
            "schemas reachable from OPENAI_ROOTS in tests/data/make_fixtures.py: add a root "
            "there and re-run it, or set OPENAI_OPENAPI_PATH to the full description)"
        )
    # The root document carries the components, so "#/components/..." refs resolve in place.
    root = {"$ref": f"#/components/schemas/{name}", "components": components}
    return jsonschema.Draft202012Validator(root)


def schema(name: str) -> dict:
    """The relaxed schema, for inspection."""
    return copy.deepcopy(_components()["schemas"][name])


def assert_valid(schema_name: str, body) -> None:
    """Fail the test with every violation, each with its JSON path, when ``body`` does not fit."""
    if isinstance(body, bytes | bytearray | str):
        body = json.loads(body)
    errors = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {e.json_path}: {e.message[:300]}" for e in errors[:20]]
        pytest.fail(f"body does not match {schema_name}:\n" + "\n".join(lines), pytrace=False)
