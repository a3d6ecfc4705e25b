"""Full-catalogue ranking with real models: batch-size invariance, padding, repeat clicks."""

from __future__ import annotations

import numpy as np
import torch

from sessrec_cli.config import CoreAveConfig, CoreTrmConfig
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.eval.ranking import target_ranks
from sessrec_cli.models import build_model


def _pairs(n_items: int, n: int, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(1, n_items + 1, size=rng.integers(1, 12)).tolist() for _ in range(n)]
    targets = rng.integers(1, n_items + 1, size=n).tolist()
    return SequenceData.from_pairs(inputs, targets, list(range(n)), max_len=8)


def test_ranks_do_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    model = build_model(CoreTrmConfig(embedding_size=16, inner_size=32), n_items=300, max_len=8)
    data = _pairs(300, 257)
    reference = target_ranks(model, data, batch_size=len(data))
    for batch_size in (1, 7, 64, 1000):
        assert np.array_equal(target_ranks(model, data, batch_size), reference)


def test_padding_is_never_ranked():
    torch.manual_seed(0)
    model = build_model(CoreAveConfig(embedding_size=8), n_items=20, max_len=8)
    data = _pairs(20, 50)
    before = target_ranks(model, data, 16)
    with torch.no_grad():
        model.item_embedding.weight[0] = 1e3  # padding row: would outrank everything if ranked
    after = target_ranks(model, data, 16)
    assert np.array_equal(before, after)
    assert after.max() <= 20


def test_items_in_the_session_stay_rankable():
    """A repeat click is a real target: the session's own items are not filtered out."""
    torch.manual_seed(0)
    model = build_model(CoreAveConfig(embedding_size=8), n_items=10, max_len=8)
    # A session of item 4 repeated: its embedding is item 4's own direction, which scores highest.
    data = SequenceData.from_pairs([[4, 4, 4]], [4], [0], max_len=8)
    assert target_ranks(model, data, 4).tolist() == [1]


def test_prefixes_keep_their_last_items():
    data = SequenceData.from_pairs([[1, 2, 3, 4, 5]], [6], [0], max_len=3)
    assert data.batch(torch.tensor([0])).item_seq.tolist() == [[3, 4, 5]]
