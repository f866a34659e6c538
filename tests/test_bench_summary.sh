#!/bin/sh
# scripts/bench_summary.py (make bench RUNS=K) against figures computed here, independently:
# three committed runs (tests/fixtures/bench: c*.json as `lora bench --json` prints them, t*.json
# as `scripts/bench_torch.py --json`; realistic figures, run 3 with a row the others lack and a
# generation row named with another token count). Per row, the median and min-max of the figure,
# of its fraction of peak, of the PyTorch figure and of C / PyTorch taken inside each run (score
# rows: sequences/s x T tokens), with an odd and an even number of runs; the CSV's lines; a real
# short `lora bench --json` run read as it is; and bad input: one line, exit 1, nothing written.
# Run from the repository root. Prints one line; exits non-zero naming what failed.
set -u
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN (mk/asan.mk)
F=tests/fixtures/bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_bench_summary: FAIL: $*"; exit 1; }
S="python3 scripts/bench_summary.py"

# The expected cells, computed without the script: sorted lists, the middle one (or the mean of
# the middle two), the ends.
expect() { # expect OUT RUN...: checks OUT (the summary's stdout) for the runs' figures
    python3 - "$@" <<'EOF' || exit 1
import json, sys
out, runs = open(sys.argv[1]).read(), sys.argv[2:]
summary = out[out.index("Summary of"):]
def mid(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
def cell(v, fmt, suf=""):
    return "%s [%s - %s]" % tuple((fmt % x) + suf for x in (mid(v), min(v), max(v)))
def line_with(name, text):
    for l in summary.splitlines():
        if l.startswith("  " + name + " ") and text in l:
            return True
    print("test_bench_summary: FAIL: %d runs: no summary line for %r with %r" % (len(runs), name, text))
    sys.exit(1)
C = [json.load(open("tests/fixtures/bench/c%s.json" % r)) for r in runs]
P = [json.load(open("tests/fixtures/bench/t%s.json" % r)) for r in runs]
if "Summary of %d runs" % len(runs) not in out:
    print("test_bench_summary: FAIL: no 'Summary of %d runs'" % len(runs)); sys.exit(1)
line_with("sgemm 2048^3 peak", cell([c["sgemm_peak_gflops"] for c in C], "%.1f"))
line_with("sgemm 2048^3 on 1 thread", cell([c["sgemm_1thread_gflops"] for c in C], "%.1f"))
for r, c in zip(runs, C):   # the per-run lines: kernel and threads
    if not any(l.split()[:3] == [str(runs.index(r) + 1), c["kernel"], str(c["threads"])]
               for l in summary.splitlines() if l.strip()):
        print("test_bench_summary: FAIL: no run line with kernel %s" % c["kernel"]); sys.exit(1)
names = ["train full model", "train LoRA r=0", "train LoRA r=1", "train LoRA r=8",
         "train LoRA r=32", "score sequences", "score merged r=8", "greedy generation"]
table = summary[summary.index("of peak (same run)"):].split("\n\n")[0].splitlines()[1:]
shown = [l[2:36].split(" (")[0].strip() for l in table]
present = [n for n in names if any(r["name"].startswith(n) for c in C for r in c["rows"])]
if shown != present:  # lora bench's order, a row some runs lack in its place
    print("test_bench_summary: FAIL: rows in the order %s, expected %s" % (shown, present))
    sys.exit(1)
for name in names:
    rows = [row for c in C for row in c["rows"] if row["name"].split(" (")[0] == name]
    if not rows:
        continue
    label = name if len(rows) == len(runs) else "%s (%d of %d runs)" % (name, len(rows), len(runs))
    vals = [row["value"] for row in rows]
    line_with(label, cell(vals, "%.1f" if min(vals) >= 10 else "%.3f"))
    if rows[0]["flops_per_token"]:
        line_with(label, cell([100 * row["fraction_of_peak"] for row in rows], "%.1f", "%"))
    torch, ratio = [], []
    for c, p in zip(C, P):
        t = [x["tokens_per_s"] for x in p["rows"] if x["name"] == name]
        c_row = [x for x in c["rows"] if x["name"] == name]
        if t and c_row:
            tok = c_row[0]["value"] * (c["T"] if c_row[0]["unit"] == "sequences/s" else 1)
            torch.append(t[0]); ratio.append(tok / t[0])
    if torch:
        line_with(label, cell(torch, "%.1f") + "  ")
        line_with(label, cell(ratio, "%.2f", "x"))
EOF
}

# Three runs (odd), then two (even: the mean of the middle two).
$S --run $F/c1.json $F/t1.json --run $F/c2.json $F/t2.json --run $F/c3.json $F/t3.json \
    --csv "$tmp/runs.csv" > "$tmp/out3" 2> "$tmp/err" || fail "3 runs: exit $?: $(cat "$tmp/err")"
expect "$tmp/out3" 1 2 3
$S --run $F/c1.json $F/t1.json --run $F/c3.json $F/t3.json > "$tmp/out2" 2> "$tmp/err" ||
    fail "2 runs: exit $?: $(cat "$tmp/err")"
expect "$tmp/out2" 1 3
grep -q "^Run 2 of 2 (the last)" "$tmp/out2" && grep -q "greedy generation (6.5 tokens)" "$tmp/out2" ||
    fail "2 runs: the last run's table is not run 3's"

# The CSV: a header and one line per run x row (7 + 8 + 8 C rows); C / PyTorch of run 2's score
# row is sequences/s x 32 over the PyTorch tokens/s, each from the fixtures.
n=$(wc -l < "$tmp/runs.csv")
[ "$n" -eq 24 ] || fail "runs.csv: $n lines, expected 1 + 23"
want=$(python3 -c 'import json; c=json.load(open("'$F'/c2.json")); t=json.load(open("'$F'/t2.json"))
s=[r["value"] for r in c["rows"] if r["name"]=="score sequences"][0]
p=[r["tokens_per_s"] for r in t["rows"] if r["name"]=="score sequences"][0]
print("%.4f" % (s * c["T"] / p))')
got=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "c_over_torch") col = i }
    $1 == 2 && $2 == "score sequences" { print $col }' "$tmp/runs.csv")
[ "$got" = "$want" ] || fail "runs.csv: run 2 score sequences c_over_torch $got, expected $want"

# A real run's JSON as lora bench prints it today, with a fixture PyTorch run.
"$BIN/lora" bench --json --seconds 0.1 --only "r=8" > "$tmp/real.json" 2> "$tmp/err" ||
    fail "lora bench --json: $(cat "$tmp/err")"
$S --run "$tmp/real.json" $F/t1.json > "$tmp/outr" 2> "$tmp/err" || fail "real run: $(cat "$tmp/err")"
want=$(python3 -c 'import json; d=json.load(open("'"$tmp"'/real.json")); print("%.1f" % d["rows"][0]["value"])')
grep -q "^  train LoRA r=8  *$want \[$want - $want\]" "$tmp/outr" ||
    fail "real run: no 'train LoRA r=8 $want [$want - $want]' in the summary"
# its time split: the share inside the products (between 0 and 1: the row's own measurement)
# and the fraction of peak with the rest free, fraction / share
split=$(python3 -c 'import json; r=json.load(open("'"$tmp"'/real.json"))["rows"][0]
assert 0 < r["gemm_share"] <= 1 and 0 <= r["thin_share"] < r["gemm_share"], r
p = lambda x: "%.1f%%" % (100 * x)
print(" ".join("%s [%s - %s]" % (v, v, v) for v in (p(r["gemm_share"]), p(r["thin_share"]),
      p(r["fraction_of_peak"] / r["gemm_share"]))))') || fail "real run: no sane time split in the JSON"
tr -s ' ' < "$tmp/outr" | grep -qxF " train LoRA r=8 $split" ||
    fail "real run: no time split line 'train LoRA r=8 $split' in the summary"
# the other work's split: each kind's share in [0, 1], with the products at most the whole
# (5% of slack: the clock is read at other moments); the summary's line is those shares and
# the rest, 1 − products − Σ kinds
ops=$(python3 -c 'import json; r=json.load(open("'"$tmp"'/real.json"))["rows"][0]
o = r["op_share"]
assert list(o) == ["attention", "GELU", "LayerNorm", "loss", "elementwise", "optimizer"], o
assert all(0 <= v <= 1 for v in o.values()) and o["attention"] > 0 and o["GELU"] > 0, o
assert r["gemm_share"] + sum(o.values()) <= 1.05, (r["gemm_share"], o)
rest = 1 - r["gemm_share"] - sum(o.values())
print(" ".join("%.1f%%" % (100 * v) for v in list(o.values()) + [rest]))') ||
    fail "real run: no sane op_share in the JSON"
tr -s ' ' < "$tmp/outr" | grep -qxF " train LoRA r=8 $ops" ||
    fail "real run: no other-work line 'train LoRA r=8 $ops' in the summary"

# Bad input: one line on stderr naming the file, exit 1, nothing on stdout, the CSV untouched.
printf 'good\n' > "$tmp/keep.csv"
head -c 300 $F/c2.json > "$tmp/trunc.json"
python3 -c 'import json; d=json.load(open("'$F'/c1.json")); del d["rows"][2]["unit"]; print(json.dumps(d))' > "$tmp/nounit.json"
python3 -c 'import json; d=json.load(open("'$F'/t1.json")); d["T"]=16; print(json.dumps(d))' > "$tmp/t16.json"
check_bad() { # check_bad WHAT PATTERN ARGS...
    what=$1 pat=$2; shift 2
    $S "$@" --csv "$tmp/keep.csv" > "$tmp/bout" 2> "$tmp/berr"
    rc=$?
    [ "$rc" -eq 1 ] || fail "$what: exit $rc, expected 1"
    [ "$(wc -l < "$tmp/berr")" -eq 1 ] || fail "$what: stderr is not one line: $(cat "$tmp/berr")"
    grep -q "^bench_summary.py: .*$pat" "$tmp/berr" || fail "$what: '$(cat "$tmp/berr")' lacks '$pat'"
    [ ! -s "$tmp/bout" ] || fail "$what: printed a summary"
    [ "$(cat "$tmp/keep.csv")" = good ] || fail "$what: overwrote the CSV"
}
check_bad "missing run file" "$tmp/nope.json: cannot read" --run $F/c1.json $F/t1.json --run "$tmp/nope.json" $F/t2.json
check_bad "malformed JSON" "trunc.json: malformed JSON" --run $F/c1.json $F/t1.json --run "$tmp/trunc.json" $F/t2.json
check_bad "row without unit" "nounit.json: row 3: no \"unit\"" --run "$tmp/nounit.json"
check_bad "PyTorch T differs" "t16.json: T = 16" --run $F/c1.json "$tmp/t16.json"
check_bad "three files in a run" "expected C.json" --run $F/c1.json $F/t1.json $F/t2.json

# scripts/bench.sh refuses a bad --runs before measuring anything.
for bad in 0 x 101 ""; do
    err=$(sh scripts/bench.sh --runs "$bad" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq 2 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && echo "$err" | grep -q -- "--runs" ||
        fail "bench.sh --runs '$bad': exit $rc, '$err'"
done
err=$(sh scripts/bench.sh --runs 2 --csv /nonexistent-dir/x.csv 2>&1 >/dev/null)
[ $? -eq 2 ] && echo "$err" | grep -q "/nonexistent-dir" || fail "bench.sh --csv in a missing directory: '$err'"
# scripts/bench-versus.sh refuses bad arguments before building anything: one line, exit 2.
vbad() { # vbad WHAT PATTERN ARGS...
    what=$1 pat=$2
    shift 2
    err=$(sh scripts/bench-versus.sh "$@" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq 2 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && echo "$err" | grep -q -- "$pat" ||
        fail "bench-versus.sh $what: exit $rc, '$err'"
}
vbad "without REV" "usage" --runs 2
vbad "with a REV that is no commit" "not a commit" no-such-rev-here
vbad "with --runs 0" "--runs" --runs 0 HEAD
vbad "with two REVs" "one REV" HEAD HEAD~1
vbad "with an unknown option" "unknown option" --fast HEAD
git worktree list | grep -q "bench-versus\|/tmp/tmp\." && fail "bench-versus.sh left a worktree behind"
echo "test_bench_summary: ok: medians and ranges of 3 and 2 runs (figure, of peak, PyTorch, C / PyTorch, sgemm) equal independent ones; CSV; a real run with its time split and other-work split; 5 bad inputs and bad --runs refused; bench-versus.sh refuses 5 bad argument lists"
