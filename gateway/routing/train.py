"""Training the learned scorer: logistic regression with L2, mini-batch Adam, numpy only.

``train_linear(prompts, labels)`` takes prompts (a string or a request's ``messages`` each) and
labels (1: the prompt needs the strong model) and returns a ``LinearModel``; ``evaluate`` gives
its AUC, accuracy and log loss on a held-out set. Examples are kept sparse (CSR arrays), so a
batch costs its non-zeros plus one dense Adam step over the 2**bits buckets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.routing.features import FEATURE_NAMES
from gateway.routing.linear import DEFAULT_BITS, LinearModel, example


def _design(prompts: Sequence, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (indptr, indices, values) of the prompts' sparse examples."""
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for prompt in prompts:
        idx, vals = example(prompt, bits)
        indices += idx
        values += vals
        indptr.append(len(indices))
    return (
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
    )


def train_linear(
    prompts: Sequence,
    labels: Sequence[int],
    *,
    bits: int = DEFAULT_BITS,
    l2: float = 1e-4,
    epochs: int = 8,
    batch_size: int = 64,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> LinearModel:
    """Fit P(strong | prompt). ``l2`` is the penalty per example on the squared weights."""
    y = np.asarray(labels, dtype=np.float64)
    if len(prompts) != len(y):
        raise ValueError("prompts and labels differ in length")
    if len(y) == 0:
        raise ValueError("nothing to train on")
    if not set(np.unique(y)) <= {0.0, 1.0}:
        raise ValueError("labels must be 0 or 1")
    indptr, indices, values = _design(prompts, bits)
    dim = (1 << bits) + len(FEATURE_NAMES)
    w = np.zeros(dim)
    prior = min(max(y.mean(), 1e-3), 1 - 1e-3)
    bias = float(np.log(prior / (1 - prior)))  # start at the base rate
    m, v = np.zeros(dim), np.zeros(dim)
    mb = vb = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    rng = np.random.default_rng(seed)
    lengths = np.diff(indptr)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            rows = order[start : start + batch_size]
            # gather the batch's non-zeros
            spans = [np.arange(indptr[r], indptr[r + 1]) for r in rows]
            at = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
            cols, vals = indices[at], values[at]
            row_of = np.repeat(np.arange(len(rows)), lengths[rows])
            z = np.zeros(len(rows))
            np.add.at(z, row_of, vals * w[cols])
            z += bias
            p = 1.0 / (1.0 + np.exp(-z))
            err = (p - y[rows]) / len(rows)
            grad = np.bincount(cols, weights=vals * err[row_of], minlength=dim)
            touched = np.unique(cols)
            grad[touched] += l2 * w[touched]  # L2 on the weights the batch saw (lazy)
            gb = float(err.sum())
            step += 1
            m[touched] = beta1 * m[touched] + (1 - beta1) * grad[touched]
            v[touched] = beta2 * v[touched] + (1 - beta2) * grad[touched] ** 2
            mhat = m[touched] / (1 - beta1**step)
            vhat = v[touched] / (1 - beta2**step)
            w[touched] -= learning_rate * mhat / (np.sqrt(vhat) + eps)
            mb = beta1 * mb + (1 - beta1) * gb
            vb = beta2 * vb + (1 - beta2) * gb * gb
            bias -= (
                learning_rate * (mb / (1 - beta1**step)) / (np.sqrt(vb / (1 - beta2**step)) + eps)
            )
    return LinearModel(
        weights=w.astype(np.float32),
        bias=float(bias),
        bits=bits,
        meta={"trained_on": len(y), "l2": l2, "epochs": epochs, "positives": int(y.sum())},
    )


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (ties counted half), by ranks."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def evaluate(scorer, prompts: Sequence, labels: Sequence[int], *, threshold: float = 0.5) -> dict:
    """AUC, accuracy at ``threshold``, log loss and the strong share of a scorer on a set."""
    scores = np.array([scorer.score(p) for p in prompts])
    y = np.asarray(labels, dtype=np.float64)
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    return {
        "n": len(y),
        "auc": auc(scores, y),
        "accuracy": float(((scores >= threshold) == (y == 1)).mean()),
        "log_loss": float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean()),
        "strong_share": float((scores >= threshold).mean()),
        "threshold": threshold,
    }
