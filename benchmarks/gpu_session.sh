#!/usr/bin/env bash
# The GPU side of sessrec's experiments, in one call on a CUDA machine that has no network:
#   1. benchmarks/device_check.py: ranking and training on the GPU against the CPU (bundled sample);
#   2. benchmarks/speed_core.py --device cuda: seconds per training batch of the CORE models, eager
#      and compiled, on Diginetica;
#   3. the Table 1 runs named on the command line, one after another while the budget lasts, each
#      recorded (plain files, no checkpoints) under OUT/records/DATASET/MODEL-sSEED as
#      pipelines/core_table1.sh records them, so that they join the CPU runs' tables.
# usage: bash benchmarks/gpu_session.sh OUT BUDGET_SECONDS [DATASET/MODEL-sSEED ...]
#   e.g. bash benchmarks/gpu_session.sh "$OUT" 480 diginetica/core-hn-s2020 diginetica/core-trm-s2021
# sessrec runs from this checkout (not installed); data/DATASET/processed must be there (preprocess
# elsewhere and bring it). A run that the budget cuts short is lost: it is not recorded.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benchmarks/gpu_session.sh OUT BUDGET_SECONDS [DATASET/MODEL-sSEED ...]}
BUDGET=${2:?usage: benchmarks/gpu_session.sh OUT BUDGET_SECONDS [DATASET/MODEL-sSEED ...]}
shift 2
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-20}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
. pipelines/lib.sh
mkdir -p "$OUT/records"
scratch=$(mktemp -d)

if ! python3 -c "import pydantic, typer, rich, yaml, scipy, matplotlib" 2>"$OUT/imports.txt"; then
  echo "missing Python packages: $(tail -1 "$OUT/imports.txt")" >&2
  exit 2
fi
python3 benchmarks/device_check.py --device "$DEVICE" --out "$OUT/device_check_$DEVICE.json" || echo "device_check failed" >&2
if [ -f data/diginetica/processed/manifest.json ]; then
  python3 benchmarks/speed_core.py --device "$DEVICE" --batches 20 --models core-ave core-trm core-da core-hn core-trm-enhanced \
    core-trm-contrastive --out "$OUT/speed_core_$DEVICE.json" || echo "speed_core failed" >&2
fi

for spec in "$@"; do
  dataset=${spec%%/*} name=${spec#*/}
  model=${name%-s*} seed=${name##*-s}
  left=$((BUDGET - SECONDS))
  if [ "$left" -lt 60 ]; then
    echo "$spec: not started, the budget is spent"
    continue
  fi
  run=$scratch/$dataset/$name
  timeout "$left" python3 -m sessrec_cli train --model "$model" --dataset "$dataset" --device "$DEVICE" \
    --set data.processed_dir="data/$dataset/processed" --set seed="$seed" --set training.epochs="$EPOCHS" \
    --set training.compile="$(compile_setting "$model")" --run-dir "$run" > "$OUT/$dataset-$name.log" 2>&1
  if [ -f "$run/report.json" ]; then
    keep_record "$run" "$OUT/records/$dataset/$name"
    echo "$spec: recorded after $SECONDS s"
  else
    echo "$spec: not finished (see $dataset-$name.log)"
  fi
done
rm -rf "$scratch"
