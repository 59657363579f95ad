"""``import_prices`` on a trimmed copy of the real LiteLLM catalog and an OpenRouter model list
(both in tests/data; see its README.md): counts, exact Decimal prices, dry run, idempotent
re-import, appended history, tiered prices reported, and malformed files rejected with the path
of the problem and nothing changed."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

from django.core.management import CommandError, call_command
from django.test import TestCase
from django.utils import timezone

from gateway.models import LLMModel, ModelPrice
from gateway.services.price_import import (
    PriceImportError,
    litellm_catalog_parse,
    openrouter_catalog_parse,
    price_import_plan,
    prices_import,
)
from teams.models import AuditEntry
from tests import factories as f

LITELLM = Path(__file__).resolve().parents[1] / "data" / "litellm_model_prices.json"
OPENROUTER = Path(__file__).resolve().parents[1] / "data" / "openrouter_models.json"
EARLIER = datetime(2025, 1, 1, tzinfo=UTC)


def _model(org, name, upstream, inp, out, cached=None, write=None, **kwargs) -> LLMModel:
    provider = org.providers.first() or f.make_provider(org, "openai")
    model = LLMModel.objects.create(
        org=org,
        provider=provider,
        name=name,
        upstream_model=upstream,
        **kwargs,
    )
    ModelPrice.objects.create(
        model=model,
        effective_from=EARLIER,
        input_usd_per_mtok=Decimal(inp),
        output_usd_per_mtok=Decimal(out),
        cached_input_usd_per_mtok=None if cached is None else Decimal(cached),
        cache_write_usd_per_mtok=None if write is None else Decimal(write),
    )
    return model


def _state() -> tuple:
    """Everything an import may write: price rows, audit entries, model limits."""
    return (
        sorted(ModelPrice.objects.values_list("pk", "model_id", "effective_from")),
        AuditEntry.objects.count(),
        sorted(LLMModel.objects.values_list("pk", "context_window", "max_output_tokens")),
    )


class ImportCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.litellm_text = LITELLM.read_bytes()
        cls.org = f.make_org("acme")
        cls.other = f.make_org("globex")
        # equal to the catalog in all four prices: nothing to do
        cls.gpt4o = _model(
            cls.org, "gpt-4o", "gpt-4o", "2.50", "10.00", cached="1.25", context_window=128000
        )
        cls.mini = _model(cls.org, "mini", "gpt-4o-mini", "0.10", "0.40", cached="0.05")
        cls.sonnet = _model(cls.org, "sonnet", "claude-sonnet-4-5", "3", "15", cached="0.30")
        # matched by the key without its "databricks/" prefix
        cls.dbx = _model(cls.org, "dbx", "databricks-claude-sonnet-4-1", "3", "15")
        cls.gemini = _model(cls.org, "gemini", "gemini-2.5-pro", "1", "8")
        cls.mistral = _model(cls.org, "mistral", "mistral-large-latest", "2", "6")
        cls.titan = _model(cls.org, "titan", "amazon.titan-image-generator-v1", "0", "0")
        cls.house = _model(cls.org, "house-llm", "house-llm", "1", "2")
        cls.other_mini = _model(cls.other, "gpt-4o-mini", "gpt-4o-mini", "0.10", "0.40")

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)

    def write(self, text: str | bytes, name: str = "catalog.json") -> str:
        path = self.tmp / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return str(path)

    def run_import(self, *args: str, file: str | None = None, fmt: str = "litellm") -> str:
        out = StringIO()
        call_command(
            "import_prices",
            file or str(LITELLM),
            "--format",
            fmt,
            "--org",
            self.org.slug,
            *args,
            stdout=out,
        )
        return out.getvalue()

    def latest(self, model: LLMModel) -> ModelPrice:
        return model.prices.order_by("-effective_from").first()


class LiteLLMCatalogTests(ImportCase):
    def test_catalog_entries_parse_except_sample_spec(self):
        catalog = litellm_catalog_parse(text=self.litellm_text)
        raw = json.loads(self.litellm_text)
        self.assertEqual(len(raw), 134)
        self.assertEqual(len(catalog.entries), 133)
        self.assertNotIn("sample_spec", catalog.entries)
        self.assertEqual(catalog.skipped, ["sample_spec"])
        # image, video, search... models are priced per image or per call, not per token
        self.assertEqual(catalog.token_priced, 98)

    def test_spot_checked_prices_are_exact_decimals_per_mtok(self):
        catalog = litellm_catalog_parse(text=self.litellm_text)
        gpt4o = catalog.entries["gpt-4o"]
        self.assertEqual(gpt4o.prices["input_usd_per_mtok"], Decimal("2.5"))
        self.assertEqual(gpt4o.prices["output_usd_per_mtok"], Decimal("10"))
        self.assertEqual(gpt4o.prices["cached_input_usd_per_mtok"], Decimal("1.25"))
        self.assertIsNone(gpt4o.prices["cache_write_usd_per_mtok"])
        self.assertEqual((gpt4o.context_window, gpt4o.max_output_tokens), (128000, 16384))
        # 0.0000029999900000000002 per token: a float would read 2.9999900000000003e-06
        dbx = catalog.entries["databricks/databricks-claude-sonnet-4-1"]
        self.assertEqual(dbx.prices["input_usd_per_mtok"], Decimal("2.999990000000"))
        self.assertEqual(dbx.prices["output_usd_per_mtok"], Decimal("15.000020000000"))
        self.assertEqual(
            dbx.prices["input_usd_per_mtok"],
            (Decimal("0.0000029999900000000002") * 1_000_000).quantize(Decimal("1e-12")),
        )

    def test_dry_run_prints_changes_and_writes_nothing(self):
        before = _state()
        out = self.run_import("--dry-run")
        self.assertEqual(_state(), before)
        self.assertIn(
            "price mini [gpt-4o-mini]: input 0.1 -> 0.15, output 0.4 -> 0.6, "
            "cached input 0.05 -> 0.075",
            out,
        )
        self.assertIn("price sonnet [claude-sonnet-4-5]: cache write none -> 3.75", out)
        self.assertIn("limits mini [gpt-4o-mini]: context_window none -> 128000", out)
        self.assertIn("price rows would be added: 4", out)
        self.assertIn("dry run, nothing written", out)
        self.assertNotIn("price gpt-4o ", out)

    def test_import_adds_rows_only_for_changed_prices(self):
        out = self.run_import()
        self.assertIn("catalog entries read: 133 (98 with token prices", out)
        self.assertIn("matched models: 6", out)  # gpt-4o, mini, sonnet, dbx, gemini, titan
        self.assertIn("price rows added: 4", out)  # mini, sonnet, dbx, gemini
        self.assertIn("unchanged: 1", out)
        self.assertIn("unmatched org models: 2 (house-llm, mistral)", out)
        self.assertIn("no token price titan [amazon.titan-image-generator-v1]", out)

        self.assertEqual(self.gpt4o.prices.count(), 1)
        mini = self.latest(self.mini)
        self.assertEqual(self.mini.prices.count(), 2)
        self.assertEqual(mini.source, "litellm")
        self.assertEqual(
            (mini.input_usd_per_mtok, mini.output_usd_per_mtok, mini.cached_input_usd_per_mtok),
            (Decimal("0.15"), Decimal("0.6"), Decimal("0.075")),
        )
        self.assertLess(timezone.now() - mini.effective_from, timedelta(minutes=1))
        self.assertEqual(self.latest(self.dbx).input_usd_per_mtok, Decimal("2.99999"))
        self.assertEqual(self.latest(self.sonnet).cache_write_usd_per_mtok, Decimal("3.75"))
        self.mini.refresh_from_db()
        self.assertEqual((self.mini.context_window, self.mini.max_output_tokens), (128000, 16384))
        # another organisation's model of the same name is not touched
        self.assertEqual(self.other_mini.prices.count(), 1)
        # one audit entry per price change, by the system
        added = AuditEntry.objects.filter(action="model.price_added")
        self.assertEqual(added.count(), 4)
        self.assertEqual(set(added.values_list("actor_label", flat=True)), {"system"})
        entry = added.get(object_id=str(mini.pk))
        self.assertEqual(entry.before["input_usd_per_mtok"], "0.100000000000")
        self.assertEqual(entry.after["input_usd_per_mtok"], "0.150000000000")

    def test_reimport_is_idempotent(self):
        self.run_import()
        after_first = _state()
        out = self.run_import()
        self.assertEqual(_state(), after_first)
        self.assertIn("price rows added: 0", out)
        self.assertIn("unchanged: 5", out)
        self.assertIn("limits filled: 0", out)

    def test_changed_price_appends_history_from_the_effective_date(self):
        out = self.run_import("--effective", "2099-07-01")
        self.assertIn("(per Mtok, from 2099-07-01T00:00:00+00:00)", out)
        old, new = self.mini.prices.order_by("effective_from")
        self.assertEqual((old.effective_from, old.input_usd_per_mtok), (EARLIER, Decimal("0.1")))
        self.assertEqual(new.effective_from, datetime(2099, 7, 1, tzinfo=UTC))
        self.assertEqual(new.input_usd_per_mtok, Decimal("0.15"))
        self.assertEqual(self.mini.price_at().input_usd_per_mtok, Decimal("0.1"))
        self.assertEqual(
            self.mini.price_at(datetime(2099, 7, 2, tzinfo=UTC)).input_usd_per_mtok,
            Decimal("0.15"),
        )
        # a scheduled price is the one in force from then on: importing it again is a no-op
        self.assertIn("price rows added: 0", self.run_import("--effective", "2099-08-01"))

    def test_effective_date_in_the_past_is_refused(self):
        before = _state()
        with self.assertRaisesMessage(CommandError, "prices cannot be back-dated"):
            self.run_import("--effective", "2020-01-01")
        with self.assertRaisesMessage(CommandError, "is not a date"):
            self.run_import("--effective", "next tuesday")
        self.assertEqual(_state(), before)

    def test_tiered_prices_are_reported_per_model(self):
        out = self.run_import("--dry-run")
        line = next(x for x in out.splitlines() if x.startswith("not modelled gemini "))
        self.assertIn("[gemini-2.5-pro]", line)
        self.assertIn("input_cost_per_token_above_200k_tokens", line)
        self.assertIn("output_cost_per_token_above_200k_tokens", line)
        self.assertIn("not modelled sonnet [claude-sonnet-4-5]: ", out)
        self.assertIn("cache_creation_input_token_cost_above_1hr", out)
        plan = price_import_plan(
            org=self.org, catalog=litellm_catalog_parse(text=self.litellm_text)
        )
        self.assertEqual(set(plan.not_modelled), {"gemini", "sonnet"})
        self.assertIn("tiered prices not modelled: 12 in 2 model(s)", out)

    def test_ambiguous_prefixless_match_is_reported_not_guessed(self):
        plan = price_import_plan(
            org=self.org, catalog=litellm_catalog_parse(text=self.litellm_text)
        )
        self.assertEqual(
            sorted(plan.ambiguous["mistral"]),
            [
                "azure/mistral-large-latest",
                "azure_ai/mistral-large-latest",
                "mistral/mistral-large-latest",
            ],
        )
        self.assertEqual(plan.matched["dbx"], "databricks/databricks-claude-sonnet-4-1")
        self.assertEqual(plan.unmatched, ["house-llm"])

    def test_prefixless_match_prefers_the_models_provider_kind(self):
        azure = f.make_provider(
            self.org, "azure", kind="azure", base_url="https://acme.openai.azure.com"
        )
        LLMModel.objects.create(
            org=self.org, provider=azure, name="mistral-az", upstream_model="mistral-large-latest"
        )
        plan = price_import_plan(
            org=self.org, catalog=litellm_catalog_parse(text=self.litellm_text)
        )
        self.assertEqual(plan.matched["mistral-az"], "azure/mistral-large-latest")
        change = next(c for c in plan.changes if c.model.name == "mistral-az")
        self.assertIsNone(change.old)
        self.assertEqual(change.new["input_usd_per_mtok"], Decimal("8"))

    def test_unknown_org_is_refused(self):
        with self.assertRaisesMessage(CommandError, "unknown organisation 'nope'"):
            call_command("import_prices", str(LITELLM), "--format", "litellm", "--org", "nope")


class MalformedInputTests(ImportCase):
    # A valid entry that would change the "mini" model: a rejected file must not apply it.
    GOOD = '"gpt-4o-mini": {"input_cost_per_token": 2e-07, "output_cost_per_token": 8e-07}'

    def assert_rejected(self, text: str | bytes, *problems: str, fmt: str = "litellm") -> None:
        before = _state()
        with self.assertRaises(CommandError) as ctx:
            self.run_import(file=self.write(text), fmt=fmt)
        message = str(ctx.exception)
        self.assertIn("nothing changed", message)
        for problem in problems:
            self.assertIn(problem, message)
        self.assertEqual(_state(), before)

    def test_not_json(self):
        self.assert_rejected("{" + self.GOOD + ",", "line 1 column ", "not valid JSON")
        self.assert_rejected(b"\xff\xfe garbage", "not valid JSON")

    def test_wrong_top_level_type(self):
        self.assert_rejected("[1, 2]", "(top level): expected an object, got a list")
        self.assert_rejected('{"data": {}}', "data: expected a list", fmt="openrouter")

    def test_entry_not_an_object(self):
        self.assert_rejected("{" + self.GOOD + ', "gpt-4o": 3}', "gpt-4o: expected an object")

    def test_price_not_a_number(self):
        for value in ('"2.5e-06"', "true", "NaN", "-Infinity", "[1]", "{}"):
            with self.subTest(value=value):
                self.assert_rejected(
                    "{" + self.GOOD + ', "gpt-4o": {"input_cost_per_token": ' + value + "}}",
                    "gpt-4o.input_cost_per_token: not a number",
                )

    def test_negative_price(self):
        self.assert_rejected(
            "{" + self.GOOD + ', "gpt-4o": {"cache_read_input_token_cost": -1.25e-06}}',
            "gpt-4o.cache_read_input_token_cost: negative",
        )

    def test_price_too_large_for_the_price_fields(self):
        self.assert_rejected(
            "{" + self.GOOD + ', "gpt-4o": {"input_cost_per_token": 1e999}}',
            "gpt-4o.input_cost_per_token: too large",
        )

    def test_bad_token_limit_and_duplicate_key(self):
        self.assert_rejected(
            "{"
            + self.GOOD
            + ', "gpt-4o": {"max_output_tokens": 1.5}, "gpt-4o": {"input_cost_per_token": 0}}',
            "gpt-4o: duplicate key",
        )
        self.assert_rejected(
            "{" + self.GOOD + ', "x": {"max_input_tokens": "lots"}}',
            "x.max_input_tokens: not a whole number",
        )

    def test_every_problem_is_listed(self):
        self.assert_rejected(
            '{"a": {"input_cost_per_token": "x"}, "b": {"output_cost_per_token": -1}}',
            "2 errors, nothing changed",
            "a.input_cost_per_token: not a number",
            "b.output_cost_per_token: negative",
        )

    def test_one_bad_entry_in_the_real_catalog_blocks_the_whole_import(self):
        text = self.litellm_text.decode().rstrip()
        assert text.endswith("}")
        broken = text[:-1] + ', "broken-model": {"input_cost_per_token": -2.5e-06}}'
        self.assert_rejected(broken, "broken-model.input_cost_per_token: negative")
        # the same catalog without the broken entry would have changed four models
        self.assertIn("price rows would be added: 4", self.run_import("--dry-run"))

    def test_openrouter_price_not_a_number(self):
        data = json.loads(OPENROUTER.read_text())
        for value in ("six cents", "1_000", "NaN", "", None, True):
            with self.subTest(value=value):
                data["data"][1]["pricing"]["completion"] = value
                self.assert_rejected(
                    json.dumps(data),
                    "data[1](openai/gpt-4o-mini).pricing.completion: not a number",
                    fmt="openrouter",
                )
        data["data"][1]["pricing"]["completion"] = "-0.0000006"
        self.assert_rejected(
            json.dumps(data),
            "data[1](openai/gpt-4o-mini).pricing.completion: negative",
            fmt="openrouter",
        )


class OpenRouterTests(ImportCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.router_org = f.make_org("initech")
        cls.or_gpt4o = _model(cls.router_org, "gpt-4o", "openai/gpt-4o", "2.5", "10", "1.25")
        cls.or_sonnet = _model(cls.router_org, "sonnet", "claude-sonnet-4.5", "3", "15")
        cls.or_llama = _model(cls.router_org, "llama", "llama-3.3-70b-instruct", "0.2", "0.2")
        cls.or_auto = _model(cls.router_org, "auto", "openrouter/auto", "0", "0")

    def run_openrouter(self, *args: str) -> str:
        out = StringIO()
        call_command(
            "import_prices",
            str(OPENROUTER),
            "--format",
            "openrouter",
            "--org",
            "initech",
            *args,
            stdout=out,
        )
        return out.getvalue()

    def test_fixture_parses_string_prices_as_decimals(self):
        catalog = openrouter_catalog_parse(text=OPENROUTER.read_bytes())
        self.assertEqual(len(catalog.entries), 6)
        self.assertEqual(catalog.skipped, ["openrouter/auto"])  # "-1": variable price
        sonnet = catalog.entries["anthropic/claude-sonnet-4.5"]
        self.assertEqual(
            sonnet.prices,
            {
                "input_usd_per_mtok": Decimal("3"),
                "output_usd_per_mtok": Decimal("15"),
                "cached_input_usd_per_mtok": Decimal("0.3"),
                "cache_write_usd_per_mtok": Decimal("3.75"),
            },
        )
        self.assertEqual(sonnet.not_modelled, ("image", "web_search"))
        self.assertEqual((sonnet.context_window, sonnet.max_output_tokens), (1000000, 64000))
        # a free variant: every price "0", a real price of nothing, not a missing one
        free = catalog.entries["meta-llama/llama-3.3-70b-instruct:free"]
        self.assertTrue(free.token_priced)
        self.assertEqual(
            (free.prices["input_usd_per_mtok"], free.prices["output_usd_per_mtok"]),
            (Decimal(0), Decimal(0)),
        )
        self.assertIsNone(free.prices["cached_input_usd_per_mtok"])
        self.assertEqual(free.not_modelled, ())
        # billed per request and per search as well as per token
        sonar = catalog.entries["perplexity/sonar"]
        self.assertEqual(sonar.prices["input_usd_per_mtok"], Decimal("1"))
        self.assertEqual(sonar.not_modelled, ("request", "web_search"))

    def test_import_matches_by_id_then_name_after_the_slash(self):
        before = _state()
        self.assertIn("price rows would be added: 2", self.run_openrouter("--dry-run"))
        self.assertEqual(_state(), before)

        out = self.run_openrouter()
        self.assertIn(
            "catalog entries read: 6 (6 with token prices; skipped: openrouter/auto)", out
        )
        self.assertIn("matched models: 3", out)
        self.assertIn("unchanged: 1", out)  # gpt-4o
        self.assertIn("unmatched org models: 1 (auto)", out)
        self.assertIn("price sonnet [anthropic/claude-sonnet-4.5]: cached input none -> 0.3", out)
        sonnet = self.latest(self.or_sonnet)
        self.assertEqual(
            (sonnet.source, sonnet.cache_write_usd_per_mtok), ("openrouter", Decimal("3.75"))
        )
        llama = self.latest(self.or_llama)
        self.assertEqual(
            (llama.input_usd_per_mtok, llama.output_usd_per_mtok),
            (Decimal("0.13"), Decimal("0.39")),
        )
        self.or_llama.refresh_from_db()
        self.assertEqual(
            (self.or_llama.context_window, self.or_llama.max_output_tokens), (131072, None)
        )
        self.assertEqual(self.or_gpt4o.prices.count(), 1)
        # the LiteLLM org is another tenant: untouched
        self.assertEqual(self.mini.prices.count(), 1)
        self.assertIn("price rows added: 0", self.run_openrouter())

    def test_service_refuses_unknown_format(self):
        with self.assertRaises(PriceImportError) as ctx:
            prices_import(org=self.router_org, fmt="csv", text="{}")
        self.assertEqual(
            ctx.exception.errors, ["format: expected one of litellm, openrouter, got 'csv'"]
        )
