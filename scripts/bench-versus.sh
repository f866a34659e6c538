#!/bin/sh
# bench-versus.sh REV: this tree's lora bench against the one of commit REV, measured in turns
# (REV, this tree, REV, this tree, ...) so that a shared machine's drift hits both alike. Per
# row it prints the median and the min-max range over the turns of the speed-up of this tree
# over REV: new/old for rates (tokens/s, sequences/s), old/new for times (ms/completion), each
# taken within one turn, and the rows' figures themselves.
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
BIN=${LORA_BIN:-bin} # a directory holding lora, or the binary itself
if [ -f "$BIN" ]; then BIN=$(dirname "$BIN"); fi
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

set -- --json --seconds "$seconds" --threads "$threads"
[ -z "$only" ] || set -- "$@" --only "$only"
i=1
while [ "$i" -le "$runs" ]; do
    echo "turn $i of $runs ..." >&2
    "$tmp/old/bin/lora" bench "$@" >"$tmp/old.$i.json"
    "$BIN/lora" bench "$@" >"$tmp/new.$i.json"
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
EOF
