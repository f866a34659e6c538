#!/bin/sh
# Regenerates the data into a temporary directory with scripts/gen_data.py and checks that every
# file listed in data/MANIFEST.json, both the regenerated one and the committed data/ copy, has
# the listed sha256 and line count, and that the regenerated MANIFEST.json and README.md equal
# the committed ones. Run from the repository root: sh tests/test_data.sh
# Prints one line; exits non-zero naming the first file that differs.
set -u

manifest=data/MANIFEST.json
fail() { echo "test_data: FAIL: $*"; exit 1; }

[ -f "$manifest" ] || fail "$manifest is missing"
tmp=$(mktemp -d) || fail "mktemp -d failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

mkdir "$tmp/out"
if ! python3 scripts/gen_data.py --out "$tmp/out" >"$tmp/log" 2>&1; then
    fail "scripts/gen_data.py failed: $(tail -n 1 "$tmp/log")"
fi

# "file lines sha256" per listed file
python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
for f in m["files"]:
    print(f["file"], f["lines"], f["sha256"])
' "$manifest" >"$tmp/expect" || fail "$manifest is not valid JSON"
[ -s "$tmp/expect" ] || fail "$manifest lists no file"

n=0
while read -r name lines sum; do
    for dir in "$tmp/out" data; do
        f="$dir/$name"
        if [ "$dir" = data ]; then shown=data/$name; else shown="regenerated $name"; fi
        [ -f "$f" ] || fail "$shown is missing"
        got_sum=$(sha256sum <"$f" | cut -d ' ' -f 1)
        got_lines=$(wc -l <"$f" | tr -d ' ')
        [ "$got_lines" = "$lines" ] || fail "$shown has $got_lines lines, $manifest says $lines"
        [ "$got_sum" = "$sum" ] || fail "$shown sha256 $got_sum differs from $manifest"
    done
    n=$((n + 1))
done <"$tmp/expect"

for f in "$tmp"/out/*.jsonl; do
    name=$(basename "$f")
    grep -q "^$name " "$tmp/expect" || fail "regenerated $name is not listed in $manifest"
done
for name in MANIFEST.json README.md; do
    cmp -s "$tmp/out/$name" "data/$name" || fail "data/$name differs from the regenerated one"
done

echo "test_data: ok: $n files regenerated identical to $manifest"
