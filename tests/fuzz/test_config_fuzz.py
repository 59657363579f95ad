# ruff: noqa: E501  (YAML and JSON fixtures keep their long lines)
"""Bad input to the declarative config (``apply_config``) and the price imports
(``import_prices``): whatever the file holds, the answer is an error naming the path of each
problem, and the database is exactly as it was. Never a traceback, never a partial write.

``tests/provisioning/test_config.py`` and ``tests/gateway/test_import_prices.py`` pin the exact
message for hand-picked mistakes; here every value of a known-good file is swapped, one at a
time, for a value of each wrong type (and random text is thrown at the parsers), so the rule
holds for paths nobody thought of.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from gateway.models import (
    GroupFallback,
    GroupMember,
    LLMModel,
    ModelGroup,
    ModelPrice,
    Provider,
    Router,
)
from gateway.services.price_import import (
    PriceImportError,
    litellm_catalog_parse,
    openrouter_catalog_parse,
    prices_import,
)
from provisioning.config import ConfigError, config_apply, config_load
from teams.models import AuditEntry, Budget, Feature, Membership, Organization, Team
from tests import factories as f
from tests.fuzz.profiles import fuzz
from tests.provisioning.test_config import ISSUE_EXAMPLE

pytestmark = pytest.mark.django_db

OPENROUTER = Path(__file__).resolve().parents[1] / "data" / "openrouter_models.json"

FUZZ = fuzz(max_examples=40)

# An error names where it is: ``teams[0].budgets[1].limit_usd: …``, ``(file): …`` or the top
# level key; the command adds a summary line.
PATH_RE = re.compile(
    r"^(\(file\)|\(top level\)|line \d+,? column \d+|[A-Za-z_][\w-]*)"
    r"(\[\d+\]|\([^)]*\)|\.[^\s:]+)*: \S"
)

COUNTED = (
    Organization,
    Provider,
    LLMModel,
    ModelPrice,
    ModelGroup,
    GroupMember,
    GroupFallback,
    Router,
    Team,
    Feature,
    Membership,
    Budget,
    AuditEntry,
)


def _snapshot() -> dict:
    """Every row apply_config or import_prices could touch, by value."""
    return {model.__name__: sorted(map(repr, model.objects.values_list())) for model in COUNTED}


# --- mutating a known-good file -----------------------------------------------------------------

WRONG_VALUES = [
    None,
    True,
    -1,
    0,
    2.5,
    10**30,
    "",
    "x" * 300,
    "caf\u00e9 \u2603",
    "../../etc/passwd",
    [],
    [None],
    {},
    {"unexpected": 1},
]


def _paths(node, path=()):
    """Every (path, value) of a parsed document, containers included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), value
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*path, i), value
            yield from _paths(value, (*path, i))


def _set(doc, path, value):
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return doc


def _dotted(path) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


GOOD_CONFIG = config_load(text=ISSUE_EXAMPLE)
CONFIG_PATHS = [p for p, _ in _paths(GOOD_CONFIG)]


def _assert_config_error(exc: ConfigError) -> None:
    assert exc.errors, "a ConfigError with no message"
    for message in exc.errors:
        assert PATH_RE.match(message), f"error without a path: {message!r}"


def _apply_or_error(data) -> bool:
    """Apply ``data``; True when it applied, False when it was rejected with pathed errors."""
    try:
        config_apply(data=data)
    except ConfigError as exc:
        _assert_config_error(exc)
        return False
    return True


@pytest.fixture
def config_world(db):
    """acme as the issue's example left it, plus an unrelated org: a rejected file changes
    neither."""
    config_apply(data=GOOD_CONFIG)
    f.make_team(f.make_org("globex"), "search")


@FUZZ
@given(
    path=st.sampled_from(CONFIG_PATHS),
    value=st.sampled_from(WRONG_VALUES),
)
def test_config_with_any_value_of_a_wrong_type_is_rejected_with_its_path(config_world, path, value):
    before = _snapshot()
    data = _set(GOOD_CONFIG, path, value)
    try:
        config_apply(data=data, dry_run=True)
    except ConfigError as exc:
        _assert_config_error(exc)
        with pytest.raises(ConfigError):
            config_apply(data=data)
        assert _snapshot() == before
        dotted = _dotted(path)
        # the error is about this value or something inside/next to it (a parent path for a
        # missing sibling, a reference to it elsewhere)
        top = dotted.split(".")[0].split("[")[0]
        assert any(top in m for m in exc.errors), (dotted, exc.errors)
    # else: the swap happened to be valid (e.g. a string where a name goes); nothing to check


@FUZZ
@given(
    path=st.sampled_from([p for p, v in _paths(GOOD_CONFIG) if isinstance(v, dict)] or [()]),
    key=st.sampled_from(["colour", "limit", "Name", "base-url", "teams", "__proto__"]),
)
def test_config_with_an_unknown_key_at_any_level_is_rejected(config_world, path, key):
    before = _snapshot()
    data = copy.deepcopy(GOOD_CONFIG)
    node = data
    for step in path:
        node = node[step]
    if key in node:
        return  # not unknown here
    node[key] = "x"
    with pytest.raises(ConfigError) as ctx:
        config_apply(data=data)
    _assert_config_error(ctx.value)
    where = _dotted((*path, key))
    assert any(m.startswith(f"{where}: unknown key") for m in ctx.value.errors), (
        where,
        ctx.value.errors,
    )
    assert _snapshot() == before


DANGLING = [
    (
        "groups[0].members[0].model",
        lambda d: _set(d, ("groups", 0, "members", 0, "model"), "ghost"),
    ),
    ("groups[0].fallbacks[0]", lambda d: _set(d, ("groups", 0, "fallbacks", 0), "ghost")),
    ("routers[0].strong", lambda d: _set(d, ("routers", 0, "strong"), "ghost")),
    ("routers[0].weak", lambda d: _set(d, ("routers", 0, "weak"), "ghost")),
    ("models[1].provider", lambda d: _set(d, ("models", 1, "provider"), "ghost")),
    (
        "teams[0].budgets[1].downgrade_to",
        lambda d: _set(d, ("teams", 0, "budgets", 1, "downgrade_to"), "ghost"),
    ),
]


@pytest.mark.parametrize(("where", "mutate"), DANGLING, ids=[d[0] for d in DANGLING])
def test_dangling_references_name_their_path_and_change_nothing(config_world, where, mutate):
    before = _snapshot()
    with pytest.raises(ConfigError) as ctx:
        config_apply(data=mutate(GOOD_CONFIG))
    assert any(m.startswith(f"{where}: unknown") for m in ctx.value.errors), ctx.value.errors
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("organization: acme\nteams:\n  - name: a\n    name: b\n", "duplicate key 'name'"),
        (
            "organization: acme\nteams:\n  - {name: a, budgets: [{period: day, period: month}]}\n",
            "duplicate key 'period'",
        ),
        ("organization: acme\nteams: [{name: a}\n", "invalid YAML"),
        ("organization: acme\n\tteams: []\n", "invalid YAML"),
        ("organization: &a acme\nteams: *b\n", "invalid YAML"),
        ("organization: !!python/object:os.system echo\n", "invalid YAML"),
        ("organization: acme\nteams: !!binary aGVsbG8=\n", "teams"),
        ("organization: acme\nteams: {search: {}}\n", "teams: expected a list"),
        ("organization: acme\nteams: [[search]]\n", "teams[0]"),
        ("organization: 12\n", "organization"),
        (
            "organization: acme\nproviders: [{name: p, kind: openai, base_url: 'ftp://x.test'}]\n",
            "providers[0].base_url",
        ),
        (
            "organization: acme\nproviders: [{name: p, kind: openai, base_url: 'http://x.test', api_key_env: 'sk-not-a-name'}]\n",
            "providers[0].api_key_env",
        ),
        ("", "(file)"),
        ("~\n", "(file)"),
        ("42\n", "(file)"),
    ],
)
def test_malformed_yaml_names_the_problem_and_changes_nothing(config_world, text, expected):
    before = _snapshot()
    path = Path(tempfile.mkdtemp()) / "finops.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CommandError) as ctx:
        call_command("apply_config", str(path), stdout=StringIO())
    message = str(ctx.value)
    assert expected in message, message
    assert "nothing changed" in message
    assert "Traceback" not in message
    assert _snapshot() == before


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_is_either_a_document_or_a_pathed_error(config_world, text):
    before = _snapshot()
    try:
        data = config_load(text=text)
    except ConfigError as exc:
        _assert_config_error(exc)
        return
    if not _apply_or_error(data):
        assert _snapshot() == before


def test_yaml_text_is_read_without_executing_tags(config_world):
    with pytest.raises(ConfigError):
        config_load(text="organization: !!python/object/apply:os.system ['true']\n")


# --- price catalogs ------------------------------------------------------------------------------

LITELLM_SAMPLE = {
    "gpt-4o-mini": {
        "input_cost_per_token": 1.5e-07,
        "output_cost_per_token": 6e-07,
        "cache_read_input_token_cost": 7.5e-08,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "litellm_provider": "openai",
        "mode": "chat",
    },
    "gpt-4o": {
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "max_tokens": 16384,
        "litellm_provider": "openai",
        "mode": "chat",
    },
}
OPENROUTER_SAMPLE = json.loads(OPENROUTER.read_text())
LITELLM_PATHS = [p for p, _ in _paths(LITELLM_SAMPLE)]
OPENROUTER_PATHS = [p for p, _ in _paths(OPENROUTER_SAMPLE)]


@pytest.fixture
def price_org(db):
    org = f.make_org("acme")
    provider = f.make_provider(org, "openai")
    for name, upstream in (("mini", "gpt-4o-mini"), ("gpt-4o", "openai/gpt-4o")):
        f.make_model(org, name, provider=provider, upstream_model=upstream)
    f.make_model(f.make_org("globex"), "gpt-4o-mini")
    return org


def _import_or_error(org, fmt: str, text: str | bytes) -> bool:
    try:
        prices_import(org=org, fmt=fmt, text=text)
    except PriceImportError as exc:
        assert exc.errors, "a PriceImportError with no message"
        for message in exc.errors:
            assert PATH_RE.match(message) or message.startswith(f"{org.slug}: "), (
                f"error without a path: {message!r}"
            )
        return False
    return True


def _json(data) -> str:
    # allow_nan: NaN/Infinity must be rejected by the importer, not by the test
    return json.dumps(data, allow_nan=True)


@FUZZ
@given(path=st.sampled_from(LITELLM_PATHS), value=st.sampled_from(WRONG_VALUES + [float("nan")]))
def test_litellm_catalog_with_a_wrong_value_anywhere_is_rejected_or_harmless(
    price_org, path, value
):
    before = _snapshot()
    text = _json(_set(LITELLM_SAMPLE, path, value))
    if not _import_or_error(price_org, "litellm", text):
        assert _snapshot() == before


@FUZZ
@given(path=st.sampled_from(OPENROUTER_PATHS), value=st.sampled_from(WRONG_VALUES + [float("inf")]))
def test_openrouter_catalog_with_a_wrong_value_anywhere_is_rejected_or_harmless(
    price_org, path, value
):
    before = _snapshot()
    text = _json(_set(OPENROUTER_SAMPLE, path, value))
    if not _import_or_error(price_org, "openrouter", text):
        assert _snapshot() == before


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("litellm", '{"gpt-4o": {"input_cost_per_token": "0.1"}}', "gpt-4o.input_cost_per_token"),
        ("litellm", '{"gpt-4o": {"input_cost_per_token": -1e-06}}', "gpt-4o.input_cost_per_token"),
        ("litellm", '{"gpt-4o": {"max_input_tokens": -5}}', "gpt-4o.max_input_tokens"),
        ("litellm", '{"gpt-4o": {"max_output_tokens": 1.5}}', "gpt-4o.max_output_tokens"),
        ("litellm", '{"gpt-4o": {"input_cost_per_token": 1e400}}', "gpt-4o.input_cost_per_token"),
        ("litellm", '{"gpt-4o": {}, "gpt-4o": {}}', "gpt-4o"),
        ("litellm", "null", "(top level)"),
        ("litellm", '"gpt-4o"', "(top level)"),
        ("litellm", b"\xff\xfe\x00", "(file)"),
        ("litellm", '{"a": ' * 5000 + "1" + "}" * 5000, "(file)"),
        (
            "openrouter",
            '{"data": [{"id": "openai/gpt-4o", "pricing": {"prompt": "abc"}}]}',
            "data[0](openai/gpt-4o).pricing.prompt",
        ),
        (
            "openrouter",
            '{"data": [{"id": "openai/gpt-4o", "pricing": {"prompt": "-0.1"}}]}',
            "data[0](openai/gpt-4o).pricing.prompt",
        ),
        ("openrouter", '{"data": [{"id": 7, "pricing": {}}]}', "data[0].id"),
        (
            "openrouter",
            '{"data": [{"id": "openai/gpt-4o", "pricing": []}]}',
            "data[0](openai/gpt-4o).pricing",
        ),
        ("openrouter", '{"data": [3]}', "data[0]"),
        (
            "openrouter",
            '{"data": [{"id": "openai/gpt-4o", "pricing": {"prompt": "1e-06"}, "context_length": "big"}]}',
            "data[0](openai/gpt-4o).context_length",
        ),
        ("openrouter", "[]", "(top level)"),
        ("openrouter", '{"models": []}', "data"),
    ],
)
def test_malformed_catalog_names_the_path_and_changes_nothing(price_org, fmt, text, expected):
    before = _snapshot()
    with pytest.raises(PriceImportError) as ctx:
        prices_import(org=price_org, fmt=fmt, text=text)
    assert any(m.startswith(expected) for m in ctx.value.errors), ctx.value.errors
    assert _snapshot() == before


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_are_a_catalog_or_a_pathed_error(raw):
    for parse in (litellm_catalog_parse, openrouter_catalog_parse):
        try:
            parse(text=raw)
        except PriceImportError as exc:
            assert exc.errors
            for message in exc.errors:
                assert PATH_RE.match(message), message
