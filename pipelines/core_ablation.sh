#!/usr/bin/env bash
# Ablation of core-trm-enhanced on Diginetica (the Enhanced CORE guide): the full model, then each component
# off in turn, against core-trm; three seeds each, compared with paired tests.
# usage: pipelines/core_ablation.sh [EPOCHS] [DEVICE]     (defaults: 20 epochs, auto)
# Output: benchmarks/results/core_ablation_diginetica.{json,md}, over the recorded runs.
# Runs train under benchmarks/runs/core_ablation/ (scratch); each finished one is recorded under
# benchmarks/records/core_ablation_e<EPOCHS>/ (committed, see pipelines/lib.sh). Re-running
# continues: recorded runs are kept, interrupted ones resume from their last.pt.
# The full model and core-trm are Table 1's Diginetica runs, trained with the same settings: they
# train once, in pipelines/core_table1.sh's directories (TABLE1_OUT, TABLE1_RECORDS), for both tables.
# JOBS=N trains N runs at a time (see pipelines/core_table1.sh). SEEDS and ABLATIONS (space-separated)
# select seeds and variants (names as in VARIANTS below, e.g. ABLATIONS=no-hard-negatives); OUT,
# RECORDS, RESULTS and DATA_ROOT move runs, records, results and data; PREPROCESSED=1 as in
# pipelines/core_table1.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. pipelines/lib.sh
EPOCHS=${1:-20}
DEVICE=${2:-auto}
SEEDS=${SEEDS:-2020 2021 2022}
OUT=${OUT:-benchmarks/runs/core_ablation}
RECORDS=${RECORDS:-benchmarks/records/core_ablation_e$EPOCHS}
RESULTS=${RESULTS:-benchmarks/results}
DATA_ROOT=${DATA_ROOT:-data}
TABLE1_OUT=${TABLE1_OUT:-benchmarks/runs/core_table1}
TABLE1_RECORDS=${TABLE1_RECORDS:-benchmarks/records/core_table1_e$EPOCHS}
prepare_dataset diginetica

# name|model|overrides
VARIANTS=(
  "core-trm|core-trm|"
  "enhanced|core-trm-enhanced|"
  "no-layer-aggregation|core-trm-enhanced|model.layer_aggregation=false"
  "no-gate|core-trm-enhanced|model.gate=false"
  "no-hard-negatives|core-trm-enhanced|model.hard_neg_weight=0"
)
NAMES="${VARIANTS[*]%%|*}"
ABLATIONS=${ABLATIONS:-$NAMES}
for wanted in $ABLATIONS; do
  [[ " $NAMES " == *" $wanted "* ]] || { echo "unknown ablation $wanted: expected one of $NAMES" >&2; exit 2; }
done
for variant in "${VARIANTS[@]}"; do
  IFS='|' read -r name model override <<<"$variant"
  [[ " $ABLATIONS " == *" $name "* ]] || continue
  for seed in $SEEDS; do
    if [ -z "$override" ]; then  # a Table 1 run
      run=$TABLE1_OUT/diginetica/$model-s$seed record=$TABLE1_RECORDS/diginetica/$model-s$seed extra=()
    else
      run=$OUT/$name-s$seed record=$RECORDS/$name-s$seed extra=(--set "$override")
    fi
    spawn "$run.log" train_once "$run" "$record" --model "$model" --dataset diginetica --device "$DEVICE" --set seed="$seed" \
      --set data.processed_dir="$DATA_ROOT/diginetica/processed" --set training.epochs="$EPOCHS" \
      --set training.compile="$(compile_setting "$model")" "${extra[@]}"
  done
done
reap
# Every recorded seed of the shared runs, as of its own records (core-trm-s* is not core-trm-enhanced-s*),
# core-trm first: the breakdown by slices of the test set holds every variant against the first.
finished=()
for record in "$TABLE1_RECORDS"/diginetica/core-trm-s* "$TABLE1_RECORDS"/diginetica/core-trm-enhanced-s*; do
  if [ -f "$record/report.json" ]; then finished+=("$record"); fi
done
mapfile -t -O "${#finished[@]}" finished < <(finished_runs "$RECORDS")
sessrec compare "${finished[@]}" --json "$RESULTS/core_ablation_diginetica.json" \
  --markdown "$RESULTS/core_ablation_diginetica.md" --breakdown --data "$DATA_ROOT/diginetica/processed"
