"""Ranking metrics as pure functions of the target's rank (1 = best).

Each test example has exactly one target, so Recall@K equals Hit Rate@K. Ranks come from
`ranking.target_ranks`, which counts ties pessimistically (a tied item ranks above the target).
"""

from __future__ import annotations

import numpy as np

METRICS = ("recall", "mrr", "ndcg")


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of examples whose target is in the top k (= HR@k with one target)."""
    return float(np.mean(ranks <= k)) if len(ranks) else 0.0


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of 1/rank, counting 0 when the target is outside the top k."""
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0))) if len(ranks) else 0.0


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of 1/log2(rank + 1) within the top k (the ideal DCG of one target is 1)."""
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0))) if len(ranks) else 0.0


_FUNCTIONS = {"recall": recall_at_k, "mrr": mrr_at_k, "ndcg": ndcg_at_k}


def compute_metrics(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    """{'recall@5': ..., 'mrr@5': ..., 'ndcg@5': ..., ...} for every k in `ks`."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) and ranks.min() < 1:
        raise ValueError("ranks start at 1")
    return {f"{name}@{k}": _FUNCTIONS[name](ranks, k) for k in ks for name in METRICS}


def metric_order(name: str) -> tuple[int, int]:
    """Sort key for metric names such as 'mrr@20': by K, then recall, MRR, NDCG."""
    metric, _, k = name.partition("@")
    return int(k), METRICS.index(metric) if metric in METRICS else len(METRICS)
