"""Stage registry: `sessrec train --stage NAME` looks NAME up here and calls the function.

A stage builds its model (optionally from a previous stage's checkpoint), decides which
parameters train and which loss terms count, and calls the shared trainer, passing on
`resume` and `on_epoch`. Adding a stage means adding a function and one line to `STAGES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from rich.console import Console

from sessrec_cli.config import ExperimentConfig
from sessrec_cli.data.sequences import load_dataset
from sessrec_cli.eval.report import write_report
from sessrec_cli.models import build_model, softmax_spec
from sessrec_cli.train import distributed
from sessrec_cli.train.run import pin_data
from sessrec_cli.train.trainer import CHECKPOINT, fit, load_checkpoint


def supervised(
    config: ExperimentConfig,
    run_dir: Path,
    device: torch.device,
    console: Console,
    init_from: Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train the configured model on next-item prediction, select on validation, test once.

    Under torchrun every rank trains; rank 0 alone tests and returns the report (others: {}).
    """
    data = load_dataset(config.data.resolved_dir(), config.data.max_len)
    console.print(
        f"data {data.directory}: {len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test examples, {data.n_items:,} items"
    )
    distributed.run_on_main(lambda: pin_data(run_dir, data))
    model = build_model(config.model, data.n_items, config.data.max_len, softmax_spec(config.training))
    if init_from is not None:
        load_checkpoint(init_from / CHECKPOINT, model, device)
    fit(model, data, config, run_dir, device, console, resume=resume, on_epoch=on_epoch)
    if not distributed.is_main():
        return {}
    load_checkpoint(run_dir / CHECKPOINT, model, device)  # test the model chosen on validation
    return write_report(run_dir, config, data, model, device)


Stage = Callable[..., dict]

STAGES: dict[str, Stage] = {
    "supervised": supervised,
}
