#!/bin/sh
# The README's measured figures are the results files' own: every quoted block equals the file
# it quotes, and no percentage in the README's prose is missing from every results file (a
# figure typed by hand, or left behind by a rerun). Run from the repository root.
# Prints one line; exits non-zero naming what is out of step.
set -u
out=$(python3 scripts/readme_sync.py --check 2>&1)
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "test_readme: FAIL: $(echo "$out" | head -n 1) ($(echo "$out" | wc -l) problem(s); python3 scripts/readme_sync.py --check lists them)"
    exit 1
fi
n=$(grep -c '^<!-- BEGIN ' README.md)
[ "$n" -ge 5 ] || { echo "test_readme: FAIL: only $n quoted results blocks in README.md"; exit 1; }
echo "test_readme: ok: $n quoted blocks equal their results files; every percentage and figure in the prose is in results/"
