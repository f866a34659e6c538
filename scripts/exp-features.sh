#!/bin/sh
# What each PEFT / QLoRA / mlx-lm variant changes on Mini-GPT: the default recipe
# (configs/lora-irreg.json, rank 8, α 16, data/irreg.jsonl) once per feature and per seed, each
# scored on what it was taught and on what no training file contains, beside its side effects.
#
#   scripts/exp-features.sh [-s "SEEDS"] [-t THREADS] [-o results]
#
# Rows: plain LoRA; DoRA (--dora); LoRA dropout (--dropout 0.1); LoRA+ (--lr-ratio 16); the
# initializations gaussian, PiSSA and OLoRA (--init); QLoRA (the same recipe on the NF4 base,
# with and without double quantization, from lora-quantize); the plain recipe with the next
# seed; the plain adapter at half strength (lora-eval --scale 0.5, no training); a mix of the
# plain adapter and the next seed's (lora-merge --combine svd --rank 8); the plain adapter
# exported in PEFT's layout (lora-export --peft) and read back. Every row runs once per seed of
# SEEDS (default "1 2 3"), into results/features/s<seed>/<row>. Columns: trainable parameters,
# adapter bytes, base bytes, exact match on the taught verbs (seen and new sentence frames), on
# verbs no training file holds (regular_heldout_new: held-out regular verbs, new frames),
# collateral damage (the largest drop of a taught verb on a form it was not taught, new
# frames), the control verbs on new frames, and training seconds: the median and range over
# the seeds. Resumable: each cell's trained and done files record the digests of the training's
# inputs and flags, and of what is scored; a finished cell is not rerun. Writes
# results/features.csv (one line per row and seed), features.md and features-strength.txt
# (lora-eval --scale-sweep of the first seed's plain adapter).
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
seeds="1 2 3" threads=$(nproc 2>/dev/null || echo 1) out=results
while getopts s:t:o:h opt; do
    case $opt in
    s) seeds=$OPTARG ;; t) threads=$OPTARG ;; o) out=$OPTARG ;;
    h) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "exp-features.sh: see -h" >&2; exit 2 ;;
    esac
done
# shellcheck disable=SC2086
[ -n "$(echo $seeds)" ] || { echo "exp-features.sh: no seed given (-s \"1 2 3\")" >&2; exit 2; }
for seed in $seeds; do
    # no leading zero: sh arithmetic would read the next seed in octal, lora-train in decimal
    case $seed in 0?* | *[!0-9]*) echo "exp-features.sh: seed '$seed' is not a whole number without leading zeros" >&2; exit 2 ;; esac
done
[ -x "$BIN/lora" ] || make bin/lora
base=data/minigpt-base.safetensors
evals="data/irreg_test.jsonl data/irreg_test_new.jsonl data/regular_heldout_new.jsonl
data/irreg_nonpast_new.jsonl data/control_new.jsonl"
mkdir -p "$out/features"

# The quantized bases (deterministic; rebuilt when the base changes).
qdir="$out/features/bases"
mkdir -p "$qdir"
qstamp=$(sha256sum "$base" | cut -c1-64)
if [ ! -f "$qdir/done" ] || [ "$(cat "$qdir/done")" != "$qstamp" ]; then
    "$BIN/lora-quantize" --nf4 --out "$qdir/base.nf4.safetensors" "$base"
    "$BIN/lora-quantize" --nf4 --double-quant --out "$qdir/base.nf4dq.safetensors" "$base"
    echo "$qstamp" > "$qdir/done"
fi

start=$(date +%s)
for seed in $seeds; do
next=$((seed + 1))
sdir="$out/features/s$seed"
# name|base|lora-train flags|how: train (a new adapter), scale S (the plain row's adapter at
# strength S), mix (lora-merge of the plain row's adapter and the next seed's), peft (export)
rows="LoRA|$base||train
DoRA|$base|--dora|train
dropout 0.1|$base|--dropout 0.1|train
LoRA+ ratio 16|$base|--lr-ratio 16|train
init gaussian|$base|--init gaussian|train
init PiSSA|$base|--init pissa|train
init OLoRA|$base|--init olora|train
QLoRA NF4|$qdir/base.nf4.safetensors||train
QLoRA NF4 double-quant|$qdir/base.nf4dq.safetensors||train
LoRA next seed|$base|--seed $next|train
strength 0.5|$base||scale 0.5
mix svd r8|$base||mix
PEFT export|$base||peft"
plain="$sdir/LoRA/adapter.safetensors" other="$sdir/LoRA_next_seed/adapter.safetensors"
echo "$rows" | while IFS='|' read -r name rbase flags how; do
    cell="$sdir/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_')"
    # two stamps: the training's inputs, and those plus what is scored (a new eval file
    # rescores every row without retraining)
    tstamp=$( { sha256sum "$rbase" configs/lora-irreg.json data/irreg.jsonl data/replay.jsonl
                echo "$flags|$how|$seed"; } | sha256sum)
    stamp=$( { echo "$tstamp"; sha256sum $evals
               [ "$how" = train ] || sha256sum "$plain"
               [ "$how" = mix ] && sha256sum "$other"; } | sha256sum)
    [ -f "$cell/done" ] && [ "$(cat "$cell/done")" = "$stamp" ] && continue
    mkdir -p "$cell"
    rm -f "$cell/done"
    scale=1 adapter="$cell/adapter.safetensors"
    case $how in
    train)
        if [ ! -f "$cell/trained" ] || [ "$(cat "$cell/trained")" != "$tstamp" ]; then
            rm -f "$cell/trained"
            # shellcheck disable=SC2086
            "$BIN/lora-train" --quiet --json --base "$rbase" --seed "$seed" $flags \
                --threads "$threads" --out "$adapter" data/irreg.jsonl > "$cell/train.json"
            echo "$tstamp" > "$cell/trained"
        fi ;;
    scale*)
        scale=${how#scale }
        adapter=$plain ;;
    mix)
        "$BIN/lora-merge" --combine svd --rank 8 \
            --adapter "$plain:0.5" --adapter "$other:0.5" \
            --out-adapter "$adapter" ;;
    peft)
        rm -rf "$cell/peft"
        "$BIN/lora-export" --peft "$cell/peft" "$plain"
        adapter="$cell/peft" ;;
    esac
    "$BIN/lora-info" --json "$adapter" | tail -n 1 > "$cell/info.json"
    "$BIN/lora-eval" --json --threads "$threads" --base "$rbase" --scale "$scale" \
        --adapter "$adapter" $evals | tail -n 1 > "$cell/eval.json"
    if [ -d "$adapter" ]; then du -b -c "$adapter"/* | tail -n 1 | cut -f1; else wc -c < "$adapter"; fi \
        > "$cell/bytes"
    wc -c < "$rbase" > "$cell/base_bytes"
    case $how in
    train) [ "$name" = "LoRA next seed" ] && flags="--seed SEED+1"
        how_text="lora-train $flags${flags:+ }$([ "$rbase" = "$base" ] || echo "--base $(basename "$rbase")")" ;;
    scale*) how_text="lora-eval --scale ${how#scale }" ;;
    mix) how_text="lora-merge --combine svd --rank 8 --adapter LoRA:0.5 --adapter next:0.5" ;;
    peft) how_text="lora-export --peft DIR" ;;
    esac
    printf '%s\n%s\n' "$name" "$(echo "$how_text" | sed 's/ *$//')" > "$cell/name"
    echo "$stamp" > "$cell/done"
    echo "exp-features: seed $seed: $name done" >&2
done
done
echo "exp-features: all cells done in $(( $(date +%s) - start ))s (finished cells are reused)" >&2
# the first seed's plain adapter from strength 0 to 1.5 (llama.cpp's --lora-scaled), one call
first=$(echo $seeds | cut -d' ' -f1)
"$BIN/lora-eval" --scale-sweep --brief --threads "$threads" \
    --adapter "$out/features/s$first/LoRA/adapter.safetensors" \
    data/irreg_test_new.jsonl data/regular_heldout_new.jsonl data/irreg_nonpast_new.jsonl \
    data/control_new.jsonl | sed -n '/^scale sweep/,$p' > "$out/features-strength.txt"
# shellcheck disable=SC2086
python3 scripts/features_report.py "$out" $seeds
