"""Metrics and ranking against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sessrec_cli.eval.metrics import compute_metrics, mrr_at_k, ndcg_at_k, recall_at_k
from sessrec_cli.eval.ranking import ranks_from_scores


def test_metrics_by_hand():
    ranks = np.array([1, 2, 5, 21])
    assert recall_at_k(ranks, 20) == pytest.approx(3 / 4)
    assert mrr_at_k(ranks, 20) == pytest.approx((1 + 1 / 2 + 1 / 5 + 0) / 4)
    assert ndcg_at_k(ranks, 20) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 4)
    assert mrr_at_k(ranks, 4) == pytest.approx((1 + 1 / 2) / 4)


def test_compute_metrics_keys_and_bounds():
    metrics = compute_metrics(np.array([3, 1, 50]), [5, 20])
    assert set(metrics) == {f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (5, 20)}
    assert metrics["recall@5"] == pytest.approx(2 / 3)
    assert metrics["mrr@5"] == pytest.approx((1 / 3 + 1) / 3)
    with pytest.raises(ValueError):
        compute_metrics(np.array([0, 1]), [5])


def test_ties_count_against_the_target():
    scores = torch.tensor([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1], [0.2, 0.2, 0.2]])
    ranks = ranks_from_scores(scores, torch.tensor([1, 2, 3]))
    # Items 1 and 2 tie: each ranks second. In an all-tied row the target ranks last.
    assert ranks.tolist() == [2, 2, 3]


def test_k_larger_than_catalogue():
    ranks = ranks_from_scores(torch.tensor([[0.9, 0.1, 0.3]]), torch.tensor([2]))
    assert ranks.tolist() == [3]
    metrics = compute_metrics(ranks.numpy(), [20])
    assert metrics["recall@20"] == 1.0
    assert metrics["mrr@20"] == pytest.approx(1 / 3)


def test_single_item_catalogue():
    ranks = ranks_from_scores(torch.tensor([[0.3], [-2.0]]), torch.tensor([1, 1]))
    assert ranks.tolist() == [1, 1]
    assert compute_metrics(ranks.numpy(), [1])["ndcg@1"] == 1.0


def test_nan_target_ranks_last():
    ranks = ranks_from_scores(torch.tensor([[float("nan"), 0.1, 0.2]]), torch.tensor([1]))
    assert ranks.tolist() == [3]


def test_empty_ranks_give_zero():
    assert compute_metrics(np.array([], dtype=np.int64), [10])["recall@10"] == 0.0
