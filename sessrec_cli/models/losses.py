"""Loss functions, each a named function with its formula, tested on small tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rdm_logits(session: torch.Tensor, item_table: torch.Tensor, temperature: float, item_dropout: float, training: bool) -> torch.Tensor:
    """CORE's robust distance measuring: cos(h_s, dropout(h_v)) / tau for every item v.

    `session` (B, d) is already l2-normalised; `item_table` (n_items, d) holds items 1..n.
    Dropout on the item embeddings before normalising (CORE §3.3) regularises the consistent
    space; at evaluation it is off.
    """
    items = F.normalize(F.dropout(item_table, item_dropout, training), dim=-1)
    return session @ items.T / temperature  # (B, n_items)


def full_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """-log softmax(logits)[target], averaged; `targets` are item ids 1..n, column t-1 of `logits`.

    With label smoothing eps the target distribution is (1 - eps)·onehot + eps/n_items
    (seed 000, future work 9); eps = 0 is the plain cross-entropy of CORE Eq. 5.
    """
    return F.cross_entropy(logits, targets - 1, label_smoothing=label_smoothing)


def hard_negatives(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) columns of the k highest-scoring items other than the target (seed 001 Eq. 13).

    The selection is a stop-gradient: it reads detached logits, so the indices carry no graph.
    """
    target_column = (targets - 1).unsqueeze(1)  # (B, 1)
    candidates = logits.detach().scatter(1, target_column, float("-inf"))
    return candidates.topk(k, dim=1).indices


def hard_negative_bpr(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """BPR over the top-k hard negatives (seed 001 Eq. 14), averaged over the batch:

        L_BPR = 1/K · sum_{v- in N_K(s)} log(1 + exp(z(v-|s) - z(v+|s))),

    with N_K(s) from `hard_negatives`; gradients flow through the gathered logits only.
    """
    positive = logits.gather(1, (targets - 1).unsqueeze(1))  # (B, 1)
    negative = logits.gather(1, hard_negatives(logits, targets, k))  # (B, k)
    return F.softplus(negative - positive).mean()


def ce_with_hard_negatives(
    logits: torch.Tensor, targets: torch.Tensor, k: int, weight: float, label_smoothing: float = 0.0
) -> dict[str, torch.Tensor]:
    """Seed 001 Algorithm 1: L = (1 - lambda)·L_CE + lambda·L_BPR, as named, weighted terms.

    With lambda = 0 no negatives are mined and the single term is the plain cross-entropy.
    """
    terms = {"ce": (1 - weight) * full_cross_entropy(logits, targets, label_smoothing)}
    if weight > 0:
        terms["bpr"] = weight * hard_negative_bpr(logits, targets, k)
    return terms


def in_batch_negative_logsumexp(sessions: torch.Tensor, temperature: float) -> torch.Tensor:
    """Seed 000 §3: push each session away from the other sessions of the batch,

        L = 1/B · sum_i log sum_{j != i} exp(s_i . s_j / tau).

    `sessions` (B, d) are l2-normalised. Seed 000's snippet writes logsumexp over the whole
    row but calls its entries "negative sessions"; a session is not its own negative (and on
    the unit sphere its self-similarity is the constant 1/tau), so the diagonal is excluded.
    A batch of one has no negatives and gives 0.
    """
    if len(sessions) < 2:
        return sessions.new_zeros(())
    similarity = sessions @ sessions.T / temperature  # (B, B)
    self_pairs = torch.eye(len(sessions), dtype=torch.bool, device=sessions.device)
    return torch.logsumexp(similarity.masked_fill(self_pairs, float("-inf")), dim=1).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views (B, d) of the same B examples (CL4SRec-style):

        L = 1/2 · [CE(A B^T / tau, I) + CE(B A^T / tau, I)],   A, B = rows l2-normalised,

    i.e. row i of each view must pick row i of the other among the batch.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature  # (B, B)
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
