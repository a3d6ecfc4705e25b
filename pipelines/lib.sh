# Shared by the experiment scripts (sourced): runs that survive a stop.

# train_once RUN_DIR TRAIN_ARGS...: keep a finished run (it has report.json), resume an
# interrupted one from its last.pt, else train afresh with `sessrec train TRAIN_ARGS...`.
train_once() {
  local run=$1
  shift
  if [ -f "$run/report.json" ]; then
    echo "$run: done"
  elif [ -f "$run/last.pt" ]; then
    sessrec train --resume "$run"
  else
    rm -rf "$run"
    sessrec train "$@" --run-dir "$run"
  fi
}

# finished_runs DIR: print the run directories under DIR that have a report.json, one per line.
finished_runs() {
  local report
  for report in "$1"/*/report.json; do
    [ -f "$report" ] && echo "${report%/report.json}"
  done
  return 0
}
