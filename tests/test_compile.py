"""`training.compile`: the compiled full softmax and hard-negative loss are the eager ones, runs
reproduce, and the softmax modes it does not cover are refused by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from conftest import tiny_config
from sessrec_cli.config import CoreTrmConfig
from sessrec_cli.errors import InputError
from sessrec_cli.models import build_model
from sessrec_cli.models.losses import SoftmaxSpec, catalogue_loss, hard_negative_loss
from sessrec_cli.train.run import seed_everything, start_run
from sessrec_cli.train.stages import STAGES


def _loss_inputs():
    """64 sessions (B, 16) on the unit sphere, a 500-item table and targets, the same every call."""
    generator = torch.Generator().manual_seed(0)
    session = F.normalize(torch.randn(64, 16, generator=generator), dim=-1)
    item_table = torch.randn(500, 16, generator=generator)
    return session, item_table, torch.randint(1, 501, (64,), generator=generator)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_the_compiled_softmax_equals_the_eager_one(label_smoothing):
    session, item_table, targets = _loss_inputs()
    results = []
    for compiled in (False, True):
        s, items = session.clone().requires_grad_(), item_table.clone().requires_grad_()
        # item dropout 0: the two would otherwise draw different dropout masks
        loss = catalogue_loss(s, items, targets, 0.07, 0.0, True, SoftmaxSpec(compiled=compiled), label_smoothing)
        loss.backward()
        results.append((loss.detach(), s.grad, items.grad))
    (eager, *eager_grads), (compiled, *compiled_grads) = results
    assert torch.allclose(compiled, eager, rtol=1e-5)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()))


@pytest.mark.parametrize("weight", [0.0, 0.2])
def test_the_compiled_hard_negative_loss_equals_the_eager_one(weight):
    session, item_table, targets = _loss_inputs()
    results = []
    for compiled in (False, True):
        s, items = session.clone().requires_grad_(), item_table.clone().requires_grad_()
        terms = hard_negative_loss(SoftmaxSpec(compiled=compiled))(s, items, targets, 0.07, 0.0, True, 5, weight, 0.0)
        sum(terms.values()).backward()
        results.append(({name: term.detach() for name, term in terms.items()}, s.grad, items.grad))
    (eager, *eager_grads), (compiled, *compiled_grads) = results
    assert compiled.keys() == eager.keys() == ({"ce", "bpr"} if weight else {"ce"})
    for name in eager:
        assert torch.allclose(compiled[name], eager[name], rtol=1e-5)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()))


def _train(config, run_dir):
    start_run(run_dir, config, "supervised", torch.device("cpu"), ["test"])
    seed_everything(config.seed)
    return STAGES["supervised"](config, run_dir, torch.device("cpu"), Console(quiet=True))


# the enhanced model adds its own terms around the compiled CE; core-dahn compiles the hard-negative loss
@pytest.mark.parametrize("model", ["core-ave", "core-trm-enhanced", "core-dahn"])
def test_a_compiled_run_learns_and_reproduces_with_its_seed(sample_processed, tmp_path, model):
    config = tiny_config(sample_processed, model=model, compile=True)
    first = _train(config, tmp_path / "a")
    second = _train(config, tmp_path / "b")
    assert first["test_metrics"] == second["test_metrics"]
    assert first["test_metrics"]["recall@20"] > 0.2  # chance is 20 / ~300 items


def test_compile_is_refused_where_it_does_not_apply():
    with pytest.raises(InputError, match="compiles the full softmax only; got training.softmax=chunked"):
        build_model(CoreTrmConfig(), n_items=50, max_len=8, softmax=SoftmaxSpec("chunked", compiled=True))
