"""CORE-ave: mean pooling in the item embedding space.

Hou et al., "CORE: Simple and Effective Session-based Recommendation within Consistent
Representation Space", SIGIR 2022 (https://arxiv.org/abs/2204.11067), and Smadja & Mizikov §3.3.
The session embedding is the mean of its item embeddings (Eq. 3), so it lives in the item
space; decoding is cosine similarity with temperature and item dropout (RDM, Eq. 5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sessrec_cli.data.sequences import Batch
from sessrec_cli.models.losses import FULL_SOFTMAX, SoftmaxSpec, catalogue_loss


class CoreAve(nn.Module):
    def __init__(
        self,
        n_items: int,
        embedding_size: int,
        sess_dropout: float,
        item_dropout: float,
        temperature: float,
        softmax: SoftmaxSpec = FULL_SOFTMAX,
    ):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=0)
        self.sess_dropout = nn.Dropout(sess_dropout)
        self.item_dropout = item_dropout
        self.temperature = temperature
        self.softmax = softmax
        # CORE's released code initialises every parameter uniformly in +-1/sqrt(d).
        bound = 1.0 / math.sqrt(embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        x = self.sess_dropout(self.item_embedding(item_seq))  # (B, L, d)
        mask = (item_seq > 0).unsqueeze(-1)  # (B, L, 1)
        session = (x * mask).sum(1) / mask.sum(1)  # (B, d), Eq. 3: alpha = 1/m
        return F.normalize(session, dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        return F.normalize(self.item_embedding.weight[1:], dim=-1)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        session = self.encode(batch.item_seq)  # (B, d)
        ce = catalogue_loss(session, self.item_embedding.weight[1:], batch.targets, self.temperature, self.item_dropout, self.training, self.softmax)
        return {"ce": ce}
