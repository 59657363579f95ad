"""Upstream simulator: a fake OpenAI- and Anthropic-compatible provider for demos, tests and
benchmarks. ``python -m simulator --port N`` (or ``python manage.py simulate_upstream``). It
imports nothing of the product and needs no Django.

It is a raw ASGI app — no framework, no Django request cycle — because the benchmarks use it as
the "direct" baseline: whatever it costs per request is charged to the baseline, not to the
gateway. JSON goes through orjson.

Endpoints: ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/completions`` (legacy text
completions, JSON and SSE), ``POST /v1/responses`` (the Responses API, JSON and SSE, with
``GET`` and ``DELETE /v1/responses/{id}``), ``POST /v1/embeddings``, ``GET /v1/models`` (and
``/v1/models/{id}``), ``POST /v1/messages`` (Anthropic Messages API, JSON and SSE) and
``POST /v1/messages/count_tokens``; Azure-style
``/openai/deployments/{name}/chat/completions|completions|embeddings``, and Azure's Responses
API under ``/openai/responses`` and ``/openai/v1/``, too. The batch APIs: OpenAI's
``/v1/files`` and ``/v1/batches`` and Anthropic's ``/v1/messages/batches``, their lines answered
by those endpoints' own code after ``--batch-delay`` seconds (``simulator.batches``) and billed
as batch usage at half price.

Organisation reports of everything served (``simulator.billing``: every answered chat,
completion, Responses, embedding and message call, streamed or not, whatever the path, with the
usage it was answered with; not errors, ``count_tokens`` or dropped connections), per UTC
minute, API key id (``key_``/``apikey_`` + 16 hex of the key's SHA-256) and ``OpenAI-Project``:
OpenAI's ``GET /v1/organization/usage/completions``, ``/v1/organization/usage/embeddings`` and
``/v1/organization/costs`` (``Authorization: Bearer``), Anthropic's
``GET /v1/organizations/usage_report/messages`` and ``/v1/organizations/cost_report``
(``x-api-key`` and ``anthropic-version``), with their parameters, buckets, pages and errors
(``simulator.admin_reports``). ``--admin-key`` is the only key they accept (default: any);
``--prices FILE`` is their price table (USD per million tokens; default: public list prices).

Control endpoints (no auth, no failure injection): ``GET /_sim/health``,
``GET /_sim/last?path=/v1/chat/completions`` (headers and body of the last request on that path,
plus how many arrived), ``POST /_sim/reset`` (also forgets the billed usage),
``POST /_sim/usage`` (a JSON array of historical usage records for the reports:
``{"at": RFC 3339 or unix seconds, "endpoint": "chat"|"completions"|"responses"|"embeddings"|
"messages", "model", "api_key" or "api_key_id", "project" (OpenAI) or "workspace" (Anthropic),
"input_tokens" (uncached), "cached_tokens", "cache_write_tokens", "output_tokens",
"requests"}``; see ``simulator.control``).

Usage is deterministic, so tests can assert exact costs:

- text tokens: ``ceil(len(text) / 4)``; a non-text content part (image, audio, file) counts 85.
- chat ``prompt_tokens``: 3 per message + the tokens of its content (and ``name``, and each tool
  call's name and arguments) + 3, plus the tokens of the JSON of ``tools`` when given.
  Responses: the same over the same conversation (``instructions`` a system message, the prior
  response's conversation first with ``previous_response_id``), so the two agree. Anthropic:
  the same over ``messages``, ``tools`` and ``system``; ``count_tokens`` says the same number.
- the answer: ``min(max_completion_tokens or max_tokens, 16)`` words, i.e. 16 by default, one
  token a word; ``finish_reason`` is ``length`` when the limit cut it short, else ``stop``
  (``max_tokens`` / ``end_turn`` for Anthropic, status ``incomplete`` for Responses). The ``n``
  choices of a chat (or legacy) completion start at different words; usage counts them all.
- offered tools are called by a fixed rule (``simulator.tools``: forced, or ``auto`` and the
  user spoke last; the first tool sharing a word with the prompt, else the first), with
  arguments valid for the tool's schema; structured output (``response_format``, Responses
  ``text.format``, Anthropic ``output_config.format``) is a valid JSON instance of the schema
  (``simulator.schema``). Either costs the tokens of its JSON text.
- reasoning (``reasoning.effort``, ``reasoning_effort``) and Anthropic ``thinking`` cost output
  tokens before the answer, reported as ``reasoning_tokens`` / a ``thinking`` block.
- cached tokens: an OpenAI prompt of 1,024 tokens or more whose start was seen before reports
  that share as ``cached_tokens`` (multiples of 128, ``simulator.prompt_cache``); Anthropic
  ``cache_control`` prefixes of 1,024 tokens or more are written once, then read.
- embeddings: each string input counts ``max(1, ceil(len / 4))``, a token-array input its length.
  Vectors are unit length, derived from the input's hash (256 dimensions unless ``dimensions``).

Per-request headers (all optional): ``x-sim-status`` (answer that error status),
``x-sim-latency-ms`` (delay before answering), ``x-sim-chunk-delay-ms`` and ``x-sim-chunks``
(stream shape), ``x-sim-no-usage: 1`` (omit usage entirely), ``x-sim-prompt-tokens`` and
``x-sim-completion-tokens`` (override the counts), ``x-sim-cached-tokens`` (OpenAI
``prompt_tokens_details.cached_tokens``, at most ``prompt_tokens``), ``x-sim-cache-read-tokens`` /
``x-sim-cache-write-tokens`` (Anthropic ``cache_read_input_tokens`` /
``cache_creation_input_tokens``; ``input_tokens`` is the prompt minus both, at least 0, since
Anthropic's ``input_tokens`` excludes cache reads and writes).

Faults a whole simulator can be started with (the gateway forwards no client header, so tests
of its retries and fallbacks need faults chosen without one): ``--status`` (every answer that
error; a 429 carries ``Retry-After: --retry-after``, 1 s by default), ``--fail-rate`` (a share of
500s), ``--reset-rate`` (a share of requests whose connection is dropped without an answer),
``--malformed-rate`` (a share of non-streaming answers that are a 200 with a body that is not
JSON), ``--cut-stream-after N`` (every stream loses its connection after N content chunks).
``--reply TEXT`` makes every non-streaming chat answer that text (an LLM judge's JSON verdict).
With none of them set, serving a request does no extra work.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``, except on
``/v1/messages`` and ``/v1/messages/count_tokens``, which answer Anthropic's
``{"type": "error", "error": {"type", "message"}}`` as the real API does (``x-sim-status: 529``
is its ``overloaded_error``). A request without ``Authorization``, ``x-api-key`` or ``api-key``
gets 401.
"""

from simulator.app import Simulator
from simulator.cli import add_arguments, config_from_options, main, serve
from simulator.config import SimConfig
from simulator.openai_models import MODEL_IDS
from simulator.tokens import (
    DEFAULT_COMPLETION_TOKENS,
    DEFAULT_EMBEDDING_DIMS,
    chat_prompt_tokens,
    embedding_vector,
    generated_text,
    text_tokens,
)
from simulator.wire import SimError

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "DEFAULT_EMBEDDING_DIMS",
    "MODEL_IDS",
    "SimConfig",
    "SimError",
    "Simulator",
    "add_arguments",
    "chat_prompt_tokens",
    "config_from_options",
    "embedding_vector",
    "generated_text",
    "main",
    "serve",
    "text_tokens",
]
