"""A batch's lines: read and checked (a 400 naming the line), each resolved to the configured
model that serves it, rewritten for the upstream, and bounded in cost at batch prices.

OpenAI's format is a JSONL file, one request a line: ``{"custom_id", "method": "POST", "url",
"body"}`` with ``url`` ``/v1/chat/completions`` or ``/v1/embeddings``, the same for every line
of a batch. Anthropic's is the ``requests`` array of ``POST /v1/messages/batches``, each
``{"custom_id", "params"}`` with ``params`` a Messages request. Streaming is refused (a batch
line has no client to stream to); ``custom_id`` values are unique within a batch.

Every line of a batch must land on one provider (one upstream batch): a batch that spans two
is refused, naming the first line that differs, so that the client can split it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import orjson

from gateway import billable
from gateway.dialects.messages import messages_to_chat
from gateway.errors import GatewayError, invalid
from gateway.pricing import ZERO, Price, price_at
from gateway.providers.base import CHAT, EMBEDDINGS
from gateway.records import KeyRecord, ModelRecord, OrgConfig, ProviderRecord
from gateway.resolve import resolve

OPENAI_URLS = {"/v1/chat/completions": CHAT, "/v1/embeddings": EMBEDDINGS}
ANTHROPIC_ENDPOINT = "/v1/messages"
MAX_CUSTOM_ID = 512  # OpenAI's
ANTHROPIC_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_MODEL = "default"
# the provider kinds whose batch API the gateway speaks, per client format
BATCH_KINDS = {"openai": ("openai",), "anthropic": ("anthropic",)}


@dataclass(slots=True)
class Line:
    number: int  # 1-based: the line of the file, or the index in ``requests`` + 1
    custom_id: str
    api: str  # CHAT or EMBEDDINGS (an Anthropic line: CHAT, its body translated)
    body: dict  # as the client sent it (an Anthropic line: its params)
    chat: dict | None = None  # an Anthropic line's Chat Completions form (for the bound)


@dataclass(slots=True)
class Resolved:
    line: Line
    requested: str
    model: ModelRecord
    upstream_body: dict
    bound: billable.Bound  # what the line may bill at most (tokens)
    bound_usd: Decimal  # ... and cost at batch prices


def _line_error(number: int, message: str, *, status: int = 400, code: str = "invalid_value"):
    return GatewayError(status, code, f"Line {number}: {message}", param=f"line {number}")


def _request_error(index: int, message: str, *, status: int = 400, code: str = "invalid_value"):
    return GatewayError(status, code, f"requests[{index}]: {message}", param=f"requests.{index}")


# --- OpenAI: the JSONL file --------------------------------------------------------------


def openai_lines(data: bytes, *, max_lines: int) -> list[Line]:
    """Every request line of an OpenAI batch input file, checked; blank lines are skipped."""
    lines: list[Line] = []
    seen: set[str] = set()
    endpoint = None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.strip()
        if not raw:
            continue
        if len(lines) >= max_lines:
            raise invalid(
                "too_many_lines", f"The file has more than {max_lines} requests; split it."
            )
        line = _openai_line(number, raw)
        if line.custom_id in seen:
            raise _line_error(number, f"custom_id '{line.custom_id[:100]}' is not unique.")
        seen.add(line.custom_id)
        url = _url_of(line)
        if endpoint is None:
            endpoint = url
        elif url != endpoint:
            raise _line_error(
                number, f"url '{url}' differs from line 1's '{endpoint}': one endpoint a batch."
            )
        try:
            _check_body(line.api, line.body)
        except GatewayError as exc:
            raise _line_error(number, exc.message) from None
        lines.append(line)
    if not lines:
        raise invalid("empty_file", "The file holds no request lines.")
    return lines


def _url_of(line: Line) -> str:
    return next(url for url, api in OPENAI_URLS.items() if api == line.api)


def _openai_line(number: int, raw: bytes) -> Line:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _line_error(number, f"not valid JSON ({exc}).") from None
    if not isinstance(obj, dict):
        raise _line_error(number, "must be a JSON object.")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        raise _line_error(number, f"'custom_id' must be a string of 1 to {MAX_CUSTOM_ID} chars.")
    if obj.get("method") != "POST":
        raise _line_error(number, "'method' must be \"POST\".")
    url = obj.get("url")
    api = OPENAI_URLS.get(url) if isinstance(url, str) else None
    if api is None:
        allowed = ", ".join(OPENAI_URLS)
        raise _line_error(number, f"'url' must be one of {allowed}.")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise _line_error(number, "'body' must be a JSON object.")
    return Line(number=number, custom_id=custom_id, api=api, body=body)


def _check_body(api: str, body: dict) -> None:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise invalid("invalid_value", "'model' must be a non-empty string.")
    if body.get("stream") not in (None, False):
        raise invalid("invalid_value", "'stream' is not supported in a batch.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid("invalid_value", "'user' must be a string.")
    if api == EMBEDDINGS:
        value = body.get("input")
        if not isinstance(value, (str, list)) or not value:
            raise invalid("invalid_value", "'input' must be a string or a non-empty array.")
        return
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("invalid_value", "'messages' must be a non-empty array.")
    if not all(isinstance(m, dict) for m in messages):
        raise invalid("invalid_value", "each message must be an object.")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise invalid("invalid_value", f"'{name}' must be a positive integer.")
    n = body.get("n")
    if n is not None and (
        not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= billable.MAX_CHOICES
    ):
        raise invalid("invalid_value", f"'n' must be an integer from 1 to {billable.MAX_CHOICES}.")


# --- Anthropic: the requests array --------------------------------------------------------


def anthropic_lines(body: dict, *, max_lines: int) -> list[Line]:
    """Every request of an Anthropic ``POST /v1/messages/batches`` body, checked."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid("invalid_value", "'requests' must be a non-empty array.", "requests")
    if len(requests) > max_lines:
        raise invalid(
            "too_many_lines", f"A batch holds at most {max_lines} requests; split it.", "requests"
        )
    lines: list[Line] = []
    seen: set[str] = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict):
            raise _request_error(index, "must be an object.")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not ANTHROPIC_CUSTOM_ID.match(custom_id):
            raise _request_error(index, "'custom_id' must be 1 to 64 letters, digits, '_' or '-'.")
        if custom_id in seen:
            raise _request_error(index, f"custom_id '{custom_id}' is not unique.")
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise _request_error(index, "'params' must be an object.")
        _check_params(index, params)
        try:
            chat, _ = messages_to_chat(params)
        except GatewayError as exc:
            raise _request_error(index, f"params: {exc.message}") from None
        lines.append(Line(index + 1, custom_id, CHAT, params, chat=chat))
    return lines


def _check_params(index: int, params: dict) -> None:
    model = params.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _request_error(index, "params.model: a non-empty string is required.")
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _request_error(index, "params.max_tokens: a positive integer is required.")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _request_error(index, "params.messages: a non-empty array is required.")
    if params.get("stream") not in (None, False):
        raise _request_error(index, "params.stream: streaming is not supported in a batch.")


# --- resolution ---------------------------------------------------------------------------


def _error_for(line: Line, api: str, message: str, **kwargs) -> GatewayError:
    if api == "anthropic":
        return _request_error(line.number - 1, message, **kwargs)
    return _line_error(line.number, message, **kwargs)


def resolve_lines(
    lines: list[Line],
    *,
    config: OrgConfig,
    record: KeyRecord,
    feature: str,
    api: str,
    when: datetime,
) -> list[Resolved]:
    """Each line's configured model (all on one provider that has a batch API), its upstream
    body and its upper-bound cost at batch prices."""
    out: list[Resolved] = []
    provider: ProviderRecord | None = None
    first = 0
    memo: dict[str, ModelRecord] = {}
    for line in lines:
        requested = line.body.get("model")
        if requested is None or requested == DEFAULT_MODEL:
            default = record.feature_models.get(feature) or record.default_model
            if default:
                requested = default
            elif requested is None:
                raise _error_for(line, api, "'model' is required.")
        if record.allowed_models and requested not in record.allowed_models:
            raise _error_for(
                line,
                api,
                f"this key may not use model '{requested}'.",
                status=403,
                code="model_not_allowed",
            )
        chat = line.chat if line.chat is not None else line.body
        model = _model_for(line, api, config, requested, chat=chat, memo=memo)
        if provider is None:
            provider, first = model.provider, line.number
        elif model.provider.slug != provider.slug:
            raise _error_for(
                line,
                api,
                f"'{requested}' is served by provider '{model.provider.slug}', the batch's "
                f"first request (line {first}) by '{provider.slug}': a batch goes to one "
                "provider, split it.",
            )
        price = price_at(model.prices, when)
        bound = billable.bound(line.api, chat, model)
        cost = bound.cost(price.for_batch()) if price is not None else ZERO
        out.append(Resolved(line, requested, model, _upstream_body(line, model), bound, cost))
    return out


def _model_for(line, api, config, requested: str, *, chat: dict, memo) -> ModelRecord:
    """The first deployment of ``requested`` (a router decides per prompt) whose provider has
    a batch API in the client's format."""
    if not requested.startswith("router:") and requested not in config.routers:
        found = memo.get(requested)
        if found is not None:
            return found
    try:
        plan = resolve(config, requested, api=line.api, messages=chat.get("messages"))
    except GatewayError as exc:
        raise _error_for(line, api, exc.message, status=exc.status, code=exc.code) from None
    kinds = BATCH_KINDS[api]
    for model in plan.deployments:
        if model.provider.kind in kinds:
            if not plan.router:
                memo[requested] = model
            return model
    kind = plan.deployments[0].provider.kind
    raise _error_for(
        line,
        api,
        f"'{requested}' is served by a provider of kind '{kind}', which has no "
        f"{'Message Batches' if api == 'anthropic' else 'Batch'} API through this gateway.",
    )


def _upstream_body(line: Line, model: ModelRecord) -> dict:
    """The line as it goes upstream: the upstream model name and, on a chat line that sets no
    cap, the output cap the reservation assumed (as on a synchronous call)."""
    body = dict(line.body)
    body["model"] = model.upstream_model
    if (
        line.chat is None
        and line.api == CHAT
        and body.get("max_completion_tokens") is None
        and body.get("max_tokens") is None
    ):
        body["max_completion_tokens"] = billable.output_cap(body, model)
    return body


# --- what the metering needs of each model, kept with the batch ---------------------------


def price_snapshot(price: Price | None) -> dict | None:
    if price is None:
        return None
    return {
        name: format(getattr(price, name), "f")
        for name in (
            "input",
            "output",
            "cached_input",
            "cache_write",
            "batch_input",
            "batch_output",
        )
    } | {"effective_from": price.effective_from.isoformat()}


def price_restore(snapshot: dict | None) -> Price | None:
    if not snapshot:
        return None
    return Price(
        effective_from=datetime.fromisoformat(snapshot["effective_from"]),
        **{k: Decimal(v) for k, v in snapshot.items() if k != "effective_from"},
    )


def served_snapshot(resolved: list[Resolved], when: datetime) -> dict:
    """Configured model name -> its upstream name, mode, provider kind, output cap and prices
    at ``when``."""
    out = {}
    for r in resolved:
        m = r.model
        if m.name not in out:
            out[m.name] = {
                "upstream": m.upstream_model,
                "mode": m.mode,
                "kind": m.provider.kind,
                "max_output": m.max_output_tokens,
                "price": price_snapshot(price_at(m.prices, when)),
            }
    return out
