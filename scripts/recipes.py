#!/usr/bin/env python3
"""recipes.py - the fine-tuning recipe comparison behind configs/lora-irreg.json.

Trains a rank-8, alpha-16 adapter on data/irreg.jsonl with each candidate recipe below (three
seeds each), scores it with lora-eval on seen and new sentence frames, and writes
results/recipes.csv (one row per run) and results/recipes.md (one row per recipe: mean over
seeds, worst seed where a bar is per seed, and the exact command). Resumable: a finished run
(results/recipes/<name>/s<seed>/eval.json with a stamp of the base, config, data and flags)
is not rerun for the same inputs.

    python3 scripts/recipes.py [-j JOBS] [-s SEEDS] [--only NAME,...] [--out results]

Standard library only; needs bin/lora (make).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "data/irreg.jsonl"
# The starting point every row modifies (the first release's recipe); the winner becomes
# configs/lora-irreg.json, the default of lora-train.
CONFIG = "configs/lora-recipe-search.json"

# (name, what it tests, lora-train flags on top of configs/lora-irreg.json). The explicit
# flags make each row's command self-contained even after the config changes.
OLD = "--replay data/replay.jsonl --replay-frac 0.75 --steps 1500 --lr 0.002 --preserve-kl 0"
RECIPES = [
    ("no-replay", "the fine-tune data alone", "--replay= --replay-frac 0 --steps 1500 --lr 0.002 --preserve-kl 0"),
    ("replay", "replay 75% (the first release's recipe), regenerated data", OLD),
    ("replay-90", "more replay: 90% of each batch", OLD.replace("0.75", "0.9")),
    ("replay-lr1e-3", "replay, half the learning rate", OLD.replace("0.002", "0.001")),
    ("replay-3000", "replay, twice the steps", OLD.replace("1500", "3000")),
    ("replay-attn", "replay, attention layers only", OLD + " --targets attn"),
    ("replay-rslora", "replay, rank-stabilized scaling alpha/sqrt(r)", OLD + " --rslora"),
    ("kl-0.5", "replay + KL to the base, weight 0.5", OLD.replace("--preserve-kl 0", "--preserve-kl 0.5")),
    ("kl-1", "replay + KL to the base, weight 1", OLD.replace("--preserve-kl 0", "--preserve-kl 1")),
    ("kl-2", "replay + KL to the base, weight 2", OLD.replace("--preserve-kl 0", "--preserve-kl 2")),
    ("kl-1-lr1e-3", "replay + KL 1, half the learning rate",
     OLD.replace("--preserve-kl 0", "--preserve-kl 1").replace("0.002", "0.001")),
    ("rslora-kl-1", "replay, alpha/sqrt(r), KL 1", OLD.replace("--preserve-kl 0", "--preserve-kl 1") + " --rslora"),
    ("rslora-3000", "replay, alpha/sqrt(r), twice the steps", OLD.replace("1500", "3000") + " --rslora"),
    ("rslora-ffn", "replay, alpha/sqrt(r), feed-forward layers only", OLD + " --rslora --targets ffn"),
]


def run(cmd):
    """stdout of cmd, run from the top of the checkout; a failure ends the script."""
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("recipes: %s failed: %s" % (" ".join(cmd), r.stderr.strip().splitlines()[-1:]))
    return r.stdout


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def stamp(flags):
    """What a run depends on: the base, the config, the data files and the flags."""
    h = hashlib.sha256(flags.encode())
    for p in ("data/minigpt-base.safetensors", CONFIG, DATA, "data/replay.jsonl"):
        with open(os.path.join(ROOT, p), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def cell(outdir, name, flags, seed):
    d = os.path.join(outdir, "recipes", name, "s%d" % seed)
    done = os.path.join(d, "eval.json")
    key = os.path.join(d, "stamp")
    if os.path.exists(done) and os.path.exists(key) and open(key).read().strip() == stamp(flags):
        return  # done for these inputs
    os.makedirs(d, exist_ok=True)
    adapter = os.path.join(d, "adapter.safetensors")
    write(os.path.join(d, "train.json"),
          run(["bin/lora-train", "--config", CONFIG, "--quiet", "--json", "--threads", "1",
               "--seed", str(seed)]
              + flags.split() + ["--out", adapter, DATA]))
    ev = run(["bin/lora-eval", "--json", "--threads", "1", "--adapter", adapter])
    write(done, ev.strip().splitlines()[-1] + "\n")  # the summary object
    write(key, stamp(flags) + "\n")
    os.remove(adapter)  # the metrics are what the comparison keeps
    print("recipes: %s seed %d done" % (name, seed), file=sys.stderr)


def metrics(outdir, name, seed):
    d = os.path.join(outdir, "recipes", name, "s%d" % seed)
    train = json.load(open(os.path.join(d, "train.json")))
    ev = json.load(open(os.path.join(d, "eval.json")))
    row = {"recipe": name, "seed": seed, "seconds": train["seconds"]}
    for r in ev["summary"]:
        kind = os.path.basename(r["file"])[:-len(".jsonl")]
        who = "base" if r["model"].endswith("minigpt-base.safetensors") else "model"
        row["%s:%s" % (who, kind)] = 100 * r["exact_match"]
        if who == "model" and "collateral" in r:
            row["drop:" + kind] = r["collateral"]["largest_drop"]
            row["where:" + kind] = "%s %s" % (r["collateral"]["verb"], r["collateral"]["form"])
    return row


COLS = [  # (csv key, markdown header, how to summarize over seeds)
    ("model:irreg_test_new", "past/pp, new frames %", "mean"),
    ("model:irreg_test", "past/pp, seen frames %", "mean"),
    ("drop:irreg_nonpast_new", "collateral, new frames (worst seed, points)", "max"),
    ("drop:irreg_nonpast", "collateral, seen frames (worst seed, points)", "max"),
    ("d:control_new", "control Δ new frames (worst seed)", "min"),
    ("d:regular_heldout_new", "held-out regular Δ new frames (worst seed)", "min"),
    ("d:control_regular", "control Δ seen frames (worst seed)", "min"),
    ("seconds", "train s", "mean"),
]


def summarize(rows):
    out = {}
    for key, _, how in COLS:
        vals = []
        for r in rows:
            if key.startswith("d:"):
                k = key[2:]
                if "model:" + k in r and "base:" + k in r:
                    vals.append(r["model:" + k] - r["base:" + k])
            elif key in r:
                vals.append(r[key])
        if not vals:
            out[key] = "-"
            continue
        if how == "mean":
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            out[key] = "%.1f ± %.1f" % (statistics.mean(vals), sd) if key != "seconds" else "%.1f" % statistics.mean(vals)
        elif how == "max":
            out[key] = "%.1f" % max(vals)
        else:
            out[key] = "%+.1f" % min(vals)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-s", "--seeds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated recipe names")
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    todo = [r for r in RECIPES if not a.only or r[0] in a.only.split(",")]
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        futs = [ex.submit(cell, a.out, n, f, s) for n, _, f in todo for s in range(1, a.seeds + 1)]
        for f in futs:
            f.result()
    rows = {n: [metrics(a.out, n, s) for s in range(1, a.seeds + 1)] for n, _, _ in RECIPES
            if os.path.isdir(os.path.join(a.out, "recipes", n))}
    keys = sorted({k for rr in rows.values() for r in rr for k in r})
    with open(os.path.join(a.out, "recipes.csv"), "w") as f:
        f.write(",".join(keys) + "\n")
        for rr in rows.values():
            for r in rr:
                f.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
    any_row = next(iter(rows.values()))[0]
    base = {k[5:]: v for k, v in any_row.items() if k.startswith("base:")}
    md = ["# Fine-tuning recipes", "",
          "Generated by `python3 scripts/recipes.py` (%d seeds per recipe; rank 8, alpha 16, "
          "`%s`, everything else from `%s`, the first release's recipe). Each row's command is the "
          "exact `lora-train` call (`--seed 1..%d`), scored with `lora-eval --adapter ADAPTER` on "
          "its default files. *Collateral*: the largest drop, in points, of any of the 8 taught "
          "verbs on any form it was not taught (3sg, base, ing); *Δ*: change from the base in "
          "points. Bars (issue 11): past/pp on new frames ≥ 95%%; collateral ≤ 2 points on seen "
          "and new frames; control and held-out regular within 1 point of the base on new frames."
          % (a.seeds, DATA, CONFIG, a.seeds), "",
          "Base model: past/pp %.1f%% (new frames), %.1f%% (seen); control %.1f%% (new), "
          "held-out regular %.1f%% (new); non-past forms of the 8 verbs %.1f%% (new), %.1f%% (seen)."
          % (base.get("irreg_test_new", 0), base.get("irreg_test", 0), base.get("control_new", 0),
             base.get("regular_heldout_new", 0), base.get("irreg_nonpast_new", 0),
             base.get("irreg_nonpast", 0)), "",
          "| recipe | what it tests | " + " | ".join(h for _, h, _ in COLS) + " | command |",
          "|---|---|" + "---:|" * len(COLS) + "---|"]
    for n, what, flags in RECIPES:
        if n not in rows:
            continue
        s = summarize(rows[n])
        cmd = "`bin/lora-train --config %s --rank 8 --alpha 16 %s %s`" % (CONFIG, flags, DATA)
        md.append("| %s | %s | %s | %s |" % (n, what, " | ".join(s[k] for k, _, _ in COLS), cmd))
    total = sum(r["seconds"] for rr in rows.values() for r in rr)
    md += ["", "Training time of all %d runs: %.0f s, one thread each (`-j 2` runs two at a "
           "time; scoring comes on top)." % (sum(len(rr) for rr in rows.values()), total), ""]
    with open(os.path.join(a.out, "recipes.md"), "w") as f:
        f.write("\n".join(md))
    print("recipes: wrote %s/recipes.md and recipes.csv" % a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
