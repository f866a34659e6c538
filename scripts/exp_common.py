"""exp_common.py - what scripts/exp_scaling.py and scripts/exp_forgetting.py share: one cached
group of training runs (train, lora-analyze, one lora-eval call for all of them), the stamp that
says a cached group is still valid, and readers for the JSON the commands print.

A group lives in OUT/<group>/: one subdirectory per run (train.json, analyze.json and the
model), eval.json (the summary of one lora-eval call over every run of the group, so the base
is scored once), seconds (the group's measured wall time) and done (the stamp: digests of the
base, the recipe config, the data, the eval files and the runs' flags).
A group whose stamp matches is not rerun. Standard library only.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LORA_BIN", os.path.join(ROOT, "bin"))
if os.path.isfile(BIN):  # LORA_BIN may be the lora binary itself (mk/asan.mk)
    BIN = os.path.dirname(BIN)
THREADS = os.environ.get("EXP_THREADS", "2")
INPUTS = ["data/minigpt-base.safetensors", "configs/lora-irreg.json", "data/irreg.jsonl",
          "data/replay.jsonl", "data/irreg_val.jsonl"]


def sha(path):
    h = hashlib.sha256()
    with open(os.path.join(ROOT, path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stamp(runs, evals, analyze_data):
    h = hashlib.sha256()
    for p in INPUTS + list(evals) + ([analyze_data] if analyze_data else []):
        if os.path.exists(os.path.join(ROOT, p)):
            h.update((p + " " + sha(p) + "\n").encode())
    for name, flags in runs:
        h.update((name + " " + " ".join(flags) + "\n").encode())
    return h.hexdigest()


def run_json(cmd):
    """Runs a command that prints JSON as its last line; returns the parsed object."""
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit("exp: failed (%d): %s" % (p.returncode, " ".join(cmd)))
    return json.loads(p.stdout.strip().splitlines()[-1])


def model_path(d, flags):
    return os.path.join(d, "full.safetensors" if "--full" in flags else "adapter.safetensors")


def run_stamp(flags, analyze_data):
    return stamp([("run", flags)], [], analyze_data)


def run_one(d, flags, analyze_data, also=()):
    """Trains and analyzes one run in d, unless d (or a directory in `also`, e.g. the same run
    cached by another experiment) already holds it for the same inputs and flags. Returns the
    directory that holds it."""
    st = run_stamp(flags, analyze_data)
    for cand in [d, *also]:
        f = os.path.join(cand, "stamp")
        if (os.path.exists(f) and open(f).read().strip() == st
                and os.path.exists(os.path.join(cand, "analyze.json"))
                and os.path.exists(model_path(cand, flags))):
            return cand
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    model = model_path(d, flags)
    tr = run_json([os.path.join(BIN, "lora-train"), "--quiet", "--json", *flags,
                   "--threads", THREADS, "--out", model, "data/irreg.jsonl"])
    json.dump(tr, open(os.path.join(d, "train.json"), "w"))
    cmd = [os.path.join(BIN, "lora-analyze"), "--json"]
    if analyze_data:
        cmd += ["--data", analyze_data]
    json.dump(run_json(cmd + [model]), open(os.path.join(d, "analyze.json"), "w"))
    open(os.path.join(d, "seconds"), "w").write("%.1f\n" % (time.time() - t0))
    open(os.path.join(d, "stamp"), "w").write(st + "\n")
    return d


def group(outdir, runs, evals, analyze_data=None, keep_full=False, log="exp", share=None):
    """runs: [(name, lora-train flags)]. Trains each run (seed and steps come with the flags),
    analyzes it, scores all of them in one lora-eval call; cached by stamp. share: {name: dir}
    where the same run may already be cached (by another experiment): it is used from there."""
    share = share or {}
    st = stamp(runs, evals, analyze_data)
    done = os.path.join(outdir, "done")
    if os.path.exists(done) and open(done).read().strip() == st:
        return load(outdir, runs)
    os.makedirs(outdir, exist_ok=True)
    where = {}
    for name, flags in runs:
        where[name] = run_one(os.path.join(outdir, name), flags, analyze_data,
                              [share[name]] if name in share else [])
    models = [model_path(where[n], f) for n, f in runs]
    t0 = time.time()
    ev = run_json([os.path.join(BIN, "lora-eval"), "--json", "--threads", THREADS]
                  + [a for m in models for a in ("--adapter", m)] + list(evals))
    json.dump(ev, open(os.path.join(outdir, "eval.json"), "w"))
    json.dump(where, open(os.path.join(outdir, "runs.json"), "w"))
    if not keep_full:
        for (name, flags), m in zip(runs, models):
            if "--full" in flags and os.path.exists(m):
                os.remove(m)
    # measured wall time: the scoring, plus each run trained here (a shared run counts where
    # it was trained)
    secs = time.time() - t0 + sum(float(open(os.path.join(where[n], "seconds")).read())
                                  for n, _ in runs if where[n] == os.path.join(outdir, n))
    open(os.path.join(outdir, "seconds"), "w").write("%.1f\n" % secs)
    open(done, "w").write(st + "\n")
    print("%s: %s done in %.0fs" % (log, os.path.relpath(outdir, ROOT), secs), file=sys.stderr)
    return load(outdir, runs)


def load(outdir, runs):
    """Per run: {train, analyze, eval: {file: summary row}, base: {file: summary row}}."""
    ev = json.load(open(os.path.join(outdir, "eval.json")))
    where = json.load(open(os.path.join(outdir, "runs.json")))
    base, by_model = {}, {}
    for row in ev["summary"]:
        if os.path.basename(row["model"]) == "minigpt-base.safetensors":
            base[row["file"]] = row
        else:
            by_model.setdefault(row["model"], {})[row["file"]] = row
    out = {}
    for name, flags in runs:
        d = where[name]
        out[name] = {"train": json.load(open(os.path.join(d, "train.json"))),
                     "analyze": json.load(open(os.path.join(d, "analyze.json"))),
                     "eval": by_model[model_path(d, flags)], "base": base}
    out["_seconds"] = float(open(os.path.join(outdir, "seconds")).read())
    return out


def update_stats(an):
    """Means over layers of ‖ΔW‖_F, ‖ΔW·x‖ and ‖ΔW·x‖/‖W·x‖ (the last two need --data)."""
    layers = an["files"][0]["layers"]
    n = len(layers)
    r = {"frob": sum(l["frobenius"] for l in layers) / n,
         "eff_rank": sum(l["effective_rank"] for l in layers) / n,
         "eff_ranks": [l["effective_rank"] for l in layers],
         "paths": [l["path"] for l in layers],
         "scale": an["files"][0].get("scale")}
    if "dw_x_mean" in layers[0]:
        r["dwx"] = sum(l["dw_x_mean"] for l in layers) / n
        r["rel"] = sum(l["dw_x_mean"] / l["w_x_mean"] for l in layers if l["w_x_mean"] > 0) / n
    return r


def exact(run, f):
    return 100.0 * run["eval"][f]["exact_match"]


def base_exact(run, f):
    return 100.0 * run["base"][f]["exact_match"]


def collateral(run, f="data/irreg_nonpast_new.jsonl"):
    c = run["eval"][f].get("collateral")
    return c["largest_drop"] if c else float("nan")


def md_table(header, rows, align=None):
    align = align or ["---:"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def fmt_s(secs):
    return "%.0f s (%.1f min)" % (secs, secs / 60)
