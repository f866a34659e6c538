#!/bin/sh
# How A and B start (issue 15): the default recipe (configs/lora-irreg.json, rank 8, alpha 16)
# with each --init (kaiming, gaussian, pissa, olora) and with --lr-ratio 16 (LoRA+ under PEFT's
# name), one seed; then a table.
#
#   scripts/exp-init.sh [-s SEED] [-t THREADS] [-o results]
#
# Each adapter is evaluated on data/irreg_test.jsonl and irreg_test_new.jsonl (seen and new
# frames), the non-past forms on new frames (collateral damage: the largest per-verb drop, from
# lora-eval --json) and the regular verbs it must leave alone: control_regular, control_new,
# regular_heldout, regular_heldout_new (exact-match change against the base, and the control
# perplexity). Resumable: results/init/<name>/done records the digests of the inputs and the
# flags; a finished cell is not rerun. Writes results/init.csv and results/init.md.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
seed=1 threads=2 out=results
while getopts s:t:o:h opt; do
    case $opt in
    s) seed=$OPTARG ;; t) threads=$OPTARG ;; o) out=$OPTARG ;;
    h) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "exp-init.sh: see -h" >&2; exit 2 ;;
    esac
done
[ -x "$BIN/lora" ] || make bin/lora
# name|lora-train flags (every other setting from configs/lora-irreg.json)
choices="kaiming|--init kaiming
gaussian|--init gaussian
pissa|--init pissa
olora|--init olora
kaiming, --lr-ratio 16|--init kaiming --lr-ratio 16"
evals="data/irreg_test.jsonl data/irreg_test_new.jsonl data/irreg_nonpast_new.jsonl
data/control_regular.jsonl data/control_new.jsonl data/regular_heldout.jsonl
data/regular_heldout_new.jsonl"
start=$(date +%s)
echo "$choices" | while IFS='|' read -r name flags; do
    cell="$out/init/$(echo "$name" | tr -c 'a-z0-9\n' '_')"
    # shellcheck disable=SC2086
    stamp=$( { sha256sum data/minigpt-base.safetensors configs/lora-irreg.json data/irreg.jsonl \
                   data/replay.jsonl data/irreg_val.jsonl $evals
               echo "$flags --rank 8 --alpha 16 --seed $seed --threads $threads"; } | sha256sum)
    [ -f "$cell/done" ] && [ "$(cat "$cell/done")" = "$stamp" ] && continue
    mkdir -p "$cell"
    # shellcheck disable=SC2086
    "$BIN/lora-train" --quiet --json $flags --rank 8 --alpha 16 --seed "$seed" \
        --threads "$threads" --out "$cell/adapter.safetensors" data/irreg.jsonl > "$cell/train.json"
    # shellcheck disable=SC2086
    "$BIN/lora-eval" --json --threads "$threads" --adapter "$cell/adapter.safetensors" $evals \
        | tail -n 1 > "$cell/eval.json"
    echo "$name" > "$cell/name"
    echo "$stamp" > "$cell/done"
    echo "exp-init: $name done" >&2
done
echo "exp-init: all cells done in $(( $(date +%s) - start ))s (finished cells are reused)" >&2
python3 - "$out" "$seed" <<'PYEOF'
import json, os, sys
out, seed = sys.argv[1], sys.argv[2]
root = os.path.join(out, "init")
order = ["kaiming", "gaussian", "pissa", "olora", "kaiming, --lr-ratio 16"]
rows = []
for cell in os.listdir(root):
    d = os.path.join(root, cell)
    if not os.path.exists(os.path.join(d, "done")):
        continue
    name = open(os.path.join(d, "name")).read().strip()
    train = json.load(open(os.path.join(d, "train.json")))
    ev = json.load(open(os.path.join(d, "eval.json")))
    row = {"init": name, "trainable_params": train["trainable_params"], "file_bytes": train["bytes"],
           "train_seconds": train["seconds"]}
    base = {}
    for r in ev["summary"]:
        kind = os.path.basename(r["file"])[:-len(".jsonl")]
        if r["model"] == "data/minigpt-base.safetensors":
            base[kind] = r
            continue
        row[kind] = 100.0 * r["exact_match"]
        if kind in base:
            row[kind + "_delta"] = 100.0 * (r["exact_match"] - base[kind]["exact_match"])
        if kind == "control_new":
            row["control_ppl_delta"] = 100.0 * (r["perplexity"] / base[kind]["perplexity"] - 1)
        if kind == "irreg_nonpast_new":
            c = r.get("collateral") or {}
            row["collateral_new"] = c.get("largest_drop") or 0.0
    rows.append(row)
rows.sort(key=lambda r: order.index(r["init"]) if r["init"] in order else 99)
cols = ["init", "trainable_params", "file_bytes", "irreg_test", "irreg_test_new", "collateral_new",
        "control_regular_delta", "control_new_delta", "regular_heldout_delta",
        "regular_heldout_new_delta", "control_ppl_delta", "train_seconds"]
with open(os.path.join(out, "init.csv"), "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        f.write(",".join('"%s"' % r[c] if c == "init" else "%s" % r.get(c, "") for c in cols) + "\n")
def pts(v):
    return "%+.1f" % v if v is not None else "?"
with open(os.path.join(out, "init.md"), "w") as f:
    f.write("| init | trainable | adapter bytes | test exact %, seen frames | test exact %, new frames "
            "| collateral, new (points) | control Δ | control Δ, new | held-out regular Δ "
            "| held-out regular Δ, new | control ppl Δ % | train s |\n")
    f.write("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        f.write("| %s | %d | %d | %.1f | %.1f | %.1f | %s | %s | %s | %s | %s | %.1f |\n" % (
            r["init"], r["trainable_params"], r["file_bytes"], r["irreg_test"], r["irreg_test_new"],
            r.get("collateral_new", 0.0), pts(r.get("control_regular_delta")),
            pts(r.get("control_new_delta")), pts(r.get("regular_heldout_delta")),
            pts(r.get("regular_heldout_new_delta")), pts(r.get("control_ppl_delta")),
            r["train_seconds"]))
    f.write("\nRank 8, alpha 16 (rsLoRA, the defaults), seed %s, 2 threads; Δ columns: exact-match "
            "points against the base; collateral: the largest drop of a taught verb on a form it was not "
            "taught (points). pissa and olora are saved converted to rank 16 for the original base "
            "(twice the bytes). train s: lora-train's wall time, which other load on the machine "
            "inflates.\n" % seed)
PYEOF
cat "$out/init.md"
