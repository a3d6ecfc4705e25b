#!/usr/bin/env bash
# CORE-trm and CORE-ave on Diginetica (SR-GNN split as given; validation = last 10% of the
# training sessions), protocol of Smadja & Mizikov §5.6. Writes benchmarks/results/core_diginetica_<device>.json.
# usage: benchmarks/core_diginetica.sh [EPOCHS] [DEVICE]   (defaults: 20 epochs, auto device)
set -euo pipefail
cd "$(dirname "$0")/.."
. pipelines/lib.sh
EPOCHS=${1:-20}
DEVICE=${2:-auto}
OUT=benchmarks/runs/core_diginetica_e${EPOCHS}
DATA_ROOT=data  # the configs read data/diginetica/processed
RECORDS=benchmarks/records/core_diginetica_e${EPOCHS}  # committed: see pipelines/lib.sh
prepare_dataset diginetica
mkdir -p "$OUT"
# Re-running continues where a stopped run left off: a recorded model is kept, an interrupted
# one resumes from its last.pt, anything else starts afresh.
for model in core_ave core_trm; do
  train_once "$OUT/$model" "$RECORDS/$model" "configs/${model}_diginetica.yaml" --device "$DEVICE" --set training.epochs="$EPOCHS"
done
python benchmarks/collect.py "$RECORDS"/core_trm "$RECORDS"/core_ave --out "benchmarks/results/core_diginetica_e${EPOCHS}.json" \
  --command "benchmarks/core_diginetica.sh $EPOCHS $DEVICE"
