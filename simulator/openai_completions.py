"""OpenAI's legacy Completions (``POST /v1/completions``, and Azure's
``/openai/deployments/{name}/completions``): text completions as JSON or SSE.

``prompt`` is a string, an array of strings, a token array or an array of token arrays; each
prompt counts its text's tokens (a token array its length) and gets ``n`` choices, indexed
prompt by prompt. Each choice is ``min(max_tokens, 16)`` words (``max_tokens`` defaults to 16,
as it does upstream), different per choice; ``echo`` puts the prompt before it. Usage has the
chat shape, cached tokens included (the prompt cache of ``simulator.prompt_cache``)."""

from __future__ import annotations

import time

import orjson

from simulator.billing import Billed, from_chat_usage
from simulator.config import Options, SimConfig, stream_shape
from simulator.openai_chat import MAX_CHOICES, chat_usage
from simulator.prompt_cache import MIN_CACHED_TOKENS, PromptCache, prompt_prefixes
from simulator.tokens import completion_tokens, generated_text, split, text_tokens
from simulator.wire import MALFORMED, SimError, json_object, send_json, sse, stream

MAX_PROMPTS = 2048


def _is_tokens(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)


def prompts(value) -> list:
    """The prompts of a request, each a string or a token array."""
    if isinstance(value, str) or _is_tokens(value):
        return [value]
    if (
        isinstance(value, list)
        and 0 < len(value) <= MAX_PROMPTS
        and all(isinstance(p, str) or _is_tokens(p) for p in value)
    ):
        return value
    raise SimError(
        400,
        "prompt: a string, an array of strings or an array of token arrays is required",
        "invalid_value",
        "prompt",
    )


def _count(prompt) -> int:
    return text_tokens(prompt) if isinstance(prompt, str) else len(prompt)


def _n(req: dict) -> int:
    n = req.get("n", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
        raise SimError(400, f"n: must be an integer within 1..{MAX_CHOICES}", "invalid_value", "n")
    return n


class Completions:
    def __init__(self, config: SimConfig, seq, prompt_cache: PromptCache | None = None) -> None:
        self.config = config
        self._seq = seq
        self._prompt_cache = prompt_cache or PromptCache()

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> Billed | None:
        """Answer; what it bills (None for a stream cut by ``--cut-stream-after``)."""
        req = json_object(body)
        model = req.get("model") or deployment
        if not isinstance(model, str) or not model:
            raise SimError(400, "you must provide a model parameter", "missing_field", "model")
        items = prompts(req.get("prompt"))
        n = _n(req)
        texts, completion, cut = self._texts(req, opts, items, n)
        usage = self._usage(model, items, opts, completion)
        billed = from_chat_usage(model, usage)
        if opts.no_usage:
            usage = None
        rid = f"cmpl-sim{next(self._seq):010d}"
        finish = "length" if cut else "stop"
        base = {
            "id": rid,
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_simulator",
        }
        if req.get("stream") is True:
            options = req.get("stream_options")
            with_usage = isinstance(options, dict) and options.get("include_usage") is True
            await self._stream(
                send,
                receive,
                opts,
                base,
                texts=texts,
                finish=finish,
                usage=usage if with_usage else None,
            )
            return None if self.config.cut_stream_after is not None else billed
        if opts.malformed:
            await send_json(send, 200, MALFORMED)
            return billed
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
            for i, text in enumerate(texts)
        ]
        answer = {**base, "choices": choices}
        if usage is not None:
            answer["usage"] = usage
        await send_json(send, 200, orjson.dumps(answer))
        return billed

    def _texts(self, req: dict, opts: Options, items: list, n: int):
        """(each choice's text, completion tokens over all of them, whether the cap cut them)."""
        limit = req.get("max_tokens")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        if self.config.bill_max and limit and limit > 0:
            tokens, cut = limit, True
        else:
            tokens, cut = completion_tokens(limit)
        forced = opts.completion_tokens
        if forced is None:
            forced = self.config.completion_tokens
        choices = len(items) * n
        each = tokens if forced is None else forced // choices
        texts = []
        for index in range(choices):
            text = generated_text(each, index % n)
            if req.get("echo") is True and isinstance(items[index // n], str):
                text = items[index // n] + text
            texts.append(text)
        completion = each * choices if forced is None else forced
        return texts, completion, cut and forced is None

    def _usage(self, model: str, items: list, opts: Options, completion: int) -> dict:
        prompt = sum(_count(p) for p in items)
        cached = opts.cached_tokens
        lookup = not (cached or opts.no_usage or self.config.bill_max)
        if lookup and prompt >= MIN_CACHED_TOKENS:
            prefixes = prompt_prefixes(model, None, items)
            cached = self._prompt_cache.cached_tokens(prefixes, prompt)
        if opts.prompt_tokens is not None:
            prompt = opts.prompt_tokens
        return chat_usage(prompt, completion, cached)

    async def _stream(self, send, receive, opts, base: dict, *, texts, finish, usage) -> None:
        delay, chunks = stream_shape(self.config, opts)
        parts = [split(text, chunks) for text in texts]

        def chunk(index: int, text: str, reason: str | None = None) -> bytes:
            choice = {"text": text, "index": index, "logprobs": None, "finish_reason": reason}
            return sse({**base, "choices": [choice]})

        content = [
            b"".join(chunk(i, p[j]) for i, p in enumerate(parts) if j < len(p))
            for j in range(max((len(p) for p in parts), default=0))
        ]
        tail = [chunk(i, "", finish) for i in range(len(texts))]
        if usage is not None:
            tail.append(sse({**base, "choices": [], "usage": usage}))
        tail.append(b"data: [DONE]\n\n")
        cut = self.config.cut_stream_after
        await stream(send, receive, b"", content, b"".join(tail), delay_ms=delay, cut=cut)
