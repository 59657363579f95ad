"""Function tools, the same in every wire format: the offered tools and the ``tool_choice`` of a
chat, Responses or Anthropic request, normalised, and the deterministic rule that decides
whether the simulated model calls one.

The rule:

- no function tools offered, or ``tool_choice`` is ``none``: the model answers with text;
- ``tool_choice`` names a tool (chat ``{"type": "function", "function": {"name": ...}}``,
  Responses ``{"type": "function", "name": ...}``, Anthropic ``{"type": "tool", "name": ...}``):
  that tool is called, whatever the conversation (no call when no offered tool has that name);
- ``required`` / Anthropic ``any``: a tool is called;
- ``auto`` (the default): a tool is called when the conversation's last turn is the user's
  (not a tool result, not the assistant's); after a tool result the model answers with text;
- the tool called is the first one whose name or description shares a word with the last user
  turn's text (words of three letters or more, a few common ones aside, case-insensitive;
  ``get_weather`` has the words ``get`` and ``weather``), else the first tool offered
  (``allowed_tools`` narrows the candidates first).

Its arguments are ``schema.object_instance`` of the tool's parameters: they validate against
them, ``strict`` or not. One call per answer (``parallel_tool_calls`` changes nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from simulator.schema import object_instance

_WORD = re.compile(r"[a-z0-9]+")
_COMMON_WORDS = (
    "the and for with from that this what when where which who why how you your are can "
    "could would should please about into tool tools function call use using any all its"
)
_COMMON = frozenset(_COMMON_WORDS.split(" "))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text

    @property
    def input(self) -> dict:
        return orjson.loads(self.arguments)


@dataclass(frozen=True, slots=True)
class Choice:
    mode: str  # "none", "auto" or "required"
    name: str | None = None  # a tool the request forces
    allowed: frozenset[str] | None = None  # allowed_tools: the names it narrows to


AUTO = Choice("auto")


def _tool(name, description, parameters) -> Tool | None:
    if not isinstance(name, str) or not name:
        return None
    return Tool(
        name=name,
        description=description if isinstance(description, str) else "",
        parameters=parameters if isinstance(parameters, dict) else {},
    )


def _collect(tools, make) -> list[Tool]:
    if not isinstance(tools, list):
        return []
    found = (make(t) for t in tools if isinstance(t, dict))
    return [t for t in found if t is not None]


def chat_tools(tools) -> list[Tool]:
    """Chat Completions: ``{"type": "function", "function": {name, description, parameters}}``."""

    def make(tool: dict) -> Tool | None:
        fn = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(fn, dict):
            return None
        return _tool(fn.get("name"), fn.get("description"), fn.get("parameters"))

    return _collect(tools, make)


def responses_tools(tools) -> list[Tool]:
    """Responses: ``{"type": "function", "name", "description", "parameters"}`` (built-in tools
    such as ``web_search`` are never called)."""

    def make(tool: dict) -> Tool | None:
        if tool.get("type") != "function":
            return None
        return _tool(tool.get("name"), tool.get("description"), tool.get("parameters"))

    return _collect(tools, make)


def anthropic_tools(tools) -> list[Tool]:
    """Anthropic: ``{"name", "description", "input_schema"}`` (server tools, which carry a
    versioned ``type``, are never called)."""

    def make(tool: dict) -> Tool | None:
        if tool.get("type") not in (None, "custom"):
            return None
        return _tool(tool.get("name"), tool.get("description"), tool.get("input_schema"))

    return _collect(tools, make)


def _named(value) -> str | None:
    if not isinstance(value, dict):
        return None
    fn = value.get("function")
    name = fn.get("name") if isinstance(fn, dict) else value.get("name")
    return name if isinstance(name, str) else None


def openai_choice(value) -> Choice:
    """Chat's or Responses' ``tool_choice``: a mode string, a named function, or
    ``allowed_tools`` (chat nests it under ``allowed_tools``, Responses does not)."""
    if value in ("none", "auto", "required"):
        return Choice(value)
    if not isinstance(value, dict):
        return AUTO
    if value.get("type") == "allowed_tools":
        spec = value.get("allowed_tools") if isinstance(value.get("allowed_tools"), dict) else value
        listed = spec.get("tools") if isinstance(spec.get("tools"), list) else []
        names = frozenset(n for n in (_named(t) for t in listed) if n)
        mode = spec.get("mode") if spec.get("mode") in ("auto", "required") else "auto"
        return Choice(mode, allowed=names)
    if value.get("type") == "function":
        name = _named(value)
        return Choice("required", name=name) if name else AUTO
    return AUTO


def anthropic_choice(value) -> Choice:
    """Anthropic's ``tool_choice``: ``{"type": "auto" | "any" | "tool" | "none"}``."""
    if not isinstance(value, dict):
        return AUTO
    kind = value.get("type")
    if kind == "none":
        return Choice("none")
    if kind == "any":
        return Choice("required")
    if kind == "tool" and isinstance(value.get("name"), str):
        return Choice("required", name=value["name"])
    return AUTO


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _COMMON}


def pick(tools: list[Tool], choice: Choice, *, prompt: str, user_last: bool) -> ToolCall | None:
    """The call the simulated model makes, by the module's rule; None for a text answer."""
    if not tools or choice.mode == "none":
        return None
    if choice.name is not None:
        tool = next((t for t in tools if t.name == choice.name), None)
        return call_of(tool) if tool is not None else None
    if choice.mode == "auto" and not user_last:
        return None
    candidates = tools
    if choice.allowed is not None:
        candidates = [t for t in tools if t.name in choice.allowed]
        if not candidates:
            return None
    asked = words(prompt)
    for tool in candidates:
        if asked & (words(tool.name.replace("_", " ")) | words(tool.description)):
            return call_of(tool)
    return call_of(candidates[0])


def call_of(tool: Tool) -> ToolCall:
    arguments = orjson.dumps(object_instance(tool.parameters)).decode()
    return ToolCall(name=tool.name, arguments=arguments)


def call_tokens(call: ToolCall) -> int:
    """What a call costs as output: its name and its arguments, counted as text."""
    return (len(call.name) + 3) // 4 + (len(call.arguments) + 3) // 4
