#!/bin/sh
# Runs every test program given on the command line (cmocka binaries and tests/*.sh scripts),
# prints one line per program and fails if any failed.
fails=0; total=0
for t in "$@"; do
    total=$((total + 1))
    case "$t" in *.sh) cmd="sh $t" ;; *) cmd="$t" ;; esac
    if $cmd; then echo "PASS $t"; else echo "FAIL $t"; fails=$((fails + 1)); fi
done
echo "== $((total - fails))/$total test programs passed"
[ "$fails" -eq 0 ]
