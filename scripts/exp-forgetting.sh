#!/bin/sh
# Learning against forgetting (Biderman et al. 2024): LoRA at ranks 1, 4, 16, 64 and the full
# fine-tune, default recipe, after 100, 300 and 1500 steps; the target accuracy against the
# damage to what must not change, and the effective rank of each update. One run at a time on
# 2 threads (EXP_THREADS); resumable (cells cached with a stamp under results/forgetting/).
#
#   scripts/exp-forgetting.sh [--report-only] [-o results]
#
# Writes results/forgetting.{csv,md,png}; prints its wall time.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
sh scripts/deps.sh gnuplot-nox
[ -x "$BIN/lora" ] || make bin/lora
start=$(date +%s)
python3 scripts/exp_forgetting.py "$@"
echo "exp-forgetting: done in $(( $(date +%s) - start ))s (finished cells are reused)" >&2
