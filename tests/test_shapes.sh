#!/bin/sh
# tests/test_shapes.sh — models of other shapes through every command (issue 12: any shape is
# safe; every buffer is sized from the loaded config). Under ASan/UBSan in `make test-asan`.
#
# Run from the repository root (`make test` does): sh tests/test_shapes.sh
# The commands are taken from ${LORA_BIN:-bin} as in tests/test_cli.sh.
#
# The matrix (every axis of the issue at least once; head size C/NH even, C divisible by NH):
#   s1  V 64   C 32  NH 2 (HS 16)  L 1  F  80  context  16
#   s2  V 64   C 96  NH 3 (HS 32)  L 3  F 200  context 128
#   s3  V 89   C 96  NH 6 (HS 16)  L 2  F 136  context  48  (vocabulary + digits and symbols)
# F is never 4·C. For each shape: write the model config, lora-pretrain (3 steps), lora-train
# (rank 8 all targets, and rank 3 attn), lora-eval, lora-export (scored again as a PEFT
# directory), lora-merge, lora-generate (greedy and
# sampled, a prompt that leaves 9 symbols of context: 118 symbols at context 128), lora-analyze
# and lora-info, asserting exit 0 and what each output must say for this shape: the config and
# parameter counts against the formulas, the merge check, completions within the context and
# the vocabulary, a prompt past the context refused; and lora-bench on the context-16 model.
# Data are generated here, with prompts near the context so that greedy decoding (no KV cache)
# stays short under the sanitizers.
#
# Prints one TAP-like line per case and a summary; exits 1 if any case failed.
set -u

cd "$(dirname "$0")/.." || exit 1

. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
bindir=$BIN
LORA=$bindir/lora
for c in -train -eval -merge -info -generate -pretrain -analyze -bench -export; do
    if [ ! -x "$LORA$c" ]; then
        echo "test_shapes: FAIL: $LORA$c is missing (run make)"
        exit 1
    fi
done
command -v python3 >/dev/null 2>&1 || { echo "test_shapes: FAIL: python3 is needed"; exit 1; }

T=$(mktemp -d) || { echo "test_shapes: FAIL: mktemp -d"; exit 1; }
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

TAP_TIMEOUT=300 # a shape's pretraining takes longer than one command of the other tests
. "$(dirname "$0")/tap.sh" # run, verdict, skip, TO, n, failed, started

# status WHAT: "; WHAT exit N: stderr" unless the last run exited 0.
status() {
    [ "$rc" -eq 0 ] || printf '; %s exit %s: %s' "$1" "$rc" "$(head -c 160 "$T/err" | tr '\n' ' ')"
}

# check SHAPE SCRIPT [FILE]: runs a python check with c (the shape's config as written, with
# its vocab), V C NH L F CTX, and d (FILE parsed as JSON, or its JSON lines as a list when it
# holds several), s (FILE's text); prints "; check failed: ..." on failure.
check() {
    python3 - "$T/$1.json" "$2" "${3:-/dev/null}" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
V, C, NH, L, F, CTX = (c[k] for k in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff",
                                      "context"))
s = open(sys.argv[3], encoding="utf-8").read()
try:
    d = json.loads(s) if s.strip() else None
except ValueError:
    try:
        d = [json.loads(line) for line in s.splitlines() if line.strip()]
    except ValueError:
        d = None
try:
    exec("ok = (" + sys.argv[2].strip() + ")")
except Exception as ex:
    ok = False
    print("; check raised %r:" % ex, end="")
if not ok:
    print("; check failed: %s" % " ".join(sys.argv[2].split())[:240], end="")
EOF
}

# ---- the shapes and their data -----------------------------------------------------------
# Configs from configs/minigpt.json (eps, RoPE base, vocabulary) with the shape changed; the
# data are prompt/completion records whose prompts are padded with words to about
# context - 12 symbols, plus (s3) text records that use the symbols only its vocabulary has.
python3 - "$T" <<'EOF'
import json, sys
out = sys.argv[1]
base = json.load(open("configs/minigpt.json"))
extra = list("0123456789") + list("\"#$%&*+/<=>@[]_")
shapes = {
    "s1": dict(d_model=32, n_heads=2, n_layers=1, d_ff=80, context=16),
    "s2": dict(d_model=96, n_heads=3, n_layers=3, d_ff=200, context=128),
    "s3": dict(d_model=96, n_heads=6, n_layers=2, d_ff=136, context=48,
               vocab=base["vocab"] + extra, vocab_size=len(base["vocab"]) + len(extra)),
}
verbs = [("go", "went"), ("see", "saw"), ("eat", "ate"), ("run", "ran"), ("take", "took"),
         ("be", "were")]
words = "and the man the boys my friends all of them".split()
for name, kw in shapes.items():
    c = dict(base)
    c.update(kw)
    json.dump(c, open("%s/%s.json" % (out, name), "w"), indent=1)
    ctx = c["context"]
    with open("%s/%s.jsonl" % (out, name), "w") as f:
        for i, (v, past) in enumerate(verbs):
            p = "%s: he " % v
            k = i
            while len(p) + len(words[k % len(words)]) + 1 <= ctx - 12:
                p += words[k % len(words)] + " "
                k += 1
            rec = {"prompt": p, "completion": past, "verb": v, "form": "past"}
            if i % 2:
                rec["distractor"] = v + "ed"
            f.write(json.dumps(rec) + "\n")
        if name == "s3":
            for i in range(3):
                f.write(json.dumps({"text": "".join(extra[i:]) + " 12+3=15"}) + "\n")
EOF
SMALL="$T/small.json"
echo '{"steps": 3, "batch": 4, "eval_every": 3, "replay": "", "replay_frac": 0}' >"$SMALL"

for s in s1 s2 s3; do
    cfg=$T/$s.json
    data=$T/$s.jsonl
    d=$T/$s
    mkdir "$d"
    ctx=$(check "$s" "print(CTX, end='') or True")
    desc=$(check "$s" "print('V %d C %d NH %d L %d F %d context %d' % (V, C, NH, L, F, CTX),
                             end='') or True")

    # pretrain: the checkpoint holds the shape of the config and its vocabulary
    run "$LORA-pretrain" --model "$cfg" --steps 3 --batch 4 --micro-batch 2 --val "" --quiet \
        --out "$d/b.st" "$data"
    why=$(status pretrain)
    run "$LORA-info" --base "$d/b.st" --json
    why="$why$(status info)"
    [ "$rc" -eq 0 ] && why="$why$(check "$s" '
        d["config"] == {k: c[k] for k in d["config"]} and len(d["config"]) == 6 and
        [t["name"] for t in d["tensors"]].count("tok_emb.weight") == 1 and
        len(d["tensors"]) == 3 + 12 * L and
        all(t["params"] == (t["shape"][0] * (t["shape"][1] if len(t["shape"]) > 1 else 1))
            for t in d["tensors"]) and
        d["embedding"] == V * C and d["norms"] == (4 * L + 2) * C and
        d["linear_weights"] == L * (4 * C * C + 2 * C * F) and
        d["linear_biases"] == L * (F + C) and
        d["total"] == V * C + L * (4 * C * C + 2 * C * F + F + 5 * C) + 2 * C and
        sum(t["params"] for t in d["tensors"]) == d["total"] and
        d["lora_params_per_rank"] == L * (10 * C + 2 * F)' "$T/out")"
    verdict "$s ($desc): lora-pretrain; lora-info --json config and counts match the formulas" \
        "$why"

    # train: two adapters (rank 8 on every Linear, rank 3 on attention only)
    run "$LORA-train" --base "$d/b.st" --config "$SMALL" --quiet --val "$data" --out "$d/a8.st" \
        "$data"
    why=$(status "train r8")
    run "$LORA-train" --base "$d/b.st" --config "$SMALL" --quiet --val "$data" --rank 3 \
        --targets attn --seed 2 --micro-batch 3 --out "$d/a3.st" "$data"
    why="$why$(status "train r3")"
    run "$LORA-info" --base "$d/b.st" --json "$d/a8.st" "$d/a3.st"
    why="$why$(status info)"
    [ "$rc" -eq 0 ] && why="$why$(check "$s" '
        len(d) == 2 and d[0]["rank"] == 8 and d[0]["params"] == 8 * L * (10 * C + 2 * F) and
        d[1]["rank"] == 3 and d[1]["params"] == 3 * L * 8 * C and
        all(x["matches_base"] and x["payload_bytes"] == 2 * x["params"] for x in d)' "$T/out")"
    verdict "$s: lora-train rank 8 (all), rank 3 (attn); lora-info: r·L·(10C+2F), 8·r·L·C" \
        "$why"

    # eval: one line per example and model, a summary with finite perplexities
    run "$LORA-eval" --json --base "$d/b.st" --adapter "$d/a8.st" --adapter "$d/a3.st" "$data"
    why=$(status eval)
    [ "$rc" -eq 0 ] && why="$why$(check "$s" '
        len(d) == 3 * sum(1 for x in open(sys.argv[1][:-5] + ".jsonl")) + 1 and
        all(len(x["prompt"]) + len(x["prediction"]) <= CTX for x in d[:-1]) and
        len(d[-1]["summary"]) == 3 and
        all(1.0 <= x["perplexity"] < 1e4 for x in d[-1]["summary"])' "$T/out")"
    verdict "$s: lora-eval --json with two adapters; predictions within the context" "$why"

    # export: the rank-3 attention adapter as a PEFT directory scores exactly as the file
    run "$LORA-export" --base "$d/b.st" --dtype f32 --peft "$d/p3" "$d/a3.st"
    why=$(status export)
    "$LORA-eval" --json --base "$d/b.st" --adapter "$d/a3.st" "$data" | sed 's/"model":"[^"]*"//g' >"$d/e_file.json"
    "$LORA-eval" --json --base "$d/b.st" --adapter "$d/p3" "$data" | sed 's/"model":"[^"]*"//g' >"$d/e_dir.json"
    [ -s "$d/e_dir.json" ] && cmp -s "$d/e_file.json" "$d/e_dir.json" ||
        why="$why; lora-eval --json differs between the adapter file and its PEFT directory"
    verdict "$s: lora-export --peft (F32) of the rank-3 adapter; lora-eval on it equals the file's" "$why"

    # merge: the check passes, and the merged base generates what base + adapter generates
    run "$LORA-merge" --base "$d/b.st" --adapter "$d/a8.st" --out "$d/m.st" "$data"
    why=$(status merge)
    awk '/^max \|logit/ { f = 1; small = $6 + 0 < 1e-3 } END { exit !(f && small) }' "$T/out" ||
        why="$why; no logit difference line below 1e-3: $(grep '^max' "$T/out")"
    run "$LORA-info" --base "$d/m.st" --json
    why="$why$(status "info merged")"
    [ "$rc" -eq 0 ] &&
        why="$why$(check "$s" 'd["config"] == {k: c[k] for k in d["config"]}' "$T/out")"
    verdict "$s: lora-merge; merged vs base+adapter logits within 1e-3; merged file has the shape" \
        "$why"

    # generate: a prompt that leaves room for 9 symbols (more than 64 where the context allows),
    # greedy and sampled; one 10 symbols longer is refused
    prompt=$(python3 -c "
w = 'go: yesterday the man and the boys and the girls and my friends and the kids '
w += 'and my parents and all of the people we know '
suf = '7 @' if '$s' == 's3' else '.'
print((w * 3)[:$ctx - 10 - len(suf)] + suf)")
    plen=$(printf '%s' "$prompt" | wc -c)
    why=""
    run "$LORA-generate" --base "$d/m.st" --max-tokens 300 "$prompt"
    why="$why$(status "generate merged")"
    cp "$T/out" "$T/gm"
    run "$LORA-generate" --base "$d/b.st" --adapter "$d/a8.st" --max-tokens 300 "$prompt"
    why="$why$(status generate)"
    cmp -s "$T/out" "$T/gm" ||
        why="$why; merged greedy '$(cat "$T/gm")' != base+adapter '$(cat "$T/out")'"
    [ "$rc" -eq 0 ] && why="$why$(check "$s" "
        len(s.rstrip(chr(10))) <= CTX - $plen - 1 and
        all(ch in c['vocab'] for ch in s.rstrip(chr(10)))" "$T/out")"
    run "$LORA-generate" --base "$d/b.st" --adapter "$d/a3.st" --temperature 1 --seed 3 \
        --max-tokens 300 "$prompt"
    why="$why$(status sample)"
    [ "$rc" -eq 0 ] && why="$why$(check "$s" "
        len(s.rstrip(chr(10))) <= CTX - $plen - 1 and
        all(ch in c['vocab'] for ch in s.rstrip(chr(10)))" "$T/out")"
    run "$LORA-generate" --base "$d/b.st" "${prompt}xxxxxxxxxx"
    [ "$rc" -eq 1 ] || why="$why; a $((plen + 10))-symbol prompt gave exit $rc, expected 1"
    grep -q "longer than $ctx symbols" "$T/err" || why="$why; no 'longer than $ctx symbols' error"
    verdict "$s: lora-generate greedy (merged == base+adapter), sampled: $plen-symbol prompt, \
output within context $ctx and vocabulary; $((plen + 10)) symbols refused" "$why"

    # analyze: every adapted layer of both files, the similarity of the 4L shared layers
    run "$LORA-analyze" --json --base "$d/b.st" "$d/a8.st" "$d/a3.st"
    why=$(status analyze)
    [ "$rc" -eq 0 ] && why="$why$(check "$s" '
        [f["rank"] for f in d["files"]] == [8, 3] and
        len(d["files"][0]["layers"]) == 6 * L and len(d["files"][1]["layers"]) == 4 * L and
        all(l["max_rank"] == f["rank"] and l["effective_rank"] <= f["rank"] and
            (l["out"], l["in"]) == ((F, C) if l["path"].endswith("fc1") else
                                    (C, F) if l["path"].endswith("fc2") else (C, C)) and
            len(l["singular_values"]) == min(l["out"], l["in"])
            for f in d["files"] for l in f["layers"]) and
        len(d["similarity"]) == 4 * L' "$T/out")"
    run "$LORA-analyze" --base "$d/b.st" "$d/m.st"
    why="$why$(status "analyze merged")"
    verdict "$s: lora-analyze --json of both adapters (shapes, ranks, 4L similarities), of the \
merged checkpoint" "$why"

    # the other training modes: the full fine-tune, and rank 5 on the MLP with replay and the
    # preservation term; the full checkpoint analyzed as W_file - W_base
    run "$LORA-train" --base "$d/b.st" --config "$SMALL" --quiet --val "$data" --full \
        --out "$d/full.st" "$data"
    why=$(status "train --full")
    run "$LORA-train" --base "$d/b.st" --config "$SMALL" --quiet --val "$data" --rank 5 \
        --targets ffn --replay "$data" --replay-frac 0.5 --preserve-kl 0.5 --out "$d/kl.st" "$data"
    why="$why$(status "train --preserve-kl")"
    run "$LORA-info" --base "$d/b.st" --json "$d/kl.st"
    why="$why$(status info)"
    [ "$rc" -eq 0 ] &&
        why="$why$(check "$s" 'd["rank"] == 5 and d["params"] == 5 * L * 2 * (C + F)' "$T/out")"
    run "$LORA-analyze" --json --base "$d/b.st" "$d/full.st" "$d/kl.st"
    why="$why$(status analyze)"
    [ "$rc" -eq 0 ] && why="$why$(check "$s" '
        d["files"][0]["kind"] == "full" and len(d["files"][0]["layers"]) == 6 * L and
        all(l["max_rank"] == min(l["out"], l["in"]) for l in d["files"][0]["layers"]) and
        len(d["files"][1]["layers"]) == 2 * L' "$T/out")"
    verdict "$s: lora-train --full and --preserve-kl (rank 5, ffn, replay); lora-analyze of both" \
        "$why"

    # bench: sequences of 32 tokens used to overflow the buffers of a context below 32; the
    # rows whose names contain "e" (train full model, the three "merged" LoRA rows, score
    # sequences, greedy generation)
    if [ "$s" = s1 ]; then
        run "$LORA-bench" --base "$d/b.st" --seconds 0.1 --threads 1 --only e --json
        why=$(status bench)
        [ "$rc" -eq 0 ] && why="$why$(check "$s" '
            d["T"] == min(32, CTX) and len(d["rows"]) == 6 and
            all(r["value"] > 0 for r in d["rows"])' "$T/out")"
        verdict "$s: lora-bench on a context of $ctx (below its 32 positions) runs at T = $ctx" \
            "$why"
    fi
done

elapsed=$(($(date +%s) - started))
if [ "$failed" -eq 0 ]; then
    echo "test_shapes: ok: $n cases passed in ${elapsed}s ($LORA)"
    exit 0
fi
echo "test_shapes: FAIL: $failed of $n cases failed in ${elapsed}s ($LORA)"
exit 1
