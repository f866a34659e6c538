#!/bin/sh
# The lesson's arithmetic and step-0 invariance, as the product prints them: results/info.txt.
#   1. lora-info --rank 8: the inventory, N(r) per rank with the adapters per base, what rank r
#      adds to one Linear of each shape and to all targeted weights, the rank-8 breakdown;
#   2. a rank-4 adapter trained with the default recipe, described by lora-info (how many fit in
#      the base's bytes, by payload and by file);
#   3. the initial adapter (lora-train --steps 0) scored by lora-eval: its max |Δlogit| to the
#      base over every scored position.
# About a minute on 2 cores (the rank-4 run).
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
BIN=$(cd "$BIN" && pwd) # absolute: two commands below run in $tmp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=results/info.txt.tmp
start=$(date +%s)
{
    echo '$ lora-info --rank 8'
    "$BIN/lora-info" --rank 8
    echo '$ lora-train --rank 4 --alpha 16 data/irreg.jsonl   (the default recipe, seed 1)'
    "$BIN/lora-train" --quiet --rank 4 --alpha 16 --threads 2 --out "$tmp/irreg-r4.safetensors" \
        data/irreg.jsonl
    echo '$ lora-info irreg-r4.safetensors'
    (cd "$tmp" && "$BIN/lora-info" --base "$OLDPWD/data/minigpt-base.safetensors" \
        irreg-r4.safetensors)
    echo '$ lora-train --steps 0 data/irreg.jsonl; lora-eval --brief --adapter step0.safetensors data/irreg_test_new.jsonl'
    "$BIN/lora-train" --quiet --steps 0 --threads 2 --out "$tmp/step0.safetensors" data/irreg.jsonl
    (cd "$tmp" && "$BIN/lora-eval" --brief --threads 2 \
        --base "$OLDPWD/data/minigpt-base.safetensors" --adapter step0.safetensors \
        "$OLDPWD/data/irreg_test_new.jsonl") | grep 'max |logit'
} | sed "s|$tmp/||g" >"$out"
mv "$out" results/info.txt
echo "info-report: results/info.txt in $(( $(date +%s) - start ))s" >&2
