"""Bad input through the real `sessrec` entry point.

Every case must end with exit code 2, exactly one line on stderr that names the culprit (file,
line, field or option), and no partial output: no processed directory or `*.partial` staging
directory after `preprocess`, no run directory after a refused `train`, no report after a
refused `evaluate`.
"""

from __future__ import annotations

import collections
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import SAMPLE_RAW

NAME = "bad"  # the dataset name every preprocess case writes to
HEADER = "session_id,user_id,item_id,timestamp\n"
DAY = 86_400


@pytest.fixture(scope="session")
def tiny_run(sample_processed, tmp_path_factory) -> Path:
    """A CORE-ave run directory from one tiny epoch of `sessrec train`, shared by the evaluate cases."""
    from sessrec_cli.cli import app

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    result = CliRunner().invoke(
        app,
        [
            "train", "--model", "core-ave", "--device", "cpu", "--run-dir", str(run_dir),
            "--set", f"data.processed_dir={sample_processed}", "--set", "training.epochs=1",
            "--set", "model.embedding_size=16", "--set", "training.batch_size=512",
        ],
    )
    assert result.exit_code == 0, result.output
    return run_dir


@dataclass
class Workspace:
    """Where a case writes its inputs and where the command under test would write its output."""

    tmp: Path
    request: pytest.FixtureRequest

    @property
    def out_root(self) -> Path:
        return self.tmp / "out"

    @property
    def run_dir(self) -> Path:
        return self.tmp / "run"

    # Fixtures are fetched on demand so that preprocess cases never pay for training.
    def processed(self) -> Path:
        return self.request.getfixturevalue("sample_processed")

    def trained(self) -> Path:
        return self.request.getfixturevalue("tiny_run")

    def write(self, relative: str, content: str | bytes) -> Path:
        path = self.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def preprocess(self, source: Path, *options: object) -> list[object]:
        return ["preprocess", source, "--name", NAME, "--out-root", self.out_root, *options]

    def train(self, *args: object) -> list[object]:
        return ["train", *args, "--run-dir", self.run_dir]

    def processed_copy(self) -> Path:
        """A private copy of the sample's processed dataset, for cases that damage one file."""
        return Path(shutil.copytree(self.processed(), self.tmp / "processed"))

    def run_copy(self) -> Path:
        """A private copy of the tiny run without its report, so a report written now would show."""
        return Path(shutil.copytree(self.trained(), self.run_dir, ignore=shutil.ignore_patterns("report.json", "ranks_test.npy")))

    def assert_nothing_left(self, command: str, args: list[object]) -> None:
        if command == "preprocess":
            dataset = self.out_root / NAME
            assert not (dataset / "processed").exists()
            assert not list(dataset.glob("*.partial"))  # staging directories are hidden; pathlib's glob sees them
        elif command == "train":
            assert not self.run_dir.exists()
        elif command == "evaluate":
            target = Path(args[1])
            assert not (target / "report.json").exists() and not (target / "ranks_test.npy").exists()


Build = Callable[[Workspace], tuple[list[object], list[str]]]
CASES: list = []


def case(case_id: str) -> Callable[[Build], Build]:
    """Register a builder: it prepares the input and returns (sessrec args, fragments the message names)."""

    def register(build: Build) -> Build:
        CASES.append(pytest.param(build, id=case_id))
        return build

    return register


def _sessions(*sessions: tuple[str, list[str], float]) -> str:
    """CSV rows for (session id, items, start time) with one second between clicks."""
    rows = [f"{sid},u1,{item},{start + k:.0f}\n" for sid, items, start in sessions for k, item in enumerate(items)]
    return HEADER + "".join(rows)


def _config(ws: Workspace, raw: dict) -> Path:
    return ws.write("config.yaml", yaml.safe_dump(raw))


# --- preprocess ----------------------------------------------------------------------------


@case("missing-input-file")
def _(ws):
    source = ws.tmp / "nowhere" / "interactions.csv"
    return ws.preprocess(source), [str(source), "not found"]


@case("path-with-brackets")
def _(ws):
    # A path that looks like terminal markup must still be printed as it is.
    source = ws.tmp / "[raw]" / "interactions.csv"
    return ws.preprocess(source), [str(source)]


@case("csv-empty-file")
def _(ws):
    path = ws.write("raw/interactions.csv", "")
    return ws.preprocess(path), [str(path), "empty"]


@case("csv-missing-column")
def _(ws):
    path = ws.write("raw/interactions.csv", "session_id,user_id,item_id\ns1,u1,i1\n")
    return ws.preprocess(path), [str(path), "timestamp"]


@case("csv-non-numeric-timestamp")
def _(ws):
    path = ws.write("raw/interactions.csv", HEADER + "s1,u1,i1,100\ns1,u1,i2,yesterday\n")
    return ws.preprocess(path), [str(path), "line 3", "timestamp", "yesterday"]


@case("csv-wrong-delimiter")
def _(ws):
    path = ws.write("raw/interactions.csv", HEADER.replace(",", ";") + "s1;u1;i1;100\n")
    return ws.preprocess(path), [str(path), "--delimiter"]


@case("csv-empty-item-id")
def _(ws):
    path = ws.write("raw/interactions.csv", HEADER + "s1,u1,i1,100\ns1,u1,,101\n")
    return ws.preprocess(path), [str(path), "line 3", "item_id"]


@case("srgnn-pickle-class-reference")
def _(ws):
    # An OrderedDict pickles as a reference to collections.OrderedDict: code, not plain data.
    train = ws.write("srgnn/all_train_seq.txt", pickle.dumps(collections.OrderedDict()))
    ws.write("srgnn/test.txt", pickle.dumps(([[1]], [2])))
    return ws.preprocess(train.parent, "--format", "srgnn"), [str(train), "collections.OrderedDict"]


@case("srgnn-pickle-object")
def _(ws):
    train = ws.write("srgnn/all_train_seq.txt", pickle.dumps([[1, 2]]))
    test = ws.write("srgnn/test.txt", pickle.dumps(([[1]], [Path("x")])))
    return ws.preprocess(train.parent), [str(test), "refusing class reference"]


@case("filter-leaves-no-sessions")
def _(ws):
    path = ws.write("raw/interactions.csv", _sessions(*((f"s{k}", ["i1"], k * 10.0) for k in range(20))))
    return ws.preprocess(path), [str(path), "no sessions left"]


@case("min-item-count-too-high")
def _(ws):
    path = ws.write("raw/interactions.csv", _sessions(*((f"s{k}", ["i1", "i2", "i3"], k * 10.0) for k in range(20))))
    return ws.preprocess(path, "--min-item-count", "100000"), [str(path), "100000"]


@case("time-split-no-test-sessions")
def _(ws):
    # The last week holds only items never seen in training, so no test session survives.
    train = [(f"s{k}", ["i1", "i2", "i3"], k * 10.0) for k in range(10)]
    path = ws.write("raw/interactions.csv", _sessions(*train, ("late", ["new1", "new2"], 30.0 * DAY)))
    return ws.preprocess(path, "--min-item-count", "1"), [str(path), "test"]


@case("time-split-no-training-sessions")
def _(ws):
    path = ws.write("raw/interactions.csv", _sessions(*((f"s{k}", ["i1", "i2"], k * 10.0) for k in range(10))))
    return ws.preprocess(path, "--test-days", "1000", "--min-item-count", "1"), [str(path), "0 training"]


@case("loo-split-on-sessions")
def _(ws):
    path = ws.write("raw/interactions.csv", _sessions(*((f"s{k}", ["i1", "i2"], k * 10.0) for k in range(10))))
    return ws.preprocess(path, "--split", "loo"), ["--split loo"]


@case("unknown-format")
def _(ws):
    return ws.preprocess(SAMPLE_RAW, "--format", "parquet"), ["--format parquet"]


@case("unknown-kind")
def _(ws):
    return ws.preprocess(SAMPLE_RAW, "--kind", "item"), ["--kind item"]


@case("negative-test-days")
def _(ws):
    return ws.preprocess(SAMPLE_RAW, "--test-days", "-1"), ["--test-days"]


@case("bad-option-value")
def _(ws):
    # Caught by the option parser before any sessrec code runs; still one line, still exit code 2.
    return ws.preprocess(SAMPLE_RAW, "--test-days", "soon"), ["--test-days"]


# --- config (through train and config validate) ----------------------------------------------


@case("config-file-missing")
def _(ws):
    path = ws.tmp / "absent.yaml"
    return ws.train(path), [str(path), "not found"]


@case("config-invalid-yaml")
def _(ws):
    path = ws.write("config.yaml", "model:\n  name: core-trm\ntraining: [epochs: 1\n")
    return ws.train(path), [str(path), "line", "invalid YAML"]


@case("config-empty-yaml")
def _(ws):
    path = ws.write("config.yaml", "# nothing here\n")
    return ["config", "validate", path], [str(path), "empty"]


@case("config-unknown-top-level-key")
def _(ws):
    path = _config(ws, {"sed": 1})
    return ws.train(path), [str(path), "sed", "unknown key"]


@case("config-unknown-model-key")
def _(ws):
    path = _config(ws, {"model": {"name": "core-trm", "n_layer": 3}})
    return ws.train(path), [str(path), "model.n_layer", "unknown key"]


@case("config-unknown-training-key")
def _(ws):
    path = _config(ws, {"training": {"learning_rate": 0.1}})
    return ws.train(path), [str(path), "training.learning_rate", "unknown key"]


@case("config-unknown-model-name")
def _(ws):
    path = _config(ws, {"model": {"name": "gru4rec"}})
    return ws.train(path), [str(path), "model", "gru4rec"]


@case("config-model-without-name")
def _(ws):
    return ws.train("--set", "model.embedding_size=16"), ["model.name", "missing"]


@case("batch-size-negative-yaml")
def _(ws):
    path = _config(ws, {"training": {"batch_size": -5}})
    return ws.train(path), [str(path), "training.batch_size", "-5"]


@case("batch-size-zero-yaml")
def _(ws):
    path = _config(ws, {"training": {"batch_size": 0}})
    return ws.train(path), [str(path), "training.batch_size"]


@case("batch-size-zero-set")
def _(ws):
    return ws.train("--set", "training.batch_size=0"), ["training.batch_size", "0"]


@case("batch-size-negative-set")
def _(ws):
    return ws.train("--set", "training.batch_size=-1"), ["training.batch_size", "-1"]


@case("set-without-equals")
def _(ws):
    return ws.train("--set", "training.lr"), ["--set", "training.lr"]


@case("set-unknown-nested-key")
def _(ws):
    return ws.train("--set", "training.optimizer.name=sgd"), ["training.optimizer"]


@case("bad-valid-metric")
def _(ws):
    return ws.train("--set", "training.valid_metric=auc@20"), ["training.valid_metric", "auc@20"]


@case("unknown-model-option")
def _(ws):
    return ws.train("--model", "sasrec"), ["model", "sasrec"]


# --- train -----------------------------------------------------------------------------------


@case("unknown-stage")
def _(ws):
    return ws.train("--stage", "pretrain"), ["--stage pretrain"]


@case("train-before-preprocess")
def _(ws):
    missing = ws.tmp / "data" / "nothing" / "processed"
    return ws.train("--set", f"data.processed_dir={missing}"), [str(missing), "sessrec preprocess"]


@case("device-cuda-without-cuda")
def _(ws):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    return ws.train("--device", "cuda", "--set", f"data.processed_dir={ws.processed()}"), ["--device cuda"]


@case("init-from-not-a-run")
def _(ws):
    missing = ws.tmp / "no_run"
    return ws.train("--init-from", missing, "--set", f"data.processed_dir={ws.processed()}"), ["--init-from", str(missing)]


@case("processed-pickle-class-reference")
def _(ws):
    processed = ws.processed_copy()
    path = processed / "train_sequences.pkl"
    path.write_bytes(pickle.dumps({"sequences": collections.OrderedDict(), "entities": []}))
    return ws.train("--set", f"data.processed_dir={processed}", "--set", "training.epochs=1"), [str(path), "collections.OrderedDict"]


@case("processed-test-item-out-of-range")
def _(ws):
    processed = ws.processed_copy()
    counts = pickle.loads((processed / "counts.pkl").read_bytes())
    test = pickle.loads((processed / "test_sequences.pkl").read_bytes())
    test["targets"][0] = counts["n_items"] + 1
    (processed / "test_sequences.pkl").write_bytes(pickle.dumps(test))
    return ws.train("--set", f"data.processed_dir={processed}", "--set", "training.epochs=1"), [str(processed), "test split"]


# --- evaluate --------------------------------------------------------------------------------


@case("evaluate-not-a-run-directory")
def _(ws):
    directory = ws.tmp / "elsewhere"
    directory.mkdir()
    return ["evaluate", directory], [str(directory), "config.yaml"]


@case("evaluate-corrupt-checkpoint")
def _(ws):
    run = ws.run_copy()
    (run / "best.pt").write_bytes(bytes(range(256)) * 8)
    return ["evaluate", run], [str(run / "best.pt")]


@case("evaluate-checkpoint-class-reference")
def _(ws):
    run = ws.run_copy()
    torch.save({"model": Path("weights")}, run / "best.pt")
    return ["evaluate", run], [str(run / "best.pt"), "pathlib.PosixPath"]


@case("evaluate-missing-checkpoint")
def _(ws):
    run = ws.run_copy()
    (run / "best.pt").unlink()
    return ["evaluate", run], [str(run / "best.pt"), "not found"]


@case("evaluate-checkpoint-of-other-model")
def _(ws):
    run = ws.run_copy()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"] = {"name": "core-trm", "embedding_size": 16}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return ["evaluate", run], [str(run / "best.pt"), "does not match"]


@case("evaluate-checkpoint-of-other-catalogue")
def _(ws):
    # The same model on a catalogue with more items: the embedding table no longer fits.
    run = ws.run_copy()
    processed = ws.processed_copy()
    counts = pickle.loads((processed / "counts.pkl").read_bytes())
    counts["n_items"] += 5
    (processed / "counts.pkl").write_bytes(pickle.dumps(counts))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["processed_dir"] = str(processed)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return ["evaluate", run], [str(run / "best.pt"), "does not match"]


@case("evaluate-zero-batch-size")
def _(ws):
    run = ws.run_copy()
    return ["evaluate", run, "--batch-size", "0"], ["--batch-size"]


@pytest.mark.parametrize("build", CASES)
def test_bad_input_fails_cleanly(build: Build, run_cli, tmp_path, request):
    ws = Workspace(tmp_path, request)
    args, fragments = build(ws)
    result = run_cli(*args)
    assert result.code == 2, f"exit code {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    lines = result.err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got:\n{result.err}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not named in: {lines[0]}"
    ws.assert_nothing_left(str(args[0]), args)
