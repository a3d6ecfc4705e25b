"""Every registered model: shapes, a decreasing loss, and CORE's consistency property."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sessrec_cli.config import (
    CoreAveConfig,
    CoreDaConfig,
    CoreDahnConfig,
    CoreHnConfig,
    CoreTrmConfig,
    CoreTrmContrastiveConfig,
    CoreTrmEnhancedConfig,
)
from sessrec_cli.data.sequences import SequenceData
from sessrec_cli.models import MODELS, build_model
from sessrec_cli.models.layers import TransformerBlock, causal_padding_mask

SMALL = {
    "core-ave": CoreAveConfig(embedding_size=16),
    "core-trm": CoreTrmConfig(embedding_size=16, inner_size=32),
    "core-da": CoreDaConfig(embedding_size=16, inner_size=32),
    "core-hn": CoreHnConfig(embedding_size=16, inner_size=32),
    "core-dahn": CoreDahnConfig(embedding_size=16, inner_size=32),
    # The in-batch term (weight 0.5 by default) rises as CE falls on this duplicate-heavy batch.
    "core-trm-enhanced": CoreTrmEnhancedConfig(embedding_size=16, inner_size=32, hard_neg_weight=0.1),
    "core-trm-contrastive": CoreTrmContrastiveConfig(embedding_size=16, inner_size=32),
}


def _batch(n_items: int = 40, n: int = 64):
    generator = torch.Generator().manual_seed(1)
    sequences = [torch.randint(1, n_items + 1, (int(torch.randint(2, 10, (1,), generator=generator)),), generator=generator).tolist() for _ in range(n)]
    data = SequenceData.from_sequences(sequences, list(range(n)), max_len=8)
    return data.batch(torch.arange(len(data)))


def test_every_registered_model_has_a_small_config():
    assert set(SMALL) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shapes_and_loss_decreases(name):
    torch.manual_seed(0)
    model = build_model(SMALL[name], n_items=40, max_len=8)
    batch = _batch()
    session = model.encode(batch.item_seq)
    assert session.shape == (len(batch.targets), 16)
    assert (session @ model.item_embeddings().T).shape == (len(batch.targets), 40)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        terms = model.loss(batch)
        loss = sum(terms.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0]


def test_core_ave_is_the_normalised_mean_of_item_embeddings():
    torch.manual_seed(0)
    model = build_model(SMALL["core-ave"], n_items=10, max_len=8).eval()
    item_seq = torch.tensor([[3, 5, 0, 0]])
    expected = F.normalize(model.item_embedding.weight[[3, 5]].mean(0), dim=-1)
    assert torch.allclose(model.encode(item_seq)[0], expected, atol=1e-6)


def test_core_trm_session_lies_in_the_span_of_its_items():
    """Representation consistency: h_s is a convex combination of the session's item embeddings."""
    torch.manual_seed(0)
    model = build_model(SMALL["core-trm"], n_items=10, max_len=8).eval()
    items = [2, 7, 9]
    session = model.encode(torch.tensor([items + [0]]))[0]
    basis = model.item_embedding.weight[items].detach()  # (3, d)
    coefficients = torch.linalg.lstsq(basis.T, session.detach().unsqueeze(1)).solution
    assert torch.allclose(basis.T @ coefficients, session.detach().unsqueeze(1), atol=1e-5)
    assert (coefficients > 0).all()


def test_packed_block_equals_the_padded_computation():
    """The block runs its dense layers on real tokens only; padded positions must not matter."""
    torch.manual_seed(0)
    block = TransformerBlock(hidden_size=8, n_heads=2, inner_size=16, hidden_dropout=0.0, attn_dropout=0.0, layer_norm_eps=1e-12).eval()
    item_seq = torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0]])
    real = item_seq > 0
    x = torch.randn(2, 4, 8)
    packed = block(x[real], real, causal_padding_mask(item_seq))
    # Reference: every position computed densely, then read at the real ones.
    B, L, D = x.shape
    q, k, v = block.qkv(x).view(B, L, 3, 2, D // 2).permute(2, 0, 3, 1, 4)
    attended = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_padding_mask(item_seq)).transpose(1, 2).reshape(B, L, D)
    hidden = block.attn_norm(x + block.attn_out(attended))
    dense = block.ff_norm(hidden + block.ff_out(F.gelu(block.ff_in(hidden))))
    assert torch.allclose(packed, dense[real], atol=1e-6)
