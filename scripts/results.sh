#!/bin/sh
# Regenerates every results file the README quotes, then the README's quoted blocks
# (`make results`). The base is not retrained here: `make base` does that (then run this).
# Finished recipe and sweep cells are reused while the base, config, data and flags are the same.
#
#   results/recipes.{md,csv}             scripts/recipes.py          the recipe comparison
#   results/sweep.{md,csv,png}, base.md, adapter.md   scripts/sweep-rank.sh
#   results/targets.{md,csv}             scripts/exp-targets.sh      which layers to adapt
#   results/analyze.txt                  scripts/analyze-report.sh   lora-analyze on the sweep
#   results/demo.txt                     scripts/demo.sh (stdout)    what make demo prints
#   results/bench-versus.txt             scripts/bench-versus.sh     speed-up over the tree of issue 16
#   results/bench.txt, bench-runs.csv    scripts/bench.sh            throughput, C and its PyTorch peer:
#                                                                    5 runs, median and range (~5 min)
#   results/scaling.{md,csv,png}, alpha.{md,csv}   scripts/exp-scaling.sh   α/r against α/√r, α at r = 8
#   results/forgetting.{md,csv,png}      scripts/exp-forgetting.sh   learning against forgetting
#   results/info.txt                     scripts/info-report.sh      the lesson's arithmetic, step 0
#   results/nf4.md                       scripts/exp-nf4.sh          an NF4 (QLoRA) base against F32
#   results/variants.md                  scripts/exp_variants.py     DoRA and LoRA dropout vs plain
#   results/init.{md,csv}                scripts/exp-init.sh         --init choices and --lr-ratio 16
#   results/mix.md                       scripts/exp-mix.sh          mixing two adapters (lora-merge)
#   results/features.{md,csv}, features-strength.txt   scripts/exp-features.sh   every PEFT/QLoRA feature, three seeds each
# Each script prints its wall time; the two experiments run one job at a time on 2 threads
# (45 minutes between them, measured on a shared 2-core machine) and reuse their finished cells.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
[ -x "$BIN/lora" ] || make bin/lora
start=$(date +%s)
python3 scripts/recipes.py -j 2
sh scripts/sweep-rank.sh -j 2
sh scripts/exp-targets.sh
sh scripts/analyze-report.sh
sh scripts/demo.sh > results/demo.txt.tmp && mv results/demo.txt.tmp results/demo.txt
sh scripts/bench.sh --runs 5 --seconds 2 --csv results/bench-runs.csv > results/bench.txt.tmp &&
    mv results/bench.txt.tmp results/bench.txt
# against the tree issue 16 was filed on (built in a temporary worktree)
sh scripts/bench-versus.sh --runs 5 --seconds 2 7c08e62 > results/bench-versus.txt.tmp &&
    mv results/bench-versus.txt.tmp results/bench-versus.txt
sh scripts/exp-scaling.sh
sh scripts/exp-forgetting.sh
sh scripts/info-report.sh
sh scripts/exp-nf4.sh
python3 scripts/exp_variants.py
sh scripts/exp-init.sh
sh scripts/exp-mix.sh
sh scripts/exp-features.sh
python3 scripts/readme_sync.py
echo "results.sh: done in $(( $(date +%s) - start ))s" >&2
