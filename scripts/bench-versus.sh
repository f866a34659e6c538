#!/bin/sh
# bench-versus.sh REV: this tree's lora bench against the one of commit REV, measured in turns
# (REV, this tree, REV, this tree, ...) so that a shared machine's drift hits both alike. Per
# row it prints the median and the min-max range over the turns of the speed-up of this tree
# over REV: new/old for rates (tokens/s, sequences/s), old/new for times (ms/completion), each
# taken within one turn, and the rows' figures themselves.
#
# Each turn also times lora-eval end to end (process start, loading, scoring every held-out
# file with the base and an adapter, the report) on the same command for both trees: the
# default held-out files and a rank-8 adapter this tree trains once (30 steps) before the turns.
# Its row gives held-out examples scored per second (each file's examples, once per model),
# and says whether the two trees printed the same report.
#
#   scripts/bench-versus.sh [--runs K] [--seconds S] [--only TEXT] [--threads N] REV
#
#   --runs K      turns (default 5)          --seconds S   per measurement (default 2)
#   --only TEXT   lora bench --only          --threads N   lora bench --threads (default 0: all)
#
# REV is built in a temporary git worktree (make bin/lora), removed at the end. Issue 16's
# "2x today's" figures compare against the tree the issue was filed on: 7c08e62.
set -eu
cd "$(dirname "$0")/.."
runs=5 seconds=2 only="" threads=0 rev=""
die() { echo "bench-versus.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=${2:?"bench-versus.sh: --runs needs a value"}; shift 2 ;;
    --seconds) seconds=${2:?"bench-versus.sh: --seconds needs a value"}; shift 2 ;;
    --only) only=${2:?"bench-versus.sh: --only needs a value"}; shift 2 ;;
    --threads) threads=${2:?"bench-versus.sh: --threads needs a value"}; shift 2 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$rev" ] || die "one REV only (got $rev and $1)"; rev=$1; shift ;;
    esac
done
[ -n "$rev" ] || die "usage: bench-versus.sh [--runs K] [--seconds S] [--only TEXT] [--threads N] REV"
case "$runs" in '' | *[!0-9]*) die "--runs $runs is not a whole number 1..50" ;; esac
[ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || die "--runs $runs is not a whole number 1..50"
commit=$(git rev-parse --verify --quiet "$rev^{commit}") || die "$rev is not a commit here"
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
[ -x "$BIN/lora" ] || die "$BIN/lora is not built (make bin/lora)"

tmp=$(mktemp -d)
cleanup() { git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
git worktree add --detach --quiet "$tmp/old" "$commit"
echo "building $rev ($(git log -1 --format=%h "$commit")) in a temporary worktree ..." >&2
make -C "$tmp/old" --no-print-directory -j2 bin/lora >"$tmp/build.log" 2>&1 ||
    { tail -n 5 "$tmp/build.log" >&2; die "building $rev failed"; }

"$BIN/lora" train --rank 8 --alpha 16 --steps 30 --threads "$threads" \
    --out "$tmp/adapter.safetensors" data/irreg.jsonl >"$tmp/train.log" 2>&1 ||
    { tail -n 3 "$tmp/train.log" >&2; die "training the adapter for the lora-eval row failed"; }
# wall-clock seconds of one lora-eval run, its report kept in $2
eval_seconds() {
    python3 - "$1" "$2" "$threads" "$tmp/adapter.safetensors" <<'PY'
import subprocess, sys, time
lora, out, threads, adapter = sys.argv[1:]
t = time.perf_counter()
with open(out, "w") as f:
    subprocess.run([lora, "eval", "--brief", "--threads", threads, "--adapter", adapter],
                   stdout=f, check=True)
print("%.6f" % (time.perf_counter() - t))
PY
}

set -- --json --seconds "$seconds" --threads "$threads"
[ -z "$only" ] || set -- "$@" --only "$only"
i=1
while [ "$i" -le "$runs" ]; do
    echo "turn $i of $runs ..." >&2
    "$tmp/old/bin/lora" bench "$@" >"$tmp/old.$i.json"
    "$BIN/lora" bench "$@" >"$tmp/new.$i.json"
    eval_seconds "$tmp/old/bin/lora" "$tmp/old.$i.eval.txt" >"$tmp/old.$i.eval" ||
        die "$rev's lora eval failed"
    eval_seconds "$BIN/lora" "$tmp/new.$i.eval.txt" >"$tmp/new.$i.eval" || die "lora eval failed"
    i=$((i + 1))
done

python3 - "$tmp" "$runs" "$rev" "$(git log -1 --format=%h "$commit")" <<'EOF'
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
from bench_summary import cell, row_key, spread  # the same medians, ranges and row names
tmp, runs, rev, short = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
turns = []
for i in range(1, runs + 1):
    old, new = (json.load(open("%s/%s.%d.json" % (tmp, w, i))) for w in ("old", "new"))
    turns.append(({row_key(r["name"]): r for r in old["rows"]},
                  {row_key(r["name"]): r for r in new["rows"]}, old, new))
first = turns[0][3]
print("this tree against %s (%s): lora bench in %d turns (%s, then this tree, each turn)"
      % (rev, short, runs, rev))
print("kernel %s, %d threads, batch %d x %d tokens; speed-up = new/old for rates, old/new for"
      " times,\ntaken within each turn; median [min - max] over the turns\n"
      % (first["kernel"], first["threads"], first["batch"], first["T"]))
print("  %-24s %-30s %-30s %-14s %s" % ("", rev, "this tree", "unit", "speed-up"))
for k in turns[0][1]:
    pairs = [(o[k], n[k]) for o, n, _, _ in turns if k in o and k in n]
    if not pairs:
        continue
    unit = pairs[0][1]["unit"]
    time_like = unit.startswith("ms")
    up = [(o["value"] / n["value"]) if time_like else (n["value"] / o["value"]) for o, n in pairs]
    fmt = "%.3f" if time_like else "%.1f"
    print("  %-24s %-30s %-30s %-14s %s" % (k, cell(spread([o["value"] for o, _ in pairs]), fmt),
                                            cell(spread([n["value"] for _, n in pairs]), fmt),
                                            unit, cell(spread(up), "%.2f", "x")))

# lora-eval end to end: examples scored (every file's, once per model) per wall-clock second
import re
def report(path):
    return open(path).read()
counts = [int(m) for m in re.findall(r"\((\d+) examples\)", report("%s/new.1.eval.txt" % tmp))]
models = 2  # the base and the adapter
scored = models * sum(counts)
rates = {w: [scored / float(open("%s/%s.%d.eval" % (tmp, w, i)).read()) for i in range(1, runs + 1)]
         for w in ("old", "new")}
up = [n / o for o, n in zip(rates["old"], rates["new"])]
same = all(report("%s/old.%d.eval.txt" % (tmp, i)) == report("%s/new.%d.eval.txt" % (tmp, i))
           for i in range(1, runs + 1))
print("  %-24s %-30s %-30s %-14s %s" % ("lora-eval end to end", cell(spread(rates["old"]), "%.1f"),
                                        cell(spread(rates["new"]), "%.1f"), "examples/s",
                                        cell(spread(up), "%.2f", "x")))
print("\nlora-eval end to end: `lora eval --brief --adapter A` (A: rank 8, 30 steps), %d files,"
      " %d held-out\nexamples scored by the base and the adapter; the two trees' reports are %s"
      % (len(counts), sum(counts), "identical" if same else "DIFFERENT"))
EOF
