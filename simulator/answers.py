"""What the simulated model answers, whatever the wire format: words, JSON for a structured
output, or a tool call, plus the reasoning before it, all within the request's output cap.

- reasoning first: its tokens (``REASONING_TOKENS`` / ``THINKING_TOKENS``) count against the cap;
- a text answer is ``min(cap left, 16)`` words (one token a word), cut short when the cap is
  below 16;
- a structured answer is the JSON of ``schema.instance`` (or ``{"answer": "sim"}`` for a bare
  JSON object), costing its text's tokens; a tool call costs its name's and arguments' tokens.
  When the cap is below that, the JSON (or the arguments) is cut to what the cap holds, as a
  real model's would be, and the answer is marked cut.

Overriding the count (``x-sim-completion-tokens``, ``--completion-tokens``, ``--bill-max``)
makes a text answer that many words; JSON and tool calls keep their content and only report
the count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson

from simulator.schema import instance
from simulator.tokens import capped, completion_tokens, generated_text, text_tokens
from simulator.tools import ToolCall, call_tokens

JSON_OBJECT = {"answer": "sim"}


@dataclass(frozen=True, slots=True)
class Answer:
    text: str | None  # the text (JSON text for structured output); None for a tool call
    call: ToolCall | None
    tokens: int  # output tokens of the answer itself
    reasoning: int = 0  # output tokens spent reasoning before it
    cut: bool = False  # the cap cut it short
    structured: bool = False  # JSON or a tool call: its content does not follow the count

    @property
    def output_tokens(self) -> int:
        return self.tokens + self.reasoning


def _int(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def answer(
    *, limit, call: ToolCall | None = None, schema=None, reasoning: int = 0, start: int = 0
) -> Answer:
    """The answer for a cap (``limit``, None for none), a tool call or JSON schema to answer
    with (``schema`` True for a bare JSON object) and the reasoning tokens spent first."""
    cap = _int(limit)
    if cap is not None and reasoning >= cap:
        return Answer(text="", call=None, tokens=0, reasoning=cap, cut=True)
    room = None if cap is None else cap - reasoning
    if call is not None:
        need = call_tokens(call)
        if room is not None and room < need:
            cut_call = ToolCall(call.name, capped(call.arguments, room))
            return Answer(None, cut_call, room, reasoning, cut=True, structured=True)
        return Answer(None, call, need, reasoning, structured=True)
    if schema is not None:
        value = JSON_OBJECT if schema is True else instance(schema)
        text = orjson.dumps(value).decode()
        need = text_tokens(text)
        if room is not None and room < need:
            return Answer(capped(text, room), None, room, reasoning, cut=True, structured=True)
        return Answer(text, None, need, reasoning, structured=True)
    tokens, cut = completion_tokens(room)
    return Answer(generated_text(tokens, start), None, tokens, reasoning, cut=cut)


def counted(ans: Answer, tokens: int, *, cut: bool = False, start: int = 0) -> Answer:
    """``ans`` reporting ``tokens`` output tokens (beyond its reasoning): a text answer becomes
    that many words, a structured one keeps its content."""
    if ans.structured:
        return replace(ans, tokens=tokens)
    return replace(ans, text=generated_text(tokens, start), tokens=tokens, cut=cut)
