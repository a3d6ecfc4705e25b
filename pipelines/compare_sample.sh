#!/usr/bin/env bash
# Three seeds each of CORE-ave and CORE-trm on the bundled sample (3 epochs, to keep it short),
# then `sessrec compare`: mean ± std per metric, paired tests on the same test examples, and the
# same measures by slice of the test set (session length; repeat or new target), CORE-trm against CORE-ave.
# Writes runs/compare_sample-<time>/: six run directories, compare.md, compare.json, compare.png.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=runs/compare_sample-$(date +%Y%m%d-%H%M%S)
[ -f data/sample/processed/manifest.json ] || sessrec preprocess data/sample/raw --name sample
for model in core_ave core_trm; do
  for seed in 2020 2021 2022; do
    sessrec train "configs/$model.yaml" --set training.epochs=3 --set seed=$seed --run-dir "$OUT/$model-s$seed"
  done
done
sessrec compare "$OUT/core_*" --markdown "$OUT/compare.md" --json "$OUT/compare.json" --plot "$OUT/compare.png" --breakdown
