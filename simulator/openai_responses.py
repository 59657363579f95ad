"""OpenAI Responses (``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``; Azure's
``/openai/responses`` and ``/openai/v1/responses`` too): the request's input as a conversation,
the answer as output items, usage, the stored responses, JSON or the SSE event stream
(``simulator.responses_stream``).

- ``input`` is a string (one user message) or items: messages (``input_text``, ``input_image``
  … parts, or a string), ``function_call`` and ``function_call_output``; ``reasoning`` and
  ``item_reference`` items count nothing. ``instructions`` counts as a system message (or,
  given as items, as those items).
- The prompt is counted as chat counts the same conversation (``chat_prompt_tokens``): 3 per
  message + its content + 3, a function call its name and arguments, a function output as a
  tool message, and the function tools as chat's ``{"type": "function", "function": {...}}``.
- ``previous_response_id``: the stored response's conversation (its input and its output, not
  its instructions, as upstream) comes before this input, in the count and in the prompt cache.
  An unknown or deleted id is a 400, as upstream.
- ``store`` (default true) keeps the response in memory (the last ``MAX_STORED``) for ``GET``,
  ``DELETE`` and ``previous_response_id``.
- The output: a ``reasoning`` item when ``reasoning.effort`` costs tokens (its ``summary`` a few
  words of those tokens when ``reasoning.summary`` asks for one; ``encrypted_content`` when
  ``include`` has ``reasoning.encrypted_content``), then a
  ``function_call`` (the rule of ``simulator.tools``), or a message whose text is JSON for
  ``text.format`` ``json_schema`` / ``json_object``, else words. ``max_output_tokens`` caps
  reasoning and answer together; reaching it makes the status ``incomplete`` with
  ``incomplete_details.reason = "max_output_tokens"``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

import orjson

from simulator.answers import Answer, answer, counted
from simulator.billing import Billed, from_responses_usage
from simulator.config import Options, SimConfig, stream_shape
from simulator.openai_chat import last_turn
from simulator.prompt_cache import MIN_CACHED_TOKENS, PromptCache, prompt_prefixes
from simulator.responses_stream import stream_events
from simulator.tokens import chat_prompt_tokens, reasoning_tokens, thinking_text
from simulator.tools import openai_choice, pick, responses_tools
from simulator.wire import MALFORMED, SSE_HEADERS, SimError, json_object, send_json, stream

MAX_STORED = 4096
SUMMARIES = ("auto", "concise", "detailed")
SUMMARY_WORDS = 12


@dataclass(slots=True)
class Stored:
    response: dict
    conversation: list  # chat-shaped messages: the context a follow-up starts from


def _bad(message: str, param: str, code: str = "invalid_value") -> SimError:
    return SimError(400, message, code, param)


def _item_message(item: dict) -> dict | None:
    """One input item as the chat message it counts as; None for items that count nothing."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise _bad("input: a message needs a role", "input")
        return {"role": role, "content": item.get("content")}
    if kind == "function_call":
        fn = {"name": item.get("name"), "arguments": item.get("arguments")}
        return {"role": "assistant", "content": None, "tool_calls": [{"function": fn}]}
    if kind == "function_call_output":
        return {"role": "tool", "content": item.get("output")}
    return None


def conversation_of(value) -> list[dict]:
    """``input`` as chat-shaped messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad("input: a string or an array of input items is required", "input")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad("input: every item must be an object", "input")
        message = _item_message(item)
        if message is not None:
            out.append(message)
    return out


def instructions_of(instructions) -> list[dict]:
    """``instructions`` as the system message (or, given as items, the messages) they count as."""
    if isinstance(instructions, list):
        return conversation_of(instructions)
    return [{"role": "system", "content": instructions}] if instructions else []


def tools_as_chat(tools) -> list | None:
    """Function tools in chat's shape, so that a prompt counts as chat counts it."""
    if not isinstance(tools, list) or not tools:
        return None
    out = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            out.append(
                {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
            )
        else:
            out.append(tool)
    return out


def _echo_tools(tools) -> list:
    out = []
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "function":
            tool = {
                "type": "function",
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict", True),
            }
        out.append(tool)
    return out


def text_schema(text):
    """The schema ``text.format`` asks for: a dict, True for a bare JSON object, None for text."""
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return True
    if fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def output_message(ans: Answer) -> list[dict]:
    """The answer's output items as chat messages, for a follow-up's conversation."""
    if ans.call is not None:
        fn = {"name": ans.call.name, "arguments": ans.call.arguments}
        return [{"role": "assistant", "content": None, "tool_calls": [{"function": fn}]}]
    return [{"role": "assistant", "content": ans.text}] if ans.text else []


def _effort(req: dict):
    reasoning = req.get("reasoning")
    return reasoning.get("effort") if isinstance(reasoning, dict) else None


class Responses:
    """The Responses endpoints and the stored responses (the last ``MAX_STORED``)."""

    def __init__(self, config: SimConfig, seq, prompt_cache: PromptCache | None = None) -> None:
        self.config = config
        self._seq = seq
        self._prompt_cache = prompt_cache or PromptCache()
        self._stored: dict[str, Stored] = {}

    # --- GET and DELETE ---------------------------------------------------------------------

    def _find(self, response_id: str) -> Stored:
        stored = self._stored.get(response_id)
        if stored is None:
            raise SimError(404, f"No response found with id '{response_id}'.", None, None)
        return stored

    async def retrieve(self, body: bytes, opts: Options, response_id, receive, send) -> None:
        await send_json(send, 200, orjson.dumps(self._find(response_id).response))

    async def delete(self, body: bytes, opts: Options, response_id, receive, send) -> None:
        self._find(response_id)
        del self._stored[response_id]
        payload = {"id": response_id, "object": "response", "deleted": True}
        await send_json(send, 200, orjson.dumps(payload))

    # --- POST -------------------------------------------------------------------------------

    async def handle(self, body: bytes, opts: Options, deployment, receive, send) -> Billed | None:
        """Answer; what it bills (None for a stream cut by ``--cut-stream-after``)."""
        req = json_object(body)
        model = req.get("model") or deployment
        if not isinstance(model, str) or not model:
            raise _bad(
                "Missing required parameter: 'model'.", "model", "missing_required_parameter"
            )
        conversation = self._conversation(req)
        messages = [*instructions_of(req.get("instructions")), *conversation]
        chat_tools = tools_as_chat(req.get("tools"))
        prompt = chat_prompt_tokens(messages, chat_tools)
        ans = self._answer(req, conversation)
        forced = opts.completion_tokens
        if forced is None:
            forced = self.config.completion_tokens
        if forced is not None:  # a text answer as long as the count it reports
            ans = counted(ans, max(forced - ans.reasoning, 0))
        rid = f"resp_sim{next(self._seq):016d}"
        output = ans.output_tokens if forced is None else forced
        cached = opts.cached_tokens
        if not opts.no_usage:  # without usage in the answer, the prompt cache is left alone
            cached = self._cached(model, opts, prompt, messages, chat_tools)
        if opts.prompt_tokens is not None:
            prompt = opts.prompt_tokens
        usage = responses_usage(prompt, output, cached=cached, reasoning=ans.reasoning)
        billed = from_responses_usage(model, usage)
        if opts.no_usage:
            usage = None
        response = self._response(req, model, rid, ans, usage)
        if req.get("store", True) is not False:
            self._keep(rid, response, [*conversation, *output_message(ans)])
        if req.get("stream") is True:
            delay, chunks = stream_shape(self.config, opts)
            first, content, tail = stream_events(response, chunks=chunks)
            await stream(
                send,
                receive,
                first,
                content,
                tail,
                delay_ms=delay,
                headers=SSE_HEADERS,
                cut=self.config.cut_stream_after,
            )
            return None if self.config.cut_stream_after is not None else billed
        if opts.malformed:
            await send_json(send, 200, MALFORMED)
            return billed
        await send_json(send, 200, orjson.dumps(response))
        return billed

    def _conversation(self, req: dict) -> list[dict]:
        previous = req.get("previous_response_id")
        context: list = []
        if previous is not None:
            stored = self._stored.get(previous) if isinstance(previous, str) else None
            if stored is None:
                raise _bad(
                    f"Previous response with id '{previous}' not found.",
                    "previous_response_id",
                    "previous_response_not_found",
                )
            context = stored.conversation
        new = conversation_of(req.get("input"))
        if not new and previous is None:
            raise _bad(
                "Missing required parameter: 'input'.", "input", "missing_required_parameter"
            )
        return [*context, *new]

    def _answer(self, req: dict, conversation: list) -> Answer:
        tools = responses_tools(req.get("tools"))
        prompt, user_last = last_turn(conversation)
        call = pick(
            tools, openai_choice(req.get("tool_choice")), prompt=prompt, user_last=user_last
        )
        schema = None if call is not None else text_schema(req.get("text"))
        limit = req.get("max_output_tokens")
        reasoning = reasoning_tokens(_effort(req))
        ans = answer(limit=limit, call=call, schema=schema, reasoning=reasoning)
        capped = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        if self.config.bill_max and capped:  # billed as long as the cap allows
            ans = counted(ans, limit - ans.reasoning, cut=True)
        return ans

    def _cached(self, model: str, opts: Options, prompt: int, messages, tools) -> int:
        """The cached input tokens: the header's, else the prompt cache's."""
        if opts.cached_tokens or prompt < MIN_CACHED_TOKENS or self.config.bill_max:
            return opts.cached_tokens
        return self._prompt_cache.cached_tokens(prompt_prefixes(model, tools, messages), prompt)

    def _keep(self, rid: str, response: dict, conversation: list) -> None:
        while len(self._stored) >= MAX_STORED:
            del self._stored[next(iter(self._stored))]
        self._stored[rid] = Stored(response=response, conversation=conversation)

    def _response(self, req: dict, model: str, rid: str, ans: Answer, usage) -> dict:
        now = int(time.time())
        suffix = rid[5:]
        reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else {}
        text = req.get("text") if isinstance(req.get("text"), dict) else {}
        metadata = req.get("metadata")
        return {
            "id": rid,
            "object": "response",
            "created_at": now,
            "status": "incomplete" if ans.cut else "completed",
            "background": False,
            "completed_at": None if ans.cut else now,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if ans.cut else None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "max_tool_calls": req.get("max_tool_calls"),
            "model": model,
            "output": output_items(ans, suffix, reasoning=_reasoning_item(req, ans, suffix)),
            "parallel_tool_calls": req.get("parallel_tool_calls", True) is not False,
            "previous_response_id": req.get("previous_response_id"),
            "prompt_cache_key": req.get("prompt_cache_key"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "safety_identifier": req.get("safety_identifier"),
            "service_tier": "default",
            "store": req.get("store", True) is not False,
            "temperature": req.get("temperature", 1.0),
            "text": {
                "format": text.get("format") or {"type": "text"},
                "verbosity": text.get("verbosity") or "medium",
            },
            "tool_choice": req.get("tool_choice") or "auto",
            "tools": _echo_tools(req.get("tools")),
            "top_logprobs": req.get("top_logprobs") or 0,
            "top_p": req.get("top_p", 1.0),
            "truncation": req.get("truncation") or "disabled",
            "usage": usage,
            "user": req.get("user"),
            "metadata": metadata if isinstance(metadata, dict) else {},
        }


def responses_usage(prompt: int, output: int, *, cached: int, reasoning: int) -> dict:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": min(cached, prompt), "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": min(reasoning, output)},
        "total_tokens": prompt + output,
    }


def _reasoning_item(req: dict, ans: Answer, suffix: str) -> dict | None:
    """The reasoning item, when reasoning cost tokens: with a summary when ``reasoning.summary``
    asks for one, with ``encrypted_content`` when ``include`` does."""
    if not ans.reasoning:
        return None
    item: dict = {"id": f"rs_{suffix}", "type": "reasoning", "summary": []}
    reasoning = req.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("summary") in SUMMARIES:
        text = thinking_text(min(ans.reasoning, SUMMARY_WORDS))
        item["summary"] = [{"type": "summary_text", "text": text}]
    include = req.get("include")
    if isinstance(include, list) and "reasoning.encrypted_content" in include:
        digest = hashlib.sha256(f"sim-reasoning:{suffix}".encode()).digest()
        item["encrypted_content"] = base64.b64encode(digest * 4).decode()
    return item


def output_items(ans: Answer, suffix: str, *, reasoning: dict | None = None) -> list[dict]:
    """The output: reasoning (when given), then the function call or the message."""
    status = "incomplete" if ans.cut else "completed"
    items: list[dict] = [] if reasoning is None else [reasoning]
    if ans.call is not None:
        items.append(
            {
                "id": f"fc_{suffix}",
                "type": "function_call",
                "status": status,
                "arguments": ans.call.arguments,
                "call_id": f"call_{suffix}",
                "name": ans.call.name,
            }
        )
    elif ans.text:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ans.text}
        items.append(
            {
                "id": f"msg_{suffix}",
                "type": "message",
                "status": status,
                "content": [part],
                "role": "assistant",
            }
        )
    return items
