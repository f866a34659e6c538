#!/bin/sh
# The lesson's third invariant measured: does α/r keep the update's magnitude steady as the
# rank varies? Ranks 1..64, α = 16, α/r against α/√r, after 1, 10, 100 and 1500 steps; and α
# from 1 to 64 at rank 8. One run at a time on 2 threads (EXP_THREADS); resumable (cells
# cached with a stamp under results/scaling/ and results/alpha/).
#
#   scripts/exp-scaling.sh [--no-alpha] [--report-only] [-o results]
#
# Writes results/scaling.{csv,md,png} and results/alpha.{csv,md}; prints its wall time.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
sh scripts/deps.sh gnuplot-nox
[ -x "$BIN/lora" ] || make bin/lora
start=$(date +%s)
python3 scripts/exp_scaling.py "$@"
echo "exp-scaling: done in $(( $(date +%s) - start ))s (finished cells are reused)" >&2
