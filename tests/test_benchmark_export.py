"""The RecBole side of benchmarks/speed_core.py trains on sessrec's examples, one for one."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO
from sessrec_cli.data.sequences import load_dataset


def test_atomic_export_writes_every_example_of_every_split(sample_processed, tmp_path):
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "recbole" / "export_atomic.py"), str(sample_processed), str(tmp_path), "s", "--max-len", "5"],
        check=True, capture_output=True,
    )
    data = load_dataset(sample_processed, 5)
    for name in ("train", "valid", "test"):
        header, *lines = (tmp_path / "s" / f"s.{name}.inter").read_text().splitlines()
        assert header == "session_id:token\titem_id_list:token_seq\titem_id:token"
        split = getattr(data, name)
        batch = split.batch(split.lengths.new_tensor(range(len(split))))
        expected = [
            f"{k}\t{' '.join(map(str, row[:length].tolist()))}\t{target}"
            for k, (row, length, target) in enumerate(zip(batch.item_seq, batch.lengths.tolist(), batch.targets.tolist()))
        ]
        assert lines == expected
        assert max(len(line.split("\t")[1].split()) for line in lines) == 5  # prefixes capped at --max-len
