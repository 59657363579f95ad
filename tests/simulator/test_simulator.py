"""The upstream simulator over real HTTP: uvicorn in a subprocess on a free port, the official
``openai`` and ``anthropic`` SDKs as clients, every OpenAI body checked against the published
schemas."""

from __future__ import annotations

import base64
import math
import socket
import subprocess
import sys
import time
from array import array
from pathlib import Path

import anthropic
import httpx
import openai
import orjson
import pytest

from simulator import DEFAULT_EMBEDDING_DIMS, SimConfig, generated_text
from tests.openai_schema import assert_valid

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [
    {"role": "system", "content": "You are terse."},  # 3 + ceil(14/4)=4
    {"role": "user", "content": "hello there"},  # 3 + ceil(11/4)=3
]
PROMPT_TOKENS = 3 + 7 + 6


class Sim:
    def __init__(self, *flags: str, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tmp / f"sim-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", str(self.port), *flags],
            cwd=ROOT,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/_sim/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("simulator did not start within 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def openai(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-test", max_retries=0, **kwargs)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="sk-ant-test", max_retries=0)

    def post(self, path: str, body, headers: dict | None = None, **kwargs) -> httpx.Response:
        headers = {"authorization": "Bearer sk-test", **(headers or {})}
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.post(
            f"{self.url}{path}", content=content, headers=headers, timeout=30, **kwargs
        )

    def last(self, path: str) -> dict:
        return httpx.get(f"{self.url}/_sim/last", params={"path": path}).json()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    server = Sim(tmp=tmp_path_factory.mktemp("sim"))
    yield server
    server.stop()


@pytest.fixture
def start_sim(tmp_path):
    started: list[Sim] = []

    def start(*flags: str) -> Sim:
        server = Sim(*flags, tmp=tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def sse_events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e.strip()]


def openai_chunks(raw: bytes) -> tuple[list[dict], bool]:
    chunks, done = [], False
    for event in sse_events(raw):
        assert event.startswith(b"data: ")
        data = event[6:]
        if data == b"[DONE]":
            done = True
        else:
            chunks.append(orjson.loads(data))
    return chunks, done


# --- OpenAI chat -------------------------------------------------------------------------------


def test_chat_completion_has_deterministic_usage_and_validates(sim):
    raw = sim.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    body = orjson.loads(raw.http_response.content)
    assert_valid("CreateChatCompletionResponse", body)
    completion = raw.parse()
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == generated_text(16)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == 16
    assert completion.usage.total_tokens == PROMPT_TOKENS + 16
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_repeated_body_gets_a_fresh_id_and_the_same_answer(sim):
    body = {"model": '@@sim-id@@ "odd" model', "messages": MESSAGES}
    first, second = (sim.post("/v1/chat/completions", body).json() for _ in range(2))
    for answer in (first, second):
        assert_valid("CreateChatCompletionResponse", answer)
        assert answer["model"] == body["model"]
        assert answer["id"].startswith("chatcmpl-sim")
    assert first["id"] != second["id"]
    assert {**first, "id": "", "created": 0} == {**second, "id": "", "created": 0}
    assert first["usage"]["prompt_tokens"] == PROMPT_TOKENS


def test_large_body_arriving_in_pieces_is_read_whole(sim):
    content = "x" * 400_000  # several receive() messages under uvicorn
    completion = sim.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": content}]
    )
    assert completion.usage.prompt_tokens == 3 + 3 + 100_000


def test_chat_max_tokens_limits_the_answer_and_reports_length(sim):
    client = sim.openai()
    short = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    assert short.usage.completion_tokens == 5
    assert short.choices[0].finish_reason == "length"
    assert len(short.choices[0].message.content.split()) == 5
    newer = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=3
    )
    assert newer.usage.completion_tokens == 3
    roomy = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1000)
    assert roomy.usage.completion_tokens == 16
    assert roomy.choices[0].finish_reason == "stop"


def test_chat_reports_cached_tokens_from_header(sim):
    client = sim.openai()
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        extra_headers={"x-sim-cached-tokens": "8"},
    )
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.prompt_tokens_details.cached_tokens == 8
    capped = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-sim-cached-tokens": "5000"}
    )
    assert capped.usage.prompt_tokens_details.cached_tokens == PROMPT_TOKENS


def test_chat_token_count_overrides(sim):
    completion = sim.openai().chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        extra_headers={
            "x-sim-prompt-tokens": "1200",
            "x-sim-completion-tokens": "40",
            "x-sim-cached-tokens": "1000",
        },
    )
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1200, 40, 1240)
    assert usage.prompt_tokens_details.cached_tokens == 1000
    assert completion.choices[0].message.content == generated_text(40)


def test_chat_without_usage_when_asked(sim):
    response = sim.post(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": MESSAGES},
        headers={"x-sim-no-usage": "1"},
    )
    body = response.json()
    assert "usage" not in body
    assert_valid("CreateChatCompletionResponse", body)


def test_chat_stream_with_usage_validates_every_chunk(sim):
    response = sim.post(
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks, done = openai_chunks(response.content)
    assert done
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1
    first, *content, finish, usage = chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert len(content) == 20  # --chunks default
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == generated_text(16)
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert usage["usage"]["completion_tokens"] == 16


def test_chat_stream_without_include_usage_has_no_usage(sim):
    response = sim.post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"x-sim-chunks": "4"},
    )
    chunks, done = openai_chunks(response.content)
    assert done
    assert len(chunks) == 1 + 4 + 1
    assert all("usage" not in c for c in chunks)
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)


def test_chat_stream_no_usage_header_drops_usage_chunk(sim):
    response = sim.post(
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"x-sim-no-usage": "1"},
    )
    chunks, done = openai_chunks(response.content)
    assert done and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c.get("usage") is None for c in chunks)


def test_chat_stream_through_the_sdk(sim):
    stream = sim.openai().chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = [], None, None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(text) == generated_text(8)
    assert finish == "length"
    assert usage.completion_tokens == 8 and usage.prompt_tokens == PROMPT_TOKENS


def test_stream_sends_first_chunk_at_once_then_paces_content(sim):
    start = time.monotonic()
    arrivals = []
    with httpx.stream(
        "POST",
        f"{sim.url}/v1/chat/completions",
        content=orjson.dumps({"model": "m", "messages": MESSAGES, "stream": True}),
        headers={
            "authorization": "Bearer k",
            "x-sim-chunk-delay-ms": "60",
            "x-sim-chunks": "4",
        },
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - start, line))
    assert arrivals[0][0] < 0.5
    assert '"role":"assistant"' in arrivals[0][1]
    # four content chunks 60 ms apart: the last arrives at least ~240 ms after the first
    assert arrivals[-1][0] - arrivals[0][0] >= 0.2
    assert arrivals[-1][1] == "data: [DONE]"


def test_latency_header_delays_the_answer(sim):
    start = time.monotonic()
    response = sim.post(
        "/v1/chat/completions",
        {"model": "m", "messages": MESSAGES},
        headers={"x-sim-latency-ms": "200"},
    )
    assert response.status_code == 200
    assert time.monotonic() - start >= 0.2


def test_last_request_is_recorded_per_path(sim):
    httpx.post(f"{sim.url}/_sim/reset")
    sim.openai().chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-finops-feature": "summarize"},
    ).close()
    last = sim.last("/v1/chat/completions")
    assert last["method"] == "POST"
    assert last["body"]["model"] == "gpt-4o-mini"
    assert last["body"]["stream_options"] == {"include_usage": True}
    assert last["headers"]["authorization"] == "Bearer sk-test"
    assert last["headers"]["x-finops-feature"] == "summarize"
    assert last["count"] == 1
    missing = httpx.get(f"{sim.url}/_sim/last", params={"path": "/v1/embeddings"})
    assert missing.status_code == 404
    assert_valid("ErrorResponse", missing.json())


# --- embeddings, models ----------------------------------------------------------------------


def test_embeddings_float_and_base64_agree(sim):
    body = {"model": "text-embedding-3-small", "input": ["hello world", "second"]}
    floats = sim.post("/v1/embeddings", {**body, "encoding_format": "float"}).json()
    assert_valid("CreateEmbeddingResponse", floats)
    assert floats["usage"] == {"prompt_tokens": 3 + 2, "total_tokens": 5}
    assert [d["index"] for d in floats["data"]] == [0, 1]
    vector = floats["data"][0]["embedding"]
    assert len(vector) == DEFAULT_EMBEDDING_DIMS
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-5)
    encoded = sim.post("/v1/embeddings", {**body, "encoding_format": "base64"}).json()
    decoded = array("f")
    decoded.frombytes(base64.b64decode(encoded["data"][0]["embedding"]))
    assert decoded.tolist() == vector
    again = sim.post("/v1/embeddings", {**body, "encoding_format": "float"}).json()
    assert again["data"] == floats["data"]  # deterministic


def test_embeddings_through_the_sdk(sim):
    client = sim.openai()
    result = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(result.data) == 1
    assert len(result.data[0].embedding) == DEFAULT_EMBEDDING_DIMS
    assert result.usage.prompt_tokens == 3
    sized = client.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]], dimensions=8
    )
    assert [len(d.embedding) for d in sized.data] == [8, 8]
    assert sized.usage.prompt_tokens == 5


def test_embeddings_reject_bad_input(sim):
    response = sim.post("/v1/embeddings", {"model": "e", "input": []})
    assert response.status_code == 400
    assert_valid("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == "input"


def test_models_list_validates(sim):
    response = httpx.get(f"{sim.url}/v1/models", headers={"authorization": "Bearer k"})
    assert_valid("ListModelsResponse", response.json())
    ids = [m.id for m in sim.openai().models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert sim.openai().models.retrieve("gpt-4o").id == "gpt-4o"


def test_azure_deployment_paths(sim):
    client = openai.AzureOpenAI(
        azure_endpoint=sim.url, api_key="az-key", api_version="2024-10-21", max_retries=0
    )
    completion = client.chat.completions.create(model="my-deployment", messages=MESSAGES)
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    last = sim.last("/openai/deployments/my-deployment/chat/completions")
    assert last["headers"]["api-key"] == "az-key"
    assert "api-version=2024-10-21" in last["query"]


# --- errors ------------------------------------------------------------------------------------


def test_missing_key_is_401_openai_shaped(sim):
    response = httpx.post(
        f"{sim.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert_valid("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    ("status", "exc", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (429, openai.RateLimitError, "rate_limit_error"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_status_header_injects_errors(sim, status, exc, kind):
    with pytest.raises(exc) as caught:
        sim.openai().chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-sim-status": str(status)}
        )
    response = caught.value.response
    assert response.status_code == status
    assert_valid("ErrorResponse", response.json())
    assert response.json()["error"]["type"] == kind
    if status == 429:
        assert response.headers["retry-after"] == "1"


def test_bad_requests_get_openai_errors(sim):
    cases = [
        ("/v1/chat/completions", b"{not json", 400, "invalid_json"),
        ("/v1/chat/completions", {"messages": MESSAGES}, 400, "missing_field"),
        ("/v1/chat/completions", {"model": "m", "messages": []}, 400, "missing_field"),
        ("/v1/nowhere", {}, 404, "unknown_url"),
    ]
    for path, body, status, code in cases:
        response = sim.post(path, body)
        assert response.status_code == status, path
        assert_valid("ErrorResponse", response.json())
        assert response.json()["error"]["code"] == code
    bad_header = sim.post(
        "/v1/chat/completions",
        {"model": "m", "messages": MESSAGES},
        headers={"x-sim-latency-ms": "soon"},
    )
    assert bad_header.status_code == 400
    wrong_method = httpx.get(f"{sim.url}/v1/chat/completions", headers={"x-api-key": "k"})
    assert wrong_method.status_code == 405
    assert_valid("ErrorResponse", wrong_method.json())


def test_status_flag_answers_every_request(start_sim):
    server = start_sim("--status", "429")
    with pytest.raises(openai.RateLimitError) as caught:
        server.openai().embeddings.create(model="e", input="x")
    assert caught.value.response.headers["retry-after"] == "1"
    assert_valid("ErrorResponse", caught.value.response.json())
    assert httpx.get(f"{server.url}/_sim/health").status_code == 200  # control stays up


def test_fail_rate_injects_500s(start_sim):
    server = start_sim("--fail-rate", "0.5", "--seed", "7", "--latency-ms", "1")
    statuses = [
        server.post("/v1/chat/completions", {"model": "m", "messages": MESSAGES}).status_code
        for _ in range(40)
    ]
    assert set(statuses) == {200, 500}
    for _ in range(40):
        failed = server.post("/v1/embeddings", {"model": "e", "input": "x"})
        if failed.status_code == 500:
            break
    assert failed.status_code == 500
    assert_valid("ErrorResponse", failed.json())
    assert failed.json()["error"]["type"] == "server_error"


def test_flags_set_stream_shape(start_sim):
    server = start_sim("--chunks", "3", "--chunk-delay-ms", "30")
    start = time.monotonic()
    response = server.post(
        "/v1/chat/completions", {"model": "m", "messages": MESSAGES, "stream": True}
    )
    chunks, _ = openai_chunks(response.content)
    assert len(chunks) == 1 + 3 + 1
    assert time.monotonic() - start >= 0.09


def test_retry_after_flag_sets_the_429_header(start_sim):
    server = start_sim("--status", "429", "--retry-after", "2.5")
    response = server.post("/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2.5"


def test_reset_rate_drops_the_connection_without_an_answer(start_sim):
    server = start_sim("--reset-rate", "1")
    with pytest.raises(httpx.RemoteProtocolError):
        server.post("/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert httpx.get(f"{server.url}/_sim/health").status_code == 200  # control stays up
    assert "ASGI callable" not in server.log.read_text()  # dropped cleanly, nothing logged


def test_malformed_rate_and_cut_streams(start_sim):
    server = start_sim("--malformed-rate", "1", "--cut-stream-after", "2", "--chunks", "5")
    for path, body in (
        ("/v1/chat/completions", {"model": "m", "messages": MESSAGES}),
        ("/v1/embeddings", {"model": "e", "input": "x"}),
    ):
        response = server.post(path, body)
        assert response.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)
    # streams are not malformed but lose their connection after two content chunks
    received = []
    with (
        pytest.raises(httpx.RemoteProtocolError),  # the cut comes mid-iteration
        httpx.stream(
            "POST",
            f"{server.url}/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
            headers={"authorization": "Bearer k"},
        ) as response,
    ):
        received.extend(line for line in response.iter_lines() if line)
    chunks = [orjson.loads(line[6:]) for line in received]
    assert len(chunks) == 1 + 2 and "[DONE]" not in received
    assert "ASGI callable" not in server.log.read_text()


def test_bad_fault_rates_fail_loudly():
    with pytest.raises(ValueError, match="reset_rate"):
        SimConfig(reset_rate=1.5)
    with pytest.raises(ValueError, match="at most 1"):
        SimConfig(reset_rate=0.6, malformed_rate=0.6)
    with pytest.raises(ValueError, match="cut_stream_after"):
        SimConfig(cut_stream_after=-1)


def test_bad_flags_fail_loudly(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "simulate_upstream", "--port", "1", "--fail-rate", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "fail_rate" in result.stderr


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_message(sim):
    message = sim.anthropic().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == generated_text(16)
    assert message.stop_reason == "end_turn"
    # 3 + (3 + 3) for the message + 4 for the system prompt
    assert message.usage.input_tokens == 13
    assert message.usage.output_tokens == 16
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0


def test_anthropic_cache_headers_split_the_input(sim):
    message = sim.anthropic().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=4,
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={
            "x-sim-prompt-tokens": "3000",
            "x-sim-cache-read-tokens": "2000",
            "x-sim-cache-write-tokens": "500",
        },
    )
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (500, 2000)
    assert usage.cache_creation_input_tokens == 500
    assert usage.output_tokens == 4
    assert message.stop_reason == "max_tokens"


def test_anthropic_stream_events(sim):
    client = sim.anthropic()
    with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"x-sim-chunks": "5", "x-sim-cache-read-tokens": "2"},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds.count("content_block_delta") == 5
    for kind in ("content_block_stop", "message_delta", "message_stop"):
        assert kind in kinds
    assert final.content[0].text == generated_text(16)
    assert final.usage.output_tokens == 16
    assert final.usage.cache_read_input_tokens == 2
    assert final.usage.input_tokens == 9 - 2


def test_anthropic_raw_stream_order(sim):
    response = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": "c", "max_tokens": 3, "stream": True, "messages": MESSAGES[1:]},
        headers={"x-api-key": "k", "x-sim-chunks": "2"},
    )
    names = [
        e.split(b"\n", 1)[0].removeprefix(b"event: ").decode() for e in sse_events(response.content)
    ]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = orjson.loads(sse_events(response.content)[-2].split(b"data: ", 1)[1])
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["output_tokens"] == 3


def test_anthropic_errors_use_anthropic_shape(sim):
    with pytest.raises(anthropic.APIStatusError) as caught:
        sim.anthropic().messages.create(
            model="c",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-sim-status": "529"},
        )
    assert caught.value.status_code == 529
    body = caught.value.response.json()
    assert body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Simulated upstream error (status 529)"},
    }
    missing = httpx.post(f"{sim.url}/v1/messages", json={"model": "c", "messages": []})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    no_max = httpx.post(
        f"{sim.url}/v1/messages",
        json={"model": "c", "messages": MESSAGES[1:]},
        headers={"x-api-key": "k"},
    )
    assert no_max.status_code == 400
