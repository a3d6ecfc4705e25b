"""CORE-trm: transformer-estimated weights over the session's own item embeddings.

Hou et al., "CORE: Simple and Effective Session-based Recommendation within Consistent
Representation Space", SIGIR 2022 (https://arxiv.org/abs/2204.11067), and seed 001 §3.3.
A transformer reads item + position embeddings and a linear layer turns each position's
output into a weight; the session embedding is the softmax-weighted sum of the (dropped-out)
item embeddings (Eqs. 2, 4), so it stays in the item space. Decoding as CORE-ave (RDM).
Follows CORE's released code: causal attention, post-LayerNorm blocks, uniform init.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.layers import TransformerBlock, causal_padding_mask, masked_softmax
from sessrec_cli.models.losses import full_cross_entropy, rdm_logits


class CoreTrm(nn.Module):
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
    ):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, embedding_size)
        self.input_norm = nn.LayerNorm(embedding_size, eps=layer_norm_eps)
        self.input_dropout = nn.Dropout(hidden_dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(embedding_size, n_heads, inner_size, hidden_dropout, attn_dropout, layer_norm_eps) for _ in range(n_layers)
        )
        self.weight_head = nn.Linear(embedding_size, 1)  # w in Eq. 4
        self.sess_dropout = nn.Dropout(sess_dropout)
        self.item_dropout = item_dropout
        self.temperature = temperature
        # CORE's released code re-initialises every parameter (LayerNorms included) uniformly
        # in +-1/sqrt(d) after construction; matching it keeps results comparable.
        bound = 1.0 / math.sqrt(embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        B, L = item_seq.shape
        real = item_seq > 0  # (B, L)
        x = self.sess_dropout(self.item_embedding(item_seq))  # (B, L, d)
        positions = self.position_embedding(torch.arange(L, device=item_seq.device)).expand(B, L, -1)
        tokens = self.input_dropout(self.input_norm(x[real] + positions[real]))  # (T, d): real positions only
        attn_mask = causal_padding_mask(item_seq)
        for block in self.blocks:
            tokens = block(tokens, real, attn_mask)
        weights = tokens.new_zeros(B, L)
        weights[real] = self.weight_head(tokens).squeeze(-1)
        alpha = masked_softmax(weights, real)  # (B, L), Eq. 4
        session = (alpha.unsqueeze(-1) * x).sum(1)  # (B, d), Eq. 2: a combination of item embeddings
        return F.normalize(session, dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        return F.normalize(self.item_embedding.weight[1:], dim=-1)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = rdm_logits(self.encode(batch.item_seq), self.item_embedding.weight[1:], self.temperature, self.item_dropout, self.training)
        return {"ce": full_cross_entropy(logits, batch.targets)}
