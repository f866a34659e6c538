#!/bin/sh
# scripts/features_report.py (the table of scripts/exp-features.sh) against figures computed here
# from the cells' own files: real cells of exp-features.sh runs, committed without their adapters
# (tests/fixtures/features: seed 1 with the plain, DoRA and half-strength rows, seed 2 with the
# plain and DoRA rows, seed 3 with the plain row). Checks the CSV (one line per row and seed,
# each exact match and collateral figure as the cell's eval.json has it), the table's median
# [min-max] over three seeds, over two (the mean of the middle two) and a row short of seeds,
# a one-seed table (plain values), and a seed with no cells: one line, exit non-zero, nothing
# written. Run from the repository root. Prints one line; exits non-zero naming what failed.
set -u
F=tests/fixtures/features
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_features_report: FAIL: $*"; exit 1; }

mkdir -p "$tmp/three" "$tmp/one" "$tmp/bad"
cp -R "$F" "$tmp/three/features"
cp -R "$F" "$tmp/one/features"
cp -R "$F" "$tmp/bad/features"
python3 scripts/features_report.py "$tmp/three" 1 2 3 > /dev/null || fail "three seeds: exit $?"
python3 scripts/features_report.py "$tmp/one" 1 > /dev/null || fail "one seed: exit $?"

python3 - "$tmp" "$F" <<'EOF' || exit 1
import csv, json, os, sys
tmp, F = sys.argv[1], sys.argv[2]
KINDS = {"irreg_test": "seen", "irreg_test_new": "new_frames", "regular_heldout_new": "regular_new",
         "irreg_nonpast_new": "nonpast_new", "control_new": "control_new"}
def fail(msg):
    print("test_features_report: FAIL: " + msg); sys.exit(1)

# each cell's figures, straight from its eval.json: the adapter's entry per file
cells = {}  # (name, seed) -> {kind: value}
for sd in sorted(os.listdir(F)):
    for cell in sorted(os.listdir(os.path.join(F, sd))):
        d = os.path.join(F, sd, cell)
        name = open(os.path.join(d, "name")).read().split("\n")[0]
        ev = json.load(open(os.path.join(d, "eval.json")))
        fig = {}
        for r in ev["summary"]:
            k = KINDS.get(os.path.basename(r["file"]).rsplit(".", 1)[0])
            if k is None or r["model"] == "base" or r["model"].endswith("minigpt-base.safetensors"):
                continue
            fig[k] = 100 * r["exact_match"]
            if k == "nonpast_new":
                fig["collateral_new"] = r.get("collateral", {}).get("largest_drop", 0.0)
        cells[(name, sd[1:])] = fig
if len(cells) != 6:
    fail("expected 6 fixture cells, found %d" % len(cells))

# the CSV: one line per row and seed, the cells' figures
rows = list(csv.DictReader(open(os.path.join(tmp, "three", "features.csv"))))
got = {(r["feature"], r["seed"]): r for r in rows if r["feature"] != "base model (no adapter)"}
if set(got) != set(cells):
    fail("CSV rows %s, cells %s" % (sorted(got), sorted(cells)))
for key, fig in cells.items():
    for k in ("seen", "new_frames", "regular_new", "control_new"):
        if abs(100 * float(got[key][k]) - fig[k]) > 1e-3:
            fail("CSV %s %s: %s, eval.json %.4f" % (key, k, got[key][k], fig[k]))
    if abs(float(got[key]["collateral_new"]) - fig["collateral_new"]) > 1e-3:
        fail("CSV %s collateral: %s, eval.json %s" % (key, got[key]["collateral_new"], fig["collateral_new"]))
if sum(r["feature"] == "base model (no adapter)" for r in rows) != 3:
    fail("CSV: the base row once per seed expected")

def mid(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
def cell(v):
    m, lo, hi = ("%.1f" % x for x in (mid(v), min(v), max(v)))
    return m if lo == hi else "%s [%s–%s]" % (m, lo, hi)
def table_row(md, name):
    for l in md.splitlines():
        if l.startswith("| " + name + " |") or l.startswith("| " + name + " ("):
            return [c.strip() for c in l.strip("|").split("|")]
    fail("no table row for %r" % name)
COLS = {"seen": 5, "new_frames": 6, "collateral_new": 7, "control_new": 8, "regular_new": 9}

md = open(os.path.join(tmp, "three", "features.md")).read()
if "seeds 1, 2 and 3," not in md:
    fail("three seeds: the header does not name the seeds")
for name, n in (("LoRA", 3), ("DoRA", 2), ("strength 0.5", 1)):
    t = table_row(md, name)
    short = "(%d of 3 seeds)" % n in t[0]
    if short != (n < 3):
        fail("%s: %r should %ssay it has %d of 3 seeds" % (name, t[0], "" if n < 3 else "not ", n))
    for k, i in COLS.items():
        v = [f[k] for (nm, s), f in cells.items() if nm == name]
        if t[i] != cell(v):
            fail("%s %s: table %r, expected %r from %s" % (name, k, t[i], cell(v), v))

one = open(os.path.join(tmp, "one", "features.md")).read()
for name in ("LoRA", "DoRA", "strength 0.5"):
    t = table_row(one, name)
    for k, i in COLS.items():
        if t[i] != "%.1f" % cells[(name, "1")][k]:
            fail("one seed, %s %s: %r, expected %.1f" % (name, k, t[i], cells[(name, "1")][k]))
if "[" in "".join(one.splitlines()[3:]):
    fail("one seed: the table has ranges")
EOF

# a seed with no cells: one line naming it, exit non-zero, no table or CSV written
python3 scripts/features_report.py "$tmp/bad" 1 4 > "$tmp/out" 2> "$tmp/err" && fail "seed 4 accepted"
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "seed 4: expected one line, got: $(cat "$tmp/err")"
grep -q "s4.*seed 4" "$tmp/err" || fail "seed 4: the error does not name it: $(cat "$tmp/err")"
[ ! -e "$tmp/bad/features.md" ] && [ ! -e "$tmp/bad/features.csv" ] || fail "seed 4: a file was written"
echo "test_features_report: ok"
