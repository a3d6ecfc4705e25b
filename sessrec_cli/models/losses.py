"""Loss functions, each a named function with its formula, tested on small tensors."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SoftmaxSpec:
    """How a model's training cross-entropy normalises over the catalogue (`training.softmax`).

    `full` materialises the (B, n_items) logits; `chunked` gives the same loss and gradients
    with at most (B, chunk_size) logits alive at a time; `sampled` is a training approximation
    over `negatives` sampled items. Evaluation always ranks the full catalogue.

    It reaches a model as a constructor argument (from `build_model`, which the stage calls
    with the run's training config), not through the model config: how the softmax is computed
    is a training setting, and the same weights result from `full` and `chunked`.
    """

    mode: Literal["full", "chunked", "sampled"] = "full"
    chunk_size: int = 65536
    negatives: int = 8192
    compiled: bool = False  # run the full softmax through torch.compile (`training.compile`)


FULL_SOFTMAX = SoftmaxSpec()


def rdm_items(item_table: torch.Tensor, item_dropout: float, training: bool) -> torch.Tensor:
    """CORE's robust distance measuring on the item side: normalise(dropout(h_v)) for every item.

    `item_table` (n_items, d) holds items 1..n. Dropout on the item embeddings before
    normalising (CORE §3.3) regularises the consistent space; at evaluation it is off.
    """
    return F.normalize(F.dropout(item_table, item_dropout, training), dim=-1)


def rdm_logits(session: torch.Tensor, item_table: torch.Tensor, temperature: float, item_dropout: float, training: bool) -> torch.Tensor:
    """CORE's robust distance measuring: cos(h_s, dropout(h_v)) / tau for every item v.

    `session` (B, d) is already l2-normalised; see `rdm_items` for the item side.
    """
    # Scaling the (B, d) sessions instead of the (B, n_items) logits saves two passes over the
    # logits (the division and its backward); it is the costliest elementwise work of a step.
    return (session / temperature) @ rdm_items(item_table, item_dropout, training).T  # (B, n_items)


def catalogue_loss(
    session: torch.Tensor,
    item_table: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    item_dropout: float,
    training: bool,
    softmax: SoftmaxSpec,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """CORE's cross-entropy (Eq. 5) over the RDM logits, normalised as `softmax` says.

    The item table is dropped out and normalised once per call, so every chunk (or every
    sampled negative) sees the same item embeddings, as the full logits do.
    """
    if softmax.mode == "full":
        loss = _compiled_rdm_cross_entropy() if softmax.compiled else rdm_cross_entropy
        return loss(session, item_table, targets, temperature, item_dropout, training, label_smoothing)
    items = rdm_items(item_table, item_dropout, training)  # (n_items, d)
    if softmax.mode == "chunked":
        return chunked_cross_entropy(session, items, targets, temperature, softmax.chunk_size, label_smoothing)
    return sampled_cross_entropy(session, items, targets, temperature, softmax.negatives, label_smoothing)


def rdm_cross_entropy(
    session: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor, temperature: float, item_dropout: float, training: bool, label_smoothing: float
) -> torch.Tensor:
    """The full-softmax case of `catalogue_loss` as one function of tensors, for torch.compile."""
    return full_cross_entropy(rdm_logits(session, item_table, temperature, item_dropout, training), targets, label_smoothing)


@functools.cache
def _compiled_rdm_cross_entropy() -> Callable[..., torch.Tensor]:
    """`rdm_cross_entropy` compiled once per process, on first use.

    Compiling fuses the elementwise passes over the (B, n_items) logits (softmax, its backward,
    the item dropout and normalisation) that eager mode runs one by one; on CPU they cost as
    much as the logits matmul. Static shapes: the short last batch of an epoch compiles once more.
    """
    return torch.compile(rdm_cross_entropy, dynamic=False)


def full_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """-log softmax(logits)[target], averaged; `targets` are item ids 1..n, column t-1 of `logits`.

    With label smoothing eps the target distribution is (1 - eps)·onehot + eps/n_items
    (the Enhanced CORE guide, future work 9); eps = 0 is the plain cross-entropy of CORE Eq. 5.
    """
    return F.cross_entropy(logits, targets - 1, label_smoothing=label_smoothing)


def _cross_entropy_from_logsumexp(
    log_partition: torch.Tensor, session: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, temperature: float, label_smoothing: float
) -> torch.Tensor:
    """The mean of lse - (1 - eps)·z_t - eps·mean_v z_v, which is `full_cross_entropy` written
    with the log-partition lse = log sum_v exp(z_v); mean_v z_v = h_s . mean_v(h_v) / tau costs
    one d-vector, so label smoothing needs no (B, n_items) logits either."""
    target_logits = (session * items[targets - 1]).sum(-1) / temperature  # (B,)
    loss = log_partition - (1 - label_smoothing) * target_logits
    if label_smoothing > 0:
        loss = loss - label_smoothing * (session @ items.mean(0)) / temperature
    return loss.mean()


class _ChunkedLogSumExp(torch.autograd.Function):
    """log sum_v exp(h_s . h_v / tau) for each row of `session`, one chunk of items at a time.

    Forward keeps only the (B,) result. Backward recomputes each chunk's logits to form its
    softmax block, so at most one (B, chunk) block is alive in either pass; autograd through a
    loop (or `torch.utils.checkpoint` per chunk) would instead keep every block for backward,
    or add a full-size gradient of the item table per chunk. Computed in float32 under
    autocast too: a bfloat16 partition sum over a large catalogue loses the target's share.
    """

    @staticmethod
    def forward(ctx, session: torch.Tensor, items: torch.Tensor, temperature: float, chunk_size: int) -> torch.Tensor:
        ctx.dtypes = session.dtype, items.dtype
        with torch.autocast(session.device.type, enabled=False):
            session, items = session.float(), items.float()
            log_partition = session.new_full((len(session),), float("-inf"))
            for start in range(0, len(items), chunk_size):
                logits = session @ items[start : start + chunk_size].T / temperature  # (B, chunk)
                log_partition = torch.logaddexp(log_partition, torch.logsumexp(logits, dim=1))
        ctx.save_for_backward(session, items, log_partition)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return log_partition

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        session, items, log_partition = ctx.saved_tensors
        temperature, chunk_size = ctx.temperature, ctx.chunk_size
        grad_session = torch.zeros_like(session)
        grad_items = torch.empty_like(items) if ctx.needs_input_grad[1] else None
        with torch.autocast(session.device.type, enabled=False):
            # d lse / d (h_s . h_v) = softmax_v / tau, scaled by the incoming gradient of each row.
            row_scale = (grad_output.float() / temperature).unsqueeze(1)  # (B, 1)
            for start in range(0, len(items), chunk_size):
                chunk = items[start : start + chunk_size]
                weights = (session @ chunk.T / temperature).sub_(log_partition.unsqueeze(1)).exp_().mul_(row_scale)  # (B, chunk)
                grad_session += weights @ chunk
                if grad_items is not None:
                    grad_items[start : start + chunk_size] = weights.T @ session
        session_dtype, items_dtype = ctx.dtypes
        return grad_session.to(session_dtype), None if grad_items is None else grad_items.to(items_dtype), None, None


def chunked_cross_entropy(
    session: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, temperature: float, chunk_size: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Exactly `full_cross_entropy(session @ items.T / temperature, targets, label_smoothing)`,
    values and gradients, in memory bounded by (B, chunk_size) logits instead of (B, n_items).

    `items` (n_items, d) are the decoding embeddings (already dropped out and normalised).
    """
    log_partition = _ChunkedLogSumExp.apply(session, items, temperature, chunk_size)  # (B,)
    return _cross_entropy_from_logsumexp(log_partition, session, items, targets, temperature, label_smoothing)


def sampled_cross_entropy(
    session: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, temperature: float, n_negatives: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Sampled softmax with logQ correction (Bengio and Senécal 2008; Jean et al., ACL 2015):
    a training approximation of `full_cross_entropy` that replaces the partition sum with

        Z ≈ exp(z_t) + sum_{j=1..S} exp(z_{v_j} - log(S·Q(v_j))),   v_j ~ Q uniform (Q = 1/n),

    an importance-sampling estimate of the sum over the other items; the target is always
    included, and a negative that is a row's own target (an accidental hit) is masked out.
    The S negatives are drawn with replacement once per step, shared by the whole batch, on
    the items' device from torch's global generator, which the run seeds and checkpoints.
    """
    n_items = len(items)
    negatives = torch.randint(n_items, (n_negatives,), device=items.device)  # (S,) columns, i.e. item ids - 1
    target_logits = (session * items[targets - 1]).sum(-1, keepdim=True) / temperature  # (B, 1)
    negative_logits = session @ items[negatives].T / temperature - math.log(n_negatives / n_items)  # (B, S), corrected
    accidental_hits = negatives.unsqueeze(0) == (targets - 1).unsqueeze(1)  # (B, S)
    negative_logits = negative_logits.masked_fill(accidental_hits, float("-inf"))
    log_partition = torch.logsumexp(torch.cat([target_logits, negative_logits], dim=1), dim=1)  # (B,)
    return _cross_entropy_from_logsumexp(log_partition, session, items, targets, temperature, label_smoothing)


def hard_negatives(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) columns of the k highest-scoring items other than the target (Smadja & Mizikov Eq. 13).

    The selection is a stop-gradient: it reads detached logits, so the indices carry no graph.
    """
    target_column = (targets - 1).unsqueeze(1)  # (B, 1)
    candidates = logits.detach().scatter(1, target_column, float("-inf"))
    return candidates.topk(k, dim=1).indices


def hard_negative_bpr(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """BPR over the top-k hard negatives (Smadja & Mizikov Eq. 14), averaged over the batch:

        L_BPR = 1/K · sum_{v- in N_K(s)} log(1 + exp(z(v-|s) - z(v+|s))),

    with N_K(s) from `hard_negatives`; gradients flow through the gathered logits only.
    """
    positive = logits.gather(1, (targets - 1).unsqueeze(1))  # (B, 1)
    negative = logits.gather(1, hard_negatives(logits, targets, k))  # (B, k)
    return F.softplus(negative - positive).mean()


def ce_with_hard_negatives(
    logits: torch.Tensor, targets: torch.Tensor, k: int, weight: float, label_smoothing: float = 0.0
) -> dict[str, torch.Tensor]:
    """Smadja & Mizikov Algorithm 1: L = (1 - lambda)·L_CE + lambda·L_BPR, as named, weighted terms.

    With lambda = 0 no negatives are mined and the single term is the plain cross-entropy.
    """
    terms = {"ce": (1 - weight) * full_cross_entropy(logits, targets, label_smoothing)}
    if weight > 0:
        terms["bpr"] = weight * hard_negative_bpr(logits, targets, k)
    return terms


def rdm_ce_with_hard_negatives(
    session: torch.Tensor,
    item_table: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    item_dropout: float,
    training: bool,
    k: int,
    weight: float,
    label_smoothing: float,
) -> dict[str, torch.Tensor]:
    """`ce_with_hard_negatives` over the RDM logits (Eq. 11) as one function of tensors, for torch.compile."""
    return ce_with_hard_negatives(rdm_logits(session, item_table, temperature, item_dropout, training), targets, k, weight, label_smoothing)


@functools.cache
def _compiled_rdm_ce_with_hard_negatives() -> Callable[..., dict[str, torch.Tensor]]:
    """`rdm_ce_with_hard_negatives` compiled once per process, on first use: besides the softmax's
    passes, mining copies and ranks the (B, n_items) logits, which eager mode also runs pass by pass."""
    return torch.compile(rdm_ce_with_hard_negatives, dynamic=False)


def hard_negative_loss(softmax: SoftmaxSpec) -> Callable[..., dict[str, torch.Tensor]]:
    """`rdm_ce_with_hard_negatives`, compiled where `softmax` says; its mode is always `full`
    (`check_softmax` refuses the others for the hard-negative models)."""
    return _compiled_rdm_ce_with_hard_negatives() if softmax.compiled else rdm_ce_with_hard_negatives


def in_batch_negative_logsumexp(sessions: torch.Tensor, temperature: float, targets: torch.Tensor | None = None) -> torch.Tensor:
    """The Enhanced CORE guide §3: push each session away from the other sessions of the batch,

        L = 1/B · sum_i log sum_{j != i} exp(s_i . s_j / tau).

    `sessions` (B, d) are l2-normalised. The Enhanced CORE guide's snippet writes logsumexp over the whole
    row but calls its entries "negative sessions"; a session is not its own negative (and on
    the unit sphere its self-similarity is the constant 1/tau), so the diagonal is excluded.
    Given `targets` (B,), sessions sharing i's target are excluded too: they want the same next
    item, so pushing them apart is a false negative (59% of YOOCHOOSE 1/64's examples in a batch of
    2048). The average then runs over the rows left with a negative; none left (or a batch of
    one) gives 0.
    """
    if len(sessions) < 2:
        return sessions.new_zeros(())
    similarity = sessions @ sessions.T / temperature  # (B, B)
    excluded = torch.eye(len(sessions), dtype=torch.bool, device=sessions.device)
    if targets is None:  # the guide's term as it always was, so earlier runs reproduce to the last bit
        return torch.logsumexp(similarity.masked_fill(excluded, float("-inf")), dim=1).mean()
    excluded = excluded | (targets[:, None] == targets[None, :])
    has_negative = ~excluded.all(dim=1)  # (B,)
    # A row without negatives is zero-filled (finite, so no NaN gradient) and weighted out.
    similarity = similarity.masked_fill(excluded, float("-inf")).masked_fill(~has_negative[:, None], 0.0)
    return (torch.logsumexp(similarity, dim=1) * has_negative).sum() / has_negative.sum().clamp(min=1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views (B, d) of the same B examples (CL4SRec-style):

        L = 1/2 · [CE(A B^T / tau, I) + CE(B A^T / tau, I)],   A, B = rows l2-normalised,

    i.e. row i of each view must pick row i of the other among the batch.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature  # (B, B)
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
