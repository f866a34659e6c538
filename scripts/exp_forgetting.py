#!/usr/bin/env python3
"""exp_forgetting.py - learning against forgetting, LoRA ranks against the full fine-tune
(Biderman et al. 2024, "LoRA Learns Less and Forgets Less"; issue 14, item 9).

    python3 scripts/exp_forgetting.py [--report-only] [-o results]

LoRA at ranks 1 4 16 64 and the full fine-tune (`--full`), the default recipe of
configs/lora-irreg.json (α = 16, α/√r, replay 75%), seed 1, trained for 100, 300 and 1500
steps. Learning: exact match on the 8 verbs' past/pp, new frames (irreg_test_new). Forgetting:
the largest collateral drop on the taught verbs' non-past forms (irreg_nonpast_new) and the
change against the base on irreg_nonpast_new, control_new and regular_heldout_new. lora-analyze
on every model gives the per-layer effective rank of ΔW (for the full fine-tune,
ΔW = W_file − W_base). Cells cached under results/forgetting/<method>/ (see exp_common.py).
Writes results/forgetting.csv, forgetting.md, forgetting.png (gnuplot).
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exp_common as C  # noqa: E402

# the LoRA flags spelled as exp_scaling.py spells its α/√r cells: their 1500-step runs are shared
METHODS = [("r%d" % r, ["--rank", str(r), "--alpha", "16", "--rslora"]) for r in (1, 4, 16, 64)]
METHODS.append(("full", ["--full"]))
STEPS = [100, 300, 1500]
T, NP, CT, RG = ("data/irreg_test_new.jsonl", "data/irreg_nonpast_new.jsonl",
                 "data/control_new.jsonl", "data/regular_heldout_new.jsonl")
EVALS = [T, NP, CT, RG]


def label(m):
    return "full FT" if m == "full" else "LoRA r=%s" % m[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", default=os.path.join(C.ROOT, "results"))
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    out = a.o
    rows, ranks, secs = [], {}, 0.0
    for m, flags in METHODS:
        d = os.path.join(out, "forgetting", m)
        if a.report_only and not os.path.exists(os.path.join(d, "done")):
            continue
        runs = [("s%d" % n, flags + ["--steps", str(n), "--seed", "1"]) for n in STEPS]
        share = {} if m == "full" else {
            "s1500": os.path.join(out, "scaling", "alpha_sqrt_r-r%s" % m[1:], "s1500")}
        g = C.group(d, runs, EVALS, analyze_data=T, keep_full=(m == "full"), log="exp-forgetting",
                    share=share)
        secs += g["_seconds"]
        for n in STEPS:
            run = g["s%d" % n]
            u = C.update_stats(run["analyze"])
            drop = {f: C.base_exact(run, f) - C.exact(run, f) for f in (NP, CT, RG)}
            rows.append({"method": m, "steps": n, "learn": C.exact(run, T), "collateral": C.collateral(run),
                         "np_drop": drop[NP], "ct_drop": drop[CT], "rg_drop": drop[RG],
                         "forget": sum(drop.values()) / 3, "eff_rank": u["eff_rank"], "frob": u["frob"],
                         "dwx": u["dwx"], "best_step": run["train"]["best_step"],
                         "train_s": run["train"]["seconds"], "trainable": run["train"]["trainable_params"]})
            if n == STEPS[-1]:
                ranks[m] = (u["paths"], u["eff_ranks"])
        base = {f: C.base_exact(g["s%d" % STEPS[0]], f) for f in EVALS}
    if not rows:
        raise SystemExit("exp_forgetting: no finished cells")
    write(out, rows, ranks, secs, base)


def verdict(rows):
    """Does the full fine-tune sit on the LoRA points' learning-forgetting frontier? For each
    full-FT point, the LoRA points that learn at least as much: the least forgetting among them."""
    lora = [x for x in rows if x["method"] != "full"]
    full = [x for x in rows if x["method"] == "full"]
    lines = []
    for f in full:
        for key, what in (("collateral", "largest collateral drop"), ("forget", "mean drop")):
            better = [x for x in lora if x["learn"] >= f["learn"]]
            if better:
                b = min(better, key=lambda x: x[key])
                lines.append((f, key, what, b))
    return lines


def dominated(x, others, key):
    return any(o["learn"] >= x["learn"] and o[key] <= x[key] and (o["learn"] > x["learn"] or o[key] < x[key])
               for o in others)


def dominance(rows):
    """One curve or two: how many full-FT points some LoRA point beats on both axes (learns at
    least as much, forgets no more), and the reverse."""
    lora = [x for x in rows if x["method"] != "full"]
    full = [x for x in rows if x["method"] == "full"]
    parts = []
    for key, what in (("collateral", "the largest collateral drop"), ("forget", "the mean drop")):
        fd = [x["steps"] for x in full if dominated(x, lora, key)]
        ld = [x for x in lora if dominated(x, full, key)]
        parts.append("with forgetting measured by %s, %d of the %d full fine-tune points are beaten on both "
                     "axes by some LoRA point (%s), and %d of the %d LoRA points by some full fine-tune point"
                     % (what, len(fd), len(full), ", ".join("%d steps" % n for n in fd) or "none",
                        len(ld), len(lora)))
    return "Dominance: " + "; ".join(parts) + ".\n"


def same_duration(rows):
    """At each duration: the full fine-tune against the range the LoRA ranks span."""
    trs, inside = [], {"learn": 0, "forget": 0, "collateral": 0}
    durs = sorted({x["steps"] for x in rows if x["method"] == "full"})
    for n in durs:
        f = next(x for x in rows if x["method"] == "full" and x["steps"] == n)
        lo = [x for x in rows if x["method"] != "full" and x["steps"] == n]
        if not lo:
            continue
        cells = [n]
        for key, fmt in (("learn", "%.1f"), ("collateral", "%.0f"), ("forget", "%.2f")):
            a, b = min(x[key] for x in lo), max(x[key] for x in lo)
            inside[key] += a <= f[key] <= b
            cells += [fmt % f[key], (fmt + " to " + fmt) % (a, b)]
        trs.append(cells)
    if not trs:
        return ""
    t = C.md_table(["steps", "full FT learning %", "LoRA ranks", "full FT collateral", "LoRA ranks",
                    "full FT mean drop", "LoRA ranks"], trs)
    n = len(trs)
    return ("The full fine-tune against the LoRA ranks at the same duration (one seed): its learning is inside "
            "the LoRA ranks' range at %d of %d durations, its largest collateral drop at %d of %d, its mean "
            "drop at %d of %d.\n\n" % (inside["learn"], n, inside["collateral"], n, inside["forget"], n) + t)


def write(out, rows, ranks, secs, base):
    cols = ["method", "steps", "trainable", "learn", "collateral", "np_drop", "ct_drop", "rg_drop",
            "forget", "eff_rank", "frob", "dwx", "best_step", "train_s"]
    with open(os.path.join(out, "forgetting.csv"), "w") as f:
        f.write("method,steps,trainable_params,irreg_test_new_exact,collateral_new_points,"
                "irreg_nonpast_new_drop,control_new_drop,regular_heldout_new_drop,mean_drop,"
                "effective_rank_mean,dW_frobenius_mean,dWx_mean,best_step,train_seconds\n")
        for x in rows:
            f.write(",".join(("%.6g" % x[c]) if isinstance(x[c], float) else str(x[c]) for c in cols) + "\n")
    md = ["# Learning against forgetting: LoRA ranks and the full fine-tune\n",
          "## forgetting\n",
          "Generated by `scripts/exp-forgetting.sh` (`scripts/exp_forgetting.py`): `lora-train "
          "{--rank R | --full} --steps N --seed 1 --threads 2 data/irreg.jsonl` with the default "
          "recipe of `configs/lora-irreg.json` (α = 16, α/√r, replay 75%%, lr 0.002 for LoRA and "
          "the full fine-tune alike), N = %s (each its own run: `--steps N` compresses the cosine "
          "schedule; the best-validation-loss model is kept). %d models scored in %s on 2 threads "
          "(measured, the machine shared), training and analysis included except for the 1500-step LoRA "
          "runs, which are the scaling experiment's α/√r cells (`results/scaling.md`) and were trained there. After Biderman et al. (2024), "
          "\"LoRA Learns Less and Forgets Less\".\n" % (", ".join(map(str, STEPS)), len(rows), C.fmt_s(secs)),
          "Learning: exact match on the 8 verbs' past/pp, new frames (base %.1f%%). Forgetting, in "
          "points against the base: *collateral*, the largest drop of a taught verb on one non-past "
          "form (`irreg_nonpast_new`, cells of 50 sentences, so one error is 2 points); the drop on "
          "the whole of `irreg_nonpast_new` (base %.1f%%), `control_new` (base %.1f%%) and "
          "`regular_heldout_new` (base %.1f%%); *mean drop*: the mean of those three.\n" % (
              base[T], base[NP], base[CT], base[RG]),
          "#### learning and forgetting\n",
          C.md_table(["method", "steps", "learning %", "collateral (points)", "non-past drop",
                      "control drop", "regular held-out drop", "mean drop", "eff. rank (mean)", "‖ΔW‖_F"],
                     [[label(x["method"]), x["steps"], "%.1f" % x["learn"], "%.0f" % x["collateral"],
                       "%+.1f" % x["np_drop"], "%+.1f" % x["ct_drop"], "%+.1f" % x["rg_drop"],
                       "%+.2f" % x["forget"], "%.1f" % x["eff_rank"], "%.3g" % x["frob"]] for x in rows],
                     ["---"] + ["---:"] * 9)]
    v = verdict(rows)
    if v:
        md.append("For each full fine-tune point, the LoRA point (any rank, any duration) that learns "
                  "at least as much and forgets least:\n")
        md.append(C.md_table(["full FT steps", "learning %", "measure", "full FT", "best LoRA with ≥ its learning",
                              "its learning %", "its value"],
                             [[f["steps"], "%.1f" % f["learn"], what, "%.2f" % f[key],
                               "%s, %d steps" % (label(b["method"]), b["steps"]), "%.1f" % b["learn"],
                               "%.2f" % b[key]] for f, key, what, b in v],
                             ["---:", "---:", "---", "---:", "---", "---:", "---:"]))
        md.append(dominance(rows))
        md.append(same_duration(rows))
    if ranks:
        ms = [m for m, _ in METHODS if m in ranks]
        paths = ranks[ms[0]][0]
        md.append("#### effective rank\n")
        md.append("Per-layer effective rank of ΔW after %d steps (`lora-analyze`: singular values above "
                  "0.01 of the largest; LoRA's is at most r, the full fine-tune's at most min(in, out) = 64).\n"
                  % STEPS[-1])
        trs = [[p] + [ranks[m][1][i] for m in ms] for i, p in enumerate(paths)]
        trs.append(["mean"] + ["%.2f" % (sum(ranks[m][1]) / len(ranks[m][1])) for m in ms])
        md.append(C.md_table(["layer"] + [label(m) for m in ms], trs, ["---"] + ["---:"] * len(ms)))
    open(os.path.join(out, "forgetting.md"), "w").write("\n".join(md))
    plot(out, rows)


def plot(out, rows):
    if not shutil.which("gnuplot"):
        print("exp_forgetting: gnuplot not found; no plot (apt-get install gnuplot-nox)", file=sys.stderr)
        return
    dat = os.path.join(out, "forgetting", "plot.dat")
    os.makedirs(os.path.dirname(dat), exist_ok=True)
    ms = [m for m, _ in METHODS if any(x["method"] == m for x in rows)]
    with open(dat, "w") as f:
        for m in ms:
            f.write("# %s\n" % m)
            for x in sorted((y for y in rows if y["method"] == m), key=lambda y: y["steps"]):
                f.write("%g %g %g %d\n" % (x["learn"], x["collateral"], x["forget"], x["steps"]))
            f.write("\n\n")
    colors = ["#a6cee3", "#1f78b4", "#33a02c", "#6a3d9a", "#e31a1c"]

    def plots(col):
        ps = []
        for i, m in enumerate(ms):
            ps.append("'%s' index %d using 1:%d with linespoints lw 2 pt %d ps 1.3 lc rgb '%s' title '%s'" % (
                dat, i, col, 5 if m == "full" else 7, colors[i % len(colors)], label(m)))
            ps.append("'%s' index %d using 1:%d:(sprintf('%%d', $4)) with labels offset 0.8,0.6 font ',8' "
                      "tc rgb '%s' notitle" % (dat, i, col, colors[i % len(colors)]))
        return ", ".join(ps)
    script = """set terminal pngcairo size 1000,460 font ',11'
set output '%s'
set multiplot layout 1,2 title 'learning against forgetting (seed 1; point labels: steps)'
set xlabel 'learning: past/pp exact match, new frames (%%)'
set grid
set key bottom left box opaque font ',9'
set yrange [0:*]
set ylabel 'largest collateral drop, new frames (points)'
set title 'collateral damage (irreg\\_nonpast\\_new)'
plot %s
set autoscale y
set ylabel 'mean drop vs base (points)'
set title 'mean drop: non-past, control, held-out regular'
plot %s
unset multiplot
""" % (os.path.join(out, "forgetting.png"), plots(2), plots(3))
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


if __name__ == "__main__":
    main()
