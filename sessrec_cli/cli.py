"""The `sessrec` command line: thin commands that parse, call one library function, print.

Every bad input raises `InputError`; `main` prints it as one line and exits with code 2.
A training run that fails on its own (a NaN loss) raises `TrainingError`: one line, exit code 1.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from sessrec_cli.errors import InputError, TrainingError

if TYPE_CHECKING:  # imported where used: `sessrec --help` need not load torch
    import torch

    from sessrec_cli.config import ExperimentConfig

app = typer.Typer(
    help="sessrec: session-based and sequential recommendation.\n\n"
    "Example: sessrec preprocess data/sample/raw --name sample && sessrec train configs/core_trm.yaml",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and print configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
# Lines are not broken at 80 columns when the output is a log or a pipe; tables still fit the width.
console = Console(soft_wrap=True)


@app.command()
def preprocess(
    source: Path = typer.Argument(..., help="Raw data: a file or a directory (formats: see --format)."),
    name: str = typer.Option(..., "--name", help="Dataset name; output goes to OUT_ROOT/NAME/processed."),
    fmt: str = typer.Option("auto", "--format", help="auto, csv, srgnn, lessr, s3rec, movielens or recbole."),
    kind: str = typer.Option("session", help="csv only: rows are grouped by 'session' or by 'user'."),
    split: str = typer.Option("auto", help="auto, time, random (8:1:1 by session), loo (leave-one-out) or given."),
    test_days: float = typer.Option(7.0, help="time split: the last N days are the test period."),
    min_item_count: Optional[int] = typer.Option(None, help="Drop items seen fewer times (default 5 for sessions, 0 for users)."),
    min_session_length: int = typer.Option(2, help="Drop shorter sessions."),
    min_user_interactions: int = typer.Option(5, help="loo split: drop users with fewer interactions."),
    valid_fraction: float = typer.Option(0.1, help="time/given split: the last fraction of training sessions validates."),
    delimiter: str = typer.Option(",", help="csv only: field delimiter."),
    entity_col: Optional[str] = typer.Option(None, help="csv only: session/user id column (default session_id or user_id)."),
    item_col: str = typer.Option("item_id", help="csv only: item id column."),
    time_col: str = typer.Option("timestamp", help="csv only: numeric timestamp column."),
    out_root: Path = typer.Option(Path("data"), help="Root of the processed datasets."),
    seed: int = typer.Option(2020, help="Seed of the random split."),
) -> None:
    """Turn raw interactions into train/valid/test sequences under OUT_ROOT/NAME/processed.

    Example: sessrec preprocess ../shared/data/diginetica/srgnn --name diginetica
    """
    started = time.perf_counter()
    from pydantic import ValidationError

    from sessrec_cli.data.preprocess import PreprocessConfig
    from sessrec_cli.data.preprocess import preprocess as run_preprocess
    from sessrec_cli.data.readers import read_source

    if kind not in ("session", "user"):
        raise InputError(f"--kind {kind}: expected session or user")
    try:
        cfg = PreprocessConfig(
            name=name, split=split, test_days=test_days, min_item_count=min_item_count, min_session_length=min_session_length,
            min_user_interactions=min_user_interactions, valid_fraction=valid_fraction, seed=seed,
        )
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']} (got {first['input']!r})") from None
    csv_options = {
        "entity_col": entity_col or ("session_id" if kind == "session" else "user_id"),
        "item_col": item_col, "time_col": time_col, "kind": kind, "delimiter": delimiter,
    }
    raw = read_source(source, fmt, csv_options)
    out_dir = out_root / name / "processed"
    manifest = run_preprocess(raw, cfg, fmt, out_dir, started)
    counts = manifest["counts"]
    console.print(f"[bold]{name}[/]: wrote {out_dir} ({manifest['split']} split)")
    for key, value in counts.items():
        console.print(f"  {key:<20} {value:,}" if isinstance(value, int) else f"  {key:<20} {value}")
    console.print(f"  {manifest['seconds']:.1f} s, peak resident memory {manifest['peak_rss_mib']:,.0f} MiB")


def _apply_shortcuts(overrides: list[str], model: str | None, dataset: str | None, device: str | None, model_values: dict[str, float | None]) -> list[str]:
    """Shortcut options as `--set` overrides, applied before the explicit ones."""
    extra = []
    if model:
        extra.append(f"model={{name: {model}}}")
    if dataset:
        extra.append(f"data.dataset={dataset}")
    if device:
        extra.append(f"training.device={device}")
    extra += [f"model.{key}={value}" for key, value in model_values.items() if value is not None]
    return extra + list(overrides)


def _refuse_config_args_with_resume(given: dict[str, object]) -> None:
    named = [name for name, value in given.items() if value is not None and value != []]  # 0.0 counts as given
    if named:
        raise InputError(f"--resume: the run continues with its own config.yaml; drop {', '.join(named)}")


def _interrupted(run_dir: Path) -> NoReturn:
    """Ctrl-C: what is on disk is the last completed epoch; say how to go on, exit 130."""
    from sessrec_cli.train.checkpoint import LAST

    err_console = Console(stderr=True, soft_wrap=True)
    if (run_dir / LAST).is_file():
        err_console.print(f"interrupted; resume with: sessrec train --resume {escape(str(run_dir))}", highlight=False)
    else:  # a fresh run (a resumed one has last.pt): nothing worth keeping, and a rerun may reuse the directory
        shutil.rmtree(run_dir, ignore_errors=True)
        err_console.print("interrupted before the first epoch completed; nothing to resume", highlight=False)
    raise typer.Exit(130)


@app.command()
def train(
    config_file: Optional[Path] = typer.Argument(None, help="YAML config (model, training, data sections)."),
    stage: Optional[str] = typer.Option(None, help="Stage to run, default supervised (see the list in the help below)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set training.lr=5e-4 (repeatable)."),
    model: Optional[str] = typer.Option(None, help="Model name; replaces the config's model section with that model's defaults."),
    dataset: Optional[str] = typer.Option(None, help="Processed dataset name under data/."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    run_dir: Optional[Path] = typer.Option(None, help="Output directory (default runs/DATASET/MODEL-STAGE-sSEED-TIME)."),
    init_from: Optional[Path] = typer.Option(None, help="Run directory of a previous stage to start from."),
    hard_neg_weight: Optional[float] = typer.Option(None, help="Shortcut for --set model.hard_neg_weight=W (core-hn, core-dahn, core-trm-enhanced)."),
    temperature: Optional[float] = typer.Option(None, help="Shortcut for --set model.temperature=T (CORE's cosine temperature)."),
    item_dropout: Optional[float] = typer.Option(None, help="Shortcut for --set model.item_dropout=P."),
    resume: Optional[Path] = typer.Option(None, help="Continue the interrupted run in this directory from its last.pt, with its config.yaml."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log losses and validation metrics to RUN_DIR/tensorboard."),
    ddp: Optional[int] = typer.Option(
        None, "--ddp", min=1, help="Train with N processes on this machine (DistributedDataParallel via torchrun); training.batch_size is the global batch."
    ),
) -> None:
    """Train a model with a stage, select on validation, and evaluate the best checkpoint on test.

    Every epoch, and every training.checkpoint_minutes inside one, saves RUN_DIR/last.pt: continue
    a killed or interrupted run with --resume RUN_DIR.
    Under torchrun (`torchrun --nproc-per-node N -m sessrec_cli train ...`, which --ddp N runs)
    each process trains on its share of every batch; rank 0 evaluates, writes and prints.

    Example: sessrec train configs/core_trm.yaml --set training.epochs=5 --run-dir runs/quick
    """
    import torch

    from sessrec_cli.config import load_config
    from sessrec_cli.models import check_softmax, softmax_spec
    from sessrec_cli.train import distributed
    from sessrec_cli.train.run import reopen_run, resolve_device
    from sessrec_cli.train.stages import STAGES
    from sessrec_cli.train.tracking import require_tensorboard

    if resume is not None:
        _refuse_config_args_with_resume(
            {"CONFIG_FILE": config_file, "--stage": stage, "--set": overrides, "--model": model, "--dataset": dataset,
             "--device": device, "--run-dir": run_dir, "--init-from": init_from, "--hard-neg-weight": hard_neg_weight,
             "--temperature": temperature, "--item-dropout": item_dropout}
        )
        config, stage = reopen_run(resume)
        target = resume
    else:
        stage = stage or "supervised"
        model_values = {"hard_neg_weight": hard_neg_weight, "temperature": temperature, "item_dropout": item_dropout}
        config = load_config(config_file, _apply_shortcuts(overrides, model, dataset, device, model_values))
        target = run_dir
    if stage not in STAGES:
        raise InputError(f"--stage {stage}: unknown stage; expected one of {', '.join(STAGES)}")
    if init_from is not None and not init_from.is_dir():
        raise InputError(f"--init-from {init_from}: not a run directory")
    if tensorboard:
        require_tensorboard()
    check_softmax(config.model.name, softmax_spec(config.training))
    torch_device = resolve_device(config.training.device)
    if ddp is not None and not distributed.launched():  # checked the input here, once; now train as N processes
        distributed.check_batch_size(config.training.batch_size, ddp)
        if torch_device.type == "cuda" and ddp > torch.cuda.device_count():
            raise InputError(f"--ddp {ddp}: one GPU per process, but {torch.cuda.device_count()} are visible")
        raise typer.Exit(distributed.relaunch(ddp, sys.argv[1:]))
    if distributed.launched():
        torch_device = distributed.join(torch_device)
        console.quiet = not distributed.is_main()
    try:
        _train_run(config, stage, target, torch_device, init_from, resume, tensorboard)
    finally:
        distributed.leave()


def _train_run(
    config: ExperimentConfig,
    stage: str,
    target: Path | None,
    torch_device: torch.device,
    init_from: Path | None,
    resume: Path | None,
    tensorboard: bool,
) -> None:
    """`sessrec train` once its input is checked: in every process under torchrun, where rank 0
    alone writes the run directory and prints."""
    from contextlib import nullcontext

    from sessrec_cli.eval.report import print_report
    from sessrec_cli.train import distributed
    from sessrec_cli.train.run import default_run_dir, note_resume, seed_everything, start_run
    from sessrec_cli.train.stages import STAGES
    from sessrec_cli.train.tracking import tensorboard_logger

    main_process = distributed.is_main()
    if target is None:  # rank 0's clock names the directory, for every rank
        target = distributed.run_on_main(lambda: default_run_dir(config, stage))
    if resume is None:
        distributed.run_on_main(lambda: start_run(target, config, stage, torch_device, sys.argv))
    else:
        distributed.run_on_main(lambda: note_resume(target, sys.argv))
    seed_everything(config.seed)
    console.print(f"run [bold]{target}[/] · {config.model.name} · stage {stage} · seed {config.seed} · {torch_device}")
    tracking = tensorboard_logger(target / "tensorboard") if tensorboard and main_process else nullcontext()
    try:
        with tracking as on_epoch:
            report = STAGES[stage](config, target, torch_device, console, init_from=init_from, resume=resume is not None, on_epoch=on_epoch)
    except InputError:
        if main_process and resume is None and not (target / "metrics.jsonl").exists():  # refused before training: leave nothing behind
            shutil.rmtree(target, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        if not main_process:
            raise typer.Exit(130)
        _interrupted(target)
    if main_process:
        print_report(report, console)
        console.print(f"report: {target / 'report.json'}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `sessrec train`."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (default: the run's config)."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Examples ranked per chunk (metrics do not depend on it)."),
) -> None:
    """Rank the whole catalogue for every test example with the run's best checkpoint.

    Writes RUN_DIR/report.json and RUN_DIR/ranks_test.npy and prints the metrics table.
    Example: sessrec evaluate runs/quick
    """
    from sessrec_cli.config import load_config
    from sessrec_cli.data.sequences import load_dataset
    from sessrec_cli.eval.report import print_report, write_report
    from sessrec_cli.models import build_model
    from sessrec_cli.train.run import resolve_device
    from sessrec_cli.train.trainer import CHECKPOINT, load_checkpoint

    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir}: not a run directory (config.yaml missing)")
    overrides = [f"training.eval_batch_size={batch_size}"] if batch_size else []
    config = load_config(run_dir / "config.yaml", overrides)
    torch_device = resolve_device(device or config.training.device)
    data = load_dataset(config.data.resolved_dir(), config.data.max_len)
    model = build_model(config.model, data.n_items, config.data.max_len).to(torch_device)
    load_checkpoint(run_dir / CHECKPOINT, model, torch_device)
    report = write_report(run_dir, config, data, model, torch_device)
    print_report(report, console)
    console.print(f"report: {run_dir / 'report.json'}")


@app.command()
def compare(
    runs: list[str] = typer.Argument(..., help="Run directories or glob patterns (quoted globs are expanded by sessrec)."),
    k: int = typer.Option(20, min=1, help="Cutoff of the per-example measures in the paired tests (MRR@K, hit@K)."),
    markdown: Optional[Path] = typer.Option(None, help="Also write the tables as Markdown to this file."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Also write the full comparison as JSON to this file."),
    plot: Optional[Path] = typer.Option(None, help="Also draw the mean metrics with std error bars to this PNG."),
    breakdown: bool = typer.Option(
        False, help="Also compare within slices of the test set (input session length; target in the session or new), every group against the first."
    ),
    data: Optional[Path] = typer.Option(None, help="With --breakdown: the runs' processed data (default: the first run's data.processed_dir)."),
) -> None:
    """Group runs that differ only in their seed: mean ± std per metric, paired tests between groups.

    Every pair of groups is tested on the same test examples: paired t-test and Wilcoxon signed-rank test on per-example MRR@K and hit@K. Runs with other test sets are refused.

    Example: sessrec compare "runs/sample/core-*" --markdown compare.md --plot compare.png
    """
    from sessrec_cli.eval.compare import compare_runs, expand_runs, rich_tables, to_markdown
    from sessrec_cli.io import write_json_atomic, write_text_atomic

    result = compare_runs(expand_runs(runs), k, breakdown, data)
    for table in rich_tables(result):
        console.print(table)
    if markdown is not None:
        write_text_atomic(markdown, to_markdown(result))
        console.print(f"markdown: {markdown}")
    if json_file is not None:
        write_json_atomic(json_file, result)
        console.print(f"json: {json_file}")
    if plot is not None:
        from sessrec_cli.eval.plots import compare_bars

        compare_bars(result, plot)
        console.print(f"plot: {plot}")


@app.command()
def plot(run_dir: Path = typer.Argument(..., help="A run directory written by `sessrec train` (finished or not).")) -> None:
    """Draw a run's training curves and its test metrics vs K as PNGs in RUN_DIR/plots/.

    Example: sessrec plot runs/quick
    """
    from sessrec_cli.eval.plots import plot_run

    for path in plot_run(run_dir):
        console.print(f"wrote {path}")


@config_app.command("validate")
def config_validate(config_file: Path = typer.Argument(..., help="YAML config to check.")) -> None:
    """Check a config: unknown keys and bad values fail with the key's name.

    Example: sessrec config validate configs/core_trm.yaml
    """
    from sessrec_cli.config import load_config

    config = load_config(config_file)
    console.print(f"{config_file}: valid ({config.model.name}, dataset {config.data.dataset}, seed {config.seed})")


@config_app.command("show")
def config_show(
    config_file: Optional[Path] = typer.Argument(None, help="YAML config (default: all defaults)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key (repeatable)."),
    model: Optional[str] = typer.Option(None, help="Model name; its section with that model's defaults, as `train --model` uses."),
) -> None:
    """Print the resolved config: the file, overrides applied, every default filled in.

    Example: sessrec config show configs/core_trm.yaml --set training.lr=5e-4
    Example: sessrec config show --model core-trm-enhanced   (every setting of one model)
    """
    from sessrec_cli.config import dump_config, load_config

    typer.echo(dump_config(load_config(config_file, _apply_shortcuts(overrides, model, None, None, {}))), nl=False)


@app.command()
def sample(
    out_dir: Path = typer.Argument(Path("data/sample/raw"), help="Where to write users.csv, items.csv, interactions.csv."),
    seed: int = typer.Option(7, help="Generator seed (the bundled sample uses 7)."),
    rows: Optional[int] = typer.Option(None, min=1, help="Instead: a large session log of exactly N clicks (interactions.csv only)."),
    items: Optional[int] = typer.Option(None, min=4, help="--rows only: catalogue size (default rows/100, at most 1M)."),
) -> None:
    """Regenerate the bundled synthetic sample (items with titles and genres, users, sessions).

    Example: sessrec sample /tmp/sample
    Example: sessrec sample /tmp/big --rows 100000000   (session_id,item_id,timestamp; 2.6 GB)
    """
    from sessrec_cli.data.sample import generate_large, generate_sample

    if rows is None:
        if items is not None:
            raise InputError("--items: only with --rows; the bundled sample has 1,000 items")
        counts = generate_sample(out_dir, seed=seed)
    else:
        started = time.perf_counter()
        counts = generate_large(out_dir / "interactions.csv", rows, seed=seed, n_items=items)
        counts["seconds"] = round(time.perf_counter() - started, 1)
    console.print(f"wrote {out_dir}: {counts}")


def _fail(message: str, code: int = 2) -> NoReturn:
    # Under torchrun every rank meets the same error: rank 0 (or a lone process) reports it.
    if os.environ.get("RANK", "0") == "0":
        # Escaped: a path or value such as "data/[raw]" must print as it is, not as markup.
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    sys.exit(code)


def main() -> None:
    # Not standalone, so that click's usage errors (a bad option value, a missing argument) reach
    # us and are reported like every other bad input, instead of as a multi-line usage panel.
    try:
        code = app(standalone_mode=False)
    except InputError as err:
        _fail(str(err))
    except TrainingError as err:  # the run failed, not its input
        _fail(str(err), code=1)
    except typer.TyperException as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # the help is already printed
            sys.exit(err.exit_code)
        _fail(" ".join(err.format_message().split()))
    if isinstance(code, int):  # an explicit exit, e.g. after --help
        sys.exit(code)
