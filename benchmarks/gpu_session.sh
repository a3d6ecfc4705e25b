#!/usr/bin/env bash
# The GPU side of sessrec's experiments, in one call on a lent CUDA machine that has no network.
# Run benchmarks/gpu_prepare.sh here first: it makes the processed datasets and the wheels this
# needs, and prints the call. STEPS (default "check ablation table1 speed"), in that order:
#   check    benchmarks/device_check.py: ranking and training on the GPU against the CPU (sample);
#   ablation pipelines/core_ablation.sh, JOBS runs at a time on the one GPU;
#   table1   pipelines/core_table1.sh likewise (DATASETS, MODELS and SEEDS select as there);
#   speed    benchmarks/speed_core.py --device cuda for SPEED_MODELS (default core-trm core-hn).
# Each step gets the budget that is left. The pipelines skip what benchmarks/records already holds,
# so only missing runs train; every run that finishes is recorded there, and the new records come
# back as OUT/records.tar (extract it into benchmarks/records here, then rebuild the tables with
# the pipelines, which then train nothing). A run that the budget cuts short is lost.
# usage: bash benchmarks/gpu_session.sh OUT BUDGET_SECONDS
# Other settings: JOBS (default 8), DEVICE (cuda), EPOCHS (20), DATA_ROOT (data), RECORDS_ROOT
# (benchmarks/records), COMPILED (models trained with training.compile; default none: on the
# GPU a run is minutes and each process would compile its own kernels first).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benchmarks/gpu_session.sh OUT BUDGET_SECONDS}
BUDGET=${2:?usage: benchmarks/gpu_session.sh OUT BUDGET_SECONDS}
STEPS=${STEPS:-check ablation table1 speed}
SPEED_MODELS=${SPEED_MODELS:-core-trm core-hn}
RECORDS_ROOT=${RECORDS_ROOT:-benchmarks/records}
export DEVICE=${DEVICE:-cuda} EPOCHS=${EPOCHS:-20} JOBS=${JOBS:-8} DATA_ROOT=${DATA_ROOT:-data} PREPROCESSED=1
export COMPILED=${COMPILED-} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The packages that machine lacks travel as wheels in WHEELS (.whl/); sessrec runs from this checkout,
# through a `sessrec` command for the pipelines.
site=$scratch/site
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$WHEELS"/*.whl || exit 2
fi
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$scratch/bin"
printf '#!/bin/sh\nexec %s -m sessrec_cli "$@"\n' "$(command -v python3)" >"$scratch/bin/sessrec"
chmod +x "$scratch/bin/sessrec"
export PATH="$scratch/bin:$PATH"
if ! python3 -c "import pydantic, typer, rich, yaml, scipy, matplotlib" 2>"$OUT/imports.txt"; then
  echo "missing Python packages: $(tail -1 "$OUT/imports.txt")" >&2
  exit 2
fi
rm -f "$OUT/imports.txt"

touch "$scratch/started"
sleep 1  # records written from now on are newer than the marker, whatever the clock's resolution
# step COMMAND...: COMMAND within the budget left, its output in OUT/session.log.
step() {
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 30 ]; then
    echo "$*: not started, the budget is spent" | tee -a "$OUT/session.log"
    return 0
  fi
  echo "== $* (${left} s left)" | tee -a "$OUT/session.log"
  # timeout signals its whole process group, so the runs a pipeline trains in the background stop too.
  timeout --kill-after=20 "$left" "$@" >>"$OUT/session.log" 2>&1
  echo "== exit $? after $SECONDS s" | tee -a "$OUT/session.log"
}
# The ablation shares its core-trm and full-model runs with Table 1 (pipelines/core_ablation.sh).
table1_out=$scratch/runs/core_table1 table1_records=$RECORDS_ROOT/core_table1_e$EPOCHS
for name in $STEPS; do
  case $name in
    check) step python3 benchmarks/device_check.py --device "$DEVICE" --out "$OUT/device_check_$DEVICE.json" ;;
    ablation) step env OUT="$scratch/runs/core_ablation" RECORDS="$RECORDS_ROOT/core_ablation_e$EPOCHS" TABLE1_OUT="$table1_out" \
      TABLE1_RECORDS="$table1_records" RESULTS="$scratch/results" bash pipelines/core_ablation.sh "$EPOCHS" "$DEVICE" ;;
    table1) step env OUT="$table1_out" RECORDS="$table1_records" RESULTS="$scratch/results" bash pipelines/core_table1.sh "$EPOCHS" "$DEVICE" ;;
    speed) step python3 benchmarks/speed_core.py --device "$DEVICE" --batches 20 --models $SPEED_MODELS --out "$OUT/speed_core_$DEVICE.json" ;;
    *) echo "unknown step $name: expected check, ablation, table1 or speed" >&2; exit 2 ;;
  esac
done

# The records this call added, as paths under RECORDS_ROOT, in one file (few files come back).
mapfile -t added < <(cd "$RECORDS_ROOT" && find . -name report.json -newer "$scratch/started" -printf '%h\n' | sort)
if [ "${#added[@]}" -gt 0 ]; then
  tar -C "$RECORDS_ROOT" -cf "$OUT/records.tar" "${added[@]}"
fi
mapfile -t logs < <(cd "$scratch" && find runs -name '*.log' 2>/dev/null)
if [ "${#logs[@]}" -gt 0 ]; then
  tar -C "$scratch" -czf "$OUT/logs.tar.gz" "${logs[@]}"
fi
echo "recorded ${#added[@]} runs in $SECONDS s: ${added[*]:-none}" | tee -a "$OUT/session.log"
