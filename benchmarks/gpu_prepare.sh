#!/usr/bin/env bash
# Prepares, on this machine, what benchmarks/gpu_session.sh needs on a lent GPU machine that has no
# network and no ../shared, then prints the call to make:
#   1. the processed datasets it trains on (sample, diginetica, yoochoose1_64, tmall) in data/*/processed;
#   2. wheels of the Python packages that machine's image lacks, in .whl/ (git-ignored), for its
#      Python 3.12: pydantic and what it needs (training never imports polars; the image has torch,
#      typer, rich, pyyaml, scipy and matplotlib);
#   3. the size of what travels (tracked and untracked-not-ignored files, plus the carried paths),
#      which must stay under the machine's 64 MiB.
# usage: benchmarks/gpu_prepare.sh   (in the venv that has sessrec installed)
set -euo pipefail
cd "$(dirname "$0")/.."
. pipelines/lib.sh
DATA_ROOT=data
sessrec preprocess data/sample/raw --name sample >/dev/null
carry=(.whl data/sample/processed)
for name in diginetica yoochoose1_64 tmall; do
  prepare_dataset "$name" >/dev/null
  carry+=("data/$name/processed")
done

# The versions installed here, so that both machines validate configs alike.
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" "annotated-types==$(version annotated-types)" \
  "typing-inspection==$(version typing-inspection)" "typing-extensions==$(version typing-extensions)"

tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
carried_bytes=$(du -cb "${carry[@]}" | tail -1 | cut -f1)
total=$((tree_bytes + carried_bytes))
echo "travels: $((tree_bytes / 1048576)) MiB of working tree + $((carried_bytes / 1048576)) MiB carried = $((total / 1048576)) MiB (limit 64)"
if [ "$total" -ge $((64 * 1048576)) ]; then
  echo "too large: move untracked files out of the tree (git status lists them) or carry less" >&2
  exit 1
fi
echo 'the device run to make:'
echo '  command:   bash benchmarks/gpu_session.sh "$OUT" 480'
echo '  timeout_s: 560'
printf '  carry:     [%s]\n' "$(printf '"%s", ' "${carry[@]}" | sed 's/, $//')"
