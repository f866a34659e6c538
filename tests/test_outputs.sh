#!/bin/sh
# tests/test_outputs.sh — the output rule (include/util/file_checks.h), for every command that
# writes: an output is written only if it is absent or a regular file, and never when it is
# the same file as one of the command's inputs or as another of its outputs. Relative paths in
# a config file are relative to that file's directory.
#
# Run from the repository root (`make test` does): sh tests/test_outputs.sh
# The commands are taken from ${LORA_BIN:-bin}, as in tests/test_cli.sh (mk/asan.mk sets
# LORA_BIN=.../build/asan/bin/lora).
#
# The table: for lora-train (--out, --state), lora-pretrain (--out, --curve) and lora-merge
# (--out), every output flag is pointed at every input's file, at the other output's file, at a
# symbolic link to each input, at a dangling link and at a character device (root only: mknod
# c 1 3, else SKIP). Each case asserts exit 1, exactly one line on stderr that says "error" and
# names the output flag, and the target (and, for a link, the file behind it) unchanged: type,
# sha256 and mtime; nothing is left in the scratch directory. Every refusal happens before
# anything is loaded, so no case trains.
#
# Prints one TAP-like line per case and a summary; exits 1 if any case failed.
set -u

cd "$(dirname "$0")/.." || exit 1

. scripts/lora-bin.sh # BIN: the directory holding lora, from $LORA_BIN
bindir=$BIN
LORA=$(cd "$bindir" 2>/dev/null && pwd)/lora
if [ ! -x "$LORA" ]; then
    echo "test_outputs: FAIL: $bindir/lora is missing (run make)"
    exit 1
fi
ROOT=$(pwd)

T=$(mktemp -d) || { echo "test_outputs: FAIL: mktemp -d"; exit 1; }
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

. "$(dirname "$0")/tap.sh" # verdict, skip, TO, n, failed, started

# fingerprint PATH: the link itself (when PATH is one) and what PATH names: type, sha256 of a
# regular file, mtime; "absent" when there is nothing.
fingerprint() {
    if [ -L "$1" ]; then printf 'link to %s; ' "$(readlink "$1")"; fi
    if [ ! -e "$1" ]; then echo "absent"; return; fi
    kind=$(stat -L -c '%F %Y' "$1")
    if [ -f "$1" ]; then echo "$kind $(sha256sum <"$1")"; else echo "$kind"; fi
}

# The scratch directories' listing: a refused command leaves no temporary or probe file.
listing() { ls -A "$T/in" "$T/w"; }

# refused DESC OUTFLAG TARGET CMD...: CMD (a command or a function below) must exit 1 with one error line naming OUTFLAG and
# leave TARGET (and the directories) as they were.
refused() {
    desc=$1 flag=$2 target=$3
    shift 3
    before=$(fingerprint "$target")
    files=$(listing)
    "$@" </dev/null >"$T/out" 2>"$T/err"
    rc=$?
    why=""
    [ "$rc" -eq 1 ] || why="$why; exit $rc, expected 1"
    [ "$(awk 'END { print NR }' "$T/err")" -eq 1 ] || why="$why; not one line on stderr"
    grep -q 'error' "$T/err" || why="$why; stderr does not say error"
    grep -q -F -- "$flag " "$T/err" || why="$why; stderr does not name $flag"
    [ -s "$T/out" ] && why="$why; wrote to stdout"
    after=$(fingerprint "$target")
    [ "$before" = "$after" ] || why="$why; target changed: $before -> $after"
    [ "$files" = "$(listing)" ] || why="$why; the directories changed: $(listing | tr '\n' ' ')"
    verdict "$desc -> exit 1, one line naming $flag, target unchanged" "$why"
}

# ---- fixtures ------------------------------------------------------------------------------

mkdir "$T/in" "$T/w" "$T/cfg" "$T/elsewhere"
I=$T/in
cp data/minigpt-base.safetensors "$I/base.st"
cp data/irreg.jsonl "$I/data.jsonl"
cp data/irreg_val.jsonl "$I/val.jsonl"
cp data/irreg_nonpast.jsonl "$I/extra.jsonl"
cp data/replay.jsonl "$I/replay.jsonl"
cp data/irreg.jsonl "$I/resume.state" # any regular file: the refusal comes before it is read
cp configs/minigpt.json "$I/model.json"
cp data/pretrain.jsonl "$I/pdata.jsonl"
cp data/pretrain_val.jsonl "$I/pval.jsonl"
cp data/control_new.jsonl "$I/cd1.jsonl"
cp data/irreg_test_new.jsonl "$I/cd2.jsonl"
cp data/minigpt-base.safetensors "$I/adapter.st" # refused before it is read
cp data/irreg_test.jsonl "$I/m1.jsonl"
cp data/control_new.jsonl "$I/m2.jsonl"
echo '{"steps": 1, "batch": 2}' >"$I/train.json"
echo '{"steps": 1, "batch": 2}' >"$I/pretrain.json"
echo 'step,train_loss,val_loss' >"$T/w/other"   # an existing output both flags point at
ln -s "$T/in/nothing" "$T/w/dangling"
DEV=""
if [ "$(id -u)" -eq 0 ] && mknod "$T/w/null" c 1 3 2>/dev/null; then DEV=$T/w/null; fi

# The commands with every input given; the outputs are $OUT and $OUT2 (fresh paths unless a
# case points one at a target).
train() {
    $TO "$LORA-train" --quiet --base "$I/base.st" --val "$I/val.jsonl" --val-extra "$I/extra.jsonl" \
        --replay "$I/replay.jsonl" --replay-frac 0.5 --config "$I/train.json" \
        --resume "$I/resume.state" --out "$OUT" --state "$OUT2" "$I/data.jsonl"
}
pretrain() {
    $TO "$LORA-pretrain" --quiet --model "$I/model.json" --val "$I/pval.jsonl" \
        --config "$I/pretrain.json" --curve-data "$I/cd1.jsonl,$I/cd2.jsonl" \
        --out "$OUT" --curve "$OUT2" "$I/pdata.jsonl"
}
merge() {
    $TO "$LORA-merge" --base "$I/base.st" --adapter "$I/adapter.st" --out "$OUT" \
        "$I/m1.jsonl" "$I/m2.jsonl"
}

# ---- the table -------------------------------------------------------------------------------

# command : output flags (the first is $OUT, the second $OUT2) : input flag=file ...
TABLE="train:--out,--state:--base=base.st,DATA=data.jsonl,--val=val.jsonl,--val-extra=extra.jsonl,--replay=replay.jsonl,--config=train.json,--resume=resume.state
pretrain:--out,--curve:--model=model.json,DATA=pdata.jsonl,--val=pval.jsonl,--config=pretrain.json,--curve-data=cd1.jsonl,--curve-data=cd2.jsonl
merge:--out:--base=base.st,--adapter=adapter.st,DATA=m1.jsonl,DATA=m2.jsonl"

# point CMD OUTFLAG TARGET: sets $OUT/$OUT2 so that OUTFLAG names TARGET, the other fresh.
point() {
    OUT=$T/w/fresh.out OUT2=$T/w/fresh.out2
    case "$2" in
    --out) OUT=$3 ;;
    *) OUT2=$3 ;;
    esac
}

old_ifs=$IFS
set -f
for row in $TABLE; do
    cmd=${row%%:*}
    rest=${row#*:}
    outs=${rest%%:*}
    ins=${rest#*:}
    IFS=,
    for oflag in $outs; do
        for pair in $ins; do
            iflag=${pair%%=*} file=$I/${pair#*=}
            IFS=$old_ifs
            # the one allowed pair: the state an interrupted run writes may be the --resume
            # file it continues from (read whole first, then updated; see test_cli.sh)
            if [ "$oflag $iflag" = "--state --resume" ]; then IFS=,; continue; fi
            point "$cmd" "$oflag" "$file"
            refused "lora-$cmd: $oflag is the input $iflag" "$oflag" "$file" "$cmd"
            grep -q -F -- "input $iflag (" "$T/err" ||
                verdict "lora-$cmd: $oflag at $iflag: the message names $iflag" "; it does not"
            ln -sf "$file" "$T/w/link"
            point "$cmd" "$oflag" "$T/w/link"
            refused "lora-$cmd: $oflag is a symbolic link to the input $iflag" "$oflag" \
                "$T/w/link" "$cmd"
            verdict "lora-$cmd: $oflag through a link: the input $iflag is unchanged" \
                "$(cmp -s "$file" "$T/w/link" || echo "; link and file differ")"
            rm -f "$T/w/link"
            IFS=,
        done
        IFS=$old_ifs
        point "$cmd" "$oflag" "$T/w/dangling"
        refused "lora-$cmd: $oflag is a dangling symbolic link" "$oflag" "$T/w/dangling" "$cmd"
        if [ -n "$DEV" ]; then
            point "$cmd" "$oflag" "$DEV"
            refused "lora-$cmd: $oflag is a character device" "$oflag" "$DEV" "$cmd"
            ln -sf "$DEV" "$T/w/link"
            point "$cmd" "$oflag" "$T/w/link"
            refused "lora-$cmd: $oflag is a link to a character device" "$oflag" "$DEV" "$cmd"
            rm -f "$T/w/link"
        else
            skip "lora-$cmd: $oflag is a character device" "not root: cannot mknod"
        fi
        IFS=,
    done
    IFS=$old_ifs
    if [ "$outs" != "${outs#*,}" ]; then # two outputs: both at one existing file
        OUT=$T/w/other OUT2=$T/w/other
        refused "lora-$cmd: $outs both at one file" "${outs#*,}" "$T/w/other" "$cmd"
        grep -q -F -- "also the output ${outs%%,*}" "$T/err" ||
            verdict "lora-$cmd: $outs at one file: the message names both" "; it does not"
    fi
done
set +f

# ---- the issue's reproductions -----------------------------------------------------------------

D=$ROOT/data/irreg.jsonl
if [ -n "$DEV" ]; then
    mkdir "$T/w/x"
    mknod "$T/w/x/full" c 1 7
    refused "lora-train --steps 2 --out x/full (/dev/full's numbers)" "--out" "$T/w/x/full" \
        $TO "$LORA-train" --quiet --steps 2 --out "$T/w/x/full" "$D"
    grep -q "character device" "$T/err" || verdict "the message says character device" "; no"
    rm -rf "$T/w/x"
else
    skip "lora-train --steps 2 --out x/full" "not root: cannot mknod"
fi

# A relative "out" and "val" in a --config file are relative to the config file's directory,
# run from another directory (an absolute "base" stays as it is); paths on the command line
# stay relative to the working one.
mkdir "$T/cfg/p" "$T/elsewhere/configs"
# the defaults file in the working directory too: a binary outside a checkout or install (the
# ASan build) finds none beside itself
cp configs/lora-irreg.json "$T/elsewhere/configs/"
cp data/irreg_val.jsonl "$T/cfg/v.jsonl"
printf '{"out": "p/v.st", "val": "v.jsonl", "base": "%s", "steps": 2, "batch": 4, %s}\n' \
    "$ROOT/data/minigpt-base.safetensors" '"replay": "", "replay_frac": 0' >"$T/cfg/c.json"
(cd "$T/elsewhere" && $TO "$LORA-train" --quiet --config ../cfg/c.json "$D") \
    </dev/null >"$T/out" 2>"$T/err"
rc=$?
why=""
[ "$rc" -eq 0 ] || why="; exit $rc"
[ -s "$T/cfg/p/v.st" ] || why="$why; $T/cfg/p/v.st was not written"
[ -e "$T/elsewhere/p" ] && why="$why; wrote under the working directory"
[ -e "$ROOT/p/v.st" ] && why="$why; wrote under the checkout"
grep -q 'best validation loss' "$T/out" || why="$why; no validation (v.jsonl not found?)"
verdict "lora-train --config ../cfg/c.json with \"out\": \"p/v.st\", \"val\": \"v.jsonl\": both beside c.json" "$why"
(cd "$T/elsewhere" && $TO "$LORA-train" --quiet --config ../cfg/c.json --out v2.st "$D") \
    </dev/null >"$T/out" 2>"$T/err"
rc=$?
verdict "lora-train: --out v2.st typed on the command line is relative to the working directory" \
    "$([ "$rc" -eq 0 ] && [ -s "$T/elsewhere/v2.st" ] || echo "; not written there (exit $rc)")"
# each item of a path list: --curve at a --curve-data item of the config is named resolved
echo '{"curve_data": "a.jsonl,sub/b.jsonl"}' >"$T/cfg/pc.json"
mkdir "$T/cfg/sub"
cp data/control_new.jsonl "$T/cfg/a.jsonl"
cp data/control_new.jsonl "$T/cfg/sub/b.jsonl"
refused "lora-pretrain: --curve at the config's relative curve_data item sub/b.jsonl" "--curve" \
    "$T/cfg/sub/b.jsonl" $TO "$LORA-pretrain" --config "$T/cfg/pc.json" --out "$T/w/p.st" \
    --curve "$T/cfg/sub/b.jsonl"
grep -q -F -- "--curve-data ($T/cfg/sub/b.jsonl)" "$T/err" ||
    verdict "lora-pretrain: the config's curve_data item resolved beside the config" "; not named"

# --state s.st --out s.st used to write the adapter into s.st at SIGINT and then say the state
# was there: now refused before training, s.st untouched. The default state (OUT.state) may be
# the --resume file it updates (tests/test_cli.sh resumes that way, bit-identically).
cp "$I/resume.state" "$T/w/s.st"
refused "lora-train --state s.st --out s.st" "--state" "$T/w/s.st" \
    $TO "$LORA-train" --quiet --steps 2 --state "$T/w/s.st" --out "$T/w/s.st" "$D"
rm -f "$T/w/s.st"

# the pretraining curve is written whole at the end (atomically), beside an untouched input
head -n 20 data/pretrain_val.jsonl >"$T/w/v20.jsonl"
$TO "$LORA-pretrain" --quiet --steps 2 --batch 4 --eval-every 1 --val "$T/w/v20.jsonl" \
    --curve-data "$I/cd1.jsonl" --curve "$T/w/c.csv" --out "$T/w/p.st" "$I/pdata.jsonl" \
    </dev/null >"$T/out" 2>"$T/err"
rc=$?
why=""
[ "$rc" -eq 0 ] || why="; exit $rc"
[ "$(wc -l <"$T/w/c.csv" 2>/dev/null)" = 3 ] || why="$why; the curve does not hold a header and 2 rows"
[ -z "$(ls -A "$T/w" | grep -e '\.tmp\.' -e '\.probe\.')" ] || why="$why; temporary files left"
verdict "lora-pretrain --curve c.csv: header and one row per validation, no temporary file left" "$why"

elapsed=$(($(date +%s) - started))
if [ "$failed" -eq 0 ]; then
    echo "test_outputs: ok: $n cases passed in ${elapsed}s ($LORA)"
    exit 0
fi
echo "test_outputs: FAIL: $failed of $n cases failed in ${elapsed}s ($LORA)"
exit 1
