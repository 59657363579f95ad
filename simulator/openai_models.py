"""OpenAI Models (``GET /v1/models`` and ``GET /v1/models/{id}``): the fixed list of model ids
the simulator advertises; any id is answered as a model object."""

from __future__ import annotations

import orjson

from simulator.wire import send_json

MODELS_CREATED = 1_700_000_000
MODEL_IDS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
)


def model_object(model_id: str) -> dict:
    owner = "anthropic" if model_id.startswith("claude") else "simulator"
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": owner}


MODELS_BODY = orjson.dumps({"object": "list", "data": [model_object(m) for m in MODEL_IDS]})


async def list_models(body: bytes, opts, deployment, receive, send) -> None:
    await send_json(send, 200, MODELS_BODY)


async def retrieve_model(body: bytes, opts, model_id: str, receive, send) -> None:
    await send_json(send, 200, orjson.dumps(model_object(model_id)))
