"""The gateway's lean ASGI app: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``
(and ``GET``/``DELETE /v1/responses/{id}``), ``/v1/messages`` (and ``/count_tokens``),
``/v1/completions``, ``/v1/models`` (and ``/{id}``), ``/v1/feedback``, and Azure's
``/openai/deployments/{name}/…`` paths. Errors on ``/v1/messages`` are in Anthropic's shape,
everywhere else in OpenAI's.

No Django request cycle and no database call on the event loop: keys and routing come from the
runtime's caches, usage goes to the ledger writer's queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.db import close_old_connections

from finops.logging import request_id_var
from gateway import attribution, billable, cors, metrics, payload_log, response_cache
from gateway.batches.routes import batch_route, is_batch_path
from gateway.dialects import COMPLETIONS, DIALECTS, MESSAGES, RESPONSES
from gateway.dialects.messages import anthropic_error, count_tokens_local
from gateway.errors import GatewayError, invalid
from gateway.hooks import HookError, hooks
from gateway.http import JSON_HEADERS, header, read_body, send_bytes, send_error, send_json
from gateway.leases import lost_draft
from gateway.providers.base import CHAT, EMBEDDINGS
from gateway.proxy import Call, count_tokens_upstream, proxy_json, proxy_stream
from gateway.resolve import resolve
from gateway.response_store import patiently, responses_expand, stored_response_route
from gateway.runtime import runtime
from gateway.shadow import shadow_decide, shadow_start

log = logging.getLogger("gateway")
_rng = random.Random()  # noqa: S311 - experiment arms, not security
DEFAULT_MODEL = "default"  # the model name that asks for the feature's or key's default
ROUTES = {
    "/v1/chat/completions": CHAT,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/responses": RESPONSES,
    "/v1/messages": MESSAGES,
    "/v1/completions": COMPLETIONS,
}
# Azure OpenAI's own paths (the AzureOpenAI SDK): the deployment names the model
AZURE_PATH = re.compile(
    r"/openai/deployments/(?P<name>[^/]{1,200})/(?P<api>chat/completions|embeddings|completions)"
)
AZURE_APIS = {"chat/completions": CHAT, "embeddings": EMBEDDINGS, "completions": COMPLETIONS}
# what an Anthropic client sends that its native upstream must see
ANTHROPIC_HEADERS = (b"anthropic-version", b"anthropic-beta")


async def _run_db(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(runtime.db, fn, *args)


def _passthrough_headers(scope, dialect) -> dict[str, str]:
    if dialect is None or dialect.api != MESSAGES:
        return {}
    out = {}
    for name in ANTHROPIC_HEADERS:
        value = header(scope, name)
        if value is not None:
            out[name.decode()] = value.decode("latin-1")[:1000]
    return out


def _response_keeper(call, new_input):
    """Store the answer of a ``store``d Responses call before the client has all of it."""

    async def keep(answer) -> None:
        """``answer``: the JSON body sent, or the stream's ``ClientStream`` (its final
        ``response``)."""
        if isinstance(answer, bytes):
            response = orjson.loads(answer)
        else:
            response = getattr(answer, "response", None)
        if not isinstance(response, dict) or not response.get("id"):
            return
        runtime.ledger.response_keep(
            {
                "org_id": call.record.org_id,
                "key_id": call.record.key_id,
                "new_input": new_input,
                "previous": call.inbound.get("previous_response_id") or "",
                "response": response,
            }
        )

    return keep


async def send_anthropic_error(send, exc: GatewayError, rid) -> None:
    status = exc.status
    if status == 502 and exc.upstream_status == 529:
        status = 529  # Anthropic's overloaded_error, as the upstream said
    await send_error(send, exc, rid, status=status, body=anthropic_error(status, exc.message))


def _now() -> datetime:
    return datetime.now(UTC)


class GatewayApp:
    async def lifespan(self, scope, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.start()
                except Exception as exc:  # noqa: BLE001 - report and refuse to start
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope, receive, send) -> None:
        request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        rid = [(b"x-request-id", request_id.encode())]
        status = [0]
        t0 = time.perf_counter()
        downstream = send

        async def send(message):  # noqa: F811 - the same send, noting the response status
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await downstream(message)

        try:
            if not runtime.started:  # served without lifespan (e.g. a test client): start lazily
                await runtime.start()
            if scope["method"] == "OPTIONS" and cors.preflight_wanted(scope):
                await cors.preflight(scope, send)
                return
            send = cors.wrap(scope, send)
            await self._route(scope, receive, send, request_id, rid)
        except GatewayError as exc:
            if scope["path"].startswith("/v1/messages"):
                await send_anthropic_error(send, exc, rid)
            else:
                await send_error(send, exc, rid)
        except ConnectionAbortedError:
            pass
        except Exception:
            log.exception("gateway error")
            await send_error(
                send, GatewayError(500, "internal_error", "internal gateway error"), rid
            )
        finally:
            metrics.request_done(scope["path"], status[0], time.perf_counter() - t0)
            request_id_var.reset(token)

    async def _route(self, scope, receive, send, request_id: str, rid) -> None:
        path, method = scope["path"], scope["method"]
        api = ROUTES.get(path)
        if api is not None:
            _method(method, "POST")
            await self._completion(scope, receive, send, request_id, api)
        elif (azure := AZURE_PATH.fullmatch(path)) is not None:
            _method(method, "POST")
            api = AZURE_APIS[azure["api"]]
            await self._completion(scope, receive, send, request_id, api, model=azure["name"])
        elif path == "/v1/models":
            _method(method, "GET")
            record = await self._authenticate(scope)
            await self._models(send, record, rid)
        elif path.startswith("/v1/models/"):
            _method(method, "GET")
            record = await self._authenticate(scope)
            await self._model(send, record, rid, path.removeprefix("/v1/models/"))
        elif path.startswith("/v1/responses/"):
            record = await self._authenticate(scope)
            await stored_response_route(send, record, rid, scope, _run_db)
        elif path == "/v1/messages/count_tokens":
            _method(method, "POST")
            await self._count_tokens(scope, receive, send, rid)
        elif path == "/v1/feedback" and hooks.feedback_record is not None:
            _method(method, "POST")
            await self._feedback(scope, receive, send, rid)
        elif is_batch_path(path):  # /v1/files, /v1/batches, /v1/messages/batches
            await batch_route(scope, receive, send, rid, self._authenticate)
        else:
            raise GatewayError(404, "unknown_url", f"Unknown request URL: {method} {path}")

    async def _authenticate(self, scope):
        """The virtual key, from ``Authorization: Bearer`` (OpenAI's SDKs), ``x-api-key``
        (Anthropic's) or ``api-key`` (Azure's)."""
        raw = (
            header(scope, b"authorization")
            or header(scope, b"x-api-key")
            or header(scope, b"api-key")
        )
        if raw is None:
            raise GatewayError(
                401,
                "invalid_api_key",
                "You didn't provide an API key. Send it as 'Authorization: Bearer sk-fo-…' "
                "(or x-api-key).",
            )
        text = raw.decode("latin-1").strip()
        secret = text[7:].strip() if text[:7].lower() == "bearer " else text
        record = await runtime.key_lookup(secret)
        if record is None:
            raise GatewayError(401, "invalid_api_key", "Incorrect API key provided.")
        error = record.error_at(_now())
        if error == "key_revoked":
            raise GatewayError(401, error, "This API key has been revoked.")
        if error:
            raise GatewayError(401, error, "This API key has expired.")
        return record

    async def _completion(
        self, scope, receive, send, request_id: str, api: str, *, model: str | None = None
    ) -> None:
        started = _now()
        t0 = time.perf_counter()
        body_bytes = await read_body(
            receive, settings.FINOPS_MAX_REQUEST_BYTES, seconds=settings.FINOPS_BODY_READ_SECONDS
        )
        record = await self._authenticate(scope)
        dialect = DIALECTS.get(api)
        inbound, unsupported = None, ()
        if dialect is None:
            body = _parse_body(body_bytes, api, model=model)
        else:
            inbound = _parse_object(body_bytes, model=model)
            if dialect.api == RESPONSES:
                new_input = inbound.get("input")
                inbound = await patiently(_run_db, responses_expand, record.key_id, inbound)
            body, unsupported = dialect.to_chat(inbound)
            _check_chat(body)
            api = CHAT  # the canonical body: the core works on Chat Completions
        send = payload_log.wrap(send, body_bytes)  # itself unless FINOPS_LOG_PAYLOADS
        requested = body.get("model")
        labels = None
        if requested is None or requested == DEFAULT_MODEL:
            # the feature's default model (else the key's): the feature is needed first
            labels = attribution.labels(scope, body, record, runtime.ledger)
            default = record.feature_models.get(labels.feature) or record.default_model
            if default:
                requested = default
            elif requested is None:  # (a model named "default" is still called by its name)
                raise invalid("missing_field", "You must provide a model parameter.", "model")
        if record.allowed_models and requested not in record.allowed_models:
            raise GatewayError(
                403,
                "model_not_allowed",
                f"This key may not use model '{requested}'.",
                param="model",
            )
        config = await runtime.org_config(record.org_id)
        messages = body.get("messages") if api == CHAT else None
        plan = resolve(config, requested, api=api, fallbacks=record.fallbacks, messages=messages)
        if plan.router and messages is not None:
            _router_prompt_keep(config, plan, messages)
        if labels is None:
            labels = attribution.labels(scope, body, record, runtime.ledger)
        experiment, arm = _experiment_apply(config, plan, requested, record, labels=labels, api=api)
        stream = api == CHAT and body.get("stream") is True
        call = Call(
            request_id=request_id,
            api=api,
            record=record,
            labels=labels,
            body=body,
            requested=requested,
            plan=plan,
            started=started,
            t0=t0,
            experiment=experiment,
            experiment_arm=arm,
            dialect=dialect,
            inbound=inbound,
            unsupported=tuple(unsupported),
            passthrough=_passthrough_headers(scope, dialect),
        )
        if dialect is not None and dialect.api == RESPONSES and inbound.get("store") is not False:
            call.on_answer = _response_keeper(call, new_input)
        cached = await response_cache.lookup(scope, call, config)  # None: no policy applies
        if await response_cache.answered(call, cached, send, config):
            return
        admission = await runtime.admitter.admit(
            api=api,
            body=body,
            record=record,
            config=config,
            feature=labels.feature,
            plan=plan,
            started=started,
            draft=lost_draft(call) if runtime.admitter.tracks_calls else None,
        )
        if admission is not None:
            call.plan = admission.plan
            call.extra_headers = admission.headers
            call.admission = admission
            call.budget_action = "downgrade" if admission.downgraded else ""
        response_cache.attach(call, cached)
        runtime.ledger.key_used(record.key_id, started)
        shadow = shadow_decide(config, call) if call.plan.router else None
        try:
            if stream:
                await proxy_stream(call, send, receive)
            else:
                await proxy_json(call, send)
        finally:
            if admission is not None:
                await runtime.admitter.settle(
                    admission,
                    cost=call.spent,
                    prompt_tokens=call.prompt_tokens,
                    completion_tokens=call.completion_tokens,
                )
        await response_cache.keep(call, cached)
        if shadow is not None:
            # the client has its whole answer: the mirror runs in the background, unadmitted
            # (evaluation spend, bounded by the router's shadow_rate; see gateway.shadow)
            shadow_start(call, shadow)

    async def _feedback(self, scope, receive, send, rid) -> None:
        """``POST /v1/feedback {"request_id", "score", "comment"?}``: a key scores one of its own
        requests (the ``feedback_record`` hook, evaluation's); written off the event loop."""
        body_bytes = await read_body(
            receive, settings.FINOPS_MAX_REQUEST_BYTES, seconds=settings.FINOPS_BODY_READ_SECONDS
        )
        record = await self._authenticate(scope)
        try:
            body = orjson.loads(body_bytes) if body_bytes else None
        except orjson.JSONDecodeError as exc:
            raise invalid("invalid_json", f"The request body is not valid JSON: {exc}") from None
        loop = asyncio.get_running_loop()
        try:
            feedback = await loop.run_in_executor(
                runtime.db, _feedback_write, record.org_id, record.key_id, body
            )
        except HookError as exc:
            raise GatewayError(exc.status, exc.code, exc.message, param=exc.param) from None
        await send_json(
            send,
            200,
            {"object": "feedback", "request_id": feedback.request_id, "score": feedback.score},
            rid,
        )

    async def _models(self, send, record, rid) -> None:
        data = _model_objects(await runtime.org_config(record.org_id), record)
        await send_json(send, 200, {"object": "list", "data": data}, rid)

    async def _model(self, send, record, rid, name: str) -> None:
        """``GET /v1/models/{id}``: one of the key's models (``router:`` names included)."""
        for item in _model_objects(await runtime.org_config(record.org_id), record):
            if item["id"] == name:
                await send_json(send, 200, item, rid)
                return
        raise GatewayError(
            404, "model_not_found", f"The model '{name[:200]}' does not exist.", param="model"
        )

    async def _count_tokens(self, scope, receive, send, rid) -> None:
        """``POST /v1/messages/count_tokens``: Anthropic's own count for an Anthropic model
        (free, not metered), the gateway's upper-bound count otherwise."""
        body_bytes = await read_body(
            receive, settings.FINOPS_MAX_REQUEST_BYTES, seconds=settings.FINOPS_BODY_READ_SECONDS
        )
        record = await self._authenticate(scope)
        inbound = _parse_object(body_bytes)
        body, _ = DIALECTS[MESSAGES].to_chat({"max_tokens": 1, **inbound})
        requested = inbound.get("model") or record.default_model
        if not requested:
            raise invalid("missing_field", "You must provide a model parameter.", "model")
        if record.allowed_models and requested not in record.allowed_models:
            raise GatewayError(
                403, "model_not_allowed", f"This key may not use model '{requested}'.", "model"
            )
        config = await runtime.org_config(record.org_id)
        plan = resolve(config, requested, api=CHAT, fallbacks=(), messages=body["messages"])
        model = plan.deployments[0] if plan.deployments else None
        if model is not None and model.provider.kind == "anthropic":
            status, data = await count_tokens_upstream(
                runtime.session, model, inbound, _passthrough_headers(scope, DIALECTS[MESSAGES])
            )
            await send_bytes(send, status, data, [*JSON_HEADERS, *rid])
            return
        tokens = count_tokens_local(inbound, model=model)
        await send_json(send, 200, {"input_tokens": tokens}, rid)


def _model_objects(config, record) -> list[dict]:
    allowed = record.allowed_models
    created = int(time.time())
    data = []
    for kind, names in (
        ("model", config.models),
        ("group", config.groups),
        ("router", config.routers),
    ):
        for name in sorted(names):
            visible = name if kind != "router" else f"router:{name}"
            if allowed and name not in allowed and visible not in allowed:
                continue
            data.append(
                {"id": visible, "object": "model", "created": created, "owned_by": record.org_slug}
            )
    return data


def _feedback_write(org_id: int, key_id: int, body):
    close_old_connections()
    return hooks.feedback_record(org_id=org_id, key_id=key_id, body=body)


def _experiment_apply(config, plan, requested: str, record, *, labels, api: str) -> tuple[str, str]:
    """The first active experiment on this route for this key or feature: with probability
    ``share`` its candidate goes first (the route's deployments stay as fallbacks). Returns
    (experiment name, arm), ("", "") when none applies."""
    if not config.experiments:
        return "", ""
    route = requested.removeprefix("router:")
    for exp in config.experiments:
        if exp.route.removeprefix("router:") != route:
            continue
        if not (
            (exp.key_id is not None and exp.key_id == record.key_id)
            or (exp.feature and exp.feature == labels.feature and exp.team_id == record.team_id)
        ):
            continue
        if (exp.candidate.mode == "embedding") != (api == EMBEDDINGS):
            continue
        if _rng.random() >= exp.share:
            return exp.name, "control"
        rest = [m for m in plan.deployments if m.name != exp.candidate.name]
        plan.deployments = [exp.candidate, *rest]
        return exp.name, "candidate"
    return "", ""


def _router_prompt_keep(config, plan, messages) -> None:
    """Hand the prompt to the ledger thread for the router's sample (it clips and writes it)."""
    router = config.routers.get(plan.router)
    if router is not None and router.store_prompts and router.prompt_retention:
        runtime.ledger.router_prompt(
            router.id,
            router.prompt_retention,
            messages,
            scorer=plan.router_scorer,
            score=plan.router_score,
            when=_now(),
        )


def _method(actual: str, expected: str) -> None:
    if actual != expected:
        raise GatewayError(
            405,
            "method_not_allowed",
            f"Method {actual} not allowed; use {expected}.",
            headers=[(b"allow", expected.encode())],
        )


def _parse_object(raw: bytes, *, model: str | None = None) -> dict:
    """The request's JSON object; ``model`` (an Azure deployment path) names its model."""
    if not raw:
        raise invalid("invalid_json", "The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid("invalid_json", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("invalid_json", "The request body must be a JSON object.")
    if model is not None:
        body["model"] = model
    name = body.get("model")  # left out: the feature's or key's default model, if any
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise invalid("invalid_value", "'model' must be a non-empty string.", "model")
    return body


def _parse_body(raw: bytes, api: str, *, model: str | None = None) -> dict:
    body = _parse_object(raw, model=model)
    if api == CHAT:
        _check_chat(body)
    else:
        _check_embedding_input(body)
        _check_user(body)
    return body


def _check_chat(body: dict) -> None:
    _check_chat_messages(body)
    _check_chat_options(body)
    _check_user(body)


def _check_user(body: dict) -> None:
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid("invalid_value", "'user' must be a string.", "user")


def _check_chat_messages(body: dict) -> None:
    messages = body.get("messages")
    if messages is None:
        raise invalid("missing_field", "Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("invalid_value", "'messages' must be a non-empty array.", "messages")
    if not all(isinstance(m, dict) for m in messages):
        raise invalid("invalid_value", "Each message must be an object.", "messages")


def _check_chat_options(body: dict) -> None:
    """The chat parameters the gateway itself reads (streaming, token caps, choices, metadata)."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("invalid_value", "'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("invalid_value", "'stream_options' must be an object.", "stream_options")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise invalid("invalid_value", f"'{name}' must be a positive integer.", name)
    n = body.get("n")
    if n is not None and (
        not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= billable.MAX_CHOICES
    ):
        raise invalid(
            "invalid_value", f"'n' must be an integer from 1 to {billable.MAX_CHOICES}.", "n"
        )
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("invalid_value", "'metadata' must be an object.", "metadata")


def _check_embedding_input(body: dict) -> None:
    value = body.get("input")
    if value is None:
        raise invalid("missing_field", "Missing required parameter: 'input'.", "input")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise invalid("invalid_value", "'input' must be a string or a non-empty array.", "input")
