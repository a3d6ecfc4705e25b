"""CORE-DA: dual attention (global context and recent intent) over CORE-trm's transformer.

Smadja and Mizikov, "Revisiting CORE for Session-based Recommendation: Dual-Attention and
Hard-Negative Extensions" (§4.1.1), built on CORE-trm (Hou et al., SIGIR 2022).
The transformer's contextualised tokens f_i give two sets of weights over the session's
(dropped-out) item embeddings: global scores MLP_g([f_i; p_i]), p_i the position embedding
(Eq. 6), and recent-intent scores MLP_r([f_i; f_last]), queried by the last item (Eq. 7). The
two weighted sums (Eq. 8) are fused by a softmax gate computed from both (Eq. 9), the CORE-ave
mean is added and the result is l2-normalised (Eq. 10). Every coefficient is non-negative, so
the session stays a combination of item embeddings. Decoding and loss as CORE-trm.

The paper leaves the MLP sizes open; each is Linear(2d, d) -> GELU -> Linear(d, out), as in the
authors' repository. Ablations: `gate=False` fuses with fixed weights (1/2, 1/2), and
`ave_residual=False` drops the mean. Beyond the paper, both off by default:
`label_smoothing` in the CE and `relative_position_bias` in the attention (the Enhanced CORE guide, future work).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.layers import RelativePositionBias, TransformerBlock, contextualise, masked_mean, weighted_item_sum
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, catalogue_loss


def _mlp(hidden_size: int, out_features: int) -> nn.Sequential:
    """A scorer over the concatenation of two d-vectors."""
    return nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, out_features))


class CoreDa(nn.Module):
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
        self.global_scorer = _mlp(embedding_size, 1)  # MLP_g, Eq. 6
        self.recent_scorer = _mlp(embedding_size, 1)  # MLP_r, Eq. 7
        self.fusion_gate = _mlp(embedding_size, 2) if gate else None  # MLP_gate, Eq. 9
        self.ave_residual = ave_residual
        self.sess_dropout = nn.Dropout(sess_dropout)
        self.item_dropout = item_dropout
        self.temperature = temperature
        self.label_smoothing = label_smoothing
        self.softmax = softmax
        # As CORE-trm: CORE's released code initialises every parameter uniformly in +-1/sqrt(d).
        bound = 1.0 / math.sqrt(embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def fusion_weights(self, h_global: torch.Tensor, h_recent: torch.Tensor) -> torch.Tensor:
        """(B, 2) non-negative weights summing to 1 for the global and recent views (Eq. 9)."""
        if self.fusion_gate is None:
            return h_global.new_full((len(h_global), 2), 0.5)
        return torch.softmax(self.fusion_gate(torch.cat([h_global, h_recent], dim=-1)), dim=-1)

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        real = item_seq > 0  # (B, L)
        x = self.sess_dropout(self.item_embedding(item_seq))  # (B, L, d)
        layers = contextualise(x, item_seq, self.position_embedding, self.input_norm, self.input_dropout, self.blocks, self.relative_bias)
        tokens = layers[-1]  # (T, d): f_i at the real positions
        session_of, position_of = real.nonzero(as_tuple=True)  # (T,) each token's row and position
        # Inputs are left-aligned and tokens packed row by row, so a session's last token closes its run.
        last = tokens[real.sum(1).cumsum(0) - 1]  # (B, d): f_last
        global_scores = self.global_scorer(torch.cat([tokens, self.position_embedding(position_of)], dim=-1))  # (T, 1), Eq. 6
        recent_scores = self.recent_scorer(torch.cat([tokens, last[session_of]], dim=-1))  # (T, 1), Eq. 7
        h_global = weighted_item_sum(global_scores.squeeze(-1), x, real)  # (B, d), Eq. 8
        h_recent = weighted_item_sum(recent_scores.squeeze(-1), x, real)  # (B, d), Eq. 8
        gate = self.fusion_weights(h_global, h_recent)  # (B, 2), Eq. 9
        session = gate[:, :1] * h_global + gate[:, 1:] * h_recent  # (B, d): h_s^(trm)
        if self.ave_residual:
            session = session + masked_mean(x, real)  # Eq. 10: the CORE-ave path
        return F.normalize(session, dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        return F.normalize(self.item_embedding.weight[1:], dim=-1)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        session = self.encode(batch.item_seq)  # (B, d)
        item_table = self.item_embedding.weight[1:]
        ce = catalogue_loss(session, item_table, batch.targets, self.temperature, self.item_dropout, self.training, self.softmax, self.label_smoothing)
        return {"ce": ce}
