"""Loss functions, each a named function with its formula, tested on small tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rdm_logits(session: torch.Tensor, item_table: torch.Tensor, temperature: float, item_dropout: float, training: bool) -> torch.Tensor:
    """CORE's robust distance measuring: cos(h_s, dropout(h_v)) / tau for every item v.

    `session` (B, d) is already l2-normalised; `item_table` (n_items, d) holds items 1..n.
    Dropout on the item embeddings before normalising (CORE §3.3) regularises the consistent
    space; at evaluation it is off.
    """
    items = F.normalize(F.dropout(item_table, item_dropout, training), dim=-1)
    return session @ items.T / temperature  # (B, n_items)


def full_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target], averaged; `targets` are item ids 1..n, column t-1 of `logits`."""
    return F.cross_entropy(logits, targets - 1)
