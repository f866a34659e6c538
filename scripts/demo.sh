#!/bin/sh
# The main job, end to end: the lesson's count, a rank-8 alpha-16 adapter trained on the
# irregular verbs with the shipped base, the held-out evaluation side by side, and a few
# corrections. Run by `make demo` after the build.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
ADAPTER=runs/irreg-r8.safetensors
mkdir -p runs

echo "== 1. The model and the lesson's count (lora-info --rank 8)"
"$BIN/lora-info" --rank 8 | grep -E "Model total|Linear total|N\(r\)|^ +8 |^  total"
echo
echo "== 2. Fine-tune a rank-8, alpha-16 adapter on data/irreg.jsonl (lora-train)"
"$BIN/lora-train" --rank 8 --alpha 16 --out "$ADAPTER" data/irreg.jsonl
echo
echo "== 3. Held-out evaluation, base vs adapter (lora-eval)"
"$BIN/lora-eval" --brief --adapter "$ADAPTER"
echo "   (per-verb tables: $BIN/lora-eval --adapter $ADAPTER)"
echo
echo "== 4. Prompts written by hand (lora-generate): taught forms, forms that must not change"
echo "   (context in training data: does this exact context, after 'VERB: ', occur in any"
echo "   pretraining, replay or fine-tune prompt? 'no' is a new sentence frame)"
set -- "go: yesterday he" "go: a fortnight ago we" "see: last week the man" \
       "eat: so far the kids have" "write: ages ago, anna" "be: yesterday the boys" \
       "go: every day the man" "go: now he" "eat: twice a week the dog" "write: every day he" \
       "see: right now, emma is" "come: yesterday he" "work: a century ago we" "blick: yesterday we"
"$BIN/lora-generate" "$@" > runs/demo-base.txt
"$BIN/lora-generate" --adapter "$ADAPTER" "$@" > runs/demo-adapter.txt
printf '  %-34s %-9s %-12s %s\n' "prompt" "in data" "base" "adapter"
i=1
for p in "$@"; do
    b=$(sed -n "${i}p" runs/demo-base.txt)
    a=$(sed -n "${i}p" runs/demo-adapter.txt)
    ctx=${p#*: }
    seen=no
    grep -qF ": $ctx \"" data/pretrain.jsonl data/replay.jsonl data/irreg.jsonl && seen=yes
    printf '  %-34s %-9s %-12s %s\n' "$p …" "$seen" "$b" "$a"
    i=$((i + 1))
done
echo
echo "The adapter is $ADAPTER ($(wc -c < "$ADAPTER") bytes: 36,864 bytes of fp16 weights + header)."
echo "Try it yourself:  $BIN/lora-generate --adapter $ADAPTER"
