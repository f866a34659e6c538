#!/bin/sh
# What each PEFT / QLoRA / mlx-lm variant changes on Mini-GPT: the default recipe
# (configs/lora-irreg.json, rank 8, α 16, data/irreg.jsonl, one seed) once per feature, each
# scored on what it was taught and on what no training file contains, beside its side effects.
#
#   scripts/exp-features.sh [-s SEED] [-t THREADS] [-o results]
#
# Rows: plain LoRA; DoRA (--dora); LoRA dropout (--dropout 0.1); LoRA+ (--lr-ratio 16); the
# initializations gaussian, PiSSA and OLoRA (--init); QLoRA (the same recipe on the NF4 base,
# with and without double quantization, from lora-quantize); the plain adapter at half
# strength (lora-eval --scale 0.5, no training); a mix of the plain adapter and a second seed's
# (lora-merge --combine svd --rank 8); the plain adapter exported in PEFT's layout
# (lora-export --peft) and read back. Columns: trainable parameters, adapter bytes, base bytes,
# exact match on the taught verbs (seen and new sentence frames), on verbs no training file
# holds (irreg_unseen_new: new verbs, new frames), collateral damage (the largest drop of a
# taught verb on a form it was not taught, new frames), the control verbs on new frames, and
# training seconds. Resumable: results/features/<row>/done records the digests of the inputs
# and the flags; a finished row is not rerun. Writes results/features.csv and features.md.
set -eu
cd "$(dirname "$0")/.."
BIN=${LORA_BIN:-bin}
seed=1 threads=$(nproc 2>/dev/null || echo 1) out=results
while getopts s:t:o:h opt; do
    case $opt in
    s) seed=$OPTARG ;; t) threads=$OPTARG ;; o) out=$OPTARG ;;
    h) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "exp-features.sh: see -h" >&2; exit 2 ;;
    esac
done
[ -x "$BIN/lora" ] || make bin/lora
base=data/minigpt-base.safetensors
evals="data/irreg_test.jsonl data/irreg_test_new.jsonl data/irreg_unseen_new.jsonl
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

# name|base|lora-train flags|how: train (a new adapter), scale S (the plain row's adapter at
# strength S), mix (lora-merge of the plain row's adapter and the seed-2 row's), peft (export)
rows="LoRA|$base||train
DoRA|$base|--dora|train
dropout 0.1|$base|--dropout 0.1|train
LoRA+ ratio 16|$base|--lr-ratio 16|train
init gaussian|$base|--init gaussian|train
init PiSSA|$base|--init pissa|train
init OLoRA|$base|--init olora|train
QLoRA NF4|$qdir/base.nf4.safetensors||train
QLoRA NF4 double-quant|$qdir/base.nf4dq.safetensors||train
LoRA seed 2|$base|--seed 2|train
strength 0.5|$base||scale 0.5
mix svd r8|$base||mix
PEFT export|$base||peft"
start=$(date +%s)
plain="$out/features/LoRA/adapter.safetensors" seed2="$out/features/LoRA_seed_2/adapter.safetensors"
echo "$rows" | while IFS='|' read -r name rbase flags how; do
    cell="$out/features/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_')"
    stamp=$( { sha256sum "$rbase" configs/lora-irreg.json data/irreg.jsonl data/replay.jsonl $evals
               [ "$how" = train ] || sha256sum "$plain"
               [ "$how" = mix ] && sha256sum "$seed2"
               echo "$flags|$how|$seed"; } | sha256sum)
    [ -f "$cell/done" ] && [ "$(cat "$cell/done")" = "$stamp" ] && continue
    mkdir -p "$cell"
    rm -f "$cell/done"
    scale=1 adapter="$cell/adapter.safetensors"
    case $how in
    train)
        # shellcheck disable=SC2086
        "$BIN/lora-train" --quiet --json --base "$rbase" --seed "$seed" $flags --threads "$threads" \
            --out "$adapter" data/irreg.jsonl > "$cell/train.json" ;;
    scale*)
        scale=${how#scale }
        adapter=$plain ;;
    mix)
        "$BIN/lora-merge" --combine svd --rank 8 \
            --adapter "$plain:0.5" --adapter "$seed2:0.5" \
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
    printf '%s\n%s\n' "$name" "$flags${flags:+ }$([ "$how" = train ] || echo "($how)")" > "$cell/name"
    echo "$stamp" > "$cell/done"
    echo "exp-features: $name done" >&2
done
echo "exp-features: all rows done in $(( $(date +%s) - start ))s (finished rows are reused)" >&2
python3 scripts/features_report.py "$out" "$seed"
