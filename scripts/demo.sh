#!/bin/sh
# The main job, end to end: the lesson's count, a rank-8 alpha-16 adapter trained on the
# irregular verbs with the shipped base, the held-out evaluation side by side, and a few
# corrections. Run by `make demo` after the build.
set -eu
cd "$(dirname "$0")/.."
BIN=${LORA_BIN:-bin}
ADAPTER=runs/irreg-r8.safetensors
mkdir -p runs

echo "== 1. The model and the lesson's count (lora-info --rank 8)"
"$BIN/lora-info" --rank 8 | grep -E "Model total|Linear total|N\(r\)|^ +8 |^  total"
echo
echo "== 2. Fine-tune a rank-8, alpha-16 adapter on data/irreg.jsonl (lora-train)"
"$BIN/lora-train" --rank 8 --alpha 16 --out "$ADAPTER" data/irreg.jsonl
echo
echo "== 3. Held-out evaluation, base vs adapter (lora-eval)"
"$BIN/lora-eval" --adapter "$ADAPTER"
echo "== 4. Corrections (lora-generate)"
set -- "go: yesterday he" "eat: she has" "write: last week we" "see: two days ago they" \
       "be: yesterday i" "come: they have" "go: now he" "walk: yesterday she" "blick: yesterday we"
"$BIN/lora-generate" "$@" > runs/demo-base.txt
"$BIN/lora-generate" --adapter "$ADAPTER" "$@" > runs/demo-adapter.txt
printf '  %-26s %-12s %s\n' "prompt" "base" "adapter"
i=1
for p in "$@"; do
    b=$(sed -n "${i}p" runs/demo-base.txt)
    a=$(sed -n "${i}p" runs/demo-adapter.txt)
    printf '  %-26s %-12s %s\n' "$p …" "$b" "$a"
    i=$((i + 1))
done
echo
echo "The adapter is $ADAPTER ($(wc -c < "$ADAPTER") bytes: 36,864 bytes of fp16 weights + header)."
echo "Try it yourself:  $BIN/lora-generate --adapter $ADAPTER"
