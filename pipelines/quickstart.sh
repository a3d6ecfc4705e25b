#!/usr/bin/env bash
# The quickstart on the bundled sample: preprocess -> train CORE-trm -> evaluate.
# Writes data/sample/processed and runs/quickstart-<time>/ (report.json, metrics table).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/quickstart-$(date +%Y%m%d-%H%M%S)
sessrec preprocess data/sample/raw --name sample
sessrec train configs/core_trm.yaml --run-dir "$RUN"
# Ranks test again from the saved best checkpoint, in chunks of 100 examples instead of the
# config's 4096: the second table must match the one training printed, digit for digit.
sessrec evaluate "$RUN" --batch-size 100
