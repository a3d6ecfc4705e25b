# Shared by the experiment scripts (sourced): runs that survive a stop, and records that
# survive the machine.
#
# A run trains in RUN_DIR, scratch space that git ignores (its checkpoints are tens of MB).
# Once it has finished, its plain files are copied to RECORD_DIR under benchmarks/records/,
# which is committed; the tables are built from the records alone. So a grid that takes more
# CPU-hours than one machine session has fills up over many sessions or machines.
RECORD_FILES=(report.json ranks_test.npy config.yaml run.json metrics.jsonl)
# The models trained with training.compile: all seven, as each was measured to train faster so on
# CPU (benchmarks/results/speed_{core,enhanced,da_contrastive,hn}_cpu.json: 1.11-1.42x fewer
# CPU-seconds a batch). It changes speed only, and `sessrec compare` groups compiled and eager
# seeds of a model together (the runs recorded before core-hn and core-dahn could compile are eager).
# COMPILED= (set, empty) trains every model eager.
COMPILED=${COMPILED-core-ave core-trm core-da core-hn core-dahn core-trm-enhanced core-trm-contrastive}

# The benchmark datasets (SESSREC_SHARED_DATA, default ../shared/data) and where each one's
# published split lies in it.
SHARED=${SESSREC_SHARED_DATA:-../shared/data}
declare -A DATASET_SOURCE=([diginetica]=diginetica/srgnn [yoochoose1_64]=yoochoose1_64/srgnn [tmall]=tmall/lessr)

# prepare_dataset NAME: `sessrec preprocess` NAME's published split (DATASET_SOURCE) into
# DATA_ROOT/NAME/processed; with PREPROCESSED=1, use what DATA_ROOT already holds instead (a machine
# without ../shared/data, such as a lent GPU with no network, is given the processed data made elsewhere).
prepare_dataset() {
  local name=$1
  [ -n "${DATASET_SOURCE[$name]:-}" ] || { echo "unknown dataset $name: expected one of ${!DATASET_SOURCE[*]}" >&2; exit 2; }
  if [ "${PREPROCESSED:-0}" = 1 ]; then
    if [ ! -f "$DATA_ROOT/$name/processed/manifest.json" ]; then
      echo "PREPROCESSED=1 but $DATA_ROOT/$name/processed/manifest.json is missing: run sessrec preprocess there first" >&2
      exit 2
    fi
  else
    sessrec preprocess "$SHARED/${DATASET_SOURCE[$name]}" --name "$name" --out-root "$DATA_ROOT"
  fi
}

# compile_setting MODEL: the training.compile value for MODEL.
compile_setting() {
  if [[ " $COMPILED " == *" $1 "* ]]; then echo true; else echo false; fi
}

# train_once RUN_DIR RECORD_DIR TRAIN_ARGS...: nothing to do if RECORD_DIR holds a finished
# run; else keep a finished RUN_DIR (it has report.json), resume an interrupted one from its
# last.pt, or train afresh with `sessrec train TRAIN_ARGS...`; then record it.
train_once() {
  local run=$1 record=$2
  shift 2
  if [ -f "$record/report.json" ]; then
    echo "$record: done"
    return 0
  fi
  if [ -f "$run/report.json" ]; then
    echo "$run: done, recording it"
  elif [ -f "$run/last.pt" ]; then
    sessrec train --resume "$run"
  else
    rm -rf "$run"
    sessrec train "$@" --run-dir "$run"
  fi
  keep_record "$run" "$record"
}

# keep_record RUN_DIR RECORD_DIR: copy a finished run's plain files, all or none.
keep_record() {
  local run=$1 record=$2 file
  local partial="$record.partial"
  rm -rf "$partial"
  mkdir -p "$partial"
  for file in "${RECORD_FILES[@]}"; do
    cp "$run/$file" "$partial/$file"
  done
  rm -rf "$record"
  mv "$partial" "$record"
}

# finished_runs DIR: print the run or record directories under DIR that have a report.json.
finished_runs() {
  local report
  for report in "$1"/*/report.json; do
    [ -f "$report" ] && echo "${report%/report.json}"
  done
  return 0
}

# JOBS runs at a time (default 1). `spawn LOG COMMAND...` runs COMMAND; with JOBS > 1 in the
# background, its output in LOG, once fewer than JOBS spawned ones are running. `reap` waits for
# them all and fails if any did, after every one has ended (a failed run does not stop the others).
JOBS=${JOBS:-1}
SPAWNED=()
spawn() {
  local log=$1
  shift
  if [ "$JOBS" -le 1 ]; then
    "$@"
    return
  fi
  # Polled, not `wait -n`: a job reaped that way would no longer give `reap` its exit status.
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
  mkdir -p "$(dirname "$log")"
  ( "$@" ) > "$log" 2>&1 &
  SPAWNED+=("$!:$log")
  echo "started: $log"
}
reap() {
  local entry failed=0
  for entry in ${SPAWNED[@]+"${SPAWNED[@]}"}; do
    if ! wait "${entry%%:*}"; then
      echo "failed: ${entry#*:}" >&2
      failed=1
    fi
  done
  SPAWNED=()
  return $failed
}
