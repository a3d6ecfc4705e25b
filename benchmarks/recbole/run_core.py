"""Time or train RecBole 1.2.1's CORE on atomic files written by export_atomic.py (runs in RecBole's venv).

Times (wall and CPU seconds) `--batches` warm training batches after `--warmup` untimed ones (RecBole's own dataloader,
loss, backward and Adam step, as in its trainer), then one full-ranking test evaluation with
RecBole's evaluator; with `--epochs N` it trains N whole epochs instead and reports validation
metrics per epoch. With `--fit` RecBole's own `Trainer.fit` runs the protocol (up to --epochs
epochs, early stopping on valid MRR@20 with stopping_step 5), the test split is evaluated with
its best checkpoint, and `--ranks` saves each test example's target rank in the order of
export_atomic's lines, counted as sessrec counts (every item scoring at least as high as the
target; padding never ranked), so that `sessrec`-side code can pair the two toolkits per example.
With `--state STATE.pt` a fit saves the whole training state after every epoch (weights, Adam's
moments, the best epoch's weights, the early-stopping counters and every random generator RecBole
draws from), so that a fit stopped by the end of a machine session resumes after its last
finished epoch where it is started again with the same arguments, and goes on as if never stopped.
Writes one JSON object.
usage: python run_core.py DATA_DIR NAME {trm,ave} OUT_JSON [--batches 20] [--warmup 2] [--epochs 0] [--device cpu]
           [--batch-size 2048] [--fit --seed 2020 --ranks RANKS.npy --state STATE.pt]
"""

import argparse
import json
import os
import random
import resource
import time

import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import CORE
from recbole.trainer import Trainer
from recbole.utils import init_seed

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("name")
parser.add_argument("dnn_type", choices=["trm", "ave"])
parser.add_argument("out")
parser.add_argument("--batches", type=int, default=20)
parser.add_argument("--warmup", type=int, default=2)
parser.add_argument("--epochs", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--batch-size", type=int, default=2048)
parser.add_argument("--fit", action="store_true")
parser.add_argument("--seed", type=int, default=2020)
parser.add_argument("--ranks")
parser.add_argument("--state")
args = parser.parse_args()

# CORE's published hyperparameters, the same as sessrec's CoreTrmConfig/CoreAveConfig defaults.
config = Config(
    model="CORE",
    dataset=args.name,
    config_dict={
        "data_path": args.data_dir, "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "load_col": None,
        "alias_of_item_id": ["item_id_list"], "MAX_ITEM_LIST_LENGTH": 50,
        "topk": [20], "metrics": ["Recall", "MRR"], "valid_metric": "MRR@20",
        "train_batch_size": args.batch_size, "eval_batch_size": 2048, "learning_rate": 0.001,
        "epochs": max(args.epochs, 1), "stopping_step": 5, "seed": args.seed, "reproducibility": True,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "mode": "full"},
        "train_neg_sample_args": None, "loss_type": "CE",
        "embedding_size": 100, "inner_size": 256, "n_layers": 2, "n_heads": 2,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "dnn_type": args.dnn_type,
        "sess_dropout": 0.2, "item_dropout": 0.2, "temperature": 0.07,
        "device": args.device, "use_gpu": args.device != "cpu", "show_progress": False,
        "checkpoint_dir": "/tmp/recbole_saved", "log_wandb": False, "state": "WARNING",
    },
)
init_seed(config["seed"], config["reproducibility"])
started = time.perf_counter()
dataset = create_dataset(config)
train, valid, test = data_preparation(config, dataset)
result = {
    "toolkit": "recbole", "dnn_type": args.dnn_type, "device": args.device, "threads": torch.get_num_threads(),
    "n_items": dataset.item_num - 1, "train_examples": len(train.dataset), "test_examples": len(test.dataset),
    "data_preparation_seconds": round(time.perf_counter() - started, 2),
    "versions": {"torch": torch.__version__, "recbole": __import__("recbole").__version__},
}


class BestInMemory(Trainer):
    """RecBole's trainer, keeping the best epoch's weights in memory: its own checkpoint file
    pickles a Config object, which torch.load(weights_only=True) rightly refuses to read."""

    best_state: dict | None = None
    best_epoch: int | None = None
    fit_seconds = 0.0  # before this process, when resumed

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        self.best_state = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        self.best_epoch = epoch

    def save_state(self, path: str, epoch: int, fit_seconds: float) -> None:
        """Everything the next epoch depends on, as tensors and plain data, written atomically."""
        numpy_state = np.random.get_state()
        state = {
            "epoch": epoch, "fit_seconds": fit_seconds, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "best_state": self.best_state, "best_epoch": self.best_epoch,
            "best_valid_score": float(self.best_valid_score), "cur_step": self.cur_step,
            "best_valid_result": {k: float(v) for k, v in self.best_valid_result.items()},
            "train_loss_dict": {k: float(v) for k, v in self.train_loss_dict.items()},
            "torch_rng": torch.get_rng_state(), "shuffle_rng": train.generator.get_state(),
            "numpy_rng": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
            "python_rng": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        }
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)

    def load_state(self, path: str) -> None:
        state = torch.load(path, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.best_state, self.best_epoch = state["best_state"], state["best_epoch"]
        self.best_valid_score, self.cur_step = state["best_valid_score"], state["cur_step"]
        self.best_valid_result, self.train_loss_dict = state["best_valid_result"], state["train_loss_dict"]
        torch.set_rng_state(state["torch_rng"])
        train.generator.set_state(state["shuffle_rng"])
        kind, keys, *rest = state["numpy_rng"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        self.start_epoch, self.fit_seconds = state["epoch"] + 1, state["fit_seconds"]


model = CORE(config, train.dataset).to(config["device"])
trainer = BestInMemory(config, model)


def sync() -> None:
    if args.device != "cpu":
        torch.cuda.synchronize()


def test_ranks() -> np.ndarray:
    """Each test example's target rank under the loaded model, indexed by export_atomic's line number."""
    model.eval()
    tokens = dataset.field2id_token["session_id"]
    ranks = np.zeros(len(test.dataset), dtype=np.int64)
    with torch.no_grad():
        for batch in test:
            interaction = batch[0].to(config["device"])
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            scores[:, 0] = -float("inf")  # padding
            target = scores.gather(1, interaction["item_id"].unsqueeze(1))
            rank = (scores >= target).sum(1)
            ranks[[int(tokens[i]) for i in interaction["session_id"].tolist()]] = rank.cpu().numpy()
    return ranks


if args.fit:
    if args.state and os.path.isfile(args.state):
        trainer.load_state(args.state)
        result["resumed_after_epoch"] = trainer.start_epoch - 1
    started = time.perf_counter()

    def fit_seconds() -> float:  # over every process of this fit
        return trainer.fit_seconds + time.perf_counter() - started

    # After every epoch (RecBole's callback): one progress line, as its own logger is not started here, and the state.
    def after_epoch(epoch: int, valid_score: float) -> None:
        seconds = fit_seconds()
        print(json.dumps({"epoch": epoch, "valid_score": float(valid_score), "best_epoch": trainer.best_epoch,
                          "epochs_without_improvement": trainer.cur_step, "fit_seconds": round(seconds, 1)}), flush=True)
        if args.state:
            trainer.save_state(args.state, epoch, seconds)

    # A state saved after the stopping epoch (the process ended before writing its result) needs no more training.
    if trainer.cur_step > trainer.stopping_step or trainer.start_epoch >= trainer.epochs:
        best_valid = trainer.best_valid_result
    else:
        _, best_valid = trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=after_epoch)
    result["fit_seconds"] = round(fit_seconds(), 1)
    result["best_epoch"] = trainer.best_epoch
    result["best_valid"] = {k: float(v) for k, v in best_valid.items()}
    model.load_state_dict(trainer.best_state)
elif args.epochs:
    result["epochs"] = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        loss = trainer._train_epoch(train, epoch, show_progress=False)
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = trainer.evaluate(valid, load_best_model=False, show_progress=False)
        entry = {"epoch": epoch, "train_seconds": round(train_seconds, 2), "valid_seconds": round(time.perf_counter() - started, 2),
                 "loss": float(loss), "valid": {k: float(v) for k, v in scores.items()}}
        result["epochs"].append(entry)
        print(json.dumps(entry), flush=True)
else:
    model.train()
    optimizer = trainer.optimizer
    timed = 0
    for step, interaction in enumerate(train):
        if step == args.warmup:
            sync()
            started, cpu_started = time.perf_counter(), time.process_time()
        interaction = interaction.to(config["device"])
        optimizer.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            timed += 1
            if timed == args.batches:
                break
    sync()
    per_batch = (time.perf_counter() - started) / timed
    # CPU seconds (all threads) per batch: the work done, which other load on the machine inflates less than wall time
    cpu_per_batch = (time.process_time() - cpu_started) / timed
    result.update(seconds_per_batch=round(per_batch, 4), cpu_seconds_per_batch=round(cpu_per_batch, 4), batches_timed=timed, warmup_batches=args.warmup,
                  batches_per_epoch=len(train), estimated_epoch_seconds=round(per_batch * len(train), 1))
started = time.perf_counter()
scores = trainer.evaluate(test, load_best_model=False, show_progress=False)
sync()
result["test_eval_seconds"] = round(time.perf_counter() - started, 2)
result["test"] = {k: float(v) for k, v in scores.items()}
if args.ranks:
    np.save(args.ranks, test_ranks())
result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
with open(args.out, "w") as handle:
    json.dump(result, handle, indent=2)
print(json.dumps(result), flush=True)
