"""Building blocks shared by several models (composed, never inherited)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransformerBlock(nn.Module):
    """A post-LayerNorm self-attention block as in SASRec/BERT (RecBole's `TransformerLayer`).

    As in RecBole, the feed-forward network has no dropout between its two layers; dropout is
    applied to each sub-layer's output before the residual sum.
    """

    def __init__(self, hidden_size: int, n_heads: int, inner_size: int, hidden_dropout: float, attn_dropout: float, layer_norm_eps: float):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden size {hidden_size} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ff_in = nn.Linear(hidden_size, inner_size)
        self.ff_out = nn.Linear(inner_size, hidden_size)
        self.ff_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)

    def forward(self, tokens: torch.Tensor, real: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """`tokens` (T, D) are the real positions of `real` (B, L), packed; returns (T, D).

        Only attention needs the (B, L) layout. The projections and the feed-forward network,
        which hold nearly all the FLOPs, run on real tokens only: session prefixes are short
        while a batch is as wide as its longest one. Padding sits right of every real item and
        the mask is causal, so no real token ever reads a padded one and results are unchanged.
        """
        B, L = real.shape
        D = tokens.shape[-1]
        qkv = tokens.new_zeros(B, L, 3 * D)
        qkv[real] = self.qkv(tokens)
        q, k, v = qkv.view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, D/H)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0)
        attended = attended.transpose(1, 2)[real].reshape(-1, D)  # (T, D)
        hidden = self.attn_norm(tokens + self.dropout(self.attn_out(attended)))
        return self.ff_norm(hidden + self.dropout(self.ff_out(F.gelu(self.ff_in(hidden)))))


def causal_padding_mask(item_seq: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) boolean mask, True where query i may attend key j: j <= i and j is an item.

    Inputs are left-aligned, so every query row keeps at least position 0 and no row is empty.
    """
    L = item_seq.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=item_seq.device).tril()
    return (causal & (item_seq > 0).unsqueeze(1)).unsqueeze(1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of `scores` (B, L) restricted to positions where `mask` is True."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
