"""LLM-as-judge: a router's ``judge_model`` grades the stored pairs' two answers.

Each unjudged pair (``judged_at`` null, not expired) of a router with a judge is claimed with a
conditional ``UPDATE … WHERE judged_at IS NULL`` (two workers never pay twice for one pair),
shown to the judge with the rubric and both answers as A and B in a random order (against
position bias), and labelled with the judge's 1–10 grades as ``judge_strong`` / ``judge_weak``
(n / 10). A reply that is not the asked-for JSON ``{"A": n, "B": n}`` still marks the pair judged,
with no scores (and a warning in the log), so junk is never paid for twice; a failed call
(transport error, upstream error) hands the pair back for the next run.

Why the judge calls the provider itself rather than the gateway's own ``/v1/chat/completions``:
going through the gateway's HTTP endpoint would need an internal key per organisation, would be
admitted against the org's production budgets and rate limits (the judge is evaluation spend),
would need a way to mark its rows as evaluation that a client must not be able to use, and would
make the Celery worker depend on a reachable gateway. Instead the request is built by the
gateway's own provider adapter for the judge model (the same credentials, URL and wire format),
priced by ``gateway.metering`` at the price in force when the call started (exact ``Decimal``),
and written to the ledger as one row per call with ``shadow=True``, feature
``evaluation-judge``, the pair's team and key, and the router's name: reports show it as
evaluation spend next to the shadow calls. What it gives up is the gateway's retries, cooldowns
and fallbacks; a failed judgement is simply retried at the next run.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import httpx
import orjson
from django.conf import settings
from django.utils import timezone

from evaluation.models import EvalPair
from gateway import metering
from gateway.cache import org_config_load
from gateway.egress import egress_http_client, egress_refusal
from gateway.models import Router, UsageEvent
from gateway.pricing import Cost, Usage
from gateway.providers import adapter_for
from gateway.providers.base import CHAT
from gateway.records import ModelRecord

log = logging.getLogger(__name__)

JUDGE_FEATURE = "evaluation-judge"
DEFAULT_RUBRIC = (
    "A good answer is correct, complete for what was asked, follows the instructions in the "
    "conversation, and is clear and concise. Penalise factual errors, invented details, missing "
    "parts of the task and answers that ignore the requested format. Length alone is no merit."
)
_PROMPT = (
    "You are an impartial judge of AI assistant answers.\n\nRubric:\n{rubric}\n\n"
    "Below is a conversation and two candidate answers to its last message, A and B. Grade "
    "each answer on its own from 1 (useless) to 10 (perfect) against the rubric. Reply with a "
    'JSON object and nothing else, exactly of the form {{"A": <1-10>, "B": <1-10>}}.'
)
_ANSWER_CHARS = 8_000  # per answer shown to the judge
_MESSAGE_CHARS = 4_000  # per prompt message shown to the judge
_VERDICT = re.compile(r"\{[^{}]*\}")


@dataclass(slots=True)
class _Reply:
    text: str
    usage: Usage
    cost: Cost


class _JudgeFailed(Exception):
    pass


def pairs_judge(*, limit: int = 50, rng: random.Random | None = None) -> int:
    """Judge up to ``limit`` unjudged pairs of routers that have a judge; returns how many were
    labelled (with scores or, for a junk reply, without)."""
    rng = rng or random.Random()  # noqa: S311 - the A/B order, not security
    done = 0
    routers = (
        Router.objects.filter(judge_model__isnull=False)
        .select_related("judge_model")
        .order_by("id")
    )
    configs: dict[int, dict[str, ModelRecord]] = {}
    for router in routers:
        if done >= limit:
            break
        pairs = list(
            EvalPair.objects.filter(
                router=router, judged_at__isnull=True, expires_at__gt=timezone.now()
            ).order_by("id")[: limit - done]
        )
        if not pairs:
            continue
        if router.org_id not in configs:
            configs[router.org_id] = org_config_load(router.org_id).models
        judge = configs[router.org_id].get(router.judge_model.name)
        if judge is None:  # inactive judge model
            continue
        for pair in pairs:
            if pair_judge(pair=pair, router=router, judge=judge, rng=rng):
                done += 1
    return done


def pair_judge(*, pair: EvalPair, router: Router, judge: ModelRecord, rng: random.Random) -> bool:
    """Claim and judge one pair; False when another worker has it or the call failed."""
    claimed_at = timezone.now()
    claimed = EvalPair.objects.filter(pk=pair.pk, judged_at__isnull=True).update(
        judged_at=claimed_at
    )
    if not claimed:
        return False
    strong_first = rng.random() < 0.5
    a, b = (
        (pair.strong_answer, pair.weak_answer)
        if strong_first
        else (pair.weak_answer, pair.strong_answer)
    )
    messages = _judge_messages(pair.messages, a, b, router.judge_rubric or DEFAULT_RUBRIC)
    try:
        reply = _judge_call(pair=pair, router=router, judge=judge, messages=messages)
    except _JudgeFailed:
        EvalPair.objects.filter(pk=pair.pk, judged_at=claimed_at).update(judged_at=None)
        return False
    verdict = verdict_parse(reply.text)
    fields = {"judge_model": judge.name, "judged_at": timezone.now()}
    if verdict is None:
        log.warning("judge %s gave no usable verdict for pair %s", judge.name, pair.pk)
        fields.update(judge_strong=None, judge_weak=None)
    else:
        score_a, score_b = verdict
        strong, weak = (score_a, score_b) if strong_first else (score_b, score_a)
        fields.update(judge_strong=strong / 10, judge_weak=weak / 10)
    EvalPair.objects.filter(pk=pair.pk).update(**fields)
    return True


def verdict_parse(text: str) -> tuple[float, float] | None:
    """(A, B) from the judge's ``{"A": n, "B": n}`` (1..10), found anywhere in its reply; None
    for anything else."""
    for match in _VERDICT.finditer(text or ""):
        try:
            obj = orjson.loads(match.group(0))
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        scores = [obj.get("A", obj.get("a")), obj.get("B", obj.get("b"))]
        if all(
            isinstance(s, int | float) and not isinstance(s, bool) and 1 <= s <= 10 for s in scores
        ):
            return float(scores[0]), float(scores[1])
    return None


def _judge_messages(prompt, a: str, b: str, rubric: str) -> list[dict]:
    lines = []
    for message in prompt if isinstance(prompt, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if not isinstance(content, str):
            content = orjson.dumps(content).decode() if content is not None else ""
        lines.append(f"[{message.get('role', 'user')}] {content[:_MESSAGE_CHARS]}")
    conversation = "\n".join(lines)
    return [
        {"role": "system", "content": _PROMPT.format(rubric=rubric)},
        {
            "role": "user",
            "content": f"Conversation:\n{conversation}\n\nAnswer A:\n{a[:_ANSWER_CHARS]}\n\n"
            f"Answer B:\n{b[:_ANSWER_CHARS]}",
        },
    ]


def _judge_call(*, pair: EvalPair, router: Router, judge: ModelRecord, messages) -> _Reply:
    """One upstream call through the judge model's adapter, metered to the ledger."""
    adapter = adapter_for(judge.provider.kind)
    if adapter is None:
        raise _JudgeFailed(f"provider kind {judge.provider.kind!r} is not supported")
    body = {"model": judge.upstream_model, "messages": messages, "temperature": 0}
    request = adapter.build_request(model=judge, api=CHAT, body=body, stream=False)
    started = timezone.now()
    t = time.perf_counter()
    row = {
        "request_id": f"judge-{pair.request_id}"[:64],
        "started_at": started,
        "org_id": pair.org_id,
        "team_id": pair.team_id,
        "key_id": pair.key_id,
        "feature": JUDGE_FEATURE,
        "api": CHAT,
        "requested_model": judge.name,
        "model": judge.name,
        "upstream_model": judge.upstream_model,
        "provider": judge.provider.slug,
        "router": router.name,
        "router_decision": "judge",
        "shadow": True,
    }
    try:
        with egress_http_client() as client:  # the gateway's egress rule (gateway.egress)
            response = client.post(
                request.url,
                content=request.body,
                headers=request.headers,
                timeout=httpx.Timeout(
                    settings.FINOPS_UPSTREAM_TIMEOUT,
                    connect=settings.FINOPS_UPSTREAM_CONNECT_TIMEOUT,
                ),
            )
    except httpx.HTTPError as exc:
        code = "egress_refused" if egress_refusal(exc) else type(exc).__name__[:64]
        _meter(row, t, status="error", error_code=code)
        raise _JudgeFailed(code) from None
    if response.status_code != 200:
        _meter(row, t, status="error", http_status=response.status_code, error_code="upstream")
        raise _JudgeFailed(f"HTTP {response.status_code}")
    try:
        parsed = adapter.parse_response(api=CHAT, data=response.content)
        obj = orjson.loads(parsed.body)
        text = obj["choices"][0]["message"].get("content") or ""
    except (orjson.JSONDecodeError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        _meter(row, t, status="error", http_status=200, error_code="upstream_invalid_response")
        raise _JudgeFailed("invalid response") from None
    usage = parsed.usage or metering.estimate_usage(
        api=CHAT, body=body, model=judge, completion_text=str(text)
    )
    cost = metering.price_usage(judge, usage, started)
    _meter(row, t, status="ok", http_status=200, usage=usage, cost=cost)
    return _Reply(text=str(text), usage=usage, cost=cost)


def _meter(
    row: dict,
    t: float,
    *,
    status: str,
    http_status: int | None = None,
    error_code: str = "",
    usage: Usage | None = None,
    cost: Cost | None = None,
) -> None:
    usage = usage or Usage()
    cost = cost or Cost()
    ended: datetime = timezone.now()
    UsageEvent.objects.create(
        **row,
        event_id=uuid.uuid4(),
        attempt=1,
        ended_at=ended,
        status=status,
        http_status=http_status,
        error_code=error_code,
        **metering.usage_columns(usage, cost),
        latency_ms=max(0, int((time.perf_counter() - t) * 1000)),
    )
