"""CORE-DAHN: the CORE-DA encoder trained with CORE-HN's hard-negative objective.

Smadja and Mizikov, "Revisiting CORE for Session-based Recommendation: Dual-Attention and
Hard-Negative Extensions" (§4, Algorithm 1): session embeddings from dual attention
with adaptive fusion and the CORE-ave residual (Eqs. 6-10), loss (1 - lambda)·CE + lambda·BPR
over the top-K hard negatives (Eqs. 12-14). The two pieces are composed unchanged: the encoder
is a `CoreDa`, the loss `ce_with_hard_negatives`. Options and ablation flags as CORE-DA's.
"""

from __future__ import annotations

import torch
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.core_da import CoreDa
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, hard_negative_loss


class CoreDahn(nn.Module):
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
        gate: bool,
        ave_residual: bool,
        hard_neg_k: int,
        hard_neg_weight: float,
        label_smoothing: float,
        relative_position_bias: bool,
        softmax: SoftmaxSpec = FULL_SOFTMAX,
    ):
        super().__init__()
        if hard_neg_k >= n_items:
            raise ValueError(f"hard_neg_k {hard_neg_k} must be below the number of items {n_items}: negatives exclude the target")
        self.encoder = CoreDa(
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
            gate=gate,
            ave_residual=ave_residual,
            label_smoothing=label_smoothing,
            relative_position_bias=relative_position_bias,
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
