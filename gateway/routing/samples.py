"""A synthetic, seedable prompt mix for benchmarks, calibration tests and demos.

Kinds: short chats, long documents (~8k tokens), code, maths, multi-step analysis and
multi-turn conversations. ``label`` says whether the kind needs the strong model (trivial and
short chats do not), which makes a labelled set whose label depends on the content.
"""

from __future__ import annotations

import random

_TRIVIAL = [
    "hi",
    "hello there!",
    "thanks!",
    "what's 2+2",
    "translate 'cat' to French",
    "what's the capital of {country}?",
    "how do you say 'good morning' in {lang}?",
    "give me a synonym for '{word}'",
    "is {country} in Europe?",
    "what time zone is {city} in?",
    "spell '{word}' backwards",
    "what's {a} times {b}?",
    "tell me a fun fact about {animal}",
    "who wrote Hamlet?",
    "convert {a} km to miles",
    "define '{word}' in one sentence",
    "what rhymes with {word}?",
    "what colour is a {animal}?",
]
_CODE = [
    "Write a Python function that parses a CSV file of {animal} sightings and returns the rows "
    "as dictionaries, skipping malformed lines.",
    "Fix this bug:\n```python\ndef mean(xs):\n    return sum(xs) / len(xs) if xs else {a}\n```\n"
    "It crashes on generators.",
    "Refactor this JavaScript into async/await:\n```js\nfetch(url).then(r => r.json())"
    ".then(d => console.log(d.{word}))\n```",
    "Implement a thread-safe LRU cache in Java with O(1) get and put, and unit tests.",
    "Why does this SQL query time out? SELECT * FROM orders o JOIN customers c ON "
    "o.customer_id = c.id WHERE c.city = '{city}' ORDER BY o.created_at;",
    "I get `TypeError: 'NoneType' object is not subscriptable` in my Django view when the "
    "{word} field is empty. Here is the traceback and the code: ```{word} = obj.data['x']```",
    "Write a Rust function that merges {a} sorted vectors using a binary heap.",
    "Write a bash script that rotates the logs of the {word} service and keeps {a} days.",
]
_MATH = [
    "Prove that there are infinitely many primes of the form 4k+{b}.",
    "Derive the closed form of the sum of the first n squares and prove it by induction.",
    "Show that the function $f(x) = x^{b} - {a}x$ is convex on its domain, rigorously.",
    "Compute \\int_0^1 x^{b} e^x dx and explain each step.",
    "Prove that every bounded monotone sequence of real numbers converges.",
    "Let A be a {b}x{b} matrix with eigenvalues {a} and 1. Derive the determinant and trace.",
    "What is the expected value and the variance of the number of rolls of a fair die until "
    "the first {b}? Derive it.",
]
_ANALYSIS = [
    "Compare the economic policies of {country} and its neighbours over the last decade, and "
    "analyze their impact on inflation and employment step by step.",
    "Analyze the trade-offs between a monolith and microservices for a team of {a} engineers "
    "building a {word} platform, and recommend an architecture.",
    "Evaluate the pros and cons of raising prices by {a}% for our {animal} food brand; consider "
    "churn, margins and competitors, then recommend a strategy.",
    "We saw a {a}% drop in sign-ups after the redesign. Investigate the likely root causes:\n"
    "1. traffic sources\n2. funnel steps\n3. page speed\n4. pricing page changes\n"
    "Break down how to test each.",
    "Design a data pipeline that ingests {a} million events a day from {city}, explain why each "
    "component is chosen, and plan the migration from our current cron jobs.",
]
_CHAT = [
    "Can you suggest a name for my {animal}?",
    "Write a short birthday message for my colleague {name}.",
    "Summarise this in one line: the {word} meeting moved to Thursday at {a}pm.",
    "What's a good recipe with {word} and rice?",
    "Give me three tips for a trip to {city}.",
    "Rewrite this more politely: send me the {word} report now.",
]
_FILL = {
    "country": ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "India", "Chile"],
    "lang": ["Spanish", "German", "Italian", "Japanese", "Portuguese"],
    "word": ["serendipity", "invoice", "ledger", "harbor", "quantum", "budget", "orbit", "garden"],
    "city": ["Lisbon", "Osaka", "Denver", "Nairobi", "Hanoi", "Zurich", "Austin"],
    "animal": ["otter", "parrot", "fox", "tortoise", "llama", "hedgehog"],
    "name": ["Ana", "Kofi", "Mei", "Lars", "Priya"],
}
_PROSE = (
    "The quarterly report covers revenue, operating costs, headcount and the outlook for the "
    "{word} business in {city}. Customer growth in the region continued while churn stayed "
    "flat, and the team shipped {a} releases. Infrastructure spending rose with traffic. "
)
KINDS = ("trivial", "chat", "code", "math", "analysis", "long", "multi_turn")
STRONG_KINDS = frozenset({"code", "math", "analysis", "long"})


def _fill(rng: random.Random, template: str) -> str:
    values = {k: rng.choice(v) for k, v in _FILL.items()}
    return template.format(a=rng.randint(2, 90), b=rng.randint(2, 9), **values)


def _long_document(rng: random.Random, tokens: int) -> str:
    parts = []
    while sum(map(len, parts)) < tokens * 4:
        parts.append(_fill(rng, _PROSE))
    ask = rng.choice(
        [
            "Summarise the document above and list the three biggest risks.",
            "Extract every figure from this report into a table.",
            "What does the report say about churn?",
        ]
    )
    return "".join(parts) + "\n\n" + ask


def prompt_make(rng: random.Random, kind: str) -> list[dict]:
    """One prompt of a kind, as chat ``messages``."""
    if kind == "long":
        return [{"role": "user", "content": _long_document(rng, rng.randint(6000, 9000))}]
    if kind == "multi_turn":
        turns = []
        for _ in range(rng.randint(3, 8)):
            turns.append({"role": "user", "content": _fill(rng, rng.choice(_CHAT))})
            turns.append({"role": "assistant", "content": _fill(rng, rng.choice(_CHAT))})
        turns.append({"role": "user", "content": _fill(rng, rng.choice(_ANALYSIS + _CODE))})
        return [{"role": "system", "content": "You are a helpful assistant."}, *turns]
    pool = {
        "trivial": _TRIVIAL,
        "chat": _CHAT,
        "code": _CODE,
        "math": _MATH,
        "analysis": _ANALYSIS,
    }[kind]
    messages = [{"role": "user", "content": _fill(rng, rng.choice(pool))}]
    if rng.random() < 0.3:
        messages.insert(0, {"role": "system", "content": "You are a concise assistant."})
    return messages


def prompt_mix(
    n: int, *, seed: int = 0, weights: dict[str, float] | None = None
) -> list[tuple[str, list[dict]]]:
    """``n`` (kind, messages) pairs drawn from the mix (default: mostly chat, as traffic is)."""
    rng = random.Random(seed)
    weights = weights or {
        "trivial": 0.3,
        "chat": 0.25,
        "code": 0.12,
        "math": 0.06,
        "analysis": 0.1,
        "long": 0.07,
        "multi_turn": 0.1,
    }
    kinds = list(weights)
    draws = rng.choices(kinds, weights=[weights[k] for k in kinds], k=n)
    return [(kind, prompt_make(rng, kind)) for kind in draws]


def label(kind: str) -> int:
    return int(kind in STRONG_KINDS or kind == "multi_turn")
