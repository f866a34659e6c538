#!/bin/sh
# The LoRA paper's §7 analysis on the rank sweep's adapters (48-verb task, seed 1) and on a
# full fine-tune of the same data, as one table per layer in results/analyze.md (from
# `lora-analyze --json`; the full text output: lora-analyze A8 A32). Run after
# scripts/sweep-rank.sh (it reads results/sweep/irreg_large/).
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
sweep=results/sweep/irreg_large
r8=$sweep/r8-s1/adapter.safetensors r32=$sweep/r32-s1/adapter.safetensors
for f in "$r8" "$r32"; do
    [ -f "$f" ] || { echo "analyze-report.sh: $f missing: run scripts/sweep-rank.sh first" >&2; exit 1; }
done
mkdir -p runs
full=runs/analyze-irreg_large-full.safetensors
[ -f "$full" ] || "$BIN/lora-train" --quiet --full --seed 1 --out "$full" data/irreg_large.jsonl
"$BIN/lora-analyze" --json "$r8" "$r32" > runs/analyze-pair.json
"$BIN/lora-analyze" --json "$full" > runs/analyze-full.json
python3 - runs/analyze-pair.json runs/analyze-full.json "$r8" "$r32" > results/analyze.md.tmp <<'PY'
import json, sys
pair, full = (json.load(open(p)) for p in sys.argv[1:3])
a8, a32 = pair["files"]
ff = full["files"][0]
sim = {s["path"]: s for s in pair["similarity"]}
print("`lora-analyze --json %s %s` and `lora-analyze --json %s` (a full fine-tune of "
      "data/irreg_large.jsonl, seed 1). Effective rank: singular values above %g of the largest; "
      "top-4: share of Σσ² in the 4 largest; φ: the LoRA paper's subspace similarity of ΔW's "
      "column spaces, top-1 direction of rank 8 against the top 8 of rank 32 (1: contained, "
      "random: about 8/64)." % (sys.argv[3], sys.argv[4], ff["path"], pair["threshold"]))
print()
print("| layer | r=8: eff. rank | r=8: top-4 | r=8: ‖ΔW‖/‖W‖ | r=32: eff. rank | r=32: top-4 "
      "| φ(1, 8) | full FT: eff. rank (of 64) | full FT: top-4 | full FT: ‖ΔW‖/‖W‖ |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for l8, l32, lf in zip(a8["layers"], a32["layers"], ff["layers"]):
    s = sim[l8["path"]]["dw_column_space"]
    phi = s["phi"][0][s["j"].index(8)] if 8 in s["j"] else float("nan")
    print("| %s | %d | %.1f%% | %.2f | %d | %.1f%% | %.2f | %d | %.1f%% | %.2f |" % (
        l8["path"], l8["effective_rank"], 100 * l8["top4_energy"], l8["relative_norm"],
        l32["effective_rank"], 100 * l32["top4_energy"], phi, lf["effective_rank"],
        100 * lf["top4_energy"], lf["relative_norm"]))
mean = lambda f: sum(l["effective_rank"] for l in f["layers"]) / len(f["layers"])
print("| mean | %.2f | | | %.2f | | | %.2f | | |" % (mean(a8), mean(a32), mean(ff)))
PY
mv results/analyze.md.tmp results/analyze.md
echo "analyze-report.sh: wrote results/analyze.md" >&2
