"""The CORE-family extensions (Smadja & Mizikov and the Enhanced CORE guide): training, the named losses on hand-sized
tensors, the hard-negative stop-gradient, the gates, and reductions to CORE-trm when a part is off."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sessrec_cli.config import build_config
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.errors import InputError
from sessrec_cli.models import build_model
from sessrec_cli.models.core_trm_contrastive import mask_items
from sessrec_cli.models.layers import RelativePositionBias, causal_padding_mask, contextualise
from sessrec_cli.models.losses import (
    ce_with_hard_negatives,
    full_cross_entropy,
    hard_negative_bpr,
    hard_negatives,
    in_batch_negative_logsumexp,
    info_nce,
)

N_ITEMS, MAX_LEN, DIM = 30, 8, 16
TERMS = {
    "core-da": {"ce"},
    "core-hn": {"ce", "bpr"},
    "core-dahn": {"ce", "bpr"},
    "core-trm-enhanced": {"ce", "in_batch_neg"},
    "core-trm-contrastive": {"ce", "info_nce"},
}


def _model(name: str, **overrides):
    config = build_config({"model": {"name": name, "embedding_size": DIM, "inner_size": 32, **overrides}}).model
    return build_model(config, n_items=N_ITEMS, max_len=MAX_LEN)


def _batch(n_sequences: int = 12):
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(2, 9, (n_sequences,), generator=generator).tolist()
    sequences = [torch.randint(1, N_ITEMS + 1, (length,), generator=generator).tolist() for length in lengths]
    data = SequenceData.from_sequences(sequences, list(range(n_sequences)), max_len=MAX_LEN)
    return data.batch(torch.arange(len(data)))


# --- every new model ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TERMS))
def test_trains_with_its_named_terms(name):
    torch.manual_seed(0)
    model = _model(name)
    batch = _batch()
    B = len(batch.targets)
    assert model.encode(batch.item_seq).shape == (B, DIM)
    assert (model.encode(batch.item_seq) @ model.item_embeddings().T).shape == (B, N_ITEMS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(15):
        terms = model.loss(batch)
        assert set(terms) == TERMS[name]
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
        history.append({key: float(value.detach()) for key, value in terms.items()})
    assert all(math.isfinite(value) for step in history for value in step.values())
    assert history[-1]["ce"] < 0.8 * history[0]["ce"]
    assert sum(history[-1].values()) < sum(history[0].values())


@pytest.mark.parametrize("name", ["core-da", "core-trm-enhanced"])
def test_session_is_a_positive_combination_of_its_items(name):
    """Representation consistency survives dual attention, the gates and the residual."""
    torch.manual_seed(0)
    model = _model(name).eval()
    items = [2, 7, 9]
    session = model.encode(torch.tensor([items + [0]]))[0].detach()
    basis = model.item_embedding.weight[items].detach()  # (3, d)
    coefficients = torch.linalg.lstsq(basis.T, session.unsqueeze(1)).solution
    assert torch.allclose(basis.T @ coefficients, session.unsqueeze(1), atol=1e-5)
    assert (coefficients > 0).all()


@pytest.mark.parametrize("name", ["core-da", "core-dahn", "core-trm-enhanced"])
def test_each_session_is_encoded_independently_of_the_batch(name):
    """Packed tokens are indexed back to their sessions (e.g. f_last); padding and neighbours don't leak."""
    torch.manual_seed(0)
    model = _model(name, relative_position_bias=True).eval()
    # CORE's small uniform init leaves the output barely sensitive to the attention branches.
    for weight in model.parameters():
        torch.nn.init.normal_(weight)
    batch = _batch(4)
    together = model.encode(batch.item_seq)
    for index, (row, length) in enumerate(zip(batch.item_seq, batch.lengths)):
        alone = model.encode(row[:length].unsqueeze(0))[0]
        assert torch.allclose(together[index], alone, atol=1e-5)


# --- hard negatives (Smadja & Mizikov §4.1.2) --------------------------------------------------------


def test_hard_negatives_never_select_the_target_even_when_it_scores_highest():
    logits = torch.tensor([[9.0, 1.0, 5.0, 3.0, 7.0], [0.0, 2.0, 1.0, 8.0, 4.0]], requires_grad=True)
    targets = torch.tensor([1, 4])  # item ids: columns 0 and 3, each the row's top score
    chosen = hard_negatives(logits, targets, k=2)
    assert chosen.tolist() == [[4, 2], [4, 1]]
    assert not chosen.requires_grad
    every_other = hard_negatives(logits, targets, k=4)
    assert not (every_other == (targets - 1).unsqueeze(1)).any()


def test_hard_negative_bpr_matches_the_formula_by_hand():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    loss = hard_negative_bpr(logits, torch.tensor([1]), k=2)  # positive 3; negatives 2 and 1
    expected = (math.log1p(math.exp(2 - 3)) + math.log1p(math.exp(1 - 3))) / 2
    assert loss.item() == pytest.approx(expected)


def test_no_gradient_flows_through_the_selection():
    """The gradient equals that of the same BPR with the indices fixed in advance."""
    torch.manual_seed(0)
    logits = torch.randn(4, 10, requires_grad=True)
    targets = torch.tensor([1, 5, 10, 3])
    hard_negative_bpr(logits, targets, k=3).backward()
    fixed = hard_negatives(logits.detach(), targets, k=3)
    reference = logits.detach().clone().requires_grad_(True)
    positive = reference.gather(1, (targets - 1).unsqueeze(1))
    F.softplus(reference.gather(1, fixed) - positive).mean().backward()
    assert torch.allclose(logits.grad, reference.grad)
    # Only the target and the chosen columns receive gradient.
    touched = logits.grad != 0
    expected = torch.zeros_like(touched).scatter(1, fixed, True).scatter(1, (targets - 1).unsqueeze(1), True)
    assert torch.equal(touched, expected)


def test_hybrid_objective_weights_its_terms():
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 12), torch.tensor([1, 2, 3, 4, 12])
    terms = ce_with_hard_negatives(logits, targets, k=3, weight=0.2)
    assert terms["ce"].item() == pytest.approx(0.8 * full_cross_entropy(logits, targets).item())
    assert terms["bpr"].item() == pytest.approx(0.2 * hard_negative_bpr(logits, targets, 3).item())
    assert set(ce_with_hard_negatives(logits, targets, k=3, weight=0.0)) == {"ce"}


def test_hard_neg_k_must_leave_room_for_the_target():
    with pytest.raises(ValueError, match="hard_neg_k"):
        _model("core-hn", hard_neg_k=N_ITEMS)


# --- reductions to CORE-trm --------------------------------------------------------------------


@pytest.mark.parametrize("name, off", [("core-hn", {"hard_neg_weight": 0.0}), ("core-trm-contrastive", {"cl_weight": 0.0})])
def test_switched_off_objective_is_core_trm(name, off):
    """Same seed, same weights: the extra term off leaves CORE-trm's loss, and encode is CORE-trm's."""
    torch.manual_seed(0)
    core_trm = _model("core-trm")
    torch.manual_seed(0)
    model = _model(name, **off)
    assert all(torch.equal(value, model.encoder.state_dict()[key]) for key, value in core_trm.state_dict().items())
    batch = _batch()
    torch.manual_seed(1)
    expected = core_trm.loss(batch)
    torch.manual_seed(1)
    terms = model.loss(batch)
    assert set(terms) == {"ce"} and torch.equal(terms["ce"], expected["ce"])
    core_trm.eval(), model.eval()
    assert torch.equal(model.encode(batch.item_seq), core_trm.encode(batch.item_seq))


# --- dual attention (Smadja & Mizikov §4.1.1) -----------------------------------------------------------


def test_dual_attention_gate_weights_are_a_distribution():
    torch.manual_seed(0)
    model = _model("core-da")
    weights = model.fusion_weights(torch.randn(6, DIM), torch.randn(6, DIM))
    assert weights.shape == (6, 2)
    assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(6))
    fixed = _model("core-da", gate=False)
    assert fixed.fusion_gate is None
    assert torch.equal(fixed.fusion_weights(torch.randn(3, DIM), torch.randn(3, DIM)), torch.full((3, 2), 0.5))


@pytest.mark.parametrize("gate, ave_residual", [(True, True), (False, True), (True, False), (False, False)])
def test_a_one_item_session_is_that_item(gate, ave_residual):
    """Both attentions, any gate and the residual all put their whole weight on the only item."""
    torch.manual_seed(0)
    model = _model("core-da", gate=gate, ave_residual=ave_residual).eval()
    session = model.encode(torch.tensor([[4, 0, 0]]))[0]
    assert torch.allclose(session, F.normalize(model.item_embedding.weight[4], dim=0), atol=1e-6)


# --- enhanced (the Enhanced CORE guide §§1-3) ------------------------------------------------------------------


def test_in_batch_negative_logsumexp_by_hand():
    sessions = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=-1)
    tau = 0.5
    c = 1 / math.sqrt(2)
    rows = [math.log(math.exp(c / tau) + math.exp(0.0)), math.log(2 * math.exp(c / tau)), math.log(math.exp(0.0) + math.exp(c / tau))]
    assert in_batch_negative_logsumexp(sessions, tau).item() == pytest.approx(sum(rows) / 3)
    assert in_batch_negative_logsumexp(sessions[:1], tau).item() == 0.0  # one session: no negatives


def test_in_batch_negatives_exclude_sessions_with_the_same_target():
    sessions = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=-1).requires_grad_()
    tau = 0.5
    c = 1 / math.sqrt(2)
    # sessions 0 and 1 share target 7: row 0 keeps only session 2, row 1 only session 2, row 2 both.
    rows = [math.log(math.exp(0.0)), math.log(math.exp(c / tau)), math.log(math.exp(0.0) + math.exp(c / tau))]
    loss = in_batch_negative_logsumexp(sessions, tau, torch.tensor([7, 7, 3]))
    assert loss.item() == pytest.approx(sum(rows) / 3)
    # distinct targets exclude nothing beyond the diagonal
    assert in_batch_negative_logsumexp(sessions, tau, torch.tensor([1, 2, 3])).item() == pytest.approx(in_batch_negative_logsumexp(sessions, tau).item())
    # rows left without a negative are averaged out, with finite gradients
    loss = in_batch_negative_logsumexp(sessions, tau, torch.tensor([7, 7, 7]))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(sessions.grad).all()
    sessions.grad = None
    loss = in_batch_negative_logsumexp(sessions, tau, torch.tensor([7, 7, 3]))
    loss.backward()
    assert torch.isfinite(sessions.grad).all()


def test_enhanced_exclude_same_target_reaches_the_in_batch_term():
    batch = _batch()
    shared = dataclasses.replace(batch, targets=torch.full_like(batch.targets, 5))  # every session wants item 5
    torch.manual_seed(0)
    plain = _model("core-trm-enhanced").eval()
    torch.manual_seed(0)
    excluding = _model("core-trm-enhanced", exclude_same_target=True).eval()
    assert plain.loss(shared)["in_batch_neg"].item() > 0
    assert excluding.loss(shared)["in_batch_neg"].item() == 0.0  # no session is left a negative
    distinct = _batch(n_sequences=4)  # fewer examples than items, so every target can differ
    distinct = dataclasses.replace(distinct, targets=torch.arange(1, len(distinct.targets) + 1))
    assert excluding.loss(distinct)["in_batch_neg"].item() == pytest.approx(plain.loss(distinct)["in_batch_neg"].item())


def test_one_layer_aggregation_is_the_last_layer():
    """softmax over a single layer weight is 1: aggregation of one layer changes nothing."""
    torch.manual_seed(0)
    aggregated = _model("core-trm-enhanced", n_layers=1).eval()
    torch.manual_seed(0)
    last = _model("core-trm-enhanced", n_layers=1, layer_aggregation=False).eval()
    assert last.layer_weights is None
    batch = _batch(4)
    assert torch.equal(aggregated.encode(batch.item_seq), last.encode(batch.item_seq))


def test_enhanced_switches_remove_their_parts():
    torch.manual_seed(0)
    plain = _model("core-trm-enhanced", gate=False, hard_neg_weight=0.0)
    assert plain.session_gate is None
    assert set(plain.loss(_batch(4))) == {"ce"}
    assert torch.equal(_model("core-trm-enhanced").layer_weights.detach(), torch.ones(2))  # the Enhanced CORE guide: init ones


# --- contrastive (the Enhanced CORE guide §4) ------------------------------------------------------------------


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    tau = 0.5
    c = 1 / math.sqrt(2)
    # cosine matrix S = [[c, 0], [c, 1]]; rows of S for a -> b, columns for b -> a.
    a_to_b = [-math.log(math.exp(c / tau) / (math.exp(c / tau) + 1)), -math.log(math.exp(1 / tau) / (math.exp(c / tau) + math.exp(1 / tau)))]
    b_to_a = [-math.log(math.exp(c / tau) / (math.exp(c / tau) + math.exp(c / tau))), -math.log(math.exp(1 / tau) / (1 + math.exp(1 / tau)))]
    expected = 0.5 * (sum(a_to_b) / 2 + sum(b_to_a) / 2)
    assert info_nce(a, b, tau).item() == pytest.approx(expected, rel=1e-5)


def test_masked_views_keep_the_last_item_and_stay_left_aligned():
    item_seq = torch.tensor([[5, 6, 7, 8], [3, 4, 0, 0], [9, 0, 0, 0]])
    assert torch.equal(mask_items(item_seq, 0.0), item_seq)
    assert mask_items(item_seq, 1.0).tolist() == [[8, 0, 0, 0], [4, 0, 0, 0], [9, 0, 0, 0]]
    torch.manual_seed(0)
    for _ in range(20):
        view = mask_items(item_seq, 0.5)
        for original, masked in zip(item_seq.tolist(), view.tolist()):
            kept = [item for item in masked if item]
            assert masked[: len(kept)] == kept  # survivors first, then padding
            assert kept[-1] == [item for item in original if item][-1]
            survivors = iter(original)
            assert all(item in survivors for item in kept)  # an ordered subsequence


# --- relative position bias (the Enhanced CORE guide, future work) ---------------------------------------------


def test_relative_position_bias_reads_the_distance_per_head():
    bias = RelativePositionBias(max_len=4, n_heads=2)
    with torch.no_grad():
        bias.bias.weight.copy_(torch.arange(8.0).view(4, 2))  # entry (distance, head) = 2·distance + head
    mask = causal_padding_mask(torch.tensor([[1, 2, 3, 0]]))
    scores = bias(mask)  # (1, 2, 4, 4)
    assert scores.shape == (1, 2, 4, 4)
    assert scores[0, 1, 2, 0].item() == 5.0  # distance 2, head 1
    assert torch.isinf(scores[0, :, 0, 1]).all() and torch.isinf(scores[0, :, 3, 3]).all()  # future, padding


def test_a_zero_relative_bias_changes_nothing():
    torch.manual_seed(0)
    with_bias = _model("core-da", relative_position_bias=True).eval()
    torch.nn.init.zeros_(with_bias.relative_bias.bias.weight)
    without = _model("core-da").eval()
    without.load_state_dict({key: value for key, value in with_bias.state_dict().items() if not key.startswith("relative_bias.")})
    batch = _batch(4)
    assert torch.allclose(with_bias.encode(batch.item_seq), without.encode(batch.item_seq), atol=1e-6)
    # A large bias at distance 0 makes every token attend to itself only: the tokens change.
    with torch.no_grad():
        with_bias.relative_bias.bias.weight[0] = 50.0
    x = with_bias.item_embedding(batch.item_seq)
    modules = (with_bias.position_embedding, with_bias.input_norm, with_bias.input_dropout, with_bias.blocks)
    biased = contextualise(x, batch.item_seq, *modules, with_bias.relative_bias)[-1]
    plain = contextualise(x, batch.item_seq, *modules)[-1]
    assert (biased - plain).abs().max() > 1e-3


# --- configs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TERMS))
def test_config_errors_name_the_key_without_the_model_tag(name):
    with pytest.raises(InputError, match=r"config: model\.embedding_sise: unknown key"):
        build_config({"model": {"name": name, "embedding_sise": 8}})
