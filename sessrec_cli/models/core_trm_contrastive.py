"""CORE-trm-contrastive: CORE-trm plus InfoNCE between two item-masked views of each session.

The Enhanced CORE guide §4 (CL4SRec/CoSeRec-style self-supervision) on CORE-trm (Hou et al., SIGIR 2022,
https://arxiv.org/abs/2204.11067). The encoder, the inference path and the CE term are CORE-trm's;
training adds cl_weight · InfoNCE(encode(view_a), encode(view_b), cl_temperature), each view
masking every item independently with probability cl_dropout. With cl_weight = 0 the loss is
CORE-trm's.
Masking removes an item the way padding does (the guide's companion code writes 0 over it); as
the packed transformer needs left-aligned inputs, the surviving items are moved left in their
order and so take the positions of their new index. The last item is never masked, which keeps
at least one item per view and the most recent intent in both. Beyond the guide, off by
default: `label_smoothing` in the CE term (its future work).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.core_trm import CoreTrm
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, info_nce


def mask_items(item_seq: torch.Tensor, probability: float) -> torch.Tensor:
    """A random view of `item_seq` (B, L): each item but the last dropped with `probability`,
    survivors left-aligned in their original order, padding (0) after them."""
    real = item_seq > 0
    last = F.one_hot(real.sum(1) - 1, item_seq.shape[1]).bool()  # (B, L)
    keep = real & ((torch.rand(item_seq.shape, device=item_seq.device) >= probability) | last)
    # A stable sort on "dropped" puts the kept positions first, in their original order.
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    return item_seq.masked_fill(~keep, 0).gather(1, order)


class CoreTrmContrastive(nn.Module):
    def __init__(
        self,
        n_items: int,
        max_len: int,
        embedding_size: int,
        n_layers: int,
        n_heads: int,
        inner_size: int,
        hidden_dropout: float,
        attn_dropout: float,
        layer_norm_eps: float,
        sess_dropout: float,
        item_dropout: float,
        temperature: float,
        cl_weight: float,
        cl_dropout: float,
        cl_temperature: float,
        label_smoothing: float,
        softmax: SoftmaxSpec = FULL_SOFTMAX,
    ):
        super().__init__()
        self.encoder = CoreTrm(
            n_items=n_items,
            max_len=max_len,
            embedding_size=embedding_size,
            n_layers=n_layers,
            n_heads=n_heads,
            inner_size=inner_size,
            hidden_dropout=hidden_dropout,
            attn_dropout=attn_dropout,
            layer_norm_eps=layer_norm_eps,
            sess_dropout=sess_dropout,
            item_dropout=item_dropout,
            temperature=temperature,
            softmax=softmax,
        )
        self.cl_weight = cl_weight
        self.cl_dropout = cl_dropout
        self.cl_temperature = cl_temperature
        self.label_smoothing = label_smoothing

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(item_seq)

    def item_embeddings(self) -> torch.Tensor:
        return self.encoder.item_embeddings()

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        terms = {"ce": self.encoder.cross_entropy(batch.item_seq, batch.targets, self.label_smoothing)}  # CORE Eq. 5
        if self.cl_weight > 0:
            view_a = self.encode(mask_items(batch.item_seq, self.cl_dropout))  # (B, d)
            view_b = self.encode(mask_items(batch.item_seq, self.cl_dropout))  # (B, d)
            terms["info_nce"] = self.cl_weight * info_nce(view_a, view_b, self.cl_temperature)
        return terms
