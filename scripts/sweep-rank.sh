#!/bin/sh
# Rank sweep: LoRA at ranks 0 1 2 4 8 16 32 (several seeds each) and a full fine-tune on the
# same data and step budget, each trained and evaluated once; then a table and a plot.
#
#   scripts/sweep-rank.sh [-r "0 1 2 4 8 16 32"] [-s SEEDS] [-a ALPHA | -k RATIO] [-R | -L] [-j JOBS]
#                         [-d "data/irreg.jsonl data/irreg_large.jsonl"] [-o results] [-F]
#
#   -r  ranks                 -s  seeds per rank (1..SEEDS)          -j  cells run in parallel
#   -a  alpha, fixed (16; any positive number, e.g. 0.5)
#   -k  keep alpha/r = RATIO instead (alpha = RATIO·r, rank 0 as 1; RATIO may be 0.5)
#   -R  rank-stabilized scale alpha/sqrt(r) (--rslora; the default, as in configs/lora-irreg.json)
#   -L  the lesson's scale alpha/r (--no-rslora)
#   -d  training sets: each FILE.jsonl is evaluated on FILE_test[_new].jsonl, FILE_nonpast[_new].jsonl
#       (seen and new sentence frames), the control and held-out regular verbs
#   -o  output directory      -F  skip the full fine-tune row
#   -x  extra lora-train flags for every cell (e.g. -x "--steps 300")
#
# Resumable: a finished cell (results/sweep/<set>/<cell>/done records the digests of the base,
# the recipe config, the data and the flags) is not rerun for the same inputs, so an
# interrupted sweep continues where it stopped and a new base or recipe reruns everything.
# The recipe enters the stamp as its settings (sorted keys, compact JSON), not as the file's
# bytes: reformatting configs/lora-irreg.json reruns nothing, but any added key does, even one
# whose value is what lora-train did before it existed (cells stamped by an older version of
# this script are rerun once too). To rebuild the tables and the plot from finished cells
# without running anything: python3 scripts/sweep_report.py [OUTDIR].
# Writes results/sweep.csv, results/sweep.md, results/sweep.png, results/base.md and
# results/adapter.md. Every other lora-train setting comes from configs/lora-irreg.json.
set -eu
cd "$(dirname "$0")/.."
BIN=${LORA_BIN:-bin}

# --cell SET RANK SEED ALPHA THREADS OUT SCALE: one cell (called through xargs for parallelism)
if [ "${1:-}" = "--cell" ]; then
    data=$2 rank=$3 seed=$4 alpha=$5 threads=$6 out=$7 scale=$8
    set_name=$(basename "$data" .jsonl)
    stem=${data%.jsonl}
    cell="$out/sweep/$set_name/$( [ "$rank" = full ] && echo full || echo "r$rank")-s$seed"
    # a cell is done for this base, recipe, data and flags only: a retrained base reruns it
    recipe=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True, separators=(",", ":")))' \
             configs/lora-irreg.json)
    stamp=$( { sha256sum data/minigpt-base.safetensors "$data" data/replay.jsonl
               echo "recipe $recipe"; echo "${SWEEP_EXTRA:-} $alpha $scale"; } | sha256sum)
    [ -f "$cell/done" ] && [ "$(cat "$cell/done")" = "$stamp" ] && exit 0
    mkdir -p "$cell"
    if [ "$rank" = full ]; then model="$cell/full.safetensors"; flags="--full"
    else model="$cell/adapter.safetensors"; flags="--rank $rank --alpha $alpha $scale"; fi
    # shellcheck disable=SC2086
    "$BIN/lora-train" --quiet --json $flags ${SWEEP_EXTRA:-} --seed "$seed" --threads "$threads" \
        --out "$model" "$data" > "$cell/train.json"
    # what was taught and what must not change, each on seen and on new sentence frames
    evals="data/control_regular.jsonl data/control_new.jsonl data/regular_heldout.jsonl"
    evals="$evals data/regular_heldout_new.jsonl data/irreg_unseen.jsonl"
    for f in _test _test_new _nonpast _nonpast_new; do
        [ -f "$stem$f.jsonl" ] && evals="$evals $stem$f.jsonl"
    done
    # shellcheck disable=SC2086
    "$BIN/lora-eval" --json --threads "$threads" --adapter "$model" $evals | tail -n 1 > "$cell/eval.json"
    [ "$rank" = full ] && rm -f "$model" # 415 KB each; the metrics are what the sweep keeps
    echo "$stamp" > "$cell/done"
    echo "sweep: $set_name rank $rank seed $seed done" >&2
    exit 0
fi

ranks="0 1 2 4 8 16 32" seeds=3 alpha=16 ratio="" jobs=1 out=results full=1 scale=--rslora
sets="data/irreg.jsonl data/irreg_large.jsonl"
while getopts r:s:a:k:j:d:o:x:FRLh opt; do
    case $opt in
    r) ranks=$OPTARG ;; s) seeds=$OPTARG ;; a) alpha=$OPTARG ;; k) ratio=$OPTARG ;;
    j) jobs=$OPTARG ;; d) sets=$OPTARG ;; o) out=$OPTARG ;; F) full=0 ;;
    R) scale=--rslora ;; L) scale=--no-rslora ;;
    x) SWEEP_EXTRA=$OPTARG; export SWEEP_EXTRA ;;
    h) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "sweep-rank.sh: see -h" >&2; exit 2 ;;
    esac
done
positive() { awk -v x="$1" 'BEGIN { exit !(x ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ && x + 0 > 0) }'; }
positive "$alpha" || { echo "sweep-rank.sh: -a $alpha: expected a positive number" >&2; exit 2; }
[ -z "$ratio" ] || positive "$ratio" || { echo "sweep-rank.sh: -k $ratio: expected a positive number" >&2; exit 2; }
sh scripts/deps.sh gnuplot-nox
[ -x "$BIN/lora" ] || make bin/lora
for d in $sets; do [ -f "$d" ] || { echo "sweep-rank.sh: $d: no such file" >&2; exit 1; }; done
cores=$(nproc 2>/dev/null || echo 1)
threads=$(( cores / jobs )); [ "$threads" -ge 1 ] || threads=1
start=$(date +%s)
for d in $sets; do
    s=1
    while [ "$s" -le "$seeds" ]; do
        for r in $ranks; do
            a=$alpha
            [ -n "$ratio" ] && a=$(awk -v k="$ratio" -v r="$r" 'BEGIN { printf "%.9g", k * (r > 0 ? r : 1) }')
            echo "$d $r $s $a"
        done
        [ "$full" = 1 ] && echo "$d full $s $alpha"
        s=$((s + 1))
    done
done | xargs -P "$jobs" -n 4 sh -c 'exec sh "$0" --cell "$1" "$2" "$3" "$4" '"$threads $out $scale" "$0"
elapsed=$(( $(date +%s) - start ))
echo "sweep: all cells done in ${elapsed}s (finished cells are reused)" >&2
echo "$elapsed $jobs $threads" > "$out/sweep/wall_seconds"
python3 scripts/sweep_report.py "$out"
