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

        `attn_mask` is boolean (True = may attend) or an additive float bias, (B, 1 or H, L, L).

        Only attention needs the (B, L) layout. The projections and the feed-forward network,
        which hold nearly all the FLOPs, run on real tokens only: session prefixes are short
        while a batch is as wide as its longest one. Padding sits right of every real item and
        the mask is causal, so no real token ever reads a padded one and results are unchanged.
        """
        B, L = real.shape
        D = tokens.shape[-1]
        projected = self.qkv(tokens)  # (T, 3D), bfloat16 under autocast
        qkv = projected.new_zeros(B, L, 3 * D)
        qkv[real] = projected
        q, k, v = qkv.view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, D/H)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0)
        attended = attended.transpose(1, 2)[real].reshape(-1, D)  # (T, D)
        hidden = self.attn_norm(tokens + self.dropout(self.attn_out(attended)))
        return self.ff_norm(hidden + self.dropout(self.ff_out(F.gelu(self.ff_in(hidden)))))


class RelativePositionBias(nn.Module):
    """A learned bias per head and relative distance i - j, added to the attention scores.

    Shaw et al., "Self-Attention with Relative Position Representations", NAACL 2018, in the
    scalar form of T5 (one table shared by all layers). The Enhanced CORE guide names relative positions as
    future work. Attention is causal, so only distances 0..L-1 are ever read, and L <= max_len
    because inputs keep their last max_len items: one entry per distance, clipped at
    max_len - 1, covers every case.
    """

    def __init__(self, max_len: int, n_heads: int):
        super().__init__()
        self.bias = nn.Embedding(max_len, n_heads)

    def forward(self, attn_mask: torch.Tensor) -> torch.Tensor:
        """Turn a boolean (B, 1, L, L) mask into an additive float (B, H, L, L) one."""
        L = attn_mask.shape[-1]
        position = torch.arange(L, device=attn_mask.device)
        # Negative distances (future keys) are masked below; clamping only keeps the lookup valid.
        distance = (position.unsqueeze(1) - position.unsqueeze(0)).clamp(0, self.bias.num_embeddings - 1)  # (L, L)
        bias = self.bias(distance).permute(2, 0, 1)  # (H, L, L)
        return bias.masked_fill(~attn_mask, float("-inf"))


def contextualise(
    x: torch.Tensor,
    item_seq: torch.Tensor,
    position_embedding: nn.Embedding,
    input_norm: nn.LayerNorm,
    input_dropout: nn.Dropout,
    blocks: nn.ModuleList,
    relative_bias: RelativePositionBias | None = None,
) -> list[torch.Tensor]:
    """CORE-trm's transformer over item embeddings `x` (B, L, D): every block's output, packed.

    Position embeddings are added, the sum is normalised and dropped out, then the causal
    blocks run on the real positions (`item_seq > 0`) only. Returns one (T, D) tensor per block,
    row t being the t-th real position in row-major order. The models own the modules (so
    their parameter names stay flat); this function owns the computation they share.
    """
    B, L = item_seq.shape
    real = item_seq > 0  # (B, L)
    positions = position_embedding(torch.arange(L, device=item_seq.device)).expand(B, L, -1)
    tokens = input_dropout(input_norm(x[real] + positions[real]))  # (T, D)
    attn_mask = causal_padding_mask(item_seq)
    if relative_bias is not None:
        attn_mask = relative_bias(attn_mask)
    outputs = []
    for block in blocks:
        tokens = block(tokens, real, attn_mask)
        outputs.append(tokens)
    return outputs


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


def weighted_item_sum(scores: torch.Tensor, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """CORE's consistent pooling (Eqs. 2, 4): softmax the packed scores (T,) over each session's
    real positions of `real` (B, L) and return the weighted sum of item embeddings `x` (B, L, D)."""
    padded = scores.new_zeros(real.shape)
    padded[real] = scores
    alpha = masked_softmax(padded, real)  # (B, L)
    return (alpha.unsqueeze(-1) * x).sum(1)  # (B, D)


def masked_mean(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """CORE-ave's pooling (Eq. 3): the mean of `x` (B, L, D) over the real positions (B, L).

    The mask matters: CORE's initialisation also fills the padding row of the embedding table.
    """
    return (x * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True)

