#!/usr/bin/env bash
# ARC-AGI-2's voting evaluation, fixed 16 steps against adaptive halting, on the whole test split of a short run
# (docs/performance.md, "Evaluation"):
#   bash docs/measurements/arc_vote_timing.sh ARC_DIR [WORK_DIR]
# ARC_DIR holds the ARC-AGI-2 and ConceptARC JSON files (arc-agi_training2_challenges.json, ...; docs/tasks/arc.md).
# NUM_AUG (default 1000, the paper's) sets the augmented copies per task, STEPS (default 300) the training steps.
# The short run's own final evaluation covers 64 examples only; trm eval then runs the whole split both ways.
# EXTRA (environment) adds recipe overrides to the training run. One GPU does not hold the recipe's 768 ARC examples in
# one forward (about 35 GB per 192): on one H200, EXTRA="train.per_device_batch_size=384" (2 accumulation steps).
set -euo pipefail
src=${1:?usage: arc_vote_timing.sh ARC_DIR [WORK_DIR]}
work=${2:-arc2-vote-timing}
num_aug=${NUM_AUG:-1000}
steps=${STEPS:-300}
mkdir -p "$work"
times="$work/times.txt"
: > "$times"
. "$(dirname "$0")/timed_step.sh"
store="$work/arc2-aug-$num_aug.zarr"
[ -d "$store" ] || step store trm augment arc --source "$src" --out "$store" \
    'subsets=[training2,evaluation2,concept]' test_subset=evaluation2 "num_aug=$num_aug"
step run trm run recipes/arc2_attn.yaml "data.store=$store" data.match_task_options=false "train.max_steps=$steps" \
    eval.limit=64 ${EXTRA:-} --run-dir "$work/run" --no-progress
step fixed16 trm eval "$work/run" eval.limit=null --halting fixed --max-steps 16 --out "$work/fixed16.json" --no-progress
step adaptive16 trm eval "$work/run" eval.limit=null --halting adaptive --max-steps 16 --out "$work/adaptive16.json" \
    --no-progress
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
for name in ("fixed16", "adaptive16"):
    r = json.load(open(f"{work}/{name}.json"))
    m = r["metrics"]
    votes = {k: m[k] for k in ("arc_vote/pass@1", "arc_vote/pass@2", "arc_vote/mean_votes_per_input") if k in m}
    print(f"{name}: {m['eval/examples']:.0f} examples, {r['puzzles_per_s']:.1f} puzzles/s "
          f"({m['eval/examples'] / r['puzzles_per_s']:.0f} s), mean steps {r['mean_steps']:.2f}, {votes}")
PY
