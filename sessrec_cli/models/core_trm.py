"""CORE-trm: transformer-estimated weights over the session's own item embeddings.

Hou et al., "CORE: Simple and Effective Session-based Recommendation within Consistent
Representation Space", SIGIR 2022 (https://arxiv.org/abs/2204.11067), and Smadja & Mizikov §3.3.
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
from sessrec_cli.models.layers import TransformerBlock, contextualise, weighted_item_sum
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, catalogue_loss


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
        softmax: SoftmaxSpec = FULL_SOFTMAX,
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
        self.softmax = softmax
        # CORE's released code re-initialises every parameter (LayerNorms included) uniformly
        # in +-1/sqrt(d) after construction; matching it keeps results comparable.
        bound = 1.0 / math.sqrt(embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        real = item_seq > 0  # (B, L)
        x = self.sess_dropout(self.item_embedding(item_seq))  # (B, L, d)
        tokens = contextualise(x, item_seq, self.position_embedding, self.input_norm, self.input_dropout, self.blocks)[-1]  # (T, d)
        # (B, d), Eqs. 2 and 4: softmax(w F^T)-weighted sum of the item embeddings
        session = weighted_item_sum(self.weight_head(tokens).squeeze(-1), x, real)
        return F.normalize(session, dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        return F.normalize(self.item_embedding.weight[1:], dim=-1)

    def cross_entropy(self, item_seq: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """CORE's loss (Eq. 5) over the RDM scores, normalised over the catalogue as `softmax` says."""
        session = self.encode(item_seq)  # (B, d)
        item_table = self.item_embedding.weight[1:]
        return catalogue_loss(session, item_table, targets, self.temperature, self.item_dropout, self.training, self.softmax, label_smoothing)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"ce": self.cross_entropy(batch.item_seq, batch.targets)}
