#!/usr/bin/env bash
# Reproduces the fast Sudoku recipe's measurements (docs/tasks/sudoku.md, "The fast recipe") on one GPU:
#   bash docs/measurements/reproduce_sudoku_fast.sh DATA_DIR [SEED] [WORK_DIR]
# DATA_DIR holds the Sudoku-Extreme CSVs train_1k.csv and test_rebuilt.csv (docs/tasks/sudoku.md says where they
# come from). Builds the store, trains with recipes/sudoku_fast.yaml, then evaluates the final model with trm eval
# three ways (the recipe's setting, adaptive with a cap of 16, fixed 16 steps). Timings go to WORK_DIR/times.txt,
# the results to WORK_DIR/*.json; EXTRA (environment) adds recipe overrides to the training run, e.g.
# EXTRA="train.max_steps=1500" for a short check that the run and `trm eval` give the same final number;
# NUM_AUG (default 1000, the paper's) the shuffled versions per training puzzle.
set -euo pipefail
data=${1:?usage: reproduce_sudoku_fast.sh DATA_DIR [SEED] [WORK_DIR]}
seed=${2:-0}
work=${3:-sudoku-fast-seed$seed}
mkdir -p "$work"
times="$work/times.txt"
: > "$times"
. "$(dirname "$0")/timed_step.sh"
store="$work/sudoku-extreme.zarr"
[ -d "$store" ] || step store trm augment sudoku --source "$data/train_1k.csv" --out "$store" \
    test_file=test_rebuilt.csv subsample_size=1000 "num_aug=${NUM_AUG:-1000}"
step run trm run recipes/sudoku_fast.yaml "data.store=$store" data.match_task_options=false "train.seed=$seed" \
    ${EXTRA:-} --run-dir "$work/run" --no-progress
step eval trm eval "$work/run" eval.limit=null --out "$work/eval.json" --no-progress
step eval_cap16 trm eval "$work/run" eval.limit=null --max-steps 16 --out "$work/eval_cap16.json" --no-progress
step eval_fixed16 trm eval "$work/run" eval.limit=null --halting fixed --max-steps 16 --out "$work/eval_fixed16.json" \
    --no-progress
# The run's own final evaluation (last record of metrics.jsonl) and trm eval's, side by side.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
final = [json.loads(l) for l in open(f"{work}/run/metrics.jsonl") if '"kind": "eval"' in l][-1]
again = json.load(open(f"{work}/eval.json"))["metrics"]
key = "exact_match/exact_accuracy"
print(f"run's final evaluation: {final[key]:.4%} at {final['wall_s']:.1f} s; trm eval: {again[key]:.4%}"
      f" ({'the same' if final[key] == again[key] else 'DIFFERENT'})")
PY
