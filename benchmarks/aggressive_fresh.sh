#!/usr/bin/env bash
# auto_warmup at every judged task's aggressive peak, on 20 fresh seeds, against the length the
# benchmark tuned there on its own seeds (benchmarks/fresh_seeds.py, one cell at a time; each
# cell's store is resumable). The cells: the 21 test, holdout, reserve, fresh, novel and blind
# tasks' aggressive peaks and tuned lengths, from the "discriminates" tables of docs/results.md
# (the stores that chose them do not outlive a session). Cheapest first; about an hour on 2 cores.
#
#     bash benchmarks/aggressive_fresh.sh [SEEDS]      # prints one block per cell
set -euo pipefail
seeds=${1:-20}
python=${PYTHON:-.venv/bin/python}
while read -r tier task peak tuned; do
    "$python" benchmarks/fresh_seeds.py --tier "$tier" --task "$task" --peak "$peak" \
        --tuned "linear $tuned" --seeds "$seeds"
done <<'CELLS'
fresh mlp-mse-adam 0.032 5%
blind mlp-deep-sgd 0.64 30%
fresh mlp-small-batch 0.064 20%
blind cnn-small-batch 0.032 50%
holdout cnn-mse-sgd 0.8 10%
holdout mlp-deep 0.064 10%
full cnn 0.064 30%
full large-batch 0.128 30%
novel mlp-muon 0.032 2%
full mlp-mup-ce 0.128 20%
reserve cnn-batch128 0.064 20%
novel mlp-wide 0.032 20%
full mlp-long 0.128 50%
reserve post-ln-small 0.008 50%
novel gpt-batch32 0.016 50%
fresh post-ln-wide 0.004 70%
holdout gpt-wide 0.008 70%
blind gpt-long 0.016 30%
full post-ln 0.004 50%
reserve gpt-deep 0.008 70%
full gpt-muon 0.128 5%
CELLS
