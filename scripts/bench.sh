#!/bin/sh
# make bench: lora bench's table, then its PyTorch peer (scripts/bench_torch.py: the reference
# model of tests/reference on the same base, shapes and optimizer) measured right after it in
# the same run, each PyTorch row beside the C figure as the ratio C / PyTorch.
#
#   scripts/bench.sh [--seconds S] [--runs K] [--csv FILE]
#
#   --seconds S  per measurement, for both (3 by default)
#   --runs K     K runs, alternating C1, PyTorch1, C2, PyTorch2, ... (1 by default: the two
#                tables as printed). K > 1 (or --csv): every run's JSON (lora bench --json,
#                bench_torch.py --json) goes to scripts/bench_summary.py, which prints the last
#                run's table and the median and min-max range over the runs of each row's
#                figure, its fraction of the same run's sgemm peak and C / PyTorch.
#   --csv FILE   also write every run's rows, one line per run x row (bench_summary.py --csv)
# Each run's wall time (C part, PyTorch part) goes to stderr.
set -eu
cd "$(dirname "$0")/.."
. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
seconds=3 runs=1 csv=
die() { echo "bench.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) [ $# -ge 2 ] || die "--seconds needs a value"; seconds=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || die "--runs needs a value"; runs=$2; shift 2 ;;
    --csv) [ $# -ge 2 ] && [ -n "$2" ] || die "--csv needs a file"; csv=$2; shift 2 ;;
    *) die "unknown option $1 (--seconds S, --runs K, --csv FILE)" ;;
    esac
done
case "$runs" in
'' | *[!0-9]*) die "--runs $runs: expected a whole number 1..100" ;;
esac
[ "$runs" -ge 1 ] && [ "$runs" -le 100 ] || die "--runs $runs: expected a whole number 1..100"
if [ -n "$csv" ]; then
    d=$(dirname "$csv")
    [ -d "$d" ] && [ -w "$d" ] || die "--csv $csv: directory $d does not exist or is not writable"
fi

if [ "$runs" -eq 1 ] && [ -z "$csv" ]; then
    table=$(mktemp)
    trap 'rm -f "$table"' EXIT
    "$BIN/lora" bench --seconds "$seconds" > "$table"
    cat "$table"
    echo
    /usr/bin/python3 scripts/bench_torch.py --seconds "$seconds" --c-table "$table"
    exit 0
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
set --
i=1
while [ "$i" -le "$runs" ]; do
    t0=$(date +%s)
    "$BIN/lora" bench --json --seconds "$seconds" > "$dir/c$i.json"
    t1=$(date +%s)
    /usr/bin/python3 scripts/bench_torch.py --json --seconds "$seconds" > "$dir/t$i.json"
    t2=$(date +%s)
    echo "bench.sh: run $i of $runs: C $((t1 - t0)) s, PyTorch $((t2 - t1)) s" >&2
    set -- "$@" --run "$dir/c$i.json" "$dir/t$i.json"
    i=$((i + 1))
done
[ -z "$csv" ] || set -- "$@" --csv "$csv"
python3 scripts/bench_summary.py "$@"
