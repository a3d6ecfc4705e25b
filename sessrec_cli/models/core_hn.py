"""CORE-HN: CORE-trm trained with cross-entropy plus BPR against mined hard negatives.

Smadja and Mizikov, "Revisiting CORE for Session-based Recommendation: Dual-Attention and
Hard-Negative Extensions" (§4.1.2, Algorithm 1). The encoder is CORE-trm unchanged
(Hou et al., SIGIR 2022), so inference is CORE-trm's. Training adds, for each session, a BPR
term against the K highest-scoring items other than the target, chosen on detached logits:
L = (1 - lambda)·CE + lambda·BPR_K (Eqs. 12-14). With lambda = 0 the loss is CORE-trm's.
Beyond the paper: `label_smoothing` in the CE term (the Enhanced CORE guide, future work), off by default.
"""

from __future__ import annotations

import torch
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.core_trm import CoreTrm
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, hard_negative_loss


class CoreHn(nn.Module):
    # Mining ranks the whole (B, n_items) logits, so the chunked and sampled softmaxes cannot apply.
    needs_full_logits = True

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
        hard_neg_k: int,
        hard_neg_weight: float,
        label_smoothing: float,
        softmax: SoftmaxSpec = FULL_SOFTMAX,
    ):
        super().__init__()
        if hard_neg_k >= n_items:
            raise ValueError(f"hard_neg_k {hard_neg_k} must be below the number of items {n_items}: negatives exclude the target")
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
        )
        self.hard_neg_k = hard_neg_k
        self.hard_neg_weight = hard_neg_weight
        self.label_smoothing = label_smoothing
        self.softmax = softmax

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(item_seq)

    def item_embeddings(self) -> torch.Tensor:
        return self.encoder.item_embeddings()

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        session = self.encode(batch.item_seq)  # (B, d)
        return hard_negative_loss(self.softmax)(
            session, self.encoder.item_embedding.weight[1:], batch.targets, self.encoder.temperature, self.encoder.item_dropout,
            self.training, self.hard_neg_k, self.hard_neg_weight, self.label_smoothing,
        )
