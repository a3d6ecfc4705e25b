#!/usr/bin/env bash
# Table 1 of seed 001, with seeds: the seven CORE models on Diginetica, YOOCHOOSE 1/64 and Tmall
# (published splits from ../shared/data), three seeds each, then mean ± std and paired tests
# of every variant against core-trm over per-example reciprocal ranks.
# usage: pipelines/core_table1.sh [EPOCHS] [DEVICE]     (defaults: 20 epochs, auto)
# Output: benchmarks/results/core_table1.{json,md}; runs under benchmarks/runs/core_table1/.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-20}
DEVICE=${2:-auto}
SHARED=${SESSREC_SHARED_DATA:-../shared/data}
OUT=benchmarks/runs/core_table1
MODELS="core-ave core-trm core-da core-hn core-dahn core-trm-enhanced core-trm-contrastive"
SEEDS="2020 2021 2022"

sessrec preprocess "$SHARED/diginetica/srgnn" --name diginetica
sessrec preprocess "$SHARED/yoochoose1_64/srgnn" --name yoochoose1_64
sessrec preprocess "$SHARED/tmall/lessr" --name tmall

for dataset in diginetica yoochoose1_64 tmall; do
  for model in $MODELS; do
    for seed in $SEEDS; do
      run="$OUT/$dataset/$model-s$seed"
      [ -f "$run/report.json" ] && continue  # finished earlier: the pipeline can be re-run after a stop
      rm -rf "$run"
      sessrec train --model "$model" --dataset "$dataset" --device "$DEVICE" \
        --set seed="$seed" --set training.epochs="$EPOCHS" --run-dir "$run"
    done
  done
  sessrec compare "$OUT/$dataset"/*/ --json "benchmarks/results/core_table1_$dataset.json" \
    --markdown "benchmarks/results/core_table1_$dataset.md"
done
