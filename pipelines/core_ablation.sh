#!/usr/bin/env bash
# Ablation of core-trm-enhanced on Diginetica (seed 000): the full model, then each component
# off in turn, against core-trm; three seeds each, compared with paired tests.
# usage: pipelines/core_ablation.sh [EPOCHS] [DEVICE]     (defaults: 20 epochs, auto)
# Output: benchmarks/results/core_ablation_diginetica.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-20}
DEVICE=${2:-auto}
SHARED=${SESSREC_SHARED_DATA:-../shared/data}
OUT=benchmarks/runs/core_ablation
sessrec preprocess "$SHARED/diginetica/srgnn" --name diginetica

# name|model|overrides
VARIANTS=(
  "core-trm|core-trm|"
  "enhanced|core-trm-enhanced|"
  "no-layer-aggregation|core-trm-enhanced|model.layer_aggregation=false"
  "no-gate|core-trm-enhanced|model.gate=false"
  "no-hard-negatives|core-trm-enhanced|model.hard_neg_weight=0"
)
for variant in "${VARIANTS[@]}"; do
  IFS='|' read -r name model override <<<"$variant"
  for seed in 2020 2021 2022; do
    run="$OUT/$name-s$seed"
    [ -f "$run/report.json" ] && continue
    rm -rf "$run"
    extra=()
    [ -n "$override" ] && extra=(--set "$override")
    sessrec train --model "$model" --dataset diginetica --device "$DEVICE" --set seed="$seed" \
      --set training.epochs="$EPOCHS" "${extra[@]}" --run-dir "$run"
  done
done
sessrec compare "$OUT"/*/ --json benchmarks/results/core_ablation_diginetica.json \
  --markdown benchmarks/results/core_ablation_diginetica.md
