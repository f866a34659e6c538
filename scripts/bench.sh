#!/bin/sh
# make bench: lora bench's table, then its PyTorch peer (scripts/bench_torch.py: the reference
# model of tests/reference on the same base, shapes and optimizer) measured right after it in
# the same run, each PyTorch row beside the C figure as the ratio C / PyTorch.
#
#   scripts/bench.sh [--seconds S]     (3 by default, per measurement, for both)
set -eu
cd "$(dirname "$0")/.."
BIN=${LORA_BIN:-bin}
seconds=3
case "${1:-}" in
--seconds) seconds=${2:?"bench.sh: --seconds needs a value"} ;;
"") ;;
*) echo "bench.sh: unknown option $1 (only --seconds S)" >&2; exit 2 ;;
esac
table=$(mktemp)
trap 'rm -f "$table"' EXIT
"$BIN/lora" bench --seconds "$seconds" > "$table"
cat "$table"
echo
/usr/bin/python3 scripts/bench_torch.py --seconds "$seconds" --c-table "$table"
