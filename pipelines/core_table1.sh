#!/usr/bin/env bash
# Table 1 of Smadja & Mizikov, with seeds: the seven CORE models on Diginetica, YOOCHOOSE 1/64 and Tmall
# (published splits from ../shared/data), three seeds each, then mean ± std and paired tests
# of every variant against core-trm over per-example reciprocal ranks.
# usage: pipelines/core_table1.sh [EPOCHS] [DEVICE]     (defaults: 20 epochs, auto)
# Output: benchmarks/results/core_table1.{json,md} (all datasets) and
# core_table1_<dataset>.{json,md} (every pair of models). Runs train under
# benchmarks/runs/core_table1/ (scratch); each finished one is recorded, without its checkpoints,
# under benchmarks/records/core_table1_e<EPOCHS>/<dataset>/<model>-s<seed>/, which is committed.
# Re-running continues: a recorded run is kept, an interrupted one resumes from its last.pt, so
# the table fills up over several sessions; the tables cover the recorded runs.
# JOBS=N trains N runs at a time (each run's output then goes to RUN_DIR.log; give each a share
# of the cores, e.g. OMP_NUM_THREADS=1 JOBS=2 on two cores).
# DATASETS, MODELS and SEEDS (space-separated) select a part of the grid; OUT, RECORDS, RESULTS
# and DATA_ROOT move the runs, the records, the result files and the processed datasets;
# PREPROCESSED=1 takes the processed datasets in DATA_ROOT as they are (no ../shared/data needed).
# COMPILED lists the models trained with training.compile (pipelines/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. pipelines/lib.sh
EPOCHS=${1:-20}
DEVICE=${2:-auto}
# The planned grid; the merged table says which of its runs are recorded.
GRID_DATASETS="diginetica yoochoose1_64 tmall"
GRID_MODELS="core-ave core-trm core-da core-hn core-dahn core-trm-enhanced core-trm-contrastive"
GRID_SEEDS="2020 2021 2022"
DATASETS=${DATASETS:-$GRID_DATASETS}
MODELS=${MODELS:-$GRID_MODELS}
SEEDS=${SEEDS:-$GRID_SEEDS}
OUT=${OUT:-benchmarks/runs/core_table1}
RECORDS=${RECORDS:-benchmarks/records/core_table1_e$EPOCHS}
RESULTS=${RESULTS:-benchmarks/results}
DATA_ROOT=${DATA_ROOT:-data}

for dataset in $DATASETS; do
  prepare_dataset "$dataset"
  for model in $MODELS; do
    compile=$(compile_setting "$model")
    for seed in $SEEDS; do
      spawn "$OUT/$dataset/$model-s$seed.log" train_once "$OUT/$dataset/$model-s$seed" "$RECORDS/$dataset/$model-s$seed" \
        --model "$model" --dataset "$dataset" --device "$DEVICE" --set data.processed_dir="$DATA_ROOT/$dataset/processed" \
        --set seed="$seed" --set training.epochs="$EPOCHS" --set training.compile="$compile"
    done
  done
  reap
  # core-trm's seeds first: the breakdown by slices of the test set holds every model against the first.
  mapfile -t recorded < <(finished_runs "$RECORDS/$dataset")
  finished=()
  for run in "${recorded[@]}"; do
    if [[ $run == */core-trm-s* ]]; then finished+=("$run"); fi
  done
  for run in "${recorded[@]}"; do
    if [[ $run != */core-trm-s* ]]; then finished+=("$run"); fi
  done
  sessrec compare "${finished[@]}" --json "$RESULTS/core_table1_$dataset.json" --markdown "$RESULTS/core_table1_$dataset.md" \
    --breakdown --data "$DATA_ROOT/$dataset/processed"
done

# The merged table holds every dataset compared so far, by this call or an earlier one.
tables=()
for dataset in $GRID_DATASETS; do
  [ -f "$RESULTS/core_table1_$dataset.json" ] && tables+=("$RESULTS/core_table1_$dataset.json")
done
python benchmarks/table1.py "${tables[@]}" --baseline core-trm --json "$RESULTS/core_table1.json" \
  --markdown "$RESULTS/core_table1.md" --command "pipelines/core_table1.sh $EPOCHS $DEVICE" \
  --datasets $GRID_DATASETS --models $GRID_MODELS --seeds $GRID_SEEDS
