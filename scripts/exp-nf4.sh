#!/bin/sh
# QLoRA's storage for the frozen base, measured on Mini-GPT: the shipped F32 base written as F16,
# NF4 and NF4 with double-quantized scales (lora-quantize); the file sizes; the quantization
# error per tensor; the base's accuracy from each file; and the default rank-8 adapter
# (lora-train --rank 8 --alpha 16 data/irreg.jsonl) trained on the NF4 base against the same
# recipe on the F32 base: accuracy on seen/new frames, collateral damage, training seconds.
#
#   scripts/exp-nf4.sh [--report-only] [-o results]
#
# Writes results/nf4.md (scratch files under runs/nf4/); about 3 minutes of CPU time (two
# 1500-step trainings and four evaluations; 12.6 min wall on a shared 2-core machine).
# --report-only rewrites the report from the files a finished run left in runs/nf4/.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
OUT=results
REPORT_ONLY=0
while [ $# -gt 0 ]; do
    case $1 in
    --report-only) REPORT_ONLY=1 ;;
    -o) OUT=$2; shift ;;
    *) echo "exp-nf4.sh: unknown argument '$1' (usage: exp-nf4.sh [--report-only] [-o DIR])" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$BIN/lora" ] || make bin/lora
start=$(date +%s)
R=runs/nf4
mkdir -p "$R" "$OUT"
BASE=data/minigpt-base.safetensors
FILES="data/irreg_test.jsonl data/irreg_test_new.jsonl data/control_regular.jsonl data/regular_heldout.jsonl data/irreg_nonpast.jsonl data/irreg_nonpast_new.jsonl"

if [ "$REPORT_ONLY" = 0 ]; then
"$BIN/lora-quantize" --nf4 --out "$R/base.nf4.safetensors" "$BASE" >"$R/quantize-nf4.txt"
"$BIN/lora-quantize" --nf4 --double-quant --out "$R/base.nf4dq.safetensors" "$BASE" >"$R/quantize-nf4dq.txt"
"$BIN/lora-quantize" --f16 --out "$R/base.f16.safetensors" "$BASE" >"$R/quantize-f16.txt"

# The two adapters: the default recipe, on the F32 base and on the NF4 base.
for b in f32 nf4; do
    src=$BASE
    [ "$b" = nf4 ] && src=$R/base.nf4.safetensors
    "$BIN/lora-train" --rank 8 --alpha 16 --quiet --json --base "$src" --out "$R/adapter-$b.safetensors" \
        data/irreg.jsonl >"$R/train-$b.json"
done
# Scores: each base file alone, and each adapter with the base it was trained on.
"$BIN/lora-eval" --json --base "$BASE" --adapter "$R/adapter-f32.safetensors" $FILES | tail -n 1 >"$R/eval-f32.json"
"$BIN/lora-eval" --json --base "$R/base.nf4.safetensors" --adapter "$R/adapter-nf4.safetensors" $FILES | tail -n 1 >"$R/eval-nf4.json"
"$BIN/lora-eval" --json --base "$R/base.nf4dq.safetensors" $FILES | tail -n 1 >"$R/eval-nf4dq.json"
"$BIN/lora-eval" --json --base "$R/base.f16.safetensors" $FILES | tail -n 1 >"$R/eval-f16.json"
echo "$(( $(date +%s) - start ))" >"$R/seconds.txt"
fi

python3 - "$R" "$BASE" "$OUT/nf4.md" <<'PY'
import json, os, sys
R, base, out = sys.argv[1], sys.argv[2], sys.argv[3]
secs = open(os.path.join(R, "seconds.txt")).read().strip()
def ev(name):
    return json.load(open(os.path.join(R, "eval-%s.json" % name)))["summary"]
def tr(name):
    return json.load(open(os.path.join(R, "train-%s.json" % name)))
def pct(x):
    return "%.1f%%" % (100 * x)
files = ["irreg_test", "irreg_test_new", "control_regular", "regular_heldout", "irreg_nonpast",
         "irreg_nonpast_new"]
label = {"irreg_test": "irregular past, seen frames", "irreg_test_new": "irregular past, new frames",
         "control_regular": "12 control verbs", "regular_heldout": "held-out regular verbs",
         "irreg_nonpast": "irregulars' non-past forms, seen", "irreg_nonpast_new": "irregulars' non-past forms, new"}
def rows(summary, model_is_base):
    # summary entries alternate base / adapter per file when an adapter was given
    out = {}
    for s in summary:
        stem = os.path.basename(s["file"]).rsplit(".", 1)[0]
        is_base = not s["model"].startswith(R + "/adapter")
        if is_base == model_is_base:
            out[stem] = s
    return out
f32, nf4 = ev("f32"), ev("nf4")
bases = {"F32": rows(f32, True), "F16": rows(ev("f16"), True), "NF4": rows(nf4, True),
         "NF4 + double quant": rows(ev("nf4dq"), True)}
adapters = {"F32 base": rows(f32, False), "NF4 base": rows(nf4, False)}
size = {"F32 (shipped)": os.path.getsize(base), "F16 (`--f16`)": os.path.getsize(R + "/base.f16.safetensors"),
        "NF4 (`--nf4`)": os.path.getsize(R + "/base.nf4.safetensors"),
        "NF4 + double quant (`--nf4 --double-quant`)": os.path.getsize(R + "/base.nf4dq.safetensors")}
L = []
L.append("# NF4 base (QLoRA's 4-bit NormalFloat) on Mini-GPT")
L.append("")
L.append("Written by `scripts/exp-nf4.sh` (%s s wall for the runs, measured). The 12 Linear weights (98,304 of 103,680 parameters) "
         "are stored in NF4, blocks of 64 with one absmax each; the tied embedding/head, LayerNorms "
         "and biases stay F32. Every command dequantizes the base to F32 at load." % secs)
L.append("")
L.append("## Sizes")
L.append("")
L.append("File sizes of the base, stored four ways.")
L.append("")
L.append("| base file | bytes | of F32 |")
L.append("|---|---:|---:|")
f32b = size["F32 (shipped)"]
for k, v in size.items():
    L.append("| %s | %d | %s |" % (k, v, pct(v / f32b)))
L.append("")
L.append("NF4 payload: 98,304 Linear weights at 4 bits = 49,152 bytes, plus 1,536 absmax values "
         "(6,144 bytes in F32; 1,536 bytes in int8 + 12 scales and 12 means with double "
         "quantization), plus 5,376 F32 parameters (21,504 bytes) and the header.")
L.append("")
L.append("## Error")
L.append("")
L.append("Quantization error per tensor, from `lora-quantize`'s output.")
L.append("")
for name, f in (("NF4", "quantize-nf4.txt"), ("NF4 + double quant", "quantize-nf4dq.txt")):
    L.append("%s:" % name)
    L.append("")
    L.append("```")
    txt = open(os.path.join(R, f)).read().splitlines()
    L.extend(l for l in txt if l.startswith("  "))
    L.append("```")
    L.append("")
f16 = [l for l in open(os.path.join(R, "quantize-f16.txt")).read().splitlines() if l.startswith("  all stored")][0].split()
L.append("F16, for scale (all 27 tensors): max |err| %s, rms rel err %s." % (f16[-2], f16[-1]))
L.append("")
L.append("## Base")
L.append("")
L.append("The base model read from each file: exact match, and the perplexity of the completions.")
L.append("")
L.append("| data | " + " | ".join(bases) + " |")
L.append("|---|" + "---:|" * len(bases))
for stem in files:
    L.append("| %s (`%s`) | " % (label[stem], stem) + " | ".join(
        "%s (ppl %.3f)" % (pct(b[stem]["exact_match"]), b[stem]["perplexity"]) for b in bases.values()) + " |")
L.append("")
L.append("## Adapters")
L.append("")
L.append("The rank-8 adapter of the default recipe, trained on each base.")
L.append("")
L.append("`lora-train --rank 8 --alpha 16 [--base BASE.nf4.safetensors] data/irreg.jsonl`; each "
         "adapter is scored with the base it was trained on (the NF4-trained adapter records the "
         "NF4 file's sha256 and is refused on the F32 base).")
L.append("")
L.append("| | F32 base | NF4 base |")
L.append("|---|---:|---:|")
for stem in files:
    L.append("| %s | %s | %s |" % (label[stem], pct(adapters["F32 base"][stem]["exact_match"]),
                                  pct(adapters["NF4 base"][stem]["exact_match"])))
def coll(a, b, stem):
    return "%+.1f pts" % (100 * (a[stem]["exact_match"] - b[stem]["exact_match"]))
for stem in ("control_regular", "regular_heldout"):
    L.append("| change vs its base, %s | %s | %s |" % (label[stem],
             coll(adapters["F32 base"], bases["F32"], stem), coll(adapters["NF4 base"], bases["NF4"], stem)))
def drop(a):
    d = [(s["collateral"]["largest_drop"], s["collateral"]["verb"], s["collateral"]["form"], os.path.basename(s["file"]))
         for s in a.values() if "collateral" in s]
    return max(d) if d else None
dd = [drop(adapters[k]) for k in adapters]
L.append("| largest collateral drop (non-past forms, per verb) | %s | %s |" % tuple(
    "%.0f pts (%s %s, %s)" % x if x else "-" for x in dd))
t = {"F32 base": tr("f32"), "NF4 base": tr("nf4")}
L.append("| best validation loss | %.4f | %.4f |" % (t["F32 base"]["best_val_loss"], t["NF4 base"]["best_val_loss"]))
L.append("| training seconds (%s threads) | %.1f | %.1f |" % (t["F32 base"]["threads"], t["F32 base"]["seconds"], t["NF4 base"]["seconds"]))
L.append("| trainable parameters | %d | %d |" % (t["F32 base"]["trainable_params"], t["NF4 base"]["trainable_params"]))
L.append("")
L.append("Training seconds are the wall time of each run (the machine may be shared); the NF4 base "
         "is dequantized once at load, so a step costs the same on either base. The largest "
         "collateral drop is one (verb, form) cell of 50 examples, one seed: 2 points per "
         "example.")
open(out, "w").write("\n".join(L) + "\n")
print("wrote %s" % out)
PY
echo "exp-nf4: done in $(( $(date +%s) - start ))s" >&2
