#!/bin/sh
# Rank sweep: LoRA at ranks 0 1 2 4 8 16 32 (several seeds each) and a full fine-tune on the
# same data and step budget, each trained and evaluated once; then a table and a plot.
#
#   scripts/sweep-rank.sh [-r "0 1 2 4 8 16 32"] [-s SEEDS | -S "LIST"] [-a "ALPHAS" | -k RATIO]
#                         [-T "TARGETS"] [-R | -L] [-j JOBS] [-t THREADS] [-o results] [-F]
#                         [-d "data/irreg.jsonl data/irreg_large.jsonl"] [-x FLAGS] [--print-commands [--repo DIR]]
#   scripts/sweep-rank.sh --merge OUTDIR
#
#   -r  ranks                 -s  seeds per rank (1..SEEDS)   -S  the seeds themselves, e.g. "3 7"
#   -a  alpha, fixed (16; any positive number, e.g. 0.5); a list "4 16 64" is a grid dimension
#   -k  keep alpha/r = RATIO instead (alpha = RATIO·r, rank 0 as 1; RATIO may be 0.5)
#   -T  lora-train --targets, a list such as "all attn q,v" is a grid dimension (- the recipe's)
#   -R  rank-stabilized scale alpha/sqrt(r) (--rslora; the default, as in configs/lora-irreg.json)
#   -L  the lesson's scale alpha/r (--no-rslora)
#   -d  training sets: each FILE.jsonl is evaluated on FILE_test[_new].jsonl, FILE_nonpast[_new].jsonl
#       (seen and new sentence frames), the control and held-out regular verbs
#   -o  output directory, relative to the repo   -F  skip the full fine-tune row
#   -j  cells run at once     -t  threads per cell (cores/JOBS; 1 with --print-commands)
#   -x  extra lora-train flags for every cell (e.g. -x "--steps 300")
#
# A cell is one process: sweep-rank.sh --cell ... trains and evaluates one (set, rank, alpha,
# targets, seed) into OUTDIR/sweep/<set>/<cell>/ (r<rank>[-a<alpha>][-t<targets>]-s<seed>; the
# -a and -t parts only when the grid has several). Without --print-commands the cells run
# here, JOBS at a time, then the report is built. --print-commands only prints the grid, one
# self-contained shell line per cell (cd to the repo, --cell), for any runner that executes
# lines: GNU parallel over ssh, a Slurm array (scripts/sweep.sbatch), ...; the machines need the
# repo at the same commit, built, at the path the lines cd into (this checkout, or --repo DIR).
# --merge OUTDIR then builds the same report from the cells' files (copied back into OUTDIR
# unless it is shared), and refuses while a cell of the grid (OUTDIR/sweep/expected) is not done.
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
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN

# --cell SET NAME RANK SEED ALPHA TARGETS THREADS OUT SCALE: one cell, into OUT/sweep/<set>/NAME
# (what xargs, GNU parallel or a Slurm array task runs; TARGETS "-": the recipe's)
if [ "${1:-}" = "--cell" ]; then
    [ $# -eq 10 ] || { echo "sweep-rank.sh: --cell takes 9 arguments, got $(($# - 1))" >&2; exit 2; }
    data=$2 name=$3 rank=$4 seed=$5 alpha=$6 targets=$7 threads=$8 out=$9 scale=${10}
    set_name=$(basename "$data" .jsonl)
    stem=${data%.jsonl}
    cell="$out/sweep/$set_name/$name"
    for b in lora-train lora-eval; do
        [ -x "$BIN/$b" ] || { echo "sweep-rank.sh: $BIN/$b missing on $(hostname): run make bin/lora in $(pwd)" >&2; exit 1; }
    done
    # a cell is done for this base, recipe, data and flags only: a retrained base reruns it
    recipe=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True, separators=(",", ":")))' \
             configs/lora-irreg.json)
    stamp=$( { sha256sum data/minigpt-base.safetensors "$data" data/replay.jsonl
               echo "recipe $recipe"; echo "${SWEEP_EXTRA:-} $alpha $scale"
               [ "$targets" = - ] || echo "targets $targets"; } | sha256sum)
    [ -f "$cell/done" ] && [ "$(cat "$cell/done")" = "$stamp" ] && exit 0
    mkdir -p "$cell"
    if [ "$rank" = full ]; then model="$cell/full.safetensors"; flags="--full"
    else
        model="$cell/adapter.safetensors"; flags="--rank $rank --alpha $alpha $scale"
        [ "$targets" = - ] || flags="$flags --targets $targets"
    fi
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
    echo "sweep: $set_name $name done" >&2
    exit 0
fi

# --merge DIR: the report from the cells' files alone (cells run elsewhere, copied into DIR)
if [ "${1:-}" = "--merge" ]; then
    [ $# -eq 2 ] || { echo "sweep-rank.sh: usage: --merge DIR" >&2; exit 2; }
    [ -d "$2/sweep" ] || { echo "sweep-rank.sh: --merge $2: no $2/sweep directory" >&2; exit 1; }
    if [ -f "$2/sweep/expected" ]; then # the grid --print-commands or a sweep wrote
        missing=$(while read -r c; do [ -f "$2/sweep/$c/done" ] || echo "$c"; done < "$2/sweep/expected")
        if [ -n "$missing" ]; then
            echo "sweep-rank.sh: --merge $2: $(echo "$missing" | wc -l) of $(wc -l < "$2/sweep/expected") cells not done:" \
                 "$(echo "$missing" | head -n 5 | tr '\n' ' ')" >&2
            exit 1
        fi
    fi
    sh scripts/deps.sh gnuplot-nox
    exec python3 scripts/sweep_report.py "$2"
fi

# the long options of the grid modes, taken out before getopts
print=0 repo=$(pwd) threads_cell=1
n=$#
while [ "$n" -gt 0 ]; do
    a=$1; shift; n=$((n - 1))
    case $a in
    --print-commands) print=1 ;;
    --repo) [ "$n" -gt 0 ] || { echo "sweep-rank.sh: --repo needs a directory" >&2; exit 2; }
            repo=$1; shift; n=$((n - 1)) ;;
    --merge | --cell) echo "sweep-rank.sh: $a comes first and alone (see -h)" >&2; exit 2 ;;
    *) set -- "$@" "$a" ;;
    esac
done

ranks="0 1 2 4 8 16 32" seeds=3 seed_list="" alphas=16 ratio="" jobs=1 out=results full=1
scale=--rslora targets_list=- threads=""
sets="data/irreg.jsonl data/irreg_large.jsonl"
while getopts r:s:S:a:k:T:t:j:d:o:x:FRLh opt; do
    case $opt in
    r) ranks=$OPTARG ;; s) seeds=$OPTARG ;; S) seed_list=$OPTARG ;; a) alphas=$OPTARG ;;
    k) ratio=$OPTARG ;; T) targets_list=$OPTARG ;; t) threads=$OPTARG ;;
    j) jobs=$OPTARG ;; d) sets=$OPTARG ;; o) out=$OPTARG ;; F) full=0 ;;
    R) scale=--rslora ;; L) scale=--no-rslora ;;
    x) SWEEP_EXTRA=$OPTARG; export SWEEP_EXTRA ;;
    h) sed -n '2,41p' "$0"; exit 0 ;;
    *) echo "sweep-rank.sh: see -h" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "sweep-rank.sh: unexpected argument '$1' (see -h)" >&2; exit 2; }
positive() { awk -v x="$1" 'BEGIN { exit !(x ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ && x + 0 > 0) }'; }
count() { echo $#; }
for a in $alphas; do
    positive "$a" || { echo "sweep-rank.sh: -a $a: expected a positive number" >&2; exit 2; }
done
[ -n "$alphas" ] || { echo "sweep-rank.sh: -a: expected at least one alpha" >&2; exit 2; }
[ -z "$ratio" ] || positive "$ratio" || { echo "sweep-rank.sh: -k $ratio: expected a positive number" >&2; exit 2; }
for r in $ranks; do
    case $r in '' | *[!0-9]*) echo "sweep-rank.sh: -r $r: expected ranks 0, 1, 2, ..." >&2; exit 2 ;; esac
done
case $seeds in '' | *[!0-9]* | 0) echo "sweep-rank.sh: -s $seeds: expected a positive count" >&2; exit 2 ;; esac
[ -n "$seed_list" ] || seed_list=$(seq 1 "$seeds")
for s in $seed_list; do
    case $s in '' | *[!0-9]*) echo "sweep-rank.sh: -S $s: expected non-negative integer seeds" >&2; exit 2 ;; esac
done
for t in $targets_list; do
    [ "$t" = - ] || echo "$t" | grep -Eq '^[a-z0-9_]+(,[a-z0-9_]+)*$' ||
        { echo "sweep-rank.sh: -T $t: expected lora-train targets such as attn or q,v (- the recipe's)" >&2; exit 2; }
done
case $jobs in '' | *[!0-9]* | 0) echo "sweep-rank.sh: -j $jobs: expected a positive count" >&2; exit 2 ;; esac
case $threads in *[!0-9]* | 0) echo "sweep-rank.sh: -t $threads: expected a positive count" >&2; exit 2 ;; esac
if [ -z "$threads" ]; then
    if [ "$print" = 1 ]; then threads=1; else
        cores=$(nproc 2>/dev/null || echo 1)
        threads=$(( cores / jobs )); [ "$threads" -ge 1 ] || threads=1
    fi
fi
for d in $sets; do [ -f "$d" ] || { echo "sweep-rank.sh: $d: no such file" >&2; exit 1; }; done
# a cell's folder names the grid's varying dimensions only, so a one-alpha, one-target sweep
# keeps the names r<rank>-s<seed> and full-s<seed>
na=$(count $alphas) nt=$(count $targets_list)
[ -z "$ratio" ] || na=1

# the grid, one cell a line: SET NAME RANK SEED ALPHA TARGETS (full: once per set and seed)
grid() {
    for d in $sets; do
        for s in $seed_list; do
            for t in $targets_list; do
                for a0 in $alphas; do
                    for r in $ranks; do
                        a=$a0
                        [ -n "$ratio" ] && a=$(awk -v k="$ratio" -v r="$r" 'BEGIN { printf "%.9g", k * (r > 0 ? r : 1) }')
                        name="r$r"
                        [ "$na" -gt 1 ] && name="$name-a$a"
                        [ "$nt" -gt 1 ] && name="$name-t$t"
                        echo "$d $name-s$s $r $s $a $t"
                    done
                    [ -z "$ratio" ] || break
                done
            done
            [ "$full" = 1 ] && echo "$d full-s$s full $s $(echo $alphas | cut -d' ' -f1) -"
        done
    done
}
# the list of cells --merge checks, written atomically (several writers may race)
mkdir -p "$out/sweep"
grid | awk '{ n = split($1, p, "/"); sub(/\.jsonl$/, "", p[n]); print p[n] "/" $2 }' > "$out/sweep/expected.tmp.$$"
mv "$out/sweep/expected.tmp.$$" "$out/sweep/expected"

if [ "$print" = 1 ]; then
    # one self-contained line per cell: any machine with the repo at this commit runs it
    q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
    env=""
    [ -z "${SWEEP_EXTRA:-}" ] || env="SWEEP_EXTRA=$(q "$SWEEP_EXTRA") "
    [ -z "${LORA_BIN:-}" ] || env="${env}LORA_BIN=$(q "$LORA_BIN") "
    grid | while read -r d name r s a t; do
        echo "cd $(q "$repo") && ${env}sh scripts/sweep-rank.sh --cell $(q "$d") $name $r $s $a $(q "$t") $threads $(q "$out") $scale"
    done
    exit 0
fi

sh scripts/deps.sh gnuplot-nox
[ -x "$BIN/lora" ] || make bin/lora
start=$(date +%s)
grid | xargs -P "$jobs" -n 6 sh -c 'exec sh "$0" --cell "$1" "$2" "$3" "$4" "$5" "$6" '"$threads '$out' $scale" "$0"
elapsed=$(( $(date +%s) - start ))
echo "sweep: all cells done in ${elapsed}s (finished cells are reused)" >&2
echo "$elapsed $jobs $threads" > "$out/sweep/wall_seconds"
python3 scripts/sweep_report.py "$out"
