"""OpenAI Embeddings (``POST /v1/embeddings``, and Azure's
``/openai/deployments/{name}/embeddings``): input validation, deterministic vectors as floats
or base64, usage, and a bounded cache of whole answers for repeated bodies."""

from __future__ import annotations

import base64

import orjson

from simulator.billing import Billed
from simulator.config import NO_OPTIONS, Options
from simulator.tokens import DEFAULT_EMBEDDING_DIMS, embedding_vector, text_tokens
from simulator.wire import MALFORMED, SimError, json_object, send_json

MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMS = 4096
MAX_CACHED_ANSWERS = 1024
MAX_CACHED_BODY = 64 * 1024
MAX_CACHED_ANSWER = 1024 * 1024


def _is_token_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)


def embedding_inputs(value) -> list:
    """The inputs of a request: a string, a token array, or an array of either."""
    if isinstance(value, str):
        items = [value]
    elif _is_token_array(value):
        items = [value]  # one token array
    elif isinstance(value, list):
        items = value
    else:
        raise SimError(400, "input: a string or an array is required", "missing_field", "input")
    if not items:
        raise SimError(400, "input: must not be empty", "invalid_value", "input")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise SimError(
            400, f"input: at most {MAX_EMBEDDING_INPUTS} items", "invalid_value", "input"
        )
    for item in items:
        _check_item(item)
    return items


def _check_item(item) -> None:
    if isinstance(item, str):
        if not item:
            raise SimError(400, "input: empty strings are not allowed", "invalid_value", "input")
    elif not _is_token_array(item):
        raise SimError(
            400, "input: items must be strings or token arrays", "invalid_value", "input"
        )


def _dimensions(req: dict) -> int:
    dims = req.get("dimensions", DEFAULT_EMBEDDING_DIMS)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_EMBEDDING_DIMS:
        raise SimError(
            400,
            f"dimensions must be within 1..{MAX_EMBEDDING_DIMS}",
            "invalid_value",
            "dimensions",
        )
    return dims


def _encoding(req: dict) -> str:
    encoding = req.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise SimError(
            400,
            "encoding_format must be 'float' or 'base64'",
            "invalid_value",
            "encoding_format",
        )
    return encoding


def embedding_answer(req: dict, opts: Options, deployment: str | None) -> tuple[bytes, Billed]:
    """The serialised answer and what it bills: one vector per input; each string counts
    ``max(1, ceil(len/4))`` tokens, a token array its length."""
    model = req.get("model") or deployment
    if not isinstance(model, str) or not model:
        raise SimError(400, "you must provide a model parameter", "missing_field", "model")
    items = embedding_inputs(req.get("input"))
    dims = _dimensions(req)
    encoding = _encoding(req)
    data = []
    tokens = 0
    for index, item in enumerate(items):
        tokens += max(1, text_tokens(item)) if isinstance(item, str) else len(item)
        vector = embedding_vector(item, dims)
        value = (
            base64.b64encode(vector.tobytes()).decode() if encoding == "base64" else vector.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": value})
    if opts.prompt_tokens is not None:
        tokens = opts.prompt_tokens
    body = {"object": "list", "data": data, "model": model}
    if not opts.no_usage:
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(body), Billed(model, tokens)


class Embeddings:
    """The embeddings endpoint, with a bounded cache of answers to plain repeated bodies."""

    def __init__(self) -> None:
        self._answers: dict[bytes, tuple[bytes, Billed]] = {}

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> Billed | None:
        if opts.malformed:
            # the broken 200 bills what the answer would have (a bad body bills nothing)
            try:
                billed = embedding_answer(json_object(body), opts, deployment)[1]
            except SimError:
                billed = None
            await send_json(send, 200, MALFORMED)
            return billed
        cacheable = opts is NO_OPTIONS and deployment is None and len(body) <= MAX_CACHED_BODY
        answer = self._answers.get(body) if cacheable else None
        if answer is None:
            answer = embedding_answer(json_object(body), opts, deployment)
            if cacheable and len(answer[0]) <= MAX_CACHED_ANSWER:
                if len(self._answers) >= MAX_CACHED_ANSWERS:
                    self._answers.clear()
                self._answers[body] = answer
        await send_json(send, 200, answer[0])
        return answer[1]
