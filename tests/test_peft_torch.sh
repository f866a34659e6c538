#!/bin/sh
# tests/test_peft_torch.sh — lora-export's PEFT directories read by an independent loader:
# tests/reference/peft_check.py loads each directory the way PEFT does (adapter_config.json with
# json, adapter_model.safetensors with a struct reader) into the PyTorch reference Mini-GPT
# (gen_reference.py, written from SPEC.md) and compares its per-example log-probabilities with
# lora-eval --json on the same directory, within 1e-4.
#
# Two adapters: the default recipe (rank 8, alpha 16, rsLoRA, all targets; exported F16) and a
# subset (rank 4, alpha 6, alpha/r, q,v,fc1 of block 1 only; exported F32, so
# layers_to_transform and the F32 reader are exercised).
#
# Needs Debian's python3-torch (CI installs it: .ci/run); skipped with a message without it.
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
bindir=$BIN
LORA=$bindir/lora
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "test_peft_torch: SKIP: python3-torch is missing (sudo apt-get install python3-torch)"
    exit 0
fi
[ -x "$LORA" ] || { echo "test_peft_torch: FAIL: $LORA is missing (run make)"; exit 1; }
T=$(mktemp -d) || { echo "test_peft_torch: FAIL: mktemp -d"; exit 1; }
trap 'rm -rf "$T"' EXIT
fail() { echo "test_peft_torch: FAIL: $*"; exit 1; }

BASE=data/minigpt-base.safetensors
echo '{"steps": 20, "batch": 8, "eval_every": 20, "replay": "", "replay_frac": 0}' >"$T/small.json"
"$LORA-train" --config "$T/small.json" --quiet --out "$T/a.st" data/irreg.jsonl >/dev/null ||
    fail "lora-train (default recipe)"
"$LORA-train" --config "$T/small.json" --quiet --rank 4 --alpha 6 --no-rslora --targets q,v,fc1 \
    --layers 1 --lr 0.01 --out "$T/b.st" data/irreg.jsonl >/dev/null || fail "lora-train (subset)"
"$LORA-export" --peft "$T/pa" "$T/a.st" || fail "lora-export $T/a.st"
"$LORA-export" --peft "$T/pb" --dtype f32 "$T/b.st" || fail "lora-export --dtype f32 $T/b.st"
{ head -n 30 data/irreg_test_new.jsonl; head -n 10 data/control_new.jsonl; } >"$T/d.jsonl"
"$LORA-eval" --json --adapter "$T/pa" --adapter "$T/pb" "$T/d.jsonl" >"$T/ev.json" ||
    fail "lora-eval --json on the directories"
"$PY" tests/reference/peft_check.py "$BASE" "$T/d.jsonl" "$T/ev.json" "$T/pa" "$T/pb" ||
    fail "PyTorch and lora-eval disagree on an exported directory"
echo "test_peft_torch: ok (2 exported directories, PyTorch and lora-eval agree within 1e-4)"
