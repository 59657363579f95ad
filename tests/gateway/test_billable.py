"""The reservation is an upper bound of what a provider may bill (gateway/billable.py), for every
request shape a hostile client can send: ``n`` choices, huge tool schemas, many images, audio,
files, JSON schemas, and no output cap at all."""

from __future__ import annotations

import base64
import struct
import zlib
from decimal import Decimal

import pytest

from gateway import billable, tokens
from gateway.admission import estimate
from gateway.image_tokens import data_url_size, image_tokens, openai_image_tokens
from gateway.records import ModelRecord
from gateway.resolve import Plan
from tests.records import model_record, price

USER = [{"role": "user", "content": "Describe the chart."}]


@pytest.fixture(autouse=True, scope="module")
def _encodings():
    tokens.encodings_load()


def _model(name="gpt-4o", *, kind="openai", window=None, max_out=None) -> ModelRecord:
    return model_record(
        name, kind=kind, prices=[price("2.5", "10")], window=window, max_out=max_out
    )


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    raw = b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 32
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = (
        b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    )
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8" + app0 + sof).decode()


def test_n_choices_multiply_the_output_bound():
    model = _model()
    one = billable.bound("chat.completions", {"messages": USER, "max_tokens": 300}, model)
    hundred = billable.bound(
        "chat.completions", {"messages": USER, "max_tokens": 300, "n": 100}, model
    )
    assert one.output == 300
    assert hundred.output == 300 * 100
    assert hundred.prompt == one.prompt  # the prompt is billed once


def test_no_cap_anywhere_reserves_the_cap_the_gateway_sets_upstream():
    model = _model()
    assert billable.output_cap({"messages": USER}, model) == billable.DEFAULT_MAX_OUTPUT
    assert billable.output_cap({"messages": USER}, _model(max_out=900)) == 900
    assert billable.output_cap({"messages": USER, "max_completion_tokens": 5}, model) == 5
    assert billable.output_cap({"messages": USER, "max_tokens": True}, model) == 4096


def test_450_kb_of_tool_schemas_count_every_token():
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "word " * 2000,
            "parameters": {"type": "object", "properties": {}},
        },
    }
    body = {"messages": USER, "tools": [tool] * 45}
    assert len(str(body["tools"])) > 450_000
    plain = billable.prompt_tokens("chat.completions", {"messages": USER}, _model(), bound=True)
    with_tools = billable.prompt_tokens("chat.completions", body, _model(), bound=True)
    assert with_tools - plain >= 45 * 2000  # "word " is at least a token each


def test_a_response_format_schema_and_legacy_functions_count():
    schema = {"name": "s", "schema": {"type": "object", "description": "field " * 500}}
    base = billable.prompt_tokens("chat.completions", {"messages": USER}, _model(), bound=True)
    with_schema = billable.prompt_tokens(
        "chat.completions",
        {"messages": USER, "response_format": {"type": "json_schema", "json_schema": schema}},
        _model(),
        bound=True,
    )
    with_functions = billable.prompt_tokens(
        "chat.completions",
        {"messages": USER, "functions": [{"name": "f", "description": "x " * 300}]},
        _model(),
        bound=True,
    )
    assert with_schema - base >= 500
    assert with_functions - base >= 300


def test_1200_linked_images_are_each_bounded_by_the_familys_largest_image():
    content = [{"type": "image_url", "image_url": {"url": "https://x.test/i.png"}}] * 1200
    body = {"messages": [{"role": "user", "content": content}]}
    prompt = billable.prompt_tokens("chat.completions", body, _model("gpt-4o"), bound=True)
    assert prompt >= 1200 * (85 + 170 * 8)
    mini = billable.prompt_tokens("chat.completions", body, _model("gpt-4o-mini"), bound=True)
    assert mini >= 1200 * (2833 + 5667 * 8)


@pytest.mark.parametrize(
    ("size", "tiles"),
    [((512, 512), 1), ((1024, 1024), 4), ((2048, 4096), 6), ((768, 2048), 8), ((100, 40), 1)],
)
def test_openai_tile_rule_on_inline_images(size, tiles):
    url = _png(*size)
    assert data_url_size(url) == size
    assert image_tokens("openai", "gpt-4o", url=url, detail="high") == 85 + 170 * tiles
    assert image_tokens("openai", "gpt-4o", url=url, detail="low") == 85


def test_jpeg_sizes_are_read_and_junk_is_unknown():
    assert data_url_size(_jpeg(640, 480)) == (640, 480)
    assert data_url_size("data:image/png;base64,!!!!") is None
    assert data_url_size("data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()) is None
    assert data_url_size("https://x.test/a.png") is None


def test_patch_families_unknown_families_and_anthropic():
    assert openai_image_tokens("gpt-4.1-mini", detail="high", size=None) == 2489  # 1536 x 1.62
    assert openai_image_tokens("gpt-4.1-nano", detail="low", size=(64, 64)) == 10  # 4 x 2.46
    assert openai_image_tokens("my-finetune", detail="low", size=(10, 10)) == 2833 + 5667 * 8
    assert image_tokens("anthropic", "claude-sonnet-4", url=_png(4000, 4000)) == 1600


def test_audio_and_files_are_bounded_and_the_window_caps_the_prompt():
    audio = base64.b64encode(b"\x00" * 64_000).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}
                ],
            }
        ]
    }
    assert billable.prompt_tokens("chat.completions", body, _model(), bound=True) >= 2000
    pdf = b"%PDF-1.4 /Type /Pages /Type /Page /Type /Page " + b"x" * 1000
    file_part = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode()},
    }
    body = {"messages": [{"role": "user", "content": [file_part]}]}
    assert (
        billable.prompt_tokens("chat.completions", body, _model(), bound=True)
        >= len(pdf) + 2 * 1445
    )
    by_id = {
        "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]
    }
    assert (
        billable.prompt_tokens("chat.completions", by_id, _model(window=128_000), bound=True)
        == 128_000
    )
    images = [{"type": "image_url", "image_url": {"url": "https://x.test/i"}}] * 1000
    huge = {"messages": [{"role": "user", "content": images}]}
    assert billable.prompt_tokens("chat.completions", huge, _model(window=8000), bound=True) == 8000


def test_text_only_prompts_count_as_before():
    model = _model("gpt-4o")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    body = {"messages": messages}
    assert billable.prompt_tokens("chat.completions", body, model, bound=True) == (
        tokens.count_messages(messages, model="gpt-4o")
    )


def test_unknown_families_count_bytes_for_the_bound_and_gpt4o_for_the_fair_count():
    model = _model("claude-sonnet-4", kind="anthropic")
    body = {"messages": [{"role": "user", "content": "tokenisation " * 50}]}
    fair = billable.prompt_tokens("chat.completions", body, model, bound=False)
    upper = billable.prompt_tokens("chat.completions", body, model, bound=True)
    assert upper > fair * 3


def test_the_reservation_covers_a_call_that_bills_everything_it_may():
    model = _model("gpt-4o")
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these."},
                    {"type": "image_url", "image_url": {"url": _png(1024, 1024)}},
                ],
            }
        ],
        "n": 20,
        "max_tokens": 300,
    }
    cost, prompt = estimate("chat.completions", body, Plan(deployments=[model]))
    text = [{"role": "user", "content": "Compare these."}]
    billed_prompt = tokens.count_messages(text, model="gpt-4o") + 85 + 170 * 4  # OpenAI's rule
    billed = (billed_prompt * Decimal("2.5") + 20 * 300 * Decimal("10")) / 1_000_000
    assert prompt >= billed_prompt
    assert cost >= billed


def test_usage_past_the_bound_is_flagged_and_estimates_never_are():
    from types import SimpleNamespace

    from gateway.metering import exceeds_bound
    from gateway.pricing import Usage

    model = _model("gpt-4o")
    body = {"messages": USER, "max_tokens": 16, "n": 2}
    plan = Plan(deployments=[model])
    call = SimpleNamespace(api="chat.completions", body=body, plan=plan)
    # without admission's bound: the output alone, n choices at the cap
    assert exceeds_bound(call, model, Usage(uncached_input=10, output=32)) is False
    assert exceeds_bound(call, model, Usage(uncached_input=10, output=33)) is True
    assert (
        exceeds_bound(call, model, Usage(uncached_input=10, output=5000, estimated=True)) is False
    )
    # with it: the prompt too
    estimate("chat.completions", body, plan)
    limit = plan.bounds[model.name]
    assert exceeds_bound(call, model, Usage(uncached_input=limit.prompt, output=32)) is False
    assert exceeds_bound(call, model, Usage(uncached_input=limit.prompt + 1, output=1)) is True
    assert exceeds_bound(call, None, Usage(output=10**6)) is False
