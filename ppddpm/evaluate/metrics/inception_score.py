"""Inception Score (Salimans et al. 2016): IS = exp(E_x KL(p(y|x) || p(y))).

As the original code (improved-gan/inception_score.py): the N images are cut, in order,
into ``splits`` equal parts; each part's p(y) is the mean of its p(y|x); the score is the
mean and the population std (ddof=0) over the parts. p(y|x) is the softmax over all 1008
outputs of TF Inception's ``softmax/logits/MatMul``, which has no bias: pass the unbiased
logits (pool3 @ W), as torch-fidelity's default ``logits_unbiased`` does.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .fid import MetricError


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score_from_probs(probs: np.ndarray, splits: int = 10) -> Tuple[float, float]:
    """(mean, std) of exp(mean_x KL(p(y|x) || p(y))) over ``splits`` consecutive parts."""
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if probs.ndim != 2 or n < splits:
        raise MetricError(f"the Inception Score over {splits} splits needs at least {splits} "
                          f"images, got {n}")
    scores = []
    for k in range(splits):
        part = probs[k * n // splits:(k + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        # x log(x/y) with 0 log 0 = 0, so one-hot rows are exact.
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(logits: np.ndarray, splits: int = 10) -> Tuple[float, float]:
    """IS from [N, C] logits (use the unbiased ones for published-comparable numbers)."""
    return inception_score_from_probs(softmax(logits), splits)
