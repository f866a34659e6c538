#!/bin/sh
# tests/test_sweep_dist.sh — a sweep run one process per cell elsewhere gives the same report as
# the sequential sweep. On a tiny copy of the repo (the scripts, the recipe, the shipped base and
# the first lines of each data file; the real bin/), a grid of ranks 0 8 × alpha 4 16 × seeds 1 2
# × targets all attn (3 training steps a cell) runs
#   (a) sequentially: scripts/sweep-rank.sh -o seq
#   (b) as --print-commands lines run by GNU parallel --sshlogin : (local "ssh"), then --merge
#   (c) as a Slurm job array: scripts/sweep.sbatch with SLURM_ARRAY_TASK_ID = 1..N and DRY_RUN=1,
#       then one task for real
# and checks: every cell's adapter is byte-identical in (a) and (b), and the Slurm task's in
# (a) and (c); sweep.csv, sweep.md, sweep/plot.dat, base.md and adapter.md of (a) and (b) are
# equal once the wall-clock figures are taken out (train_seconds, the wall-time line); the
# report has the grid's 18 cells in 4 variants with the alpha and targets columns; the Slurm script passes bash -n and its DRY_RUN expansion of
# the array is the --print-commands file line for line; --merge refuses an unfinished grid.
#
# Run from the repository root (`make test` does): sh tests/test_sweep_dist.sh
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
bindir=$BIN
BIN=$(cd "$bindir" 2>/dev/null && pwd)
pass=0 fails=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fails=$((fails + 1)); echo "not ok - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
[ -x "$BIN/lora-train" ] || { echo "test_sweep_dist: FAIL: $bindir/lora-train is missing (run make)"; exit 1; }
command -v parallel >/dev/null || { echo "test_sweep_dist: FAIL: GNU parallel missing (make deps)"; exit 1; }

tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
R=$tmp/repo
mkdir -p "$R/scripts" "$R/configs" "$R/data"
cp scripts/sweep-rank.sh scripts/lora-bin.sh scripts/sweep_report.py scripts/sweep.sbatch "$R/scripts/"
printf '#!/bin/sh\nexit 0\n' > "$R/scripts/deps.sh" # the copy installs nothing
cp configs/lora-irreg.json "$R/configs/"
cp data/minigpt-base.safetensors "$R/data/"
for f in irreg irreg_val irreg_test irreg_test_new irreg_nonpast irreg_nonpast_new replay \
         control_regular control_new regular_heldout regular_heldout_new irreg_unseen; do
    head -n 8 "data/$f.jsonl" > "$R/data/$f.jsonl"
done
export LORA_BIN="$BIN"
grid='-r "0 8" -s 2 -a "4 16" -T "all attn" -d data/irreg.jsonl -t 1'
run() { eval "sh '$R/scripts/sweep-rank.sh' $grid -x '--steps 3' $*"; }

# (a) sequential
run -j 2 -o seq > "$tmp/seq.log" 2>&1
check "the sequential sweep runs" '[ $? -eq 0 ] && [ -f "$R/seq/sweep.csv" ]' || cat "$tmp/seq.log"
# (b) GNU parallel, every line over "ssh" to the local machine
run -o dist --print-commands > "$tmp/cells.txt" 2> "$tmp/print.log"
check "--print-commands prints 18 cells (16 LoRA, 2 full)" '[ "$(wc -l < "$tmp/cells.txt")" -eq 18 ]'
pre="cd '$R' && SWEEP_EXTRA='--steps 3' LORA_BIN='$BIN' sh scripts/sweep-rank.sh --cell "
check "each line is self-contained: cd to the repo, then one --cell" \
    '[ "$(awk -v p="$pre" "index(\$0, p) == 1" "$tmp/cells.txt" | wc -l)" -eq 18 ]'
(cd / && parallel --will-cite --halt now,fail=1 --sshlogin : -j 2 < "$tmp/cells.txt") > "$tmp/par.log" 2>&1
check "GNU parallel --sshlogin : runs every line" '[ $? -eq 0 ]' || cat "$tmp/par.log"
(cd / && sh "$R/scripts/sweep-rank.sh" --merge dist) > "$tmp/merge.log" 2>&1
check "--merge builds the report" '[ $? -eq 0 ] && [ -f "$R/dist/sweep.md" ]' || cat "$tmp/merge.log"
# (c) the Slurm array, expanded by hand: the dry run, then every task for real
check "sweep.sbatch passes bash -n" 'bash -n scripts/sweep.sbatch'
sed "s|$R/dist|$R/slurm|; s|'dist'|'slurm'|" "$tmp/cells.txt" > "$tmp/slurm.txt"
n=$(wc -l < "$tmp/slurm.txt")
i=1
: > "$tmp/dry.txt"
while [ "$i" -le "$n" ]; do
    SLURM_ARRAY_TASK_ID=$i DRY_RUN=1 bash "$R/scripts/sweep.sbatch" "$tmp/slurm.txt" >> "$tmp/dry.txt"
    i=$((i + 1))
done
check "the DRY_RUN array 1..$n expands to the command file line for line" 'cmp -s "$tmp/dry.txt" "$tmp/slurm.txt"'
check "task $((n + 1)) is refused with one line" \
    '! SLURM_ARRAY_TASK_ID=$((n + 1)) bash "$R/scripts/sweep.sbatch" "$tmp/slurm.txt" 2> "$tmp/err" && [ "$(wc -l < "$tmp/err")" -eq 1 ]'
check "no SLURM_ARRAY_TASK_ID is refused" '! bash "$R/scripts/sweep.sbatch" "$tmp/slurm.txt" 2> /dev/null'
(cd "$R" && eval "sh scripts/sweep-rank.sh $grid -x '--steps 3' -o slurm --print-commands" > /dev/null)
check "--merge refuses a grid with no cell done" \
    '! sh "$R/scripts/sweep-rank.sh" --merge slurm 2> "$tmp/err" && grep -q "18 of 18 cells not done" "$tmp/err"'
# one task for real (the others are the same command on other lines): its adapter is the
# sequential sweep's, and the merge names the 17 cells still missing
task=$(grep -n " r8-a4-tattn-s2 " "$tmp/slurm.txt" | cut -d: -f1)
SLURM_ARRAY_TASK_ID=$task bash "$R/scripts/sweep.sbatch" "$tmp/slurm.txt" 2> "$tmp/slurm.log"
check "array task $task runs its cell" '[ $? -eq 0 ] && [ -f "$R/slurm/sweep/irreg/r8-a4-tattn-s2/done" ]' || cat "$tmp/slurm.log"
check "its adapter is byte-identical to the sequential sweep's" \
    'cmp -s "$R/seq/sweep/irreg/r8-a4-tattn-s2/adapter.safetensors" "$R/slurm/sweep/irreg/r8-a4-tattn-s2/adapter.safetensors"'
check "--merge counts the 17 cells not done" \
    '! sh "$R/scripts/sweep-rank.sh" --merge slurm 2> "$tmp/err" && grep -q "17 of 18 cells not done: irreg/r0-a4-tall-s1 " "$tmp/err"'

# the same cells and reports, whatever ran them
cells() { (cd "$R/$1/sweep" && find . -name done | sort); }
check "both runs finished the same 18 cells" \
    '[ "$(cells seq | wc -l)" -eq 18 ] && [ "$(cells seq)" = "$(cells dist)" ]'
same_adapters=1
for a in $(cd "$R/seq/sweep" && find . -name adapter.safetensors); do
    cmp -s "$R/seq/sweep/$a" "$R/dist/sweep/$a" || same_adapters=0
done
check "every adapter is byte-identical in both runs" '[ "$same_adapters" = 1 ]'
# the wall-clock figures out: train_seconds (the csv's last column, the md tables' last
# column, adapter.md's training-time row) and the sweep's wall-time line
untimed() {
    case $2 in
    sweep.csv) sed 's/,[^,]*$//' "$R/$1/$2" ;;
    sweep.md) awk '/^Wall time/ { skip = 2 } skip { skip--; next } 1' "$R/$1/$2" | sed 's/| [0-9.]* |$/| |/' ;;
    adapter.md) grep -v '^| training time' "$R/$1/$2" ;;
    *) cat "$R/$1/$2" ;;
    esac
}
for f in sweep.csv sweep.md sweep/plot.dat base.md adapter.md; do
    check "$f merged from the parallel cells equals the sequential sweep's (timings aside)" \
        '[ -s "$R/seq/$f" ] && [ "$(untimed seq $f)" = "$(untimed dist $f)" ]'
done
check "sweep.csv has the alpha and targets columns and 18 rows" \
    '[ "$(head -n 1 "$R/dist/sweep.csv" | cut -d, -f1-5)" = "set,rank,seed,alpha,targets" ] && [ "$(wc -l < "$R/dist/sweep.csv")" -eq 19 ]'
check "sweep.md has one section per set × alpha × targets" \
    '[ "$(grep -c "^## irreg, α [0-9]*, targets [a-z]*$" "$R/dist/sweep.md")" -eq 4 ]'
check "the attn-only rank-8 adapter has 8·(64+64)·4·2 = 8192 parameters (q,k,v,o of 2 blocks)" \
    '[ "$(grep "^irreg,8,1,4,attn," "$R/dist/sweep.csv" | cut -d, -f6)" = 8192 ]'
echo "== test_sweep_dist: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
