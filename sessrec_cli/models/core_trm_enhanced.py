"""CORE-trm-enhanced: layer aggregation, a gated CORE-ave path and in-batch session negatives.

"Enhanced CORE Model - Improvements Guide" (the Enhanced CORE guide), §§1-3, on CORE-trm (Hou et al., SIGIR
2022, https://arxiv.org/abs/2204.11067):
1. the weight head reads a softmax-weighted sum of every transformer layer's output (learnable
   layer weights, initialised to ones, i.e. equal) instead of the last layer's;
2. a session-adaptive gate g = sigmoid(MLP([h_trm; h_ave])) mixes the CORE-trm session h_trm and
   the CORE-ave mean h_ave: h_s = norm(g·h_trm + (1 - g)·h_ave), still a combination of items;
3. training adds hard_neg_weight · 1/B sum_i log sum_{j != i} exp(h_i . h_j / tau) over the
   batch's sessions, with CORE's temperature tau (`in_batch_negative_logsumexp` states why the
   diagonal is excluded).
The Enhanced CORE guide's own "baseline" scores positions with an MLP over [f_i; p_i]; that is not among its
listed improvements and not CORE's Eq. 4, so the weight head stays CORE-trm's linear w.
The MLP is Linear(2d, d) -> tanh -> Linear(d, 1), as in the guide's companion code.
Ablations (the Enhanced CORE guide): `layer_aggregation=False` reads the last layer; `gate=False` fixes g = 1/2
(after normalisation, the plain sum h_trm + h_ave); `hard_neg_weight=0` drops the term.
Beyond the guide, off by default: `label_smoothing` and `relative_position_bias` (its future work), and
`exclude_same_target`, which drops sessions with the same target from each other's in-batch negatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.layers import RelativePositionBias, TransformerBlock, contextualise, masked_mean, weighted_item_sum
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, catalogue_loss, in_batch_negative_logsumexp


class CoreTrmEnhanced(nn.Module):
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
        layer_aggregation: bool,
        gate: bool,
        hard_neg_weight: float,
        exclude_same_target: bool,
        label_smoothing: float,
        relative_position_bias: bool,
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
        self.relative_bias = RelativePositionBias(max_len, n_heads) if relative_position_bias else None
        self.weight_head = nn.Linear(embedding_size, 1)  # w in CORE Eq. 4
        self.session_gate = (
            nn.Sequential(nn.Linear(2 * embedding_size, embedding_size), nn.Tanh(), nn.Linear(embedding_size, 1)) if gate else None
        )
        self.sess_dropout = nn.Dropout(sess_dropout)
        self.item_dropout = item_dropout
        self.temperature = temperature
        self.hard_neg_weight = hard_neg_weight
        self.exclude_same_target = exclude_same_target
        self.label_smoothing = label_smoothing
        self.softmax = softmax
        # As CORE-trm: CORE's released code initialises every parameter uniformly in +-1/sqrt(d).
        bound = 1.0 / math.sqrt(embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        # Created after that loop: the Enhanced CORE guide starts the layer weights equal (ones).
        self.layer_weights = nn.Parameter(torch.ones(n_layers)) if layer_aggregation else None

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        real = item_seq > 0  # (B, L)
        x = self.sess_dropout(self.item_embedding(item_seq))  # (B, L, d)
        layers = contextualise(x, item_seq, self.position_embedding, self.input_norm, self.input_dropout, self.blocks, self.relative_bias)
        if self.layer_weights is None:
            tokens = layers[-1]  # (T, d)
        else:
            mix = torch.softmax(self.layer_weights, dim=0)  # (n_layers,), the Enhanced CORE guide §1
            tokens = torch.einsum("n,ntd->td", mix, torch.stack(layers))  # (T, d)
        h_trm = weighted_item_sum(self.weight_head(tokens).squeeze(-1), x, real)  # (B, d), CORE Eqs. 2, 4
        h_ave = masked_mean(x, real)  # (B, d), CORE Eq. 3
        if self.session_gate is None:
            gate = 0.5
        else:
            gate = torch.sigmoid(self.session_gate(torch.cat([h_trm, h_ave], dim=-1)))  # (B, 1), the Enhanced CORE guide §2
        return F.normalize(gate * h_trm + (1 - gate) * h_ave, dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        return F.normalize(self.item_embedding.weight[1:], dim=-1)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        session = self.encode(batch.item_seq)  # (B, d)
        item_table = self.item_embedding.weight[1:]
        ce = catalogue_loss(session, item_table, batch.targets, self.temperature, self.item_dropout, self.training, self.softmax, self.label_smoothing)
        terms = {"ce": ce}
        if self.hard_neg_weight > 0:
            same_target = batch.targets if self.exclude_same_target else None
            terms["in_batch_neg"] = self.hard_neg_weight * in_batch_negative_logsumexp(session, self.temperature, same_target)  # the Enhanced CORE guide §3
        return terms
