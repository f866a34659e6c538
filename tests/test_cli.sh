#!/bin/sh
# tests/test_cli.sh — the command-line contract of every lora-* command, hostile input first.
#
# Run from the repository root (`make test` does): sh tests/test_cli.sh
# The commands are taken from ${LORA_BIN:-bin}: a directory holding lora and its lora-* links,
# or the lora binary itself (mk/asan.mk sets LORA_BIN=.../build/asan/bin/lora).
#
# Every hostile case asserts the project's standard: the exit status (0 success, 1 runtime
# error, 2 usage error, 128+N only when signal N was sent), exactly one line on stderr that says
# "error" or points to --help and names the culprit (file, file:line, tensor, flag, setting),
# nothing on stdout, and no output file created or changed: the scratch output directory holds
# only a good adapter, whose sha256 is checked after every case. Happy paths check the numbers
# the lesson promises (2304·r parameters, 2 bytes each, the rank-8 file under 40 KiB), that
# every --json output parses, and that an interrupted run resumes bit-identically.
#
# Prints one TAP-like line per case and a summary; exits 1 if any case failed.
set -u

cd "$(dirname "$0")/.." || exit 1

. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
bindir=$BIN
LORA=$bindir/lora
# The commands, from the binary (src/cli/main.c's table is the one list).
if [ ! -x "$LORA" ]; then
    echo "test_cli: FAIL: $LORA is missing (run make)"
    exit 1
fi
COMMANDS=$("$LORA" --list-commands | tr '\n' ' ')
if [ -z "$COMMANDS" ]; then
    echo "test_cli: FAIL: $LORA --list-commands printed no command"
    exit 1
fi
for c in $COMMANDS; do
    if [ ! -x "$LORA-$c" ]; then
        echo "test_cli: FAIL: $LORA-$c is missing (run make)"
        exit 1
    fi
done
command -v python3 >/dev/null 2>&1 || { echo "test_cli: FAIL: python3 is needed"; exit 1; }

BASE=data/minigpt-base.safetensors
DATA=data/irreg.jsonl
VAL=data/irreg_val.jsonl
TEST=data/irreg_test.jsonl

T=$(mktemp -d) || { echo "test_cli: FAIL: mktemp -d"; exit 1; }
mounted=""
bg=""
cleanup() {
    [ -n "$bg" ] && kill -KILL "$bg" 2>/dev/null
    [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A hung command fails its case instead of hanging the suite (status 137: "crashed").
# run, verdict, skip, TO, n, failed, started; run reads stdin from $STDIN
STDIN=/dev/null
. "$(dirname "$0")/tap.sh"
todo=0 # known bugs outside src/cli/, reported: "not ok ... # TODO", not counted as failures

# ---- helpers -----------------------------------------------------------------------------

# The scratch output directory $T/o holds exactly good.st, unchanged.
outdir_why() {
    listing=$(ls -A "$T/o")
    [ "$listing" = "good.st" ] || { echo "; output directory now holds: $(echo $listing)"; return; }
    [ "$(sha256sum <"$T/o/good.st")" = "$good_sha" ] || echo "; the existing good adapter was changed"
}

# Restores $T/o to just the good adapter, so that one failure does not cascade.
outdir_reset() {
    for f in "$T/o"/* "$T/o"/.[!.]*; do
        [ -e "$f" ] && [ "$f" != "$T/o/good.st" ] && rm -rf "$f"
    done
    [ "$(sha256sum <"$T/o/good.st")" = "$good_sha" ] || cp "$T/a8.st" "$T/o/good.st"
}

# all_named WORDS FILE: WORDS separated by '|' must all occur in FILE; prints what is missing.
all_named() {
    rest=$1
    while [ -n "$rest" ]; do
        w=${rest%%|*}
        if [ "$w" = "$rest" ]; then rest=""; else rest=${rest#*|}; fi
        grep -F -q -- "$w" "$2" || printf '; stderr does not name %s' "'$w'"
    done
}

# expect_fail EXIT WORDS DESC CMD...: the hostile-input contract (see the top of the file).
expect_fail() {
    want=$1 words=$2 desc=$3
    shift 3
    run "$@"
    why=""
    [ "$rc" -eq "$want" ] || why="$why; exit $rc, expected $want"
    [ "$rc" -lt 128 ] || why="$why; crashed or was killed (exit $rc)"
    lines=$(wc -l <"$T/err" | tr -d ' ')
    records=$(awk 'END { print NR }' "$T/err")
    { [ "$lines" -eq 1 ] && [ "$records" -eq 1 ]; } || why="$why; $records lines on stderr, expected 1"
    grep -q -e 'error' -e '--help' "$T/err" || why="$why; stderr has neither 'error' nor the --help hint"
    why="$why$(all_named "$words" "$T/err")"
    [ -s "$T/out" ] && why="$why; wrote to stdout: $(head -c 80 "$T/out")"
    why="$why$(outdir_why)"
    outdir_reset
    named=$(printf '%s' "$words" | sed 's/|/, /g')
    verdict "$desc -> exit $want, one line, names $named" "$why"
}

# json_why FILE PYTHON-EXPRESSION: FILE holds JSON lines (strict: no NaN or Infinity), `lines`
# the parsed objects and `d` the only one; prints why not when they do not parse or the
# expression is false, nothing otherwise.
json_why() {
    python3 - "$1" "$2" <<'EOF' 2>&1 | tail -n 1
import json, sys
def strict(word):
    raise ValueError("%s is not JSON" % word)
try:
    text = open(sys.argv[1], encoding="utf-8").read()
    lines = [json.loads(l, parse_constant=strict) for l in text.splitlines() if l.strip()]
    d = lines[0] if len(lines) == 1 else None
except ValueError as err:
    print("; output is not valid JSON: %s" % err)
    sys.exit(0)
try:
    good = eval(sys.argv[2])
except Exception:
    good = False
if not good:
    print("; JSON check failed: %s" % sys.argv[2])
EOF
}

meta_why() { # meta_why FILE PYTHON-EXPRESSION over c, the parsed train_config
    python3 - "$1" "$2" <<'PYEOF' 2>&1 | tail -n 1
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
c = json.loads(json.loads(b[8:8 + n])["__metadata__"]["train_config"])
if not eval(sys.argv[2]): print("; train_config is %s" % json.dumps(c))
PYEOF
}

# wait_for FILE TEXT: polls (up to about 60 s) until TEXT appears in FILE; 1 on time-out.
wait_for() {
    i=0
    while ! grep -q -- "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -gt 3000 ] && return 1
        sleep 0.02 2>/dev/null || sleep 1
    done
    return 0
}

sha() { sha256sum <"$1"; }

# ---- fixtures ----------------------------------------------------------------------------

mkdir "$T/o" "$T/bad" "$T/j" "$T/dir" "$T/full" "$T/sig"
# Small, fast training: 5 steps of 8 sequences, no replay, validation at the end.
echo '{"steps": 5, "batch": 8, "eval_every": 5, "replay": "", "replay_frac": 0}' >"$T/small.json"
SMALL="--config $T/small.json --quiet"
# Pretraining: the built-in defaults with 300 steps (the cases fail before training or are
# interrupted).
echo '{"steps": 300}' >"$T/pretrain.json"

# ---- help, dispatch ----------------------------------------------------------------------

run "$LORA" --help
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
for c in $COMMANDS; do
    grep -q "^  $c " "$T/out" || why="$why; does not list $c"
done
verdict "lora --help: exit 0, lists the commands ($COMMANDS)" "$why"

# the Makefile makes the lora-* links from the same table (sed over src/cli/main.c)
table=$(sed -n '/COMMANDS-BEGIN/,/COMMANDS-END/s/^ *{"\([a-z0-9_-]*\)",.*/\1/p' src/cli/main.c | tr '\n' ' ')
why=""
[ "$table" = "$COMMANDS" ] || why="lora --list-commands: '$COMMANDS', main.c's table: '$table'"
verdict "lora --list-commands: the names of src/cli/main.c's command table, in order" "$why"

for c in $COMMANDS; do
    run "$LORA-$c" --help
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc"
    grep -q "^usage: lora-$c " "$T/out" || why="$why; no 'usage: lora-$c' on stdout"
    [ -s "$T/err" ] && why="$why; wrote to stderr"
    verdict "lora-$c --help: exit 0, usage on stdout, nothing on stderr" "$why"
done

why=""
for c in $COMMANDS; do
    "$LORA" "$c" --help >"$T/h1" 2>&1
    "$LORA-$c" --help >"$T/h2" 2>&1
    cmp -s "$T/h1" "$T/h2" || why="$why; lora $c --help differs from lora-$c --help"
done
verdict "multi-call dispatch: lora CMD --help prints the same text as lora-CMD --help ($(echo $COMMANDS | wc -w) commands)" "$why"

# ---- happy paths that produce the fixtures -------------------------------------------------

run "$LORA-train" $SMALL --steps 20 --eval-every 10 --json --out "$T/a8.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["trainable_params"] == 18432 and d["payload_bytes"] == 36864 and d["rank"] == 8 and d["params_per_rank"] == 2304 and d["steps"] == 20')"
size=$(wc -c <"$T/a8.st" 2>/dev/null || echo 999999)
[ "$size" -lt 40960 ] || why="$why; rank-8 adapter is $size bytes, not under 40960"
why="$why$(json_why "$T/out" "d['bytes'] == $size")"
verdict "lora-train --json --steps 20 --rank 8: JSON with trainable_params 18432, payload_bytes 36864; file $size < 40960 bytes" "$why"

run "$LORA-train" $SMALL --rank 1 --json --out "$T/a1.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["trainable_params"] == 2304 and d["payload_bytes"] == 4608 and d["rank"] == 1')"
verdict "lora-train --json --rank 1: trainable_params 2304, payload_bytes 4608" "$why"

# without a validation set there is no best loss: JSON null, not a bare nan
head -n 40 "$DATA" >"$T/j/noval.jsonl"
run "$LORA-train" $SMALL --json --out "$T/noval.st" "$T/j/noval.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["best_val_loss"] is None and d["trainable_params"] == 18432')"
verdict "lora-train --json without validation data: parses, best_val_loss null" "$why"

cp "$T/a8.st" "$T/o/good.st"
good_sha=$(sha "$T/o/good.st")

# JSON output escapes the paths it names
cp "$T/a8.st" "$T/we\"ird\\name.st"
run "$LORA-info" --json "$T/we\"ird\\name.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["adapter"].endswith("we\"ird\\name.st") and d["params"] == 18432')"
verdict "lora-info --json: an adapter path with a quote and a backslash still gives valid JSON" "$why"

run "$LORA-pretrain" --config "$T/pretrain.json" --steps 2 --batch 8 --val "" --quiet --json --out "$T/pre.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["steps"] == 2 and d["val_loss"] is None')"
verdict "lora-pretrain --json --steps 2 without validation: parses, val_loss null" "$why"

# Crafted files: corrupt checkpoints and adapters from the real base and the adapter above, and
# hostile JSONL.
cat >"$T/craft.py" <<'EOF'
import json, os, struct, sys
base_p, ad_p, out, jout = sys.argv[1:5]
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    return b, n, json.loads(b[8:8 + n].decode('utf-8'))
def build(h, payload):
    hb = json.dumps(h, separators=(',', ':')).encode('utf-8')
    hb += b' ' * (-len(hb) % 8)
    return struct.pack('<Q', len(hb)) + hb + payload
def put(name, data, d=out):
    open(os.path.join(d, name), 'wb').write(data)
def copy(h):
    return json.loads(json.dumps(h))
b, n, h = load(base_p)
pay = b[8 + n:]
put('empty.st', b'')
put('trunc4.st', b[:4])
put('trunc8.st', b[:8])
put('trunc_header.st', b[:8 + n // 2])
put('trunc_payload.st', b[:8 + n + len(pay) // 2])
put('hlen_2p63.st', struct.pack('<Q', 1 << 63) + b[8:])
put('hlen_eof.st', struct.pack('<Q', len(b) - 7) + b[8:])
h2 = copy(h); h2['tok_emb.weight']['data_offsets'][0] = -4
put('neg_offset.st', build(h2, pay))
order = sorted((k for k in h if k != '__metadata__'), key=lambda k: h[k]['data_offsets'][0])
h2 = copy(h); o = h2[order[1]]['data_offsets']; size = o[1] - o[0]
h2[order[1]]['data_offsets'] = [o[0] - 8, o[0] - 8 + size]
put('overlap.st', build(h2, pay))
h2 = copy(h); h2['tok_emb.weight']['shape'] = [4294967296, 4294967296, 4]
put('shape_overflow.st', build(h2, pay))
hb = b[8:8 + n]; i = hb.index(b'minigpt')
put('nonutf8.st', b[:8] + hb[:i] + b'\xff' + hb[i + 1:] + pay)
def poke(fmt, value, name, element, blob=b, hlen=n, hdr=h):
    off = 8 + hlen + hdr[name]['data_offsets'][0] + struct.calcsize(fmt) * element
    return blob[:off] + struct.pack(fmt, value) + blob[off + struct.calcsize(fmt):]
put('nan.st', poke('<f', float('nan'), 'blocks.0.attn.q_proj.weight', 17))
put('inf.st', poke('<f', float('inf'), 'blocks.1.ffn.fc1.bias', 5))
# another base: one weight of the real base moved by 0.001 (still a valid checkpoint)
off = 8 + n + h['blocks.1.ffn.fc2.weight']['data_offsets'][0]
w = struct.unpack('<f', b[off:off + 4])[0]
put('other_base.st', poke('<f', w + 0.001, 'blocks.1.ffn.fc2.weight', 0))
a, an, ah = load(ad_p)
apay = a[8 + an:]
h2 = copy(ah); h2['__metadata__']['r'] = str(int(ah['__metadata__']['r']) // 2)
put('adapter_rank4_meta.st', build(h2, apay))
bname = 'base_model.model.blocks.0.attn.q_proj.lora_B.weight'
put('adapter_nan.st', poke('<H', 0x7e00, bname, 3, a, an, ah))
put('adapter_trunc.st', a[:8 + an + len(apay) // 2])
# JSONL
good = '{"prompt": "go: yesterday he ", "completion": "went"}'
def jl(name, text):
    put(name, text if isinstance(text, bytes) else text.encode('utf-8'), jout)
jl('badjson.jsonl', good + '\n' + good[:-1] + '\n')
jl('nocompletion.jsonl', good + '\n' + good + '\n{"prompt": "go: yesterday he "}\n')
jl('promptnum.jsonl', '{"prompt": 5, "completion": "went"}\n')
jl('array.jsonl', good + '\n[1, 2, 3]\n')
jl('complist.jsonl', '{"prompt": "go: yesterday he ", "completion": ["went"]}\n')
jl('verbnum.jsonl', '{"prompt": "go: yesterday he ", "completion": "went", "verb": 3}\n')
jl('symbol.jsonl', good + '\n' + good + '\n{"prompt": "go: yesterday he ", "completion": "w#nt"}\n')
jl('long.jsonl', '{"prompt": "go: yesterday he went to the big ", "completion": "city"}\n')
jl('mb.jsonl', json.dumps({"prompt": "a" * (1 << 20), "completion": "b"}) + '\n')
jl('empty.jsonl', '')
jl('blank.jsonl', '\n\n\r\n')
jl('nonutf8.jsonl', b'{"prompt": "go: yesterday he ", "completion": "w\xffnt"}\n')
jl('nul.jsonl', (good + '\n' + '{"prompt": "go\0", "completion": "went"}\n').encode())
jl('trailing.jsonl', good + ' x\n')
jl('crlf.jsonl', good + '\r\n{"prompt": "see: yesterday she ", "completion": "saw"}\r\n')
jl('bom.jsonl', b'\xef\xbb\xbf' + good.encode() + b'\n')
jl('newline.jsonl', '{"prompt": "go: yesterday he ", "completion": "we\\nnt"}\n')
EOF
if ! python3 "$T/craft.py" "$BASE" "$T/a8.st" "$T/bad" "$T/j" 2>"$T/err"; then
    echo "test_cli: FAIL: crafting the hostile files failed: $(tail -n 1 "$T/err")"
    exit 1
fi
B=$T/bad
J=$T/j

# ---- lora-info, lora-eval, lora-generate, lora-merge, lora-analyze: happy paths --------------

run "$LORA-info"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '= 2304·r' "$T/out" || why="$why; no '= 2304·r'"
awk '$1 == "1" && $2 == "2,304" { f = 1 } END { exit !f }' "$T/out" || why="$why; rank 1 row lacks 2,304"
awk '$1 == "8" && $2 == "18,432" { f = 1 } END { exit !f }' "$T/out" || why="$why; rank 8 row lacks 18,432"
grep -q 'Model total  *103,680' "$T/out" || why="$why; no model total 103,680"
verdict "lora-info: 2304·r, rank 1 -> 2,304, rank 8 -> 18,432, total 103,680" "$why"

run "$LORA-info" --json --rank 8
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["total"] == 103680 and d["lora_params_per_rank"] == 2304 and [r["params"] for r in d["ranks"] if r["rank"] == 8] == [18432] and sum(l["params"] for l in d["layers"]) == 18432')"
verdict "lora-info --json --rank 8: parses; 103680 total, 2304 per rank, 18432 at rank 8" "$why"

run "$LORA-info" "$T/a1.st" "$T/a8.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '^  2304 parameters in 24 tensors' "$T/out" || why="$why; rank-1 adapter not described as 2304 parameters"
grep -q '^  18432 parameters in 24 tensors' "$T/out" || why="$why; rank-8 adapter not described as 18432 parameters"
grep -q 'this base: yes' "$T/out" || why="$why; no 'this base: yes'"
verdict "lora-info ADAPTERS: rank 1 has 2304 parameters, rank 8 has 18432, both on this base" "$why"

run "$LORA-info" --json "$T/a8.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["rank"] == 8 and d["params"] == 18432 and d["payload_bytes"] == 36864 and d["matches_base"] is True')"
verdict "lora-info --json ADAPTER: parses; rank 8, 18432 params, 36864 payload bytes, matches_base" "$why"

# The lesson's arithmetic, recomputed here from the config alone: what rank r adds to one
# Linear of each shape, r = 64 against the Linears, and how many adapters fit in the base.
run "$LORA-info" --json
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'sorted((l["out"], l["in"], l["layers"], round(l["fraction_per_rank"] * 8, 6)) for l in d["layer_shapes"]) == [(64, 64, 8, 0.25), (64, 256, 2, 0.15625), (256, 64, 2, 0.15625)] and [round(r["fraction_of_linears"] * 100, 2) for r in d["ranks"] if r["rank"] == 64] == [149.03] and [r["adapters_per_base_payload"] for r in d["ranks"] if r["rank"] == 4] == [103680 * 4 / (2 * 4 * 2304)]')"
verdict "lora-info --json: a square Linear gains 25% at r = 8, fc1/fc2 15.625%; r = 64 is 149.03% of the Linears; 22.5 rank-4 payloads per base" "$why"
BASE_BYTES=$(wc -c <"$BASE" | tr -d ' ')
A8_BYTES=$(wc -c <"$T/a8.st" | tr -d ' ')
run "$LORA-info" --json "$T/a8.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" "abs(d['adapters_per_base_payload'] - 414720 / 36864) < 1e-3 and abs(d['adapters_per_base_file'] - $BASE_BYTES / $A8_BYTES) < 1e-3")"
verdict "lora-info --json ADAPTER: adapters per base by payload (414720/36864) and by file ($BASE_BYTES/$A8_BYTES)" "$why"

run "$LORA-eval" --json --adapter "$T/a8.st" "$TEST"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
ntest=$(grep -c . "$TEST")
why="$why$(json_why "$T/out" "len(lines) == 2 * $ntest + 1 and 'summary' in lines[-1] and all({'prompt', 'target', 'prediction', 'correct', 'logprob_target', 'logprob_distractor'} <= set(o) for o in lines[:-1])")"
verdict "lora-eval --json (base + adapter, $ntest examples): every line parses, fields prompt..logprob_distractor, a summary" "$why"

# collateral damage recomputed from the per-example lines: per (verb, non-past form), the
# base's and the adapter's exact-match counts; the summary's largest drop must be their maximum
NONPAST=data/irreg_nonpast.jsonl
run "$LORA-eval" --json --adapter "$T/a8.st" "$NONPAST" "$TEST"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" "$(cat <<'PY'
(lambda ex, s, cd: (lambda cells: bool(cells) and
    all(r.get('collateral') is None for r in s if r['model'].endswith('minigpt-base.safetensors')) and
    [r for r in s if 'collateral' in r][0]['collateral']['largest_drop'] ==
        max(100.0 * (b - m) / n for n, b, m in cells.values()) and
    sorted((c['verb'], c['form'], c['n'], c['base_correct'], c['model_correct'])
           for r in s if 'collateral' in r for c in r['collateral']['cells']) ==
        sorted((v, f) + t for (v, f), t in cells.items()) and
    len(cd) == 1 and cd[0]['largest_drop'] == max(100.0 * (b - m) / n for n, b, m in cells.values()))(
    {k: (sum(1 for o in ex if (o['verb'], o['form']) == k and o['model'].endswith('base.safetensors')),
         sum(o['correct'] for o in ex if (o['verb'], o['form']) == k and o['model'].endswith('base.safetensors')),
         sum(o['correct'] for o in ex if (o['verb'], o['form']) == k and o['model'].endswith('a8.st')))
     for k in {(o['verb'], o['form']) for o in ex if o['form'] in ('3sg', 'base', 'ing')}}))(
    lines[:-1], lines[-1]['summary'], lines[-1]['collateral_damage'])
PY
)")"
verdict "lora-eval --json: collateral damage cells and largest drop equal a recount of the per-example lines" "$why"
run "$LORA-eval" --adapter "$T/a8.st" "$NONPAST" "$TEST"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q "^collateral damage: the largest drop of any verb on any non-past form is [0-9.-]* points ($NONPAST)" "$T/out" ||
    why="$why; no closing collateral-damage line naming $NONPAST (a file without non-past forms came last)"
grep -q '^  collateral damage, base -> a8: .*largest drop' "$T/out" || why="$why; no per-file table"
verdict "lora-eval: the per-verb collateral-damage table and the closing largest-drop line" "$why"

run "$LORA-generate" "go: yesterday he"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ "$(cat "$T/out")" = "goed" ] || why="$why; printed '$(head -c 60 "$T/out")', expected 'goed'"
verdict "lora-generate 'go: yesterday he' with the shipped base prints goed" "$why"

run "$LORA-generate" --adapter "$T/a8.st" "go: yesterday he"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ -s "$T/out" ] || why="$why; printed nothing"
verdict "lora-generate --adapter (the adapter used by the hostile cases loads)" "$why"

# A completion that fills the 32-symbol context may be cut: a warning names the prompt's line,
# the status stays 0. Checked against the rule on what was printed (prompt + its space +
# completion = 32 symbols, fewer than --max-tokens), for prompts long and short (the last ends
# at 31 symbols with the end marker: no warning); some must warn and some not, so the check
# cannot pass vacuously.
printf '%s\n' "go: yesterday he" "swim: last summer the kids" "fly: the birds have already" \
    "sing: two days ago the choir" "eat: last night we" "be: two days ago the children" \
    "go: two days ago the choir" > "$T/long_prompts"
STDIN="$T/long_prompts" run "$LORA-generate"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
warned=0 quiet=0 i=0
while IFS= read -r p; do
    i=$((i + 1))
    c=$(sed -n "${i}p" "$T/out")
    used=$(( ${#p} + 1 + ${#c} ))
    if grep -q "^lora-generate: warning: stdin:$i: .*context of 32 symbols.*may be cut" "$T/err"; then
        warned=$((warned + 1))
        [ "$used" -eq 32 ] || why="$why; line $i warned with $used of 32 symbols used"
    else
        quiet=$((quiet + 1))
        [ "$used" -lt 32 ] || why="$why; line $i filled the context ('$c') without a warning"
    fi
done < "$T/long_prompts"
[ "$(wc -l < "$T/out")" -eq 7 ] || why="$why; $(wc -l < "$T/out") completions for 7 prompts"
[ "$warned" -gt 0 ] && [ "$quiet" -gt 0 ] || why="$why; $warned warned, $quiet did not: both kinds are needed"
[ "$(wc -l < "$T/err")" -eq "$warned" ] || why="$why; stderr: $(head -c 200 "$T/err")"
run "$LORA-generate" --max-tokens 5 "swim: last summer the kids"
[ "$rc" -eq 0 ] && [ "$(wc -c < "$T/out")" -eq 6 ] && [ ! -s "$T/err" ] ||
    why="$why; --max-tokens 5 on a 27-symbol prompt: exit $rc, '$(cat "$T/out")', stderr '$(head -c 100 "$T/err")'"
verdict "lora-generate: a completion that fills the context gets a one-line warning naming its prompt (status 0); one ended by --max-tokens does not" "$why"

run "$LORA-merge" --adapter "$T/a8.st" --out "$T/merged.st" "$TEST"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ -f "$T/merged.st" ] || why="$why; no merged file"
awk '/^max \|logit/ { f = 1; small = $6 + 0 < 1e-3 } END { exit !(f && small) }' "$T/out" ||
    why="$why; no logit difference line, or not below 1e-3: $(grep '^max' "$T/out")"
verdict "lora-merge: writes the merged checkpoint; merged and base+adapter logits agree within 1e-3" "$why"

run "$LORA-analyze" --json "$T/a8.st" "$T/a1.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'len(d["files"]) == 2 and d["files"][0]["rank"] == 8 and len(d["similarity"]) == 12')"
verdict "lora-analyze --json with two adapters: parses, 12 layers compared" "$why"

# ---- a model of another shape: context 128 through every command -----------------------------
# Buffers must come from the loaded config, never from the default shape (under ASan in CI).
python3 - "$T/ctx128.json" <<'PY'
import json, sys
c = json.load(open("configs/minigpt.json"))
c["context"] = 128
json.dump(c, open(sys.argv[1], "w"))
PY
LONG="go: yesterday the man and the boys and the girls and my friends and my parents and the kids all"
printf '{"prompt":"%s ","completion":"went","verb":"go","form":"past"}\n' "$LONG" >"$T/long.jsonl"
why=""
run "$LORA-pretrain" --model "$T/ctx128.json" --steps 3 --batch 4 --val "" --quiet --out "$T/b128.st" data/irreg_val.jsonl
[ "$rc" -eq 0 ] || why="$why; pretrain exit $rc: $(head -c 120 "$T/err")"
run "$LORA-train" --base "$T/b128.st" $SMALL --out "$T/a128.st" "$T/long.jsonl"
[ "$rc" -eq 0 ] || why="$why; train exit $rc: $(head -c 120 "$T/err")"
run "$LORA-eval" --base "$T/b128.st" --adapter "$T/a128.st" "$T/long.jsonl"
[ "$rc" -eq 0 ] || why="$why; eval exit $rc: $(head -c 120 "$T/err")"
run "$LORA-merge" --base "$T/b128.st" --adapter "$T/a128.st" --out "$T/m128.st" "$T/long.jsonl"
[ "$rc" -eq 0 ] || why="$why; merge exit $rc: $(head -c 120 "$T/err")"
run "$LORA-generate" --base "$T/b128.st" --adapter "$T/a128.st" "$LONG"
[ "$rc" -eq 0 ] || why="$why; generate exit $rc: $(head -c 120 "$T/err")"
run "$LORA-generate" --base "$T/b128.st" --temperature 1 --max-tokens 200 "$LONG"
[ "$rc" -eq 0 ] || why="$why; sampling exit $rc: $(head -c 120 "$T/err")"
run "$LORA-analyze" --base "$T/b128.st" "$T/a128.st"
[ "$rc" -eq 0 ] || why="$why; analyze exit $rc: $(head -c 120 "$T/err")"
run "$LORA-info" --base "$T/b128.st" "$T/a128.st"
[ "$rc" -eq 0 ] || why="$why; info exit $rc: $(head -c 120 "$T/err")"
verdict "context 128: pretrain, train, eval, merge, generate (greedy and sampled), analyze, info on a ${#LONG}-symbol prompt" "$why"

# ---- safetensors given as --base / --adapter ------------------------------------------------

expect_fail 1 "empty.st|0 bytes" "lora-eval: --base empty file" \
    "$LORA-eval" --base "$B/empty.st" "$TEST"
expect_fail 1 "trunc4.st|too small" "lora-generate: --base truncated to 4 bytes" \
    "$LORA-generate" --base "$B/trunc4.st" "go: yesterday he"
expect_fail 1 "trunc8.st|header length" "lora-info: --base truncated at 8 bytes" \
    "$LORA-info" --base "$B/trunc8.st"
expect_fail 1 "trunc_header.st|exceeds file size" "lora-train: --base truncated mid-header" \
    "$LORA-train" $SMALL --base "$B/trunc_header.st" --out "$T/o/new.st" "$DATA"
expect_fail 1 "trunc_payload.st|beyond the data section" "lora-merge: --base truncated mid-payload" \
    "$LORA-merge" --base "$B/trunc_payload.st" --adapter "$T/a8.st" --out "$T/o/new.st" "$TEST"
expect_fail 1 "hlen_2p63.st|9223372036854775808" "lora-eval: --base header length 2^63" \
    "$LORA-eval" --base "$B/hlen_2p63.st" "$TEST"
expect_fail 1 "hlen_eof.st|exceeds file size" "lora-analyze: --base header length past EOF" \
    "$LORA-analyze" --base "$B/hlen_eof.st" "$T/a8.st"
expect_fail 1 "neg_offset.st|tok_emb.weight|negative" "lora-generate: --base negative data offset" \
    "$LORA-generate" --base "$B/neg_offset.st" "go: yesterday he"
expect_fail 1 "overlap.st|overlap" "lora-eval: --base overlapping data offsets" \
    "$LORA-eval" --base "$B/overlap.st" "$TEST"
expect_fail 1 "shape_overflow.st|tok_emb.weight|overflows" "lora-train: --base shape product overflows" \
    "$LORA-train" $SMALL --base "$B/shape_overflow.st" --out "$T/o/new.st" "$DATA"
expect_fail 1 "nan.st|blocks.0.attn.q_proj.weight|element 17|NaN" "lora-generate: --base with a NaN weight" \
    "$LORA-generate" --base "$B/nan.st" "go: yesterday he"
expect_fail 1 "inf.st|blocks.1.ffn.fc1.bias|element 5|inf" "lora-train: --base with an inf bias" \
    "$LORA-train" $SMALL --base "$B/inf.st" --out "$T/o/good.st" "$DATA"
expect_fail 1 "nonutf8.st|UTF-8" "lora-merge: --base with a non-UTF-8 header byte" \
    "$LORA-merge" --base "$B/nonutf8.st" --adapter "$T/a8.st" --out "$T/o/new.st" "$TEST"
expect_fail 1 "dir|not a regular file" "lora-eval: --base is a directory" \
    "$LORA-eval" --base "$T/dir" "$TEST"
expect_fail 1 "missing.st|cannot open" "lora-pretrain: missing --model file" \
    "$LORA-pretrain" --model "$T/missing.st" --steps 1 --out "$T/o/new.st"
expect_fail 1 "a8.st|not a minigpt checkpoint" "lora-train: a LoRA adapter given as --base" \
    "$LORA-train" $SMALL --base "$T/a8.st" --out "$T/o/new.st" "$DATA"
expect_fail 1 "adapter_nan.st|lora_B.weight|NaN" "lora-eval: --adapter with a NaN in B" \
    "$LORA-eval" --adapter "$B/adapter_nan.st" "$TEST"
expect_fail 1 "adapter_trunc.st|beyond the data section" "lora-generate: --adapter truncated mid-payload" \
    "$LORA-generate" --adapter "$B/adapter_trunc.st" "go: yesterday he"
expect_fail 1 "adapter_rank4_meta.st|q_proj.lora_A.weight|[8, 64]|[4, 64]" "lora-generate: --adapter whose rank differs from its shapes" \
    "$LORA-generate" --adapter "$B/adapter_rank4_meta.st" "go: yesterday he"
expect_fail 1 "adapter_rank4_meta.st|[4, 64]" "lora-info: describing an adapter whose rank differs from its shapes" \
    "$LORA-info" "$B/adapter_rank4_meta.st"
expect_fail 1 "a8.st|another base" "lora-eval: an adapter trained on another base (one weight changed)" \
    "$LORA-eval" --base "$B/other_base.st" --adapter "$T/a8.st" "$TEST"
expect_fail 1 "a8.st|another base" "lora-merge: an adapter trained on another base" \
    "$LORA-merge" --base "$B/other_base.st" --adapter "$T/a8.st" --out "$T/o/new.st" "$TEST"
expect_fail 1 "a8.st|another base" "lora-analyze: an adapter trained on another base" \
    "$LORA-analyze" --base "$B/other_base.st" "$T/a8.st"
expect_fail 1 "minigpt-base.safetensors|not a LoRA adapter" "lora-merge: the base given as --adapter" \
    "$LORA-merge" --adapter "$BASE" --out "$T/o/new.st" "$TEST"
expect_fail 1 "minigpt-base.safetensors|not a LoRA adapter" "lora-info: the base described as an adapter" \
    "$LORA-info" "$BASE"
expect_fail 1 "empty.st|0 bytes" "lora-analyze: an empty adapter file" \
    "$LORA-analyze" "$B/empty.st"
expect_fail 1 "trunc8.st|header length" "lora-bench: --base truncated at 8 bytes" \
    "$LORA-bench" --base "$B/trunc8.st" --seconds 0.1

# model config files (--model): the vocabulary and the shapes are checked too
python3 - "$T" <<'EOF2'
import json, sys
c = json.load(open("configs/minigpt.json"))
c["vocab"][5] = "ab"
json.dump(c, open(sys.argv[1] + "/badvocab.json", "w"))
c = json.load(open("configs/minigpt.json"))
c["n_heads"] = 3
json.dump(c, open(sys.argv[1] + "/badheads.json", "w"))
EOF2
expect_fail 1 "badvocab.json|vocab entry 5" "lora-pretrain: --model with a two-character vocab entry" \
    "$LORA-pretrain" --config "$T/pretrain.json" --model "$T/badvocab.json" --out "$T/o/new.st"
expect_fail 1 "badheads.json|n_heads 3" "lora-info: --model whose n_heads does not divide d_model" \
    "$LORA-info" --base "$T/nobase.st" --model "$T/badheads.json"

# ---- JSONL given to lora-train / lora-eval / lora-pretrain ----------------------------------

expect_fail 1 "badjson.jsonl:2|not valid JSON" "lora-train: a bad JSON line" \
    "$LORA-train" $SMALL --out "$T/o/new.st" "$J/badjson.jsonl"
expect_fail 1 "nocompletion.jsonl:3|completion" "lora-eval: a line without \"completion\"" \
    "$LORA-eval" "$J/nocompletion.jsonl"
expect_fail 1 "promptnum.jsonl:1|\"prompt\" is not a string" "lora-train: \"prompt\" is a number" \
    "$LORA-train" $SMALL --out "$T/o/new.st" "$J/promptnum.jsonl"
expect_fail 1 "array.jsonl:2|not a JSON object" "lora-eval: a line that is a JSON array" \
    "$LORA-eval" "$J/array.jsonl"
expect_fail 1 "complist.jsonl:1|completion" "lora-train: \"completion\" is a list (--val)" \
    "$LORA-train" $SMALL --val "$J/complist.jsonl" --out "$T/o/new.st" "$DATA"
expect_fail 1 "verbnum.jsonl:1|verb" "lora-eval: \"verb\" is a number" \
    "$LORA-eval" "$J/verbnum.jsonl"
expect_fail 1 "symbol.jsonl:3|'#'|character 2" "lora-eval: a symbol outside the vocabulary" \
    "$LORA-eval" "$TEST" "$J/symbol.jsonl"
expect_fail 1 "symbol.jsonl:3|'#'" "lora-train: a symbol outside the vocabulary in --replay" \
    "$LORA-train" $SMALL --replay "$J/symbol.jsonl" --replay-frac 0.5 --out "$T/o/new.st" "$DATA"
expect_fail 1 "long.jsonl:1|context of 32" "lora-train: a sequence longer than the context" \
    "$LORA-train" $SMALL --out "$T/o/new.st" "$J/long.jsonl"
expect_fail 1 "mb.jsonl:1|context of 32" "lora-eval: a 1 MB line" \
    "$LORA-eval" "$J/mb.jsonl"
size=$(wc -c <"$T/err")
verdict "lora-eval: the 1 MB line's message is short ($size bytes)" "$([ "$size" -lt 1024 ] || echo "stderr is $size bytes")"
expect_fail 1 "empty.jsonl|no examples" "lora-train: an empty data file" \
    "$LORA-train" $SMALL --out "$T/o/new.st" "$J/empty.jsonl"
expect_fail 1 "blank.jsonl|no examples" "lora-eval: a file of blank lines" \
    "$LORA-eval" "$J/blank.jsonl"
expect_fail 1 "nonutf8.jsonl:1|0xff" "lora-eval: a non-UTF-8 byte" \
    "$LORA-eval" "$J/nonutf8.jsonl"
expect_fail 1 "nul.jsonl:2|NUL" "lora-train: a NUL byte" \
    "$LORA-train" $SMALL --out "$T/o/new.st" "$J/nul.jsonl"
expect_fail 1 "trailing.jsonl:1|text after" "lora-eval: text after the JSON object" \
    "$LORA-eval" "$J/trailing.jsonl"
expect_fail 1 "badjson.jsonl:2" "lora-pretrain: a bad JSON line in the pretraining data" \
    "$LORA-pretrain" --steps 1 --val "" --out "$T/o/new.st" "$J/badjson.jsonl"
expect_fail 1 "nul.jsonl:2|NUL" "lora-merge: a NUL byte in DATA" \
    "$LORA-merge" --adapter "$T/a8.st" --out "$T/o/new.st" "$J/nul.jsonl"

run "$LORA-eval" --json "$J/crlf.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" '[o["target"] for o in lines[:-1]] == ["went", "saw"] and lines[1]["prompt"] == "see: yesterday she "')"
verdict "lora-eval: CRLF line endings accepted, no CR in prompt or target" "$why"

run "$LORA-train" $SMALL --val "$J/crlf.jsonl" --out "$T/crlf.st" "$J/crlf.jsonl"
verdict "lora-train: CRLF line endings accepted" "$([ "$rc" -eq 0 ] || echo "exit $rc")"

# A UTF-8 byte-order mark before the first object: accepted (cJSON skips it), and it must not
# leak into the prompt.
run "$LORA-eval" --json "$J/bom.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'lines[0]["prompt"] == "go: yesterday he " and lines[0]["line"] == 1')"
verdict "lora-eval: a UTF-8 BOM is accepted and stays out of the prompt" "$why"

# A "\n" inside a string is the end-of-text token (id 0) in the middle of a sequence.
# Known bug in src/formats/dataset.c (reported, not fixed here): it is accepted silently.
run "$LORA-eval" "$J/newline.jsonl"
n=$((n + 1))
desc='lora-eval: a line break (the end-of-text marker) inside a completion is refused'

if [ "$rc" -eq 1 ] && grep -q 'newline.jsonl:1' "$T/err"; then
    printf 'ok %s - %s\n' "$n" "$desc"
else
    printf 'not ok %s - %s # TODO bug in src/formats/dataset.c: accepted (exit %s)\n' "$n" "$desc" "$rc"
    todo=$((todo + 1))
fi

# ---- flags and config files -----------------------------------------------------------------

expect_fail 2 "--bogus|--help" "lora-train: unknown flag" \
    "$LORA-train" --bogus "$DATA"
expect_fail 2 "--rank|needs a value" "lora-train: --rank without its value" \
    "$LORA-train" "$DATA" --rank
expect_fail 2 "--rank|65" "lora-train: --rank 65" \
    "$LORA-train" --rank 65 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--rank|-1" "lora-train: --rank -1" \
    "$LORA-train" --rank -1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--lr|abc" "lora-train: --lr abc" \
    "$LORA-train" --lr abc --out "$T/o/new.st" "$DATA"
expect_fail 2 "--steps|1.5" "lora-train: --steps 1.5" \
    "$LORA-train" --steps 1.5 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--steps" "lora-train: --steps -1 (0 is the initial adapter, below is refused)" \
    "$LORA-train" --steps -1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "bogus" "lora-train: --targets bogus" \
    "$LORA-train" $SMALL --targets bogus --out "$T/o/new.st" "$DATA"
expect_fail 2 "--replay-frac|2" "lora-train: --replay-frac 2" \
    "$LORA-train" --replay-frac 2 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--replay-frac" "lora-train: --replay without --replay-frac" \
    "$LORA-train" $SMALL --replay data/replay.jsonl --out "$T/o/new.st" "$DATA"
expect_fail 2 "--preserve-kl|--replay" "lora-train: --preserve-kl without replay data" \
    "$LORA-train" $SMALL --preserve-kl 1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--preserve-kl|-0.5" "lora-train: --preserve-kl -0.5" \
    "$LORA-train" --preserve-kl -0.5 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--preserve-kl|nan" "lora-train: --preserve-kl nan" \
    "$LORA-train" --preserve-kl nan --out "$T/o/new.st" "$DATA"
for bad in 2 0,x "" 0,,1 -1 all,0; do
    expect_fail 2 "--layers" "lora-train: --layers '$bad'" \
        "$LORA-train" $SMALL --layers "$bad" --out "$T/o/new.st" "$DATA"
done
# --layers 1 adapts one block of two: half the parameters of --layers 0,1, and the file says so
# (PEFT's layers_to_transform) where lora-info reads it; --layers 0,1 writes no such key
echo '{"steps": 2, "batch": 4, "eval_every": 2, "replay": "", "replay_frac": 0, "rank": 4, "alpha": 8}' >"$T/ly.json"
run "$LORA-train" --config "$T/ly.json" --quiet --json --layers 1 --out "$T/ly1.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="; exit $rc"
why="$why$(json_why "$T/out" 'd["trainable_params"] == 4608 and d["params_per_rank"] == 1152')"
run "$LORA-train" --config "$T/ly.json" --quiet --json --layers 0,1 --out "$T/ly01.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; exit $rc"
why="$why$(json_why "$T/out" 'd["trainable_params"] == 9216')"
run "$LORA-info" --json "$T/ly1.st"
why="$why$(json_why "$T/out" 'd["layers_to_transform"] == [1] and d["params"] == 4608')"
run "$LORA-info" --json "$T/ly01.st"
why="$why$(json_why "$T/out" 'd["layers_to_transform"] is None and d["params"] == 9216')"
run "$LORA-info" "$T/ly1.st"
grep -q 'blocks \[1\]' "$T/out" || why="$why; lora-info does not show 'blocks [1]'"
run "$LORA-eval" --brief --adapter "$T/ly1.st" "$TEST"
[ "$rc" -eq 0 ] || why="$why; lora-eval of the --layers 1 adapter: exit $rc"
verdict "lora-train --layers 1: half the parameters of --layers 0,1; lora-info --json reports [1]" "$why"
# a flag a config turns on (rslora in configs/lora-irreg.json) is turned off by --no-FLAG
echo '{"steps": 2, "batch": 4, "eval_every": 2, "replay": "", "replay_frac": 0, "rslora": true, "rank": 4, "alpha": 8}' >"$T/rs.json"
run "$LORA-train" --config "$T/rs.json" --quiet --out "$T/rs-on.st" "$DATA"
run2=$rc
run "$LORA-train" --config "$T/rs.json" --no-rslora --quiet --out "$T/rs-off.st" "$DATA"
why=""
[ "$run2" -eq 0 ] && [ "$rc" -eq 0 ] || why="exit $run2 / $rc"
run "$LORA-info" --json "$T/rs-on.st"
why="$why$(json_why "$T/out" 'd["use_rslora"] is True and abs(d["scale"] - 4.0) < 1e-6')"
run "$LORA-info" --json "$T/rs-off.st"
why="$why$(json_why "$T/out" 'd["use_rslora"] is False and abs(d["scale"] - 2.0) < 1e-6')"
verdict "lora-train: rslora from a config gives alpha/sqrt(r) = 4; --no-rslora gives alpha/r = 2" "$why"
expect_fail 2 "--no-rank" "lora-train: --no- of an option that is not a flag" \
    "$LORA-train" --no-rank --out "$T/o/new.st" "$DATA"
expect_fail 2 "--quiet" "lora-train: a value given to a flag that takes none" \
    "$LORA-train" --quiet=1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "DATA" "lora-train: no DATA file" \
    "$LORA-train" $SMALL --out "$T/o/new.st"
expect_fail 2 "nothere.json" "lora-train: --config pointing to a missing file" \
    "$LORA-train" --config "$T/nothere.json" --out "$T/o/new.st" "$DATA"
echo '{"rank": 8, "bogus_key": 1}' >"$T/unknown.json"
expect_fail 2 "unknown.json|bogus_key" "lora-train: a config with an unknown key" \
    "$LORA-train" --config "$T/unknown.json" --out "$T/o/new.st" "$DATA"
echo 'rank = 8' >"$T/notjson.json"
expect_fail 2 "notjson.json|not a JSON object" "lora-train: a config that is not JSON" \
    "$LORA-train" --config "$T/notjson.json" --out "$T/o/new.st" "$DATA"
echo '{"rank": "8"}' >"$T/wrongtype.json"
expect_fail 2 "wrongtype.json|rank|number" "lora-train: a config value of the wrong type" \
    "$LORA-train" --config "$T/wrongtype.json" --out "$T/o/new.st" "$DATA"
# One source of defaults: every setting of the defaults file is what --help shows, and a
# defaults file without a number setting is refused (the C tables hold no numbers).
for pair in train:configs/lora-irreg.json pretrain:configs/pretrain.json; do
    c=${pair%%:*} f=${pair#*:}
    run "$LORA-$c" --help
    why=""
    [ "$rc" -eq 0 ] || why="; exit $rc"
    why="$why$(python3 - "$f" "$T/out" <<'EOF2'
import json, re, sys
cfg = json.load(open(sys.argv[1]))
help_text = open(sys.argv[2]).read()
shown = {}
for line in help_text.splitlines():
    m = re.match(r"\s+--([a-z0-9-]+)(?: \S+)?\s.*\[(.*)\]$", line)
    if m: shown[m.group(1).replace("-", "_")] = m.group(2)
bad = []
for k, v in cfg.items():
    h = shown.get(k)
    if isinstance(v, bool):
        ok = (h is not None and h.startswith("on")) if v else h is None
    elif isinstance(v, (int, float)):
        try: ok = h is not None and abs(float(h) - v) <= 1e-6 * max(1.0, abs(v))
        except ValueError: ok = False
    else: # a path list: each item as resolved against the file's directory
        ok = h is not None and len(h.split(",")) == len(v.split(",")) and all(
            a.endswith(b) for a, b in zip(h.split(","), v.split(",")))
    if not ok: bad.append("%s=%r shown as %r" % (k, v, h))
if not cfg or bad: print("; " + "; ".join(bad or ["empty defaults file"]))
EOF2
)"
    verdict "lora-$c --help shows every value of $f" "$why"
done
mkdir -p "$T/defs/configs"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); del d["steps"]; json.dump(d,open(sys.argv[2],"w"))' \
    configs/lora-irreg.json "$T/defs/configs/lora-irreg.json"
abs_lora=$(cd "$(dirname "$LORA")" && pwd)/lora
data_abs=$(pwd)/$DATA
(cd "$T/defs" && $TO "$abs_lora-train" --out "$T/o/new.st" "$data_abs" </dev/null >"$T/out" 2>"$T/err")
rc=$?
why=""
[ "$rc" -eq 2 ] || why="; exit $rc, expected 2"
[ "$(wc -l <"$T/err")" -eq 1 ] || why="$why; not one line on stderr"
why="$why$(all_named "configs/lora-irreg.json|steps" "$T/err")$(outdir_why)"
outdir_reset
verdict "lora-train: a defaults file without \"steps\" -> exit 2, one line naming the file and the key" "$why"
expect_fail 2 "--beta1" "lora-pretrain: --beta1 1" \
    "$LORA-pretrain" --config "$T/pretrain.json" --beta1 1 --out "$T/o/new.st"
# the optimizer is a setting: a name from the table, its hyper-parameters, LoRA+ on B
expect_fail 2 "--optimizer|bogus|adamw" "lora-train: --optimizer bogus" \
    "$LORA-train" --optimizer bogus --out "$T/o/new.st" "$DATA"
expect_fail 2 "--optimizer|bogus" "lora-pretrain: --optimizer bogus" \
    "$LORA-pretrain" --config "$T/pretrain.json" --optimizer bogus --out "$T/o/new.st"
echo '{"optimizer": "adam"}' >"$T/badopt.json"
expect_fail 2 "badopt.json|optimizer|adam" "lora-train: a config naming an unknown optimizer" \
    "$LORA-train" --config "$T/badopt.json" --out "$T/o/new.st" "$DATA"
expect_fail 2 "--momentum|1.5" "lora-train: --momentum 1.5" \
    "$LORA-train" --momentum 1.5 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--loraplus-ratio|0" "lora-train: --loraplus-ratio 0" \
    "$LORA-train" --loraplus-ratio 0 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--loraplus-ratio|--full" "lora-train: --loraplus-ratio with --full" \
    "$LORA-train" $SMALL --full --loraplus-ratio 16 --out "$T/o/new.st" "$DATA"
# issue 15: --lr-ratio is PEFT's name for --loraplus-ratio; --init kaiming|gaussian|pissa|olora
expect_fail 2 "--lr-ratio|0" "lora-train: --lr-ratio 0" \
    "$LORA-train" --lr-ratio 0 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--loraplus-ratio 4|--lr-ratio 16|different values" \
    "lora-train: --loraplus-ratio 4 --lr-ratio 16 (one setting, two values)" \
    "$LORA-train" $SMALL --loraplus-ratio 4 --lr-ratio 16 --out "$T/o/new.st" "$DATA"
echo '{"loraplus_ratio": 2, "lr_ratio": 3}' >"$T/twoname.json"
expect_fail 2 "twoname.json|loraplus_ratio 2|lr_ratio 3" "lora-train: a config giving loraplus_ratio and lr_ratio different values" \
    "$LORA-train" --config "$T/twoname.json" --out "$T/o/new.st" "$DATA"
expect_fail 2 "--lr-ratio|--full" "lora-train: --lr-ratio with --full" \
    "$LORA-train" $SMALL --full --lr-ratio 16 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--init|bogus|kaiming, gaussian, pissa, olora" "lora-train: --init bogus" \
    "$LORA-train" --init bogus --out "$T/o/new.st" "$DATA"
expect_fail 2 "--init|PISSA" "lora-train: --init PISSA (names are lower case)" \
    "$LORA-train" --init PISSA --out "$T/o/new.st" "$DATA"
expect_fail 2 "--init pissa|--rank|rank 0" "lora-train: --init pissa --rank 0" \
    "$LORA-train" $SMALL --init pissa --rank 0 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--init olora|--rank|rank 33" "lora-train: --init olora --rank 33 (the saved rank 2r exceeds 64)" \
    "$LORA-train" $SMALL --init olora --rank 33 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--init gaussian|--full" "lora-train: --init gaussian with --full" \
    "$LORA-train" $SMALL --full --init gaussian --out "$T/o/new.st" "$DATA"
echo '{"init": "svd"}' >"$T/badinit.json"
expect_fail 2 "badinit.json|init|svd" "lora-train: a config naming an unknown init" \
    "$LORA-train" --config "$T/badinit.json" --out "$T/o/new.st" "$DATA"
echo '{"init": 1}' >"$T/numinit.json"
expect_fail 2 "numinit.json|init|string" "lora-train: a config giving init as a number" \
    "$LORA-train" --config "$T/numinit.json" --out "$T/o/new.st" "$DATA"
# the alias: the same bytes under either name, from a flag or a config file
run "$LORA-train" $SMALL --loraplus-ratio 16 --out "$T/lp-a.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "--loraplus-ratio 16: exit $rc")"
run "$LORA-train" $SMALL --lr-ratio 16 --out "$T/lp-b.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; --lr-ratio 16: exit $rc"
run "$LORA-train" $SMALL --lr-ratio=16 --loraplus-ratio 16 --out "$T/lp-c.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; both names with one value: exit $rc"
echo '{"steps": 5, "batch": 8, "eval_every": 5, "replay": "", "replay_frac": 0, "lr_ratio": 16}' >"$T/lrratio.json"
run "$LORA-train" --config "$T/lrratio.json" --quiet --out "$T/lp-d.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; config lr_ratio: exit $rc"
for f in lp-b lp-c lp-d; do cmp -s "$T/lp-a.st" "$T/$f.st" || why="$why; $f differs from --loraplus-ratio 16"; done
why="$why$(meta_why "$T/lp-b.st" 'c["loraplus_ratio"] == 16')"
run "$LORA-train" --config "$T/lrratio.json" --help
grep -q -- '--lr-ratio X .*\[16\]' "$T/out" || why="$why; --help does not show --lr-ratio's value from the config"
verdict "lora-train: --lr-ratio 16, both names with one value, and a config's lr_ratio give the --loraplus-ratio 16 adapter byte for byte" "$why"
# the inits: recorded and shown; gaussian, pissa and olora start exactly at the base
for init in kaiming gaussian pissa olora; do
    run "$LORA-train" $SMALL --init "$init" --steps 0 --json --out "$T/init0-$init.st" "$DATA"
    why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
    case $init in pissa | olora) want_r=16 want_bytes=73728 conv=8 ;; *) want_r=8 want_bytes=36864 conv=None ;; esac
    why="$why$(json_why "$T/out" "d['init'] == '$init' and d['trainable_params'] == 18432 and d['payload_bytes'] == $want_bytes")"
    run "$LORA-info" --json "$T/init0-$init.st"
    why="$why$(json_why "$T/out" "d['init'] == '$init' and d['rank'] == $want_r and d['converted_from_r'] == $conv and d['payload_bytes'] == $want_bytes")"
    run "$LORA-info" "$T/init0-$init.st"
    grep -q "^  init $init" "$T/out" || why="$why; lora-info does not show 'init $init'"
    run "$LORA-eval" --json --adapter "$T/init0-$init.st" "$TEST"
    tail -n 1 "$T/out" >"$T/sum.json"
    why="$why$(json_why "$T/sum.json" 'd["collateral_damage"][0]["max_abs_dlogit"] == 0')"
    verdict "lora-train --init $init --steps 0: recorded (rank $want_r in the file, lora-info shows it); lora-eval: max |Δlogit| exactly 0" "$why"
done
run "$LORA-info" "$T/a8.st"
grep -q "^  init kaiming$" "$T/out" || why="; lora-info of the default adapter does not show 'init kaiming'"
verdict "lora-info: the default adapter says init kaiming" "${why:-}"
# pissa trained: saved for the original base; lora-merge's merged model agrees with it, and
# lora-eval and lora-generate load it on the shipped base
run "$LORA-train" $SMALL --init pissa --out "$T/pissa.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "lora-train exit $rc")"
run "$LORA-merge" --adapter "$T/pissa.st" --out "$T/pissa-merged.st" "$TEST"
[ "$rc" -eq 0 ] || why="$why; lora-merge exit $rc"
awk '/^max \|logit/ { f = 1; small = $6 + 0 < 1e-3 } END { exit !(f && small) }' "$T/out" ||
    why="$why; merged vs base+adapter: $(grep '^max' "$T/out")"
run "$LORA-eval" --json --adapter "$T/pissa.st" --adapter "$T/pissa-merged.st" "$TEST"
tail -n 1 "$T/out" >"$T/sum.json"
why="$why$(json_why "$T/sum.json" 'd["summary"][1]["correct"] == d["summary"][2]["correct"] and d["collateral_damage"][0]["max_abs_dlogit"] > 0.01 and abs(d["collateral_damage"][0]["max_abs_dlogit"] - d["collateral_damage"][1]["max_abs_dlogit"]) < 1e-3')"
run "$LORA-generate" --adapter "$T/pissa.st" "go: yesterday he"
[ "$rc" -eq 0 ] && [ -s "$T/out" ] || why="$why; lora-generate --adapter: exit $rc"
verdict "lora-train --init pissa: lora-merge's model and the adapter on the shipped base agree (logits within 1e-3, same exact matches)" "$why"
# Step 0 from the command line: the initial adapter (A random, B = 0) changes no logit at all,
# while a trained one does; lora-eval measures it on every position it scores.
run "$LORA-train" $SMALL --steps 0 --json --out "$T/step0.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["steps"] == 0 and d["best_step"] == -1 and d["trainable_params"] == 18432')"
run "$LORA-eval" --json --adapter "$T/step0.st" --adapter "$T/a8.st" "$TEST"
tail -n 1 "$T/out" >"$T/sum.json"
why="$why$(json_why "$T/sum.json" 'd["collateral_damage"][0]["max_abs_dlogit"] == 0 and d["collateral_damage"][1]["max_abs_dlogit"] > 0.01')"
verdict "lora-train --steps 0 writes the initial adapter; lora-eval: its max |Δlogit| is exactly 0, a trained one's is not" "$why"
expect_fail 2 "--full-all|--targets" "lora-train: --full-all with --targets attn" \
    "$LORA-train" $SMALL --full-all --targets attn --out "$T/o/new.st" "$DATA"
# the two full fine-tunes, labelled: the Linear weights (98,304) or every parameter (103,680);
# the counts are recomputed from lora-info's inventory, not typed here
run "$LORA-info" --json
inv=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["linear_weights"], d["total"])' "$T/out")
for mode in full:linear_weights full-all:all; do
    flag=${mode%%:*} label=${mode#*:}
    want=$( [ "$flag" = full ] && echo "${inv% *}" || echo "${inv#* }")
    run "$LORA-train" $SMALL --$flag --json --out "$T/$flag.st" "$DATA"
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc"
    why="$why$(json_why "$T/out" "d['full'] is True and d['full_params'] == '$label' and d['trainable_params'] == $want")"
    verdict "lora-train --$flag: JSON says full_params $label and $want trainable parameters" "$why"
done
# provenance: train_config names the optimizer, its hyper-parameters and the LoRA+ ratio
run "$LORA-train" $SMALL --optimizer sgd --momentum 0.8 --lr 0.05 --out "$T/opt-sgd.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
why="$why$(meta_why "$T/opt-sgd.st" 'c["optimizer"] == "sgd" and abs(c["momentum"] - 0.8) < 1e-6 \
    and c["nesterov"] is False and "beta1" not in c')"
run "$LORA-info" "$T/opt-sgd.st"
grep -q '"optimizer":"sgd"' "$T/out" || why="$why; lora-info does not show the optimizer"
verdict "lora-train --optimizer sgd: the adapter's provenance names sgd and its momentum" "$why"
run "$LORA-train" $SMALL --out "$T/opt-adamw.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
why="$why$(meta_why "$T/opt-adamw.st" 'c["optimizer"] == "adamw" and c["beta2"] == 0.999 and c["loraplus_ratio"] == 1')"
run "$LORA-train" $SMALL --loraplus-ratio 16 --out "$T/opt-lp16.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; --loraplus-ratio 16: exit $rc"
why="$why$(meta_why "$T/opt-lp16.st" 'c["optimizer"] == "adamw" and c["loraplus_ratio"] == 16')"
cmp -s "$T/opt-adamw.st" "$T/opt-lp16.st" && why="$why; the LoRA+ adapter equals the plain one"
verdict "lora-train: default provenance says adamw; --loraplus-ratio 16 is recorded and changes the adapter" "$why"

# ---- adapter variants: DoRA (--dora) and LoRA dropout (--dropout) ---------------------------
expect_fail 2 "--dropout|1.5" "lora-train: --dropout 1.5" \
    "$LORA-train" --dropout 1.5 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dropout|1" "lora-train: --dropout 1 (P must be below 1)" \
    "$LORA-train" $SMALL --dropout 1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dropout|-0.1" "lora-train: --dropout -0.1" \
    "$LORA-train" --dropout -0.1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dropout|nan" "lora-train: --dropout nan" \
    "$LORA-train" --dropout nan --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dora|--full" "lora-train: --dora with --full" \
    "$LORA-train" $SMALL --full --dora --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dropout|--full" "lora-train: --dropout with --full" \
    "$LORA-train" $SMALL --full --dropout 0.1 --out "$T/o/new.st" "$DATA"
expect_fail 1 "--dora|--init pissa|not supported" "lora-train: --dora with --init pissa (m would start from W, not the residual)" \
    "$LORA-train" $SMALL --dora --init pissa --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dora|--rank" "lora-train: --dora with --rank 0" \
    "$LORA-train" $SMALL --dora --rank 0 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--dora" "lora-train: --dora=1 (a flag takes no value)" \
    "$LORA-train" $SMALL --dora=1 --out "$T/o/new.st" "$DATA"
# variant_meta FILE PYTHON-EXPRESSION over m, the adapter's metadata, and h, its tensor table
variant_meta() {
    python3 - "$1" "$2" <<'PYEOF' 2>&1 | tail -n 1
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h.pop("__metadata__")
if not eval(sys.argv[2]): print("; metadata %s" % json.dumps(m))
PYEOF
}
run "$LORA-train" $SMALL --dora --out "$T/dora.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
why="$why$(variant_meta "$T/dora.st" 'm["use_dora"] == "true" and "lora_dropout" not in m and \
    h["base_model.model.blocks.0.ffn.fc1.lora_magnitude_vector.weight"]["shape"] == [256] and \
    h["base_model.model.blocks.0.ffn.fc1.lora_magnitude_vector.weight"]["dtype"] == "F32" and \
    len(h) == 36')"
run "$LORA-info" --json "$T/dora.st"
why="$why$(json_why "$T/out" 'd["use_dora"] is True and d["params"] == 2304 * 8 + 1152 and \
    d["dora_params"] == 1152 and d["payload_bytes"] == 2 * 2304 * 8 + 4 * 1152')"
run "$LORA-info" "$T/dora.st"
grep -q "DoRA" "$T/out" || why="$why; lora-info does not say DoRA"
run "$LORA-eval" --adapter "$T/dora.st" "$TEST"
[ "$rc" -eq 0 ] || why="$why; lora-eval of the DoRA adapter: exit $rc"
run "$LORA-generate" --adapter "$T/dora.st" "go: yesterday he "
[ "$rc" -eq 0 ] || why="$why; lora-generate with the DoRA adapter: exit $rc"
run "$LORA-merge" --adapter "$T/dora.st" --out "$T/dora-merged.st"
[ "$rc" -eq 0 ] || why="$why; lora-merge of the DoRA adapter: exit $rc"
verdict "lora-train --dora: use_dora and F32 lora_magnitude_vector.weight in the file; lora-info, -eval, -generate, -merge take it" "$why"
# lora-analyze of a DoRA adapter: ΔW is the merged update m⊙(W + s·B·A)/‖·‖ − W, so its spectrum
# is the merged checkpoint's (an independent path: lora-merge, a full file, W_file − W_base)
why=""
run "$LORA-analyze" --json "$T/dora.st"
cp "$T/out" "$T/an_dora.json"
run "$LORA-analyze" --json "$T/dora-merged.st"
cp "$T/out" "$T/an_dora_merged.json"
python3 - "$T/an_dora.json" "$T/an_dora_merged.json" >/dev/null 2>"$T/py.err" <<'PYEOF' ||
import json, sys
a, m = (json.load(open(p))["files"][0] for p in sys.argv[1:3])
assert a["use_dora"] is True and a["kind"] == "lora" and m["kind"] == "full", "kinds"
assert len(a["layers"]) == len(m["layers"]) == 12, "12 layers each"
for la, lm in zip(a["layers"], m["layers"]):
    assert la["path"] == lm["path"], la["path"]
    assert la["max_rank"] == min(la["out"], la["in"]), "%s: max_rank %s" % (la["path"], la["max_rank"])
    assert la["effective_rank"] > a["rank"], "%s: effective rank %d" % (la["path"], la["effective_rank"])
    for x, y in zip(la["singular_values"], lm["singular_values"]):
        assert abs(x - y) <= 1e-5 * max(1.0, abs(y)), "%s: sigma %g vs %g" % (la["path"], x, y)
PYEOF
    why="$why; $(tail -n 1 "$T/py.err")"
run "$LORA-analyze" "$T/dora.st"
grep -q "DoRA adapter" "$T/out" || why="$why; the text does not say DoRA adapter"
verdict "lora-analyze of a DoRA adapter: the merged update's spectrum (= lora-analyze of its lora-merge), effective rank above r" "$why"
# a DoRA adapter as a PEFT directory (F16 and F32 exports): magnitudes stay F32, scores identical
"$LORA-eval" --json --adapter "$T/dora.st" "$TEST" 2>/dev/null | grep -v '"model":"data/' |
    sed 's/"model":"[^"]*",//' >"$T/ev_dora.json"
why=""
for dt in source f32; do
    run "$LORA-export" --peft "$T/dora-peft-$dt" --dtype $dt "$T/dora.st"
    [ "$rc" -eq 0 ] || why="$why; export --dtype $dt: exit $rc"
    python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["use_dora"] is not True)' \
        "$T/dora-peft-$dt/adapter_config.json" 2>/dev/null || why="$why; --dtype $dt: use_dora not true"
    "$LORA-eval" --json --adapter "$T/dora-peft-$dt" "$TEST" 2>/dev/null | grep -v '"model":"data/' |
        sed 's/"model":"[^"]*",//' >"$T/ev_dora_dir.json"
    [ -s "$T/ev_dora_dir.json" ] && cmp -s "$T/ev_dora.json" "$T/ev_dora_dir.json" ||
        why="$why; --dtype $dt: lora-eval --json differs from the DoRA file"
done
verdict "lora-export of a DoRA adapter (F16 and F32): use_dora, F32 magnitudes, the same scores read back" "$why"
run "$LORA-train" $SMALL --dropout 0.1 --out "$T/drop.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
why="$why$(variant_meta "$T/drop.st" 'm["lora_dropout"] == "0.1" and "use_dora" not in m and len(h) == 24')"
run "$LORA-info" --json "$T/drop.st"
why="$why$(json_why "$T/out" 'd["use_dora"] is False and d["lora_dropout"] == 0.1')"
cmp -s "$T/opt-adamw.st" "$T/drop.st" && why="$why; the dropout adapter equals the plain one"
run "$LORA-train" $SMALL --dropout 0 --out "$T/drop0.st" "$DATA"
cmp -s "$T/opt-adamw.st" "$T/drop0.st" || why="$why; --dropout 0 differs from the plain run"
verdict "lora-train --dropout 0.1: lora_dropout recorded and shown, another adapter; --dropout 0 is the plain run byte for byte" "$why"
# ---- LoRA compute path (--lora-path thin|merged|auto) ----------------------------------------
expect_fail 2 "--lora-path|fast" "lora-train: --lora-path fast" \
    "$LORA-train" $SMALL --lora-path fast --out "$T/o/new.st" "$DATA"
expect_fail 2 "--lora-path merged|--dropout 0.1" "lora-train: --lora-path merged with --dropout (acts on the adapter's input alone)" \
    "$LORA-train" $SMALL --lora-path merged --dropout 0.1 --out "$T/o/new.st" "$DATA"
expect_fail 2 "--lora-path merged|DoRA" "lora-train: --lora-path merged with --dora" \
    "$LORA-train" $SMALL --lora-path merged --dora --out "$T/o/new.st" "$DATA"
expect_fail 2 "--lora-path merged|--full" "lora-train: --lora-path merged with --full" \
    "$LORA-train" $SMALL --lora-path merged --full --out "$T/o/new.st" "$DATA"
echo '{"lora_path": 1}' >"$T/path-num.json"
expect_fail 2 "lora_path|string" "lora-train: config \"lora_path\": 1 (not a name)" \
    "$LORA-train" $SMALL --config "$T/path-num.json" --out "$T/o/new.st" "$DATA"
echo '{"lora_path": "MERGED"}' >"$T/path-case.json"
expect_fail 2 "--lora-path|MERGED" "lora-train: config \"lora_path\": \"MERGED\" (names are lower case)" \
    "$LORA-train" $SMALL --config "$T/path-case.json" --out "$T/o/new.st" "$DATA"
run "$LORA-train" $SMALL --lora-path thin --out "$T/path-thin.st" "$DATA"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
cmp -s "$T/opt-adamw.st" "$T/path-thin.st" || why="$why; --lora-path thin differs from the default run"
why="$why$(variant_meta "$T/path-thin.st" '"lora_path" not in m')"
run "$LORA-train" $SMALL --lora-path merged --json --out "$T/path-merged.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; merged: exit $rc"
why="$why$(json_why "$T/out" 'd["lora_path"] == "merged" and d["merged_layers"] == 12')"
why="$why$(variant_meta "$T/path-merged.st" 'm["lora_path"] == "merged (12 of 12 layers merged)" and len(h) == 24')"
cmp -s "$T/opt-adamw.st" "$T/path-merged.st" && why="$why; the merged run wrote the thin run's bytes"
run "$LORA-info" "$T/path-merged.st"
grep -q "lora_path: merged" "$T/out" || why="$why; lora-info does not show lora_path"
run "$LORA-eval" --adapter "$T/path-merged.st" "$TEST"
[ "$rc" -eq 0 ] || why="$why; lora-eval of the merged-path adapter: exit $rc"
run "$LORA-train" --config "$T/small.json" --lora-path auto --dropout 0.1 --out "$T/path-auto.st" "$DATA"
[ "$rc" -eq 0 ] || why="$why; auto with --dropout: exit $rc"
grep -q "auto path: 0 of 12 layers merged" "$T/err" || why="$why; the progress header does not show the auto path"
why="$why$(variant_meta "$T/path-auto.st" 'm["lora_path"] == "auto (0 of 12 layers merged)"')"
verdict "lora-train --lora-path: thin is the default byte for byte; merged and auto recorded (metadata, --json, header, lora-info); the file loads like any adapter" "$why"
# PEFT's lora_dropout and init_lora_weights follow the adapter (drop.st: dropout 0.1, kaiming)
why=""
for src in drop init0-gaussian init0-pissa; do
    case $src in
    drop) want="d['lora_dropout'] == 0.1 and d['init_lora_weights'] is True" ;;
    init0-gaussian) want="d['lora_dropout'] == 0 and d['init_lora_weights'] == 'gaussian'" ;;
    init0-pissa) want="d['init_lora_weights'] is True and d['r'] == 16" ;; # stored converted
    esac
    run "$LORA-export" --peft "$T/peft-$src" "$T/$src.st"
    [ "$rc" -eq 0 ] || why="$why; export of $src.st: exit $rc"
    python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
        "$T/peft-$src/adapter_config.json" >"$T/one_cfg.json" 2>&1
    why="$why$(json_why "$T/one_cfg.json" "$want")"
done
verdict "lora-export: lora_dropout and init_lora_weights as trained (0.1; \"gaussian\"; a converted PiSSA file is a plain LoRA)" "$why"
# hostile variant metadata and tensors (retag FILE OUT PYTHON over m, h: edit, then rewrite)
retag() {
    python3 - "$1" "$2" "$3" <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h["__metadata__"]
old = {k: bytes(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
       for k, v in h.items() if k != "__metadata__"}
exec(sys.argv[3])
data = b""
for k, v in h.items():  # the data section repacked: no gap where a tensor was removed
    if k != "__metadata__":
        v["data_offsets"] = [len(data), len(data) + len(old[k])]
        data += old[k]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + data)
PYEOF
}
retag "$T/dora.st" "$T/bad/dora-maybe.st" 'm["use_dora"] = "maybe"'
expect_fail 1 "dora-maybe.st|use_dora|maybe" "lora-eval: an adapter whose use_dora is \"maybe\"" \
    "$LORA-eval" --adapter "$T/bad/dora-maybe.st" "$TEST"
retag "$T/drop.st" "$T/bad/drop2.st" 'm["lora_dropout"] = "2"'
expect_fail 1 "drop2.st|lora_dropout|2" "lora-eval: an adapter whose lora_dropout is 2" \
    "$LORA-eval" --adapter "$T/bad/drop2.st" "$TEST"
retag "$T/dora.st" "$T/bad/dora-nomag.st" 'del h["base_model.model.blocks.1.attn.o_proj.lora_magnitude_vector.weight"]'
expect_fail 1 "dora-nomag.st|blocks.1.attn.o_proj.lora_magnitude_vector.weight" \
    "lora-eval: a DoRA adapter missing one magnitude vector" \
    "$LORA-eval" --adapter "$T/bad/dora-nomag.st" "$TEST"
retag "$T/dora.st" "$T/bad/dora-off.st" 'del m["use_dora"]'
expect_fail 1 "dora-off.st|lora_magnitude_vector|use_dora" \
    "lora-eval: magnitude vectors in a file whose metadata does not say use_dora" \
    "$LORA-eval" --adapter "$T/bad/dora-off.st" "$TEST"
expect_fail 2 "--adapter" "lora-merge: no --adapter" \
    "$LORA-merge" --out "$T/o/new.st"
expect_fail 2 "one or two" "lora-analyze: three files" \
    "$LORA-analyze" "$T/a8.st" "$T/a1.st" "$T/a8.st"
expect_fail 2 "--threads|x" "lora-eval: --threads x" \
    "$LORA-eval" --threads x "$TEST"
expect_fail 2 "--temperature" "lora-generate: --temperature -1" \
    "$LORA-generate" --temperature -1 "go: yesterday he"
expect_fail 2 "--rank|65" "lora-info: --rank 65" \
    "$LORA-info" --rank 65
expect_fail 2 "--seconds|abc" "lora-bench: --seconds abc" \
    "$LORA-bench" --seconds abc
expect_fail 2 "--threshold" "lora-analyze: --threshold 2" \
    "$LORA-analyze" --threshold 2 "$T/a8.st"
expect_fail 2 "bogus" "lora: unknown subcommand" \
    "$LORA" bogus --help
expect_fail 2 "COMMAND" "lora: no subcommand" \
    "$LORA"
ln -s "$(cd "$bindir" && pwd)/lora" "$T/lora-bogus"
expect_fail 2 "lora-bogus" "lora-bogus: a link with an unknown command name" \
    "$T/lora-bogus" --help
expect_fail 1 "prompt|'#'" "lora-generate: a prompt with a symbol outside the vocabulary" \
    "$LORA-generate" "go: yesterday he w#"
expect_fail 1 "prompt|line break" "lora-generate: a prompt with a line break (the end marker)" \
    "$LORA-generate" "go: yesterday
he"
python3 -c 'print("a" * 3000)' >"$T/longline.txt"
STDIN=$T/longline.txt
expect_fail 1 "stdin:1|longer than" "lora-generate: a 3000-byte line on stdin is one error on line 1" \
    "$LORA-generate"
STDIN=/dev/null

# ---- output locations -----------------------------------------------------------------------

expect_fail 1 "nodir/a.st" "lora-train: --out in a missing directory" \
    "$LORA-train" $SMALL --out "$T/o/nodir/a.st" "$DATA"
expect_fail 1 "/dir|is a directory" "lora-train: --out is a directory" \
    "$LORA-train" $SMALL --out "$T/dir" "$DATA"
expect_fail 1 "/proc/minilora-test.st|cannot write" "lora-train: --out under /proc" \
    "$LORA-train" $SMALL --out /proc/minilora-test.st "$DATA"
expect_fail 1 "nodir/s.state|cannot write" "lora-train: --state in a missing directory fails before training" \
    "$LORA-train" $SMALL --state "$T/o/nodir/s.state" --out "$T/o/new.st" "$DATA"
expect_fail 1 "nodir/m.st" "lora-merge: --out in a missing directory" \
    "$LORA-merge" --adapter "$T/a8.st" --out "$T/o/nodir/m.st" "$TEST"
expect_fail 1 "/dir|is a directory" "lora-merge: --out is a directory" \
    "$LORA-merge" --adapter "$T/a8.st" --out "$T/dir" "$TEST"
expect_fail 1 "nodir/p.st" "lora-pretrain: --out in a missing directory" \
    "$LORA-pretrain" --config "$T/pretrain.json" --out "$T/o/nodir/p.st"
expect_fail 1 "nodir/c.csv" "lora-pretrain: --curve in a missing directory" \
    "$LORA-pretrain" --config "$T/pretrain.json" --curve "$T/o/nodir/c.csv" --out "$T/o/new.st"
expect_fail 1 "symbol.jsonl:3" "lora-train: --out an existing good adapter, bad data: the adapter is untouched" \
    "$LORA-train" $SMALL --out "$T/o/good.st" "$J/symbol.jsonl"
expect_fail 1 "empty.st" "lora-train: --out an existing good adapter, bad --base: the adapter is untouched" \
    "$LORA-train" $SMALL --base "$B/empty.st" --out "$T/o/good.st" "$DATA"
expect_fail 1 "output path|empty" "lora-train: --out '' fails before training" \
    "$LORA-train" $SMALL --out "" "$DATA"
cp "$BASE" "$T/basecopy.st"
expect_fail 1 "basecopy.st|also the input --base" "lora-train: --out is the --base file" \
    "$LORA-train" $SMALL --base "$T/basecopy.st" --out "$T/basecopy.st" "$DATA"
verdict "lora-train: the base given as --out is untouched" \
    "$(cmp -s "$T/basecopy.st" "$BASE" || echo "the base was overwritten")"
expect_fail 1 "good.st|also the input --adapter" "lora-merge: --out is the --adapter file" \
    "$LORA-merge" --adapter "$T/o/good.st" --out "$T/o/good.st" "$TEST"

if mount -t tmpfs -o size=16k tmpfs "$T/full" 2>/dev/null; then
    mounted=$T/full
    expect_fail 1 "full/a.st|No space left" "lora-train: --out on a full 16 KiB tmpfs" \
        "$LORA-train" $SMALL --out "$T/full/a.st" "$DATA"
    verdict "lora-train: nothing left behind on the full tmpfs" \
        "$([ -z "$(ls -A "$T/full")" ] || echo "left: $(ls -A "$T/full")")"
    expect_fail 1 "full/m.st|No space left" "lora-merge: --out on a full 16 KiB tmpfs" \
        "$LORA-merge" --adapter "$T/a8.st" --out "$T/full/m.st" "$TEST"
    verdict "lora-merge: nothing left behind on the full tmpfs" \
        "$([ -z "$(ls -A "$T/full")" ] || echo "left: $(ls -A "$T/full")")"
    expect_fail 1 "full/p|No space left" "lora-export: --peft DIR on a full 16 KiB tmpfs" \
        "$LORA-export" --peft "$T/full/p" "$T/a8.st"
    verdict "lora-export: no directory left behind on the full tmpfs" \
        "$([ -z "$(ls -A "$T/full")" ] || echo "left: $(ls -A "$T/full")")"
else
    skip "lora-train: --out on a full 16 KiB tmpfs" "mount -t tmpfs not permitted here"
    skip "lora-merge: --out on a full 16 KiB tmpfs" "mount -t tmpfs not permitted here"
    skip "lora-export: --peft DIR on a full 16 KiB tmpfs" "mount -t tmpfs not permitted here"
fi

# ---- interruption and resume -----------------------------------------------------------------

# 300 steps of 8 sequences on one thread (about 1.5 s): the reference, uninterrupted.
SIG="--steps 300 --batch 8 --eval-every 50 --replay= --replay-frac 0 --threads 1 --seed 3 --val $VAL"
run "$LORA-train" $SIG --out "$T/sig/ref.st" "$DATA"
verdict "lora-train: the uninterrupted 300-step reference run" "$([ "$rc" -eq 0 ] || echo "exit $rc")"

# start_interrupted NAME SIGNAL: starts the run, sends SIGNAL after its first progress line.
start_interrupted() {
    "$LORA-train" $SIG --out "$T/sig/$1.st" "$DATA" </dev/null >"$T/sig/$1.out" 2>"$T/sig/$1.err" &
    bg=$!
    if wait_for "$T/sig/$1.err" ' step '; then
        kill -"$2" "$bg"
    else
        kill -KILL "$bg"
    fi
    wait "$bg"
    rc=$?
    bg=""
    cp "$T/sig/$1.err" "$T/err"
}

start_interrupted term TERM
why=""
[ "$rc" -eq 143 ] || why="exit $rc, expected 143"
tail -n 1 "$T/sig/term.err" | grep -q "interrupted at step.*term.st.state" || why="$why; no 'interrupted ... state' message last"
grep -q "step -1" "$T/sig/term.err" && why="$why; the message names a step -1"
[ -s "$T/sig/term.st" ] || why="$why; no adapter written"
[ -s "$T/sig/term.st.state" ] || why="$why; no training state written"
verdict "lora-train: SIGTERM -> exit 143, a message, the adapter and the state written" "$why"

run "$LORA-info" "$T/sig/term.st"
verdict "lora-info: the adapter written at SIGTERM is a valid adapter" "$([ "$rc" -eq 0 ] || echo "exit $rc")"

cp "$T/sig/term.st" "$T/sig/term.keep"
expect_fail 1 "term.st.state|lr = " "lora-train: --resume with another --lr is refused naming the setting" \
    "$LORA-train" $SIG --lr 0.001 --resume "$T/sig/term.st.state" --out "$T/sig/term.st" "$DATA"
verdict "lora-train: the refused resume left the adapter untouched" \
    "$(cmp -s "$T/sig/term.st" "$T/sig/term.keep" || echo "adapter changed")"
expect_fail 1 "term.st.state|steps = " "lora-train: --resume with another --steps is refused naming the setting" \
    "$LORA-train" $SIG --steps 200 --resume "$T/sig/term.st.state" --out "$T/o/new.st" "$DATA"
expect_fail 1 "a8.st|not a minilora training state" "lora-train: --resume given an adapter" \
    "$LORA-train" $SIG --resume "$T/a8.st" --out "$T/o/new.st" "$DATA"
expect_fail 1 "nostate|cannot open" "lora-train: --resume given a missing file" \
    "$LORA-train" $SIG --resume "$T/nostate" --out "$T/o/new.st" "$DATA"
expect_fail 1 "nostate|cannot open" "lora-train: --rank 64 (which warns) with a missing --resume file: the error alone" \
    "$LORA-train" $SIG --rank 64 --resume "$T/nostate" --out "$T/o/new.st" "$DATA"
expect_fail 1 "term.st.state|optimizer = adamw|sgd" "lora-train: --resume of an AdamW run with --optimizer sgd is refused naming it" \
    "$LORA-train" $SIG --optimizer sgd --resume "$T/sig/term.st.state" --out "$T/o/new.st" "$DATA"
expect_fail 1 "term.st.state|loraplus_ratio" "lora-train: --resume with a --loraplus-ratio is refused naming it" \
    "$LORA-train" $SIG --loraplus-ratio 4 --resume "$T/sig/term.st.state" --out "$T/o/new.st" "$DATA"
expect_fail 1 "term.st.state|init" "lora-train: --resume of a kaiming run with --init pissa is refused naming it" \
    "$LORA-train" $SIG --init pissa --resume "$T/sig/term.st.state" --out "$T/o/new.st" "$DATA"
head -c 100000 "$T/sig/term.st.state" >"$T/sig/trunc.state"
expect_fail 1 "trunc.state|adam_m|beyond the data section" "lora-train: --resume given a truncated state file" \
    "$LORA-train" $SIG --resume "$T/sig/trunc.state" --out "$T/o/new.st" "$DATA"

start_interrupted int INT
why=""
[ "$rc" -eq 130 ] || why="exit $rc, expected 130"
grep -q "interrupted at step" "$T/sig/int.err" || why="$why; no 'interrupted' message"
[ -s "$T/sig/int.st.state" ] || why="$why; no training state written"
verdict "lora-train: SIGINT after the first progress line -> exit 130 and the state" "$why"

run "$LORA-train" $SIG --resume "$T/sig/int.st.state" --out "$T/sig/int.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
cmp -s "$T/sig/int.st" "$T/sig/ref.st" || why="$why; the resumed adapter differs from the uninterrupted run's"
verdict "lora-train: --resume of the SIGINT run ends byte-identical to the uninterrupted run" "$why"

# a run started with --init-from: the state records the adapter's sha256; resumed with the same
# --init-from it ends byte-identical to the uninterrupted run, provenance (init_from) included
SIG_PLAIN=$SIG
SIG="$SIG --init-from $T/a8.st"
run "$LORA-train" $SIG --out "$T/sig/if_ref.st" "$DATA"
verdict "lora-train --init-from: the uninterrupted reference run" "$([ "$rc" -eq 0 ] || echo "exit $rc")"
start_interrupted ifint INT
verdict "lora-train --init-from: SIGINT -> exit 130 and the state" \
    "$([ "$rc" -eq 130 ] && [ -s "$T/sig/ifint.st.state" ] || echo "exit $rc, state: $(ls "$T/sig" | tr '\n' ' ')")"
A8_SHA=$(sha256sum "$T/a8.st" | cut -c1-64)
expect_fail 1 "ifint.st.state|--init-from|$A8_SHA" \
    "lora-train: --resume of an --init-from run without --init-from is refused naming the adapter" \
    "$LORA-train" $SIG_PLAIN --resume "$T/sig/ifint.st.state" --out "$T/o/new.st" "$DATA"
expect_fail 1 "term.st.state|no adapter|--init-from" \
    "lora-train: --resume of a plain run with --init-from is refused" \
    "$LORA-train" $SIG --resume "$T/sig/term.st.state" --out "$T/o/new.st" "$DATA"
run "$LORA-train" $SIG --resume "$T/sig/ifint.st.state" --out "$T/sig/ifint.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc: $(head -c 200 "$T/err")"
cmp -s "$T/sig/ifint.st" "$T/sig/if_ref.st" || why="$why; the resumed adapter differs from the uninterrupted run's"
python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
m = json.loads(b[8:8 + n])["__metadata__"]
sys.exit(m.get("init_from_sha256") != sys.argv[2])' "$T/sig/ifint.st" "$A8_SHA" ||
    why="$why; init_from_sha256 is not the adapter's"
verdict "lora-train --init-from, interrupted, --resume with the same --init-from: byte-identical to the uninterrupted run, init_from kept" "$why"
SIG=$SIG_PLAIN

# pretraining interrupted: exit 143 and the existing checkpoint at --out left unchanged
"$LORA-pretrain" --config "$T/pretrain.json" --steps 3000 --batch 8 --threads 1 --eval-every 0 \
    --log-every 5 --val "" --out "$T/o/good.st" </dev/null >"$T/sig/pre.out" 2>"$T/sig/pre.err" &
bg=$!
if wait_for "$T/sig/pre.err" ' step '; then kill -TERM "$bg"; else kill -KILL "$bg"; fi
wait "$bg"
rc=$?
bg=""
cp "$T/sig/pre.err" "$T/err"
why=""
[ "$rc" -eq 143 ] || why="exit $rc, expected 143"
tail -n 1 "$T/sig/pre.err" | grep -q "interrupted at step.*left unchanged" || why="$why; no 'left unchanged' message"
why="$why$(outdir_why)"
verdict "lora-pretrain: SIGTERM -> exit 143, the existing --out checkpoint unchanged" "$why"

# ---- issue 13: values (counts, non-finite numbers, NUL characters, long messages) ----------
# Each case reproduces one report of issue 13 parts 2-4 and fails on the code before the fix.

# epochs -> steps is computed in checked arithmetic, not an int that wraps to 1 step
expect_fail 1 "--epochs|steps" "lora-train: --epochs 1000000 of --batch 1 overflows the step count" \
    "$LORA-train" $SMALL --epochs 1000000 --batch 1 --replay= --replay-frac 0 --val "" \
    --out "$T/o/ep.st" data/pretrain.jsonl

# hostile adapters built from a8.st: another lora_alpha, every A and B weight the same value
cat >"$T/values.py" <<'EOF'
import json, struct, sys
src, dst, alpha, value = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n].decode('utf-8'))
meta = h['__metadata__']
if alpha != '-':
    meta['lora_alpha'] = alpha
if len(sys.argv) > 5:
    meta['target_modules'] = sys.argv[5]
pay = bytearray(b[8 + n:])
if value == value:  # not nan: fill every tensor
    for k, t in h.items():
        if k == '__metadata__':
            continue
        lo, hi = t['data_offsets']
        pay[lo:hi] = struct.pack('<e', value) * ((hi - lo) // 2)
hb = json.dumps(h, separators=(',', ':')).encode('utf-8')
hb += b' ' * (-len(hb) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(hb)) + hb + bytes(pay))
EOF
python3 "$T/values.py" "$T/a8.st" "$T/v_alpha1e30.st" 1e30 1
python3 "$T/values.py" "$T/a8.st" "$T/v_alpha3e38.st" 3e38 2
python3 "$T/values.py" "$T/a8.st" "$T/v_alpha1e39.st" 1e39 nan
python3 "$T/values.py" "$T/a8.st" "$T/v_tm_newline.st" - nan '["q_proj\nv_proj"]'

expect_fail 1 "v_alpha1e30.st|perplexity is not finite" \
    "lora-eval --json: an adapter whose logits overflow (alpha 1e30, A = B = 1) is refused" \
    "$LORA-eval" --json --adapter "$T/v_alpha1e30.st" "$TEST"
expect_fail 1 "logits are not finite" \
    "lora-generate: an adapter whose logits overflow gives an error, not an empty line" \
    "$LORA-generate" --adapter "$T/v_alpha1e30.st" "go: yesterday he"
expect_fail 1 "logits are not finite" \
    "lora-generate --temperature 1: an adapter whose logits overflow gives an error" \
    "$LORA-generate" --temperature 1 --adapter "$T/v_alpha1e30.st" "go: yesterday he"
expect_fail 1 "v_alpha3e38.st|proj.weight|not finite" \
    "lora-merge: a merged weight that overflows (alpha 3e38, A = B = 2) is refused, nothing written" \
    "$LORA-merge" --adapter "$T/v_alpha3e38.st" --out "$T/o/m.st" "$TEST"
expect_fail 1 "v_alpha1e39.st|lora_alpha|1e39" "lora-eval: lora_alpha 1e39 (inf as a float) is refused" \
    "$LORA-eval" --adapter "$T/v_alpha1e39.st" "$TEST"
expect_fail 1 "v_tm_newline.st|target_modules" \
    "lora-eval: an adapter whose target_modules holds a line break: one-line error" \
    "$LORA-eval" --adapter "$T/v_tm_newline.st" "$TEST"

expect_fail 1 "v_alpha3e38.st|proj.weight|not finite" \
    "lora-analyze: an adapter whose update overflows is refused naming the tensor" \
    "$LORA-analyze" --json "$T/v_alpha3e38.st"
python3 "$T/values.py" "$T/a8.st" "$T/v_tm_nul.st" - nan \
    '["q_proj\u0000junk","k_proj","v_proj","o_proj","fc1","fc2"]'
expect_fail 1 "v_tm_nul.st|target_modules" \
    "lora-eval: target_modules holding \\u0000 (\"q_proj\\u0000junk\") is refused, not read as q_proj" \
    "$LORA-eval" --adapter "$T/v_tm_nul.st" "$TEST"
# every positional is taken, or the command fails: never one silently dropped
expect_fail 2 "256" "lora-eval: 300 DATA files fail with the limit, none dropped" \
    "$LORA-eval" $(i=0; while [ $i -lt 300 ]; do printf '%s ' "$TEST"; i=$((i + 1)); done)

# JSON never carries nan or inf: the happy path still parses strictly
run "$LORA-eval" --json --adapter "$T/a8.st" "$TEST"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'all(isinstance(l.get("logprob_target", 0.0), float) for l in lines)')"
verdict "lora-eval --json: every number finite (strict JSON)" "$why"

# NUL characters: raw or escaped, in data, stdin and config files
printf '{"prompt": "go: yesterday he\\u0000### ", "completion": "went"}\n' >"$T/j/nulesc.jsonl"
expect_fail 1 "nulesc.jsonl:1|NUL" "lora-eval: a JSONL prompt holding \\u0000 is refused" \
    "$LORA-eval" "$T/j/nulesc.jsonl"
printf '{"prompt": "go: yesterday he ", "completion": "went", "verb\\u0000x": "go"}\n' >"$T/j/nulkey.jsonl"
expect_fail 1 "nulkey.jsonl:1|NUL" "lora-train: a JSONL key holding \\u0000 is refused" \
    "$LORA-train" $SMALL --out "$T/o/nk.st" "$T/j/nulkey.jsonl"
printf '{"prompt": "go: yesterday he\\\\u0000 ", "completion": "went"}\n' >"$T/j/bsnul.jsonl"
run "$LORA-eval" "$T/j/bsnul.jsonl"
why=""
grep -q "NUL" "$T/err" && why="an escaped backslash before u0000 was taken for a NUL"
verdict "lora-eval: \"\\\\u0000\" (a backslash, then text) is not a NUL" "$why"
printf 'go: yesterday he\000###\n' >"$T/nulstdin"
STDIN="$T/nulstdin" expect_fail 1 "stdin:1|NUL" "lora-generate: a stdin line holding a NUL byte is refused" \
    "$LORA-generate"
STDIN=/dev/null
printf '{"rank\\u0000junk": 4}\n' >"$T/nulkey.json"
expect_fail 2 "nulkey.json|NUL" "lora-train: a config key \"rank\\u0000junk\" is refused, not applied as rank" \
    "$LORA-train" --config "$T/nulkey.json" --out "$T/o/ck.st" "$DATA"
printf '{"val": "data/irreg_val.jsonl\\u0000.x"}\n' >"$T/nulval.json"
expect_fail 2 "nulval.json|NUL" "lora-train: a config string value holding \\u0000 is refused" \
    "$LORA-train" --config "$T/nulval.json" --out "$T/o/cv.st" "$DATA"

# list options take every item: --curve-data with 9 files writes 9 columns
for i in 1 2 3 4 5 6 7 8 9; do head -n 3 "$DATA" >"$T/j/c$i.jsonl"; done
run "$LORA-pretrain" --config "$T/pretrain.json" --steps 2 --batch 8 --eval-every 1 --quiet \
    --out "$T/cur.st" --curve "$T/curve.csv" \
    --curve-data "$T/j/c1.jsonl,$T/j/c2.jsonl,$T/j/c3.jsonl,$T/j/c4.jsonl,$T/j/c5.jsonl,$T/j/c6.jsonl,$T/j/c7.jsonl,$T/j/c8.jsonl,$T/j/c9.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
head -n 1 "$T/curve.csv" 2>/dev/null | grep -q ",c9_exact" || why="$why; no c9 column: $(head -n 1 "$T/curve.csv" 2>/dev/null)"
verdict "lora-pretrain --curve-data with 9 files: all 9 scored (the 9th not dropped)" "$why"

# one line always; a long path keeps its head and its tail (file, line and reason)
nl_dir="$T/new
line"
mkdir -p "$nl_dir" && cp "$T/j/symbol.jsonl" "$nl_dir/d.jsonl"
expect_fail 1 "new\\nline/d.jsonl:3|'#'" "lora-eval: a data path holding a newline: one-line error" \
    "$LORA-eval" "$nl_dir/d.jsonl"
long="$T/$(python3 -c 'print("/".join(["d" * 200] * 19))')"
mkdir -p "$long" 2>/dev/null && cp "$T/j/symbol.jsonl" "$long/tail_file.jsonl"
if [ -f "$long/tail_file.jsonl" ]; then
    expect_fail 1 "tail_file.jsonl:3|'#'|character 2" \
        "lora-eval: a 4,000-character data path keeps file, line and reason in the message" \
        "$LORA-eval" "$long/tail_file.jsonl"
else
    skip "lora-eval: a 4,000-character data path keeps file, line and reason" "cannot create it here"
fi

# ---- adapter strength: --scale, --scale-sweep ----------------------------------------------

head -n 40 "$NONPAST" >"$T/j/sw_np.jsonl"
head -n 40 "$TEST" >"$T/j/sw_t.jsonl"
SW="$T/j/sw_np.jsonl $T/j/sw_t.jsonl"
run "$LORA-eval" --json --adapter "$T/a8.st" $SW
rc_plain=$rc
cp "$T/out" "$T/sw_plain.json"
for s in 0 1 2; do
    run "$LORA-eval" --json --scale $s --adapter "$T/a8.st" $SW
    eval "rc_s$s=\$rc"
    cp "$T/out" "$T/sw_s$s.json"
done
why=""
[ "$rc_s0" -eq 0 ] || why="exit $rc_s0"
why="$why$(tail -n 1 "$T/sw_s0.json" >"$T/sw_s0_sum.json"; json_why "$T/sw_s0_sum.json" "$(cat <<'PY'
(d['collateral_damage'][0]['max_abs_dlogit'] == 0 and
    all(d['summary'][i]['correct'] == d['summary'][i + 1]['correct'] and
        d['summary'][i]['perplexity'] == d['summary'][i + 1]['perplexity']
        for i in range(0, len(d['summary']), 2)) and
    all(c['drop'] == 0 for r in d['summary'] for c in r.get('collateral', {}).get('cells', [])))
PY
)")"
verdict "lora-eval --scale 0: the adapter scores exactly as the base (max_abs_dlogit 0, same counts and perplexity)" "$why"
why=""
{ [ "$rc_s1" -eq 0 ] && [ "$rc_plain" -eq 0 ]; } || why="exit $rc_s1 / $rc_plain"
cmp -s "$T/sw_s1.json" "$T/sw_plain.json" || why="$why; --scale 1 output differs from no --scale"
verdict "lora-eval --scale 1: the same JSON (per example and summary) as without --scale" "$why"
why=""
[ "$rc_s2" -eq 0 ] || why="exit $rc_s2"
tail -n 1 "$T/sw_s1.json" >"$T/sw_s1_sum.json"
m1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["collateral_damage"][0]["max_abs_dlogit"])' "$T/sw_s1_sum.json" 2>/dev/null)
tail -n 1 "$T/sw_s2.json" >"$T/sw_s2_sum.json"
why="$why$(json_why "$T/sw_s2_sum.json" "d['collateral_damage'][0]['max_abs_dlogit'] > float('${m1:-inf}') > 0")"
verdict "lora-eval --scale 2: max_abs_dlogit above that of --scale 1 (${m1:-?})" "$why"

why=""
for p in "go: yesterday he" "eat: yesterday she" "walk: every day they"; do
    run "$LORA-generate" "$p"
    want=$(cat "$T/out")
    run "$LORA-generate" --scale 0 --adapter "$T/a8.st" "$p"
    [ "$rc" -eq 0 ] || why="$why; exit $rc on '$p'"
    [ "$(cat "$T/out")" = "$want" ] || why="$why; '$p': printed '$(head -c 60 "$T/out")', the base '$want'"
done
verdict "lora-generate --scale 0 --adapter: the base's completions on 3 prompts" "$why"

for bad in -0.5 10.5 nan inf abc ""; do
    expect_fail 2 "--scale" "lora-eval --scale '$bad'" "$LORA-eval" --scale "$bad" --adapter "$T/a8.st" $SW
    expect_fail 2 "--scale" "lora-generate --scale '$bad'" \
        "$LORA-generate" --scale "$bad" --adapter "$T/a8.st" "go: yesterday he"
done
expect_fail 2 "--scale|--scale-sweep" "lora-eval --scale 0.5 --scale-sweep" \
    "$LORA-eval" --scale 0.5 --scale-sweep --adapter "$T/a8.st" $SW
expect_fail 2 "--scale-sweep|--adapter" "lora-eval --scale-sweep without an adapter" \
    "$LORA-eval" --scale-sweep $SW
expect_fail 1 "minigpt-base.safetensors|full checkpoint|0.5" \
    "lora-generate --scale 0.5 with a full checkpoint as --adapter" \
    "$LORA-generate" --scale 0.5 --adapter "$BASE" "go: yesterday he"

run "$LORA-eval" --json --scale-sweep --adapter "$T/a8.st" $SW
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
base_correct=$(python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]; print(sum(r["correct"] for r in s[0::2]))' "$T/sw_plain.json" 2>/dev/null)
a8_correct=$(python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]; print(sum(r["correct"] for r in s[1::2]))' "$T/sw_plain.json" 2>/dev/null)
why="$why$(json_why "$T/out" "$(cat <<PY
(len(d['scale_sweep']) == 7 and [e['scale'] for e in d['scale_sweep']] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5] and
    d['scale_sweep'][0]['correct'] == d['base']['correct'] == ${base_correct:-None} and
    d['scale_sweep'][0]['max_abs_dlogit'] == 0 and d['scale_sweep'][0]['largest_drop'] == 0 and
    d['scale_sweep'][4]['correct'] == ${a8_correct:-None} and
    all(len(e['files']) == 2 for e in d['scale_sweep']))
PY
)")"
verdict "lora-eval --scale-sweep --json: 7 entries S = 0..1.5; S = 0 has the base's exact match, S = 1 the adapter's" "$why"
run "$LORA-eval" --scale-sweep --adapter "$T/a8.st" $SW
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '^scale sweep: a8 ' "$T/out" || why="$why; no 'scale sweep: a8' heading"
[ "$(grep -c '^  [01]\.[0-9][0-9] ' "$T/out")" -eq 7 ] || why="$why; not 7 rows"
verdict "lora-eval --scale-sweep: a table of 7 strengths per adapter" "$why"
# two files whose names only differ past 14 characters get whole, distinct column headings
cp "$T/j/sw_t.jsonl" "$T/j/regular_heldout.jsonl"
cp "$T/j/sw_t.jsonl" "$T/j/regular_heldout_new.jsonl"
run "$LORA-eval" --scale-sweep --adapter "$T/a8.st" "$T/j/regular_heldout.jsonl" \
    "$T/j/regular_heldout_new.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '^  S  *regular_heldout  *regular_heldout_new  *all files' "$T/out" ||
    why="$why; heading '$(sed -n 2p "$T/out")'"
verdict "lora-eval --scale-sweep: whole file names as column headings (no cut)" "$why"

run "$LORA-merge" --scale 0 --adapter "$T/a8.st" --out "$T/m0.st" "$T/j/sw_t.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '^wrote .*: W + 0·B·A' "$T/out" || why="$why; printed '$(head -n 1 "$T/out")'"
run "$LORA-eval" --json --adapter "$T/m0.st" $SW
[ "$rc" -eq 0 ] || why="$why; lora-eval exit $rc"
tail -n 1 "$T/out" >"$T/m0_sum.json"
why="$why$(json_why "$T/m0_sum.json" "d['collateral_damage'][0]['max_abs_dlogit'] == 0")"
verdict "lora-merge --scale 0: the merged checkpoint scores exactly as the base" "$why"

# ---- lora-export --peft: HuggingFace PEFT directories, written and read back --------------

mkdir "$T/peft_in"
run "$LORA-export" --peft "$T/peft" "$T/a8.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ "$(ls -A "$T/peft" 2>/dev/null | tr '\n' ' ')" = "adapter_config.json adapter_model.safetensors " ] ||
    why="$why; the directory holds: $(ls -A "$T/peft" 2>/dev/null | tr '\n' ' ')"
one_line() { python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$1" >"$T/one.json" 2>&1; }
one_line "$T/peft/adapter_config.json"
why="$why$(json_why "$T/one.json" "d['peft_type'] == 'LORA' and d['r'] == 8 and d['lora_alpha'] == 16 and d['use_rslora'] is True and d['bias'] == 'none' and d['fan_in_fan_out'] is False and d['task_type'] == 'CAUSAL_LM' and d['base_model_name_or_path'] == 'minigpt-base.safetensors' and len(d['minilora_base_sha256']) == 64 and sorted(d['target_modules']) == ['fc1', 'fc2', 'k_proj', 'o_proj', 'q_proj', 'v_proj']")"
ls "$T"/peft.tmp.* >/dev/null 2>&1 && why="$why; a temporary directory was left beside it"
verdict "lora-export --peft DIR: exactly adapter_config.json (PEFT's LoraConfig fields) and adapter_model.safetensors" "$why"

# the directory scores exactly as the file: every per-example log-probability and prediction
run "$LORA-eval" --json --adapter "$T/a8.st" "$TEST"
grep -v '"model":"data/' "$T/out" | sed 's/"model":"[^"]*",//' >"$T/ev_file.json"
run "$LORA-eval" --json --adapter "$T/peft" "$TEST"
grep -v '"model":"data/' "$T/out" | sed 's/"model":"[^"]*",//' >"$T/ev_dir.json"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ -s "$T/ev_dir.json" ] && cmp -s "$T/ev_file.json" "$T/ev_dir.json" || why="$why; lora-eval --json differs between the file and its PEFT directory"
verdict "lora-eval --adapter DIR: the same per-example output as the adapter file" "$why"

# a directory with no base digest anywhere (as Python's PEFT writes them: no field in the config,
# only {"format": "pt"} in the tensors' metadata): refused with what to add; the field added as
# the message says, it scores as the file
cp -r "$T/peft" "$T/peft_nosha"
python3 -c 'import json, struct, sys
p = sys.argv[1] + "/adapter_config.json"; c = json.load(open(p)); del c["minilora_base_sha256"]
json.dump(c, open(p, "w"))
p = sys.argv[1] + "/adapter_model.safetensors"; b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); h["__metadata__"] = {"format": "pt"}
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])' "$T/peft_nosha"
BASE_SHA=$(sha256sum "$BASE" | cut -c1-64)
expect_fail 1 "peft_nosha|no base model digest|minilora_base_sha256|$BASE_SHA|adapter_config.json" \
    "lora-eval: a PEFT directory without minilora_base_sha256" \
    "$LORA-eval" --adapter "$T/peft_nosha" "$TEST"
python3 -c 'import json, sys
p = sys.argv[1] + "/adapter_config.json"; c = json.load(open(p)); c["minilora_base_sha256"] = sys.argv[2]
json.dump(c, open(p, "w"))' "$T/peft_nosha" "$BASE_SHA"
run "$LORA-eval" --json --adapter "$T/peft_nosha" "$TEST"
grep -v '"model":"data/' "$T/out" | sed 's/"model":"[^"]*",//' >"$T/ev_nosha.json"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
cmp -s "$T/ev_file.json" "$T/ev_nosha.json" || why="$why; lora-eval --json differs from the adapter file"
verdict "lora-eval: the PEFT directory with minilora_base_sha256 added as the error said scores as the file" "$why"

for c in info generate; do
    case $c in
    info) run "$LORA-info" --json "$T/peft" ;;
    generate) run "$LORA-generate" --adapter "$T/peft" "go: yesterday i " ;;
    esac
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc"
    [ "$c" = info ] && why="$why$(json_why "$T/out" 'd["params"] == 18432 and d["rank"] == 8 and d["matches_base"] is True')"
    verdict "lora-$c reads a PEFT directory" "$why"
done
run "$LORA-merge" --adapter "$T/peft" --out "$T/m_dir.st" "$T/j/sw_t.jsonl"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
"$LORA-merge" --adapter "$T/a8.st" --out "$T/m_file.st" "$T/j/sw_t.jsonl" >/dev/null 2>&1
python3 -c 'import struct,sys
def data(p):
    b = open(p, "rb").read(); return b[8 + struct.unpack("<Q", b[:8])[0]:]
sys.exit(data(sys.argv[1]) != data(sys.argv[2]))' "$T/m_dir.st" "$T/m_file.st" || why="$why; the merged weights differ"
verdict "lora-merge --adapter DIR: the same merged weights as from the file" "$why"

run "$LORA-export" --peft "$T/peft32" --dtype f32 "$T/peft"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '24 tensors, F32' "$T/out" || why="$why; printed '$(head -c 200 "$T/out")'"
run "$LORA-eval" --json --adapter "$T/peft32" "$TEST"
grep -v '"model":"data/' "$T/out" | sed 's/"model":"[^"]*",//' >"$T/ev_dir32.json"
cmp -s "$T/ev_file.json" "$T/ev_dir32.json" || why="$why; lora-eval --json differs for the F32 export"
verdict "lora-export --dtype f32 of a PEFT directory: F32 tensors, the same scores" "$why"

# an earlier export is replaced without --force; other files need --force and are kept
run "$LORA-export" --peft "$T/peft" "$T/a1.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
one_line "$T/peft/adapter_config.json"
why="$why$(json_why "$T/one.json" "d['r'] == 1")"
verdict "lora-export: an existing export directory is replaced" "$why"
echo keep >"$T/peft_in/README.md"
run "$LORA-export" --force --peft "$T/peft_in" "$T/a8.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ "$(cat "$T/peft_in/README.md" 2>/dev/null)" = keep ] || why="$why; README.md changed"
[ -s "$T/peft_in/adapter_model.safetensors" ] || why="$why; no adapter_model.safetensors"
verdict "lora-export --force: writes into a directory holding other files, keeps them" "$why"

# output rules: the scratch directory $T/o (good.st only) must stay as it is
expect_fail 1 "$T/o|good.st|--force" "lora-export: DIR exists and holds another file" \
    "$LORA-export" --peft "$T/o" "$T/a8.st"
expect_fail 1 "good.st|not a directory" "lora-export: DIR is an existing file" \
    "$LORA-export" --peft "$T/o/good.st" "$T/a8.st"
expect_fail 1 "$BASE|full checkpoint" "lora-export: a full checkpoint as ADAPTER, no directory made" \
    "$LORA-export" --peft "$T/o/p" "$BASE"
expect_fail 1 "a8.st|another base" "lora-export: the adapter of another base, no directory made" \
    "$LORA-export" --base "$T/pre.st" --peft "$T/o/p" "$T/a8.st"
expect_fail 1 "$T/o/none/p" "lora-export: DIR's parent does not exist" \
    "$LORA-export" --peft "$T/o/none/p" "$T/a8.st"
expect_fail 1 "adapter_config.json|also the input" "lora-export: DIR is the source directory" \
    "$LORA-export" --peft "$T/peft" "$T/peft"
cp "$T/peft/adapter_model.safetensors" "$T/peft_wts_before"
expect_fail 1 "adapter_model.safetensors|also the input --adapter" \
    "lora-merge: --out is a file of the --adapter directory" \
    "$LORA-merge" --adapter "$T/peft" --out "$T/peft/adapter_model.safetensors" "$TEST"
verdict "lora-merge: the --adapter directory's weights are untouched" \
    "$(cmp -s "$T/peft_wts_before" "$T/peft/adapter_model.safetensors" || echo "they were overwritten")"
expect_fail 2 "--dtype|bf16" "lora-export: --dtype bf16" \
    "$LORA-export" --dtype bf16 --peft "$T/o/p" "$T/a8.st"
expect_fail 2 "--peft|--help" "lora-export: no --peft" "$LORA-export" "$T/a8.st"
expect_fail 2 "ADAPTER|--help" "lora-export: no ADAPTER" "$LORA-export" --peft "$T/o/p"

# hostile directories given as an adapter: one line naming the file and the field
peft_bad() { # NAME: a fresh export of the good rank-8 adapter in $T/bad/NAME
    rm -rf "$T/bad/$1" && "$LORA-export" --peft "$T/bad/$1" "$T/a8.st" >/dev/null
}
peft_bad trunc
head -c 100 "$T/peft32/adapter_config.json" >"$T/bad/trunc/adapter_config.json"
expect_fail 1 "trunc/adapter_config.json|not valid JSON" "lora-eval: a PEFT config cut short" \
    "$LORA-eval" --adapter "$T/bad/trunc" "$TEST"
peft_bad rank
sed 's/"r":\t8,/"r":\t4,/' "$T/peft_in/adapter_config.json" >"$T/bad/rank/adapter_config.json"
expect_fail 1 "rank/adapter_config.json|r is 4|rank 8" "lora-eval: config r 4, tensors of rank 8" \
    "$LORA-eval" --adapter "$T/bad/rank" "$TEST"
peft_bad bias
sed 's/"bias":\t"none"/"bias":\t"lora_only"/' "$T/peft_in/adapter_config.json" >"$T/bad/bias/adapter_config.json"
expect_fail 1 "bias/adapter_config.json|bias|lora_only" "lora-generate: bias \"lora_only\"" \
    "$LORA-generate" --adapter "$T/bad/bias" "go: yesterday i "
peft_bad fanin
sed 's/"fan_in_fan_out":\tfalse/"fan_in_fan_out":\ttrue/' "$T/peft_in/adapter_config.json" >"$T/bad/fanin/adapter_config.json"
expect_fail 1 "fanin/adapter_config.json|fan_in_fan_out" "lora-info: fan_in_fan_out true" \
    "$LORA-info" "$T/bad/fanin"
peft_bad module
sed 's/"q_proj", /"gate_proj", /' "$T/peft_in/adapter_config.json" >"$T/bad/module/adapter_config.json"
expect_fail 1 "module/adapter_config.json|gate_proj" "lora-eval: an unknown target module" \
    "$LORA-eval" --adapter "$T/bad/module" "$TEST"
peft_bad missing
python3 - "$T/bad/missing/adapter_model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
drop = "base_model.model.blocks.1.ffn.fc2.lora_B.weight"
lo, hi = h.pop(drop)["data_offsets"]
data = b[8 + n:]
data = data[:lo] + data[hi:]
for k, v in h.items():
    if k != "__metadata__" and v["data_offsets"][0] >= hi:
        v["data_offsets"] = [v["data_offsets"][0] - (hi - lo), v["data_offsets"][1] - (hi - lo)]
hj = json.dumps(h).encode()
hj += b" " * (-len(hj) % 8)
open(p, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
PY
expect_fail 1 "missing/adapter_model.safetensors|blocks.1.ffn.fc2.lora_B.weight|not found" \
    "lora-merge: a PEFT directory missing a tensor, nothing written" \
    "$LORA-merge" --adapter "$T/bad/missing" --out "$T/o/m.st" "$TEST"
mkdir -p "$T/bad/noconfig" && cp "$T/a8.st" "$T/bad/noconfig/adapter_model.safetensors"
expect_fail 1 "noconfig|adapter_config.json" "lora-eval: a directory without adapter_config.json" \
    "$LORA-eval" --adapter "$T/bad/noconfig" "$TEST"
# ---- NF4 base: lora-quantize, and a quantized base wherever a base is taken ----------------

run "$LORA-quantize" --nf4 --out "$T/nf4.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
[ "$(grep -c '^  blocks\.[01]\.\(attn\|ffn\)\..*\.weight ' "$T/out")" -eq 12 ] || why="$why; not 12 tensor rows"
grep -q '^12 tensors stored quantized: 98304 of 103680' "$T/out" || why="$why; no '12 tensors stored quantized: 98304 of 103680'"
nf4_bytes=$(wc -c <"$T/nf4.st" 2>/dev/null || echo 999999)
[ "$nf4_bytes" -lt $((BASE_BYTES / 4)) ] || why="$why; $nf4_bytes bytes, not under a quarter of the base's $BASE_BYTES"
verdict "lora-quantize --nf4: 12 Linear weights quantized, file $nf4_bytes bytes < 1/4 of $BASE_BYTES" "$why"

run "$LORA-quantize" --nf4 --double-quant --out "$T/nf4dq.st" "$BASE"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
dq_bytes=$(wc -c <"$T/nf4dq.st" 2>/dev/null || echo 999999)
[ "$dq_bytes" -lt "$nf4_bytes" ] || why="$why; $dq_bytes bytes, not under $nf4_bytes"
"$LORA-quantize" --nf4 --double-quant --out "$T/nf4dq2.st" >/dev/null 2>&1
cmp -s "$T/nf4dq.st" "$T/nf4dq2.st" || why="$why; two runs differ"
verdict "lora-quantize --nf4 --double-quant: $dq_bytes bytes, smaller; the same bytes twice" "$why"

run "$LORA-quantize" --f16 --out "$T/f16.st"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
f16_bytes=$(wc -c <"$T/f16.st" 2>/dev/null || echo 999999)
[ "$f16_bytes" -lt $((BASE_BYTES * 51 / 100)) ] || why="$why; $f16_bytes bytes"
verdict "lora-quantize --f16: every tensor F16, $f16_bytes bytes (about half)" "$why"

why=""
for q in nf4 nf4dq f16; do
    run "$LORA-eval" --brief --base "$T/$q.st" "$T/j/sw_t.jsonl"
    [ "$rc" -eq 0 ] || why="$why; lora-eval --base $q exit $rc"
    run "$LORA-generate" --base "$T/$q.st" "walk: yesterday he"
    [ "$(cat "$T/out")" = "walked" ] || why="$why; lora-generate --base $q printed '$(head -c 40 "$T/out")'"
    run "$LORA-info" --base "$T/$q.st"
    [ "$rc" -eq 0 ] || why="$why; lora-info --base $q exit $rc"
done
verdict "lora-eval, lora-generate ('walked'), lora-info accept NF4, NF4+double-quant and F16 bases" "$why"

run "$LORA-train" $SMALL --base "$T/nf4.st" --out "$T/a_nf4.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
nf4_sha=$(sha256sum "$T/nf4.st" | cut -d' ' -f1)
rec=$(python3 -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; print(json.loads(b[8:8+n])["__metadata__"]["base_sha256"])' "$T/a_nf4.st" 2>/dev/null)
[ "$rec" = "$nf4_sha" ] || why="$why; base_sha256 '$rec', not the NF4 file's $nf4_sha"
run "$LORA-eval" --brief --base "$T/nf4.st" --adapter "$T/a_nf4.st" "$T/j/sw_t.jsonl"
[ "$rc" -eq 0 ] || why="$why; lora-eval on the NF4 base exit $rc"
run "$LORA-merge" --base "$T/nf4.st" --adapter "$T/a_nf4.st" --out "$T/m_nf4.st" "$T/j/sw_t.jsonl"
[ "$rc" -eq 0 ] || why="$why; lora-merge exit $rc"
grep -q '"quant"' "$T/m_nf4.st" 2>/dev/null && why="$why; the merged checkpoint is not F32"
verdict "lora-train/eval/merge on the NF4 base: the adapter records the NF4 file's sha256; merge writes F32" "$why"
expect_fail 1 "a_nf4.st|another base" "lora-eval: an adapter trained on the NF4 base, on the F32 base" \
    "$LORA-eval" --adapter "$T/a_nf4.st" "$T/j/sw_t.jsonl"
expect_fail 1 "a8.st|another base" "lora-merge: an adapter trained on the F32 base, on the NF4 base" \
    "$LORA-merge" --base "$T/nf4.st" --adapter "$T/a8.st" --out "$T/o/new.st" "$T/j/sw_t.jsonl"

# hostile flags and files
expect_fail 2 "--nf4|--f16" "lora-quantize: no --nf4 or --f16" "$LORA-quantize" --out "$T/o/new.st"
expect_fail 2 "--nf4|--f16" "lora-quantize: --nf4 and --f16" "$LORA-quantize" --nf4 --f16 --out "$T/o/new.st"
expect_fail 2 "--double-quant|--nf4" "lora-quantize: --double-quant --f16" \
    "$LORA-quantize" --double-quant --f16 --out "$T/o/new.st"
expect_fail 2 "--out" "lora-quantize: no --out" "$LORA-quantize" --nf4
expect_fail 2 "--nf4" "lora-quantize: --nf4=1" "$LORA-quantize" --nf4=1 --out "$T/o/new.st"
expect_fail 2 "--block-size" "lora-quantize: an unknown flag" "$LORA-quantize" --nf4 --block-size 32 --out "$T/o/new.st"
expect_fail 2 "BASE" "lora-quantize: two BASE files" "$LORA-quantize" --nf4 --out "$T/o/new.st" "$BASE" "$BASE"
expect_fail 1 "nf4.st|already quantized" "lora-quantize: an NF4 base again" \
    "$LORA-quantize" --nf4 --out "$T/o/new.st" "$T/nf4.st"
expect_fail 1 "a8.st|config" "lora-quantize: an adapter as BASE" "$LORA-quantize" --nf4 --out "$T/o/new.st" "$T/a8.st"
expect_fail 1 "good.st|also the input" "lora-quantize: --out is BASE" \
    "$LORA-quantize" --nf4 --out "$T/o/good.st" "$T/o/good.st"
expect_fail 1 "nodir/q.st" "lora-quantize: --out in a missing directory" \
    "$LORA-quantize" --nf4 --out "$T/o/nodir/q.st"
expect_fail 1 "nan.st|NaN" "lora-quantize: a base with a NaN weight" \
    "$LORA-quantize" --nf4 --out "$T/o/new.st" "$B/nan.st"
cat >"$T/craft_nf4.py" <<'PY'
import json, os, struct, sys
src, dq, out = sys.argv[1], sys.argv[2], sys.argv[3]
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    return b, n, json.loads(b[8:8 + n].decode('utf-8'))
def build(h, payload):
    hb = json.dumps(h, separators=(',', ':')).encode('utf-8'); hb += b' ' * (-len(hb) % 8)
    return struct.pack('<Q', len(hb)) + hb + payload
def poke(b, n, h, name, element, fmt, value):
    off = 8 + n + h[name]['data_offsets'][0] + struct.calcsize(fmt) * element
    return b[:off] + struct.pack(fmt, value) + b[off + struct.calcsize(fmt):]
def put(name, data):
    open(os.path.join(out, name), 'wb').write(data)
b, n, h = load(src)
put('nf4_nan.st', poke(b, n, h, 'blocks.1.attn.v_proj.weight.absmax', 3, '<f', float('nan')))
h2 = json.loads(json.dumps(h)); m = h2['__metadata__']
m['nf4_code'] = json.dumps(json.loads(m['nf4_code'])[:15] + [0.99])
put('nf4_code.st', build(h2, b[8 + n:]))
h2 = json.loads(json.dumps(h)); h2['__metadata__']['quant'] = 'nf5'
put('nf4_quant.st', build(h2, b[8 + n:]))
put('nf4_trunc.st', b[:len(b) - 100])
d, dn, dh = load(dq)
put('nf4dq_scale.st', poke(d, dn, dh, 'blocks.0.ffn.fc1.weight.absmax_scale', 0, '<f', -1.0))
PY
if python3 "$T/craft_nf4.py" "$T/nf4.st" "$T/nf4dq.st" "$B" 2>"$T/err"; then
    expect_fail 1 "nf4_nan.st|blocks.1.attn.v_proj.weight.absmax|NaN" "lora-eval: NF4 base with a NaN absmax" \
        "$LORA-eval" --base "$B/nf4_nan.st" "$T/j/sw_t.jsonl"
    expect_fail 1 "nf4_code.st|nf4_code|entry 15" "lora-train: NF4 base with another code table" \
        "$LORA-train" $SMALL --base "$B/nf4_code.st" --out "$T/o/new.st" "$DATA"
    expect_fail 1 "nf4_quant.st|nf5" "lora-generate: a base with quant 'nf5'" \
        "$LORA-generate" --base "$B/nf4_quant.st" "go: yesterday he"
    expect_fail 1 "nf4_trunc.st|beyond the data section" "lora-merge: a truncated NF4 base" \
        "$LORA-merge" --base "$B/nf4_trunc.st" --adapter "$T/a_nf4.st" --out "$T/o/new.st" "$T/j/sw_t.jsonl"
    expect_fail 1 "nf4dq_scale.st|blocks.0.ffn.fc1.weight.absmax_scale|negative" \
        "lora-info: NF4 base with a negative double-quant scale" "$LORA-info" --base "$B/nf4dq_scale.st"
else
    verdict "crafting the corrupt NF4 files" "; $(tail -n 1 "$T/err")"
fi
# ---- mixing adapters (lora-merge) and switching them per prompt (lora-generate) ------------

# a8 with another base_sha256: a mix must refuse it, naming it
python3 - "$T/a8.st" "$T/a8_otherbase.st" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n].decode('utf-8'))
h['__metadata__']['base_sha256'] = '0' * 64
hb = json.dumps(h, separators=(',', ':')).encode('utf-8')
hb += b' ' * (-len(hb) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + b[8 + n:])
PY
mix_meta_why() { # mix_meta_why FILE PYTHON-EXPRESSION over m, the metadata, and s, its mix_sources
    python3 - "$1" "$2" <<'PYEOF' 2>&1 | tail -n 1
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
m = json.loads(b[8:8 + n])["__metadata__"]
s = json.loads(m.get("mix_sources", "null"))
if not eval(sys.argv[2]): print("; metadata is %s" % json.dumps(m))
PYEOF
}
sha8=$(sha256sum "$T/a8.st" | cut -c1-64)
sha1=$(sha256sum "$T/a1.st" | cut -c1-64)
run "$LORA-merge" --adapter "$T/a8.st:0.7" --adapter "$T/a1.st:-0.25" --out-adapter "$T/mix_cat.st" "$TEST"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
why="$why$(mix_meta_why "$T/mix_cat.st" "m['r'] == '9' and m['lora_alpha'] == '9' and m['mix_combine'] == 'cat' \
    and m['use_rslora'] == 'false' and [x['sha256'] for x in s] == ['$sha8', '$sha1'] \
    and [x['weight'] for x in s] == [0.7, -0.25] and s[0]['adapter'].endswith('a8.st')")"
grep -q '^wrote .*mix_cat.st: an adapter of rank 9' "$T/out" || why="$why; printed '$(head -n 2 "$T/out" | tail -n 1)'"
verdict "lora-merge --adapter a8:0.7 --adapter a1:-0.25 --out-adapter: rank 9 (cat), sources' sha256 and weights in the metadata" "$why"
run "$LORA-merge" --adapter "$T/a8.st:0.5" --adapter "$T/a1.st:0.5" --combine svd --rank 2 --out-adapter "$T/mix_svd.st" "$TEST"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
why="$why$(mix_meta_why "$T/mix_svd.st" "m['r'] == '2' and m['mix_combine'] == 'svd' and m['mix_svd_rank'] == '2'")"
run "$LORA-eval" --brief --adapter "$T/mix_svd.st" "$TEST"
[ "$rc" -eq 0 ] || why="$why; lora-eval of the mix: exit $rc"
verdict "lora-merge --combine svd --rank 2 --out-adapter: a rank-2 adapter that lora-eval loads" "$why"
run "$LORA-merge" --adapter "$T/a8.st:0.5" --adapter "$T/a8.st:0.5" --combine linear --out "$T/mix_lin_m.st" "$TEST"
why="$([ "$rc" -eq 0 ] || echo "exit $rc")"
awk '/^max \|logit/ { f = 1; small = $6 + 0 < 1e-3 } END { exit !(f && small) }' "$T/out" ||
    why="$why; no logit difference line, or not below 1e-3: $(grep '^max' "$T/out")"
verdict "lora-merge --combine linear --out: a merged base within 1e-3 of base + mix" "$why"

expect_fail 2 "--adapter|a8.st:abc|weight" "lora-merge: a weight that is not a number" \
    "$LORA-merge" --adapter "$T/a8.st:abc" --out "$T/o/new.st" "$TEST"
expect_fail 2 "--adapter|a8.st:nan|weight" "lora-merge: a weight nan" \
    "$LORA-merge" --adapter "$T/a8.st:nan" --adapter "$T/a1.st" --out "$T/o/new.st" "$TEST"
expect_fail 2 "--adapter|a8.st:11|-10..10" "lora-merge: a weight out of range" \
    "$LORA-merge" --adapter "$T/a8.st:11" --out "$T/o/new.st" "$TEST"
expect_fail 2 "--adapter|a8.st:" "lora-merge: an empty weight" \
    "$LORA-merge" --adapter "$T/a8.st:" --out "$T/o/new.st" "$TEST"
expect_fail 1 "a8_otherbase.st|another base" "lora-merge: a mix with an adapter of another base names it" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/a8_otherbase.st" --out-adapter "$T/o/new.st" "$TEST"
expect_fail 1 "a1.st|rank 1|linear" "lora-merge --combine linear: adapters of different ranks" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/a1.st" --combine linear --out "$T/o/new.st" "$TEST"
expect_fail 1 "a8.st|>= 0|linear" "lora-merge --combine linear: a negative weight" \
    "$LORA-merge" --adapter "$T/a8.st:-0.5" --adapter "$T/o/good.st" --combine linear --out "$T/o/new.st" "$TEST"
expect_fail 1 "exceeds 64|svd" "lora-merge --combine cat: nine rank-8 adapters exceed rank 64" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/a8.st" --adapter "$T/a8.st" --adapter "$T/a8.st" \
    --adapter "$T/a8.st" --adapter "$T/a8.st" --adapter "$T/a8.st" --adapter "$T/a8.st" \
    --adapter "$T/a8.st" --out-adapter "$T/o/new.st" "$TEST"
expect_fail 1 "minigpt-base.safetensors|not a LoRA adapter" "lora-merge: a full checkpoint in a mix" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$BASE" --out "$T/o/new.st" "$TEST"
expect_fail 1 "dora.st|DoRA|cannot be mixed" "lora-merge: a DoRA adapter in a mix" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/dora.st" --out-adapter "$T/o/new.st" "$TEST"
expect_fail 2 "--rank|svd" "lora-merge: --rank without --combine svd" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/a1.st" --rank 4 --out "$T/o/new.st" "$TEST"
expect_fail 2 "--rank|65" "lora-merge: --rank 65" \
    "$LORA-merge" --adapter "$T/a8.st" --combine svd --rank 65 --out "$T/o/new.st" "$TEST"
expect_fail 2 "--combine|sum" "lora-merge: --combine sum" \
    "$LORA-merge" --adapter "$T/a8.st" --combine sum --out "$T/o/new.st" "$TEST"
expect_fail 2 "--out|--out-adapter" "lora-merge: both --out and --out-adapter" \
    "$LORA-merge" --adapter "$T/a8.st" --out "$T/o/new.st" --out-adapter "$T/o/new2.st" "$TEST"
expect_fail 1 "good.st|also the input --adapter" "lora-merge: --out-adapter is the second --adapter" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/o/good.st" --out-adapter "$T/o/good.st" "$TEST"
expect_fail 1 "nodir/m.st" "lora-merge: --out-adapter in a missing directory" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/a1.st" --out-adapter "$T/o/nodir/m.st" "$TEST"
expect_fail 1 "--out-adapter|$T/o/new.st|also the input DATA" "lora-merge: --out-adapter is a DATA file" \
    "$LORA-merge" --adapter "$T/a8.st" --adapter "$T/a1.st" --out-adapter "$T/o/new.st" "$T/o/new.st"

# switching: two strong adapters (a8 and a1 with a large lora_alpha), so that their completions
# differ from the base's; each prompt's completion must be that of its adapter run alone
python3 "$T/values.py" "$T/a8.st" "$T/sw_a.st" 200 nan
python3 "$T/values.py" "$T/a1.st" "$T/sw_b.st" 60 nan
printf '%s\n' "go: yesterday he" "see: so far she has" "eat: every day tom" >"$T/sw_prompts.txt"
: >"$T/sw_in.txt"
why=""
for who in base a b; do
    : >"$T/sw_want_$who"
    case $who in base) ad="" ;; a) ad="--adapter $T/sw_a.st" ;; b) ad="--adapter $T/sw_b.st" ;; esac
    while IFS= read -r p; do
        "$LORA-generate" $ad --max-tokens 12 "$p" >>"$T/sw_want_$who" 2>>"$T/err" || why="$why; $who alone failed"
        printf '@%s %s\n' "$who" "$p" >>"$T/sw_in.txt"
    done <"$T/sw_prompts.txt"
done
cmp -s "$T/sw_want_a" "$T/sw_want_base" && why="$why; adapter a completes like the base (the check would be vacuous)"
cmp -s "$T/sw_want_b" "$T/sw_want_a" && why="$why; adapters a and b complete alike (the check would be vacuous)"
# interleaved: every prompt with a, base, b in turn, then the same without a prefix (a, the first)
python3 - "$T/sw_in.txt" "$T/sw_prompts.txt" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
n = len(open(sys.argv[2]).read().splitlines())
order = [lines[n + i] if k == 0 else lines[i] if k == 1 else lines[2 * n + i] for i in range(n) for k in range(3)]
order += [l.split(' ', 1)[1] for l in lines[n:2 * n]]
open(sys.argv[1], 'w').write('\n'.join(order) + '\n')
PY
python3 - "$T/sw_want_base" "$T/sw_want_a" "$T/sw_want_b" "$T/sw_want_all" <<'PY'
import sys
base, a, b = (open(p).read().splitlines() for p in sys.argv[1:4])
out = [x for i in range(len(a)) for x in (a[i], base[i], b[i])] + a
open(sys.argv[4], 'w').write('\n'.join(out) + '\n')
PY
STDIN=$T/sw_in.txt
run "$LORA-generate" --max-tokens 12 --adapter a="$T/sw_a.st" --adapter b="$T/sw_b.st"
STDIN=/dev/null
[ "$rc" -eq 0 ] || why="$why; exit $rc"
cmp -s "$T/out" "$T/sw_want_all" || why="$why; switched completions differ from each adapter alone: $(diff "$T/out" "$T/sw_want_all" | head -n 3 | tr '\n' ' ')"
verdict "lora-generate --adapter a=F --adapter b=G: @a/@base/@b per line (and no prefix: a) give each adapter's own completions" "$why"

expect_fail 2 "--adapter|twice" "lora-generate: one adapter name twice" \
    "$LORA-generate" --adapter x="$T/a8.st" --adapter x="$T/a1.st" "go: yesterday he"
expect_fail 2 "--adapter|base" "lora-generate: the adapter name base is reserved" \
    "$LORA-generate" --adapter base="$T/a8.st" "go: yesterday he"
expect_fail 2 "--adapter|NAME=FILE" "lora-generate: several adapters, one without a name" \
    "$LORA-generate" --adapter "$T/a8.st" --adapter x="$T/a1.st" "go: yesterday he"
expect_fail 1 "'@zz'|loaded: x, base" "lora-generate: a prompt that names an adapter not loaded" \
    "$LORA-generate" --adapter x="$T/a8.st" "@zz go: yesterday he"
expect_fail 1 "minigpt-base.safetensors|not a LoRA adapter" "lora-generate: a full checkpoint as a named adapter" \
    "$LORA-generate" --adapter x="$BASE" "go: yesterday he"
expect_fail 1 "a8_otherbase.st|another base" "lora-generate: a named adapter of another base" \
    "$LORA-generate" --adapter x="$T/a8.st" --adapter y="$T/a8_otherbase.st" "go: yesterday he"

# ---- lora-train --init-from: continue an adapter (file or PEFT directory) -----------------

# payload_meta_why A B PYTHON-EXPRESSION: over pa, pb (A's and B's tensor bytes) and ma, mb
# (their metadata); prints why not when the expression is false
payload_meta_why() {
    python3 - "$1" "$2" "$3" <<'PYEOF' 2>&1 | tail -n 1
import hashlib, json, struct, sys
def rd(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return b[8 + n:], json.loads(b[8:8 + n]).get("__metadata__", {})
pa, ma = rd(sys.argv[1])
pb, mb = rd(sys.argv[2])
def sha(*paths):
    h = hashlib.sha256()
    for p in paths: h.update(open(p, "rb").read())
    return h.hexdigest()
try:
    good = eval(sys.argv[3])
except Exception as err:
    good = False
if not good: print("; check failed: %s (metadata %s)" % (sys.argv[3], json.dumps({k: mb.get(k) for k in ("r", "lora_alpha", "init_from", "init_from_sha256")})))
PYEOF
}

run "$LORA-train" $SMALL --init-from "$T/a8.st" --steps 0 --out "$T/if0.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(payload_meta_why "$T/a8.st" "$T/if0.st" "pa == pb and mb['init_from'] == sys.argv[1] and mb['init_from_sha256'] == sha(sys.argv[1]) and mb['r'] == ma['r'] and mb['lora_alpha'] == ma['lora_alpha']")"
run "$LORA-eval" --json --adapter "$T/a8.st" "$TEST"
grep -v '"model":"data/' "$T/out" | sed 's/"model":"[^"]*",//' >"$T/ev_if_a.json"
run "$LORA-eval" --json --adapter "$T/if0.st" "$TEST"
grep -v '"model":"data/' "$T/out" | sed 's/"model":"[^"]*",//' >"$T/ev_if_0.json"
[ -s "$T/ev_if_0.json" ] && cmp -s "$T/ev_if_a.json" "$T/ev_if_0.json" || why="$why; lora-eval --json differs from the adapter started from"
verdict "lora-train --init-from A --steps 0: A's tensors bit for bit, the same lora-eval output, init_from and its sha256 recorded" "$why"

run "$LORA-export" --peft "$T/if_peft" "$T/a8.st"
run "$LORA-train" $SMALL --init-from "$T/if_peft" --steps 0 --out "$T/if0d.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(payload_meta_why "$T/a8.st" "$T/if0d.st" "pa == pb and mb['init_from'] == sys.argv[1].replace('a8.st', 'if_peft') and mb['init_from_sha256'] == sha(mb['init_from'] + '/adapter_config.json', mb['init_from'] + '/adapter_model.safetensors')")"
verdict "lora-train --init-from DIR (lora-export --peft of A): A's tensors bit for bit; the directory's sha256 recorded" "$why"

# a rank-2 DoRA adapter on block 1's q and v: its settings are taken over, magnitudes included
run "$LORA-train" $SMALL --rank 2 --dora --layers 1 --targets q,v --out "$T/if_dora.st" "$DATA"
run "$LORA-train" $SMALL --init-from "$T/if_dora.st" --steps 0 --json --out "$T/if_dora0.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
why="$why$(json_why "$T/out" 'd["rank"] == 2 and d["dora"] is True and d["trainable_params"] == 2 * 2 * (64 + 64) + 2 * 64')"
why="$why$(payload_meta_why "$T/if_dora.st" "$T/if_dora0.st" "pa == pb and mb['use_dora'] == 'true' and mb['layers_to_transform'] == ma['layers_to_transform'] and mb['target_modules'] == ma['target_modules']")"
verdict "lora-train --init-from a DoRA adapter of rank 2 on some blocks and targets: its settings and magnitudes, bit for bit" "$why"

# continuing trains on from A: a better validation loss than A's own 20-step run had
run "$LORA-train" $SMALL --steps 20 --eval-every 10 --json --out "$T/if_fresh.st" "$DATA"
cp "$T/out" "$T/if_fresh.json"
run "$LORA-train" $SMALL --init-from "$T/a8.st" --steps 20 --eval-every 10 --json --out "$T/if20.st" "$DATA"
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
fresh=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_val_loss"])' "$T/if_fresh.json" 2>/dev/null || echo 0)
why="$why$(json_why "$T/out" "d['best_val_loss'] < 0.9 * $fresh and d['init_from'].endswith('a8.st')")"
cmp -s "$T/if_fresh.st" "$T/a8.st" || why="$why; the fresh run differs from a8.st (same settings)"
run "$LORA-train" $SMALL --init-from "$T/a8.st" --steps 20 --eval-every 10 --out "$T/if20b.st" "$DATA"
cmp -s "$T/if20.st" "$T/if20b.st" || why="$why; two runs with the same seed and --init-from differ"
verdict "lora-train --init-from A --steps 20: best validation loss below 0.9 x a fresh run's ($fresh); the same bytes twice" "$why"

expect_fail 1 "a8.st|another base" "lora-train --init-from: an adapter trained on another base" \
    "$LORA-train" $SMALL --base "$T/pre.st" --init-from "$T/a8.st" --out "$T/o/x.st" "$DATA"
expect_fail 1 "--rank 4|r 8|a8.st" "lora-train --init-from: a conflicting --rank names both values" \
    "$LORA-train" $SMALL --init-from "$T/a8.st" --rank 4 --out "$T/o/x.st" "$DATA"
expect_fail 1 "--no-rslora|use_rslora true" "lora-train --init-from: a conflicting --no-rslora" \
    "$LORA-train" $SMALL --init-from "$T/a8.st" --no-rslora --out "$T/o/x.st" "$DATA"
expect_fail 1 "--dora|use_dora false" "lora-train --init-from: --dora with a plain adapter" \
    "$LORA-train" $SMALL --init-from "$T/a8.st" --dora --out "$T/o/x.st" "$DATA"
expect_fail 1 "--layers|[0]|[1]" "lora-train --init-from: a conflicting --layers" \
    "$LORA-train" $SMALL --init-from "$T/if_dora.st" --layers 0 --out "$T/o/x.st" "$DATA"
echo '{"alpha": 8}' >"$T/if_alpha.json"
expect_fail 1 "--alpha 8|lora_alpha 16" "lora-train --init-from: a conflicting alpha from a --config file" \
    "$LORA-train" $SMALL --config "$T/if_alpha.json" --init-from "$T/a8.st" --out "$T/o/x.st" "$DATA"
expect_fail 2 "--init-from|--full" "lora-train --init-from with --full" \
    "$LORA-train" $SMALL --init-from "$T/a8.st" --full --out "$T/o/x.st" "$DATA"
expect_fail 2 "--init-from|--init pissa" "lora-train --init-from with --init pissa" \
    "$LORA-train" $SMALL --init-from "$T/a8.st" --init pissa --out "$T/o/x.st" "$DATA"
expect_fail 1 "a8.st|not a minilora training state" "lora-train --init-from with --resume given an adapter" \
    "$LORA-train" $SMALL --init-from "$T/a8.st" --resume "$T/a8.st" --out "$T/o/x.st" "$DATA"
expect_fail 1 "--init-from|$BASE|not a LoRA adapter" "lora-train --init-from: a full checkpoint" \
    "$LORA-train" $SMALL --init-from "$BASE" --out "$T/o/x.st" "$DATA"
expect_fail 1 "--init-from|$T/o/none.st" "lora-train --init-from: a missing file" \
    "$LORA-train" $SMALL --init-from "$T/o/none.st" --out "$T/o/x.st" "$DATA"
expect_fail 1 "--out|good.st|--init-from" "lora-train --init-from: --out is the adapter started from" \
    "$LORA-train" $SMALL --init-from "$T/o/good.st" --out "$T/o/good.st" "$DATA"
mkdir "$T/o/pd"
cp "$T/if_peft/adapter_config.json" "$T/if_peft/adapter_model.safetensors" "$T/o/pd/"
pd_before=$(cat "$T/o/pd/adapter_config.json" "$T/o/pd/adapter_model.safetensors" | sha256sum)
run "$LORA-train" $SMALL --init-from "$T/o/pd" --out "$T/o/pd/adapter_model.safetensors" "$DATA"
why=""
[ "$rc" -eq 1 ] || why="exit $rc, expected 1"
[ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -e "adapter_model.safetensors" "$T/err" && grep -q -e "--init-from" "$T/err" || why="$why; stderr is not one line naming the file and --init-from"
[ -s "$T/out" ] && why="$why; wrote to stdout"
[ "$(cat "$T/o/pd/adapter_config.json" "$T/o/pd/adapter_model.safetensors" | sha256sum)" = "$pd_before" ] || why="$why; the directory's files changed"
[ "$(ls -A "$T/o/pd" | tr '\n' ' ')" = "adapter_config.json adapter_model.safetensors " ] || why="$why; the directory now holds $(ls -A "$T/o/pd" | tr '\n' ' ')"
rm -rf "$T/o/pd"
verdict "lora-train --init-from DIR --out DIR/adapter_model.safetensors -> exit 1, one line, the directory untouched" "$why"
outdir_reset

# ---- summary -----------------------------------------------------------------------------

elapsed=$(($(date +%s) - started))
if [ "$failed" -eq 0 ]; then
    echo "test_cli: ok: $((n - todo)) of $n cases passed, $todo known bug(s) marked TODO, in ${elapsed}s ($LORA)"
    exit 0
fi
echo "test_cli: FAIL: $failed of $n cases failed ($todo known bug(s) marked TODO) in ${elapsed}s ($LORA)"
exit 1
