"""Exact full-catalogue ranking in bounded memory.

For a chunk of examples the model scores every item (chunk x catalogue); the target's rank is
the number of items scoring at least as high as the target, so ties count against the model
and no sort is needed. Padding (id 0) is not in the catalogue and is never ranked. Items
already in the session stay rankable: repeat clicks are real targets. A chunk holds at most
`max_score_elements` scores, so a catalogue of millions of items is ranked with fewer
examples per chunk rather than with more memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sessrec_cli.data.sequences import SequenceData


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank of each target. `scores` (B, n_items) are for items 1..n; targets are ids.

    A NaN target score ranks last, so a broken model can never look good.
    """
    target_scores = scores.gather(1, (targets - 1).unsqueeze(1))  # (B, 1)
    ranks = (scores >= target_scores).sum(1)
    return torch.where(target_scores.squeeze(1).isnan(), scores.shape[1], ranks)


MAX_SCORE_ELEMENTS = 2**26  # 256 MiB of float32 scores per chunk


@torch.no_grad()
def target_ranks(model: nn.Module, data: SequenceData, batch_size: int, max_score_elements: int = MAX_SCORE_ELEMENTS) -> np.ndarray:
    """Rank of every example's target among all items, in example order.

    Chunks hold `batch_size` examples, fewer when that many would score more than
    `max_score_elements` (example, item) pairs; ranks do not depend on the chunk size.
    """
    was_training = model.training
    model.eval()
    items = model.item_embeddings()  # (n_items, d), computed once
    chunk = max(1, min(batch_size, max_score_elements // len(items)))
    out = torch.empty(len(data), dtype=torch.long, device=data.device)
    for start in range(0, len(data), chunk):
        index = torch.arange(start, min(start + chunk, len(data)), device=data.device)
        batch = data.batch(index)
        scores = model.encode(batch.item_seq) @ items.T  # (B, n_items)
        out[index] = ranks_from_scores(scores, batch.targets)
    model.train(was_training)
    return out.cpu().numpy()
