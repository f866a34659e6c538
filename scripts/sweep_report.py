#!/usr/bin/env python3
"""Aggregates a rank sweep (results/sweep/<set>/<cell>/{train,eval}.json) into
results/sweep.csv (one row per cell), results/sweep.md (mean ± std per rank beside the
lesson's predicted ranges), results/sweep.png (gnuplot), and from the same cells
results/base.md (the base model against its bars) and results/adapter.md (the default rank-8
recipe, one column per seed, against its bars). Standard library only."""
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

# The lesson's "rank-vs-accuracy regime (predictions, not measurements)" table.
PREDICTED = {0: "0 (base accuracy)", 1: "60-70%", 2: "75-85%", 4: "88-93%", 8: "92-95%",
             16: "93-95%", 32: "93-95%"}


# a cell's folder: r<rank> or full, then -a<alpha> and -t<targets> when the grid varies them
CELL = re.compile(r"^(?:full|r(\d+))(?:-a(.+?))?(?:-t([a-z0-9_,]+))?-s(\d+)$")


def load_cells(root):
    cells = []
    for set_name in sorted(os.listdir(root)):
        set_dir = os.path.join(root, set_name)
        if not os.path.isdir(set_dir):
            continue
        for cell in sorted(os.listdir(set_dir)):
            d = os.path.join(set_dir, cell)
            if not os.path.exists(os.path.join(d, "done")):
                continue
            m = CELL.match(cell)
            if not m:
                sys.exit(f"sweep_report: {d}: not a cell folder name (r<rank>[-a<alpha>][-t<targets>]-s<seed>)")
            train = json.load(open(os.path.join(d, "train.json")))
            summary = json.load(open(os.path.join(d, "eval.json")))["summary"]
            row = {"set": set_name, "rank": "full" if m.group(1) is None else int(m.group(1)),
                   "seed": int(m.group(4)), "alpha": m.group(2), "targets": m.group(3),
                   "trainable_params": train["trainable_params"],
                   "adapter_bytes": train["bytes"], "train_seconds": train["seconds"]}
            if row["rank"] == "full" and not row["trainable_params"]:
                row["trainable_params"] = 98304  # every Linear weight of the model
            if row["rank"] == "full":  # the full fine-tune trains every Linear weight
                row["trainable_params"] = 98304
            for r in summary:
                adapter = r["model"] != "data/minigpt-base.safetensors"
                kind = os.path.basename(r["file"]).replace(".jsonl", "")
                kind = {set_name + "_test": "test", set_name + "_test_new": "test_new",
                        set_name + "_nonpast": "nonpast", set_name + "_nonpast_new": "nonpast_new",
                        "control_regular": "control", "control_new": "control_new",
                        "irreg_unseen": "unseen", "regular_heldout": "heldout",
                        "regular_heldout_new": "heldout_new"}.get(kind, kind)
                prefix = "" if adapter else "base_"
                row[prefix + kind + "_exact"] = r["exact_match"]
                if "preference" in r:
                    row[prefix + kind + "_pref"] = r["preference"]
                row[prefix + kind + "_ppl"] = r["perplexity"]
                if adapter and kind.startswith("nonpast"):
                    # the largest drop of a taught verb on a form it was not taught (points);
                    # rank 0 is the base itself: nothing changes
                    drop = r["collateral"]["largest_drop"] if "collateral" in r else 0.0
                    row["collateral" + kind[len("nonpast"):]] = drop
            cells.append(row)
    return cells


COLUMNS = ["set", "rank", "seed", "trainable_params", "adapter_bytes", "test_exact", "test_new_exact",
           "test_pref", "test_new_pref", "unseen_exact", "unseen_pref", "control_exact",
           "control_new_exact", "base_control_new_exact", "control_ppl", "base_control_ppl",
           "heldout_exact", "heldout_new_exact", "base_heldout_new_exact", "nonpast_exact",
           "nonpast_new_exact", "base_nonpast_new_exact", "collateral", "collateral_new",
           "train_seconds"]


def varied(cells):
    """The grid dimensions besides rank and seed that name cells: alpha, targets (or none)."""
    return [k for k in ("alpha", "targets") if any(c[k] is not None for c in cells)]


def groups(cells):
    """(set, alpha, targets) of the LoRA cells, in order; a set with only a full fine-tune
    counts as its own group."""
    keys = {(c["set"], c["alpha"], c["targets"]) for c in cells if c["rank"] != "full"}
    keys |= {(c["set"], None, None) for c in cells
             if not any(k[0] == c["set"] for k in keys)}
    return sorted(keys, key=lambda k: (k[0], float(k[1]) if k[1] else 0, k[2] or ""))


def group_rows(cells, g):
    """The group's cells, with its set's full fine-tune beside every variant."""
    return [c for c in cells if c["set"] == g[0] and
            (c["rank"] == "full" or (c["alpha"], c["targets"]) == (g[1], g[2]))]


def group_label(g):
    return g[0] + (f", α {g[1]}" if g[1] else "") + (f", targets {g[2]}" if g[2] else "")


def write_csv(cells, path):
    cols = COLUMNS[:3] + varied(cells) + COLUMNS[3:]
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for c in cells:
            f.write(",".join("" if c.get(k) is None else
                             (f"{c[k]:.6g}" if isinstance(c[k], float) else str(c[k])) for k in cols) + "\n")


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def pct(values):
    m, s = mean_std(values)
    return "-" if m is None else f"{100 * m:.1f} ± {100 * s:.1f}"


def points(values):
    m, s = mean_std(values)
    return "-" if m is None else f"{m:.1f} ± {s:.1f}"


def delta(rows, key):
    """Change from the base in points, mean ± sd over seeds."""
    vals = [100 * (c[key] - c["base_" + key]) for c in rows
            if c.get(key) is not None and c.get("base_" + key) is not None]
    m, s = mean_std(vals)
    return "-" if m is None else f"{m:+.1f} ± {s:.1f}"


def order(rank):
    return 1e9 if rank == "full" else rank


# ---- the elbow: where accuracy stops rising with rank ----------------------------------------

def plateau(ranks, acc):
    """The smallest rank whose accuracy is within 1 point (0.01) of the best."""
    best = max(acc)
    return next(r for r, a in zip(ranks, acc) if a >= best - 0.01)


def kneedle(ranks, acc):
    """The knee of accuracy against log2(rank), ranks >= 1 (Satopaa et al. 2011, a concave
    increasing curve): x and y scaled to [0, 1], the knee is the rank where y - x is largest.
    None when the curve is flat (nothing to find)."""
    pts = [(math.log2(r), a) for r, a in zip(ranks, acc) if r >= 1]
    if len(pts) < 3:
        return None
    x0, x1 = pts[0][0], pts[-1][0]
    y0, y1 = min(a for _, a in pts), max(a for _, a in pts)
    if y1 - y0 < 1e-9:
        return None
    diff = [((a - y0) / (y1 - y0)) - ((x - x0) / (x1 - x0)) for x, a in pts]
    i = max(range(len(pts)), key=lambda k: diff[k])
    return int(round(2 ** pts[i][0]))


ELBOW_FILES = (("test_exact", "seen frames"), ("test_new_exact", "new frames"))


def elbow(rows, key):
    """Plateau and knee of the mean curve, and of each seed's own curve."""
    ranks = sorted({c["rank"] for c in rows if c["rank"] != "full"})
    mean = [mean_std([c.get(key) for c in rows if c["rank"] == r])[0] for r in ranks]
    seeds = sorted({c["seed"] for c in rows})
    per_seed = []
    for s in seeds:
        acc = {c["rank"]: c.get(key) for c in rows if c["seed"] == s and c["rank"] != "full"}
        if all(acc.get(r) is not None for r in ranks):
            a = [acc[r] for r in ranks]
            per_seed.append((plateau(ranks, a), kneedle(ranks, a)))
    return {"ranks": ranks, "mean": mean, "best": max(mean), "plateau": plateau(ranks, mean),
            "knee": kneedle(ranks, mean), "seed_plateaus": [p for p, _ in per_seed],
            "seed_knees": [k for _, k in per_seed if k is not None]}


def span(values):
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def elbow_lines(rows):
    out = ["Where the curve flattens (LoRA ranks only; the full fine-tune is not a rank). "
           "Plateau: the smallest rank whose mean exact match is within 1 point of the best mean; "
           "knee: the Kneedle estimate on mean exact match against log2(rank), ranks ≥ 1 (the rank "
           "farthest above the straight line from rank 1 to the largest rank, both axes scaled to "
           "[0, 1]). Per seed: the same on each seed's own curve, min–max over seeds.", "",
           "| test file | best mean % | plateau (mean) | plateau per seed | knee (mean) | knee per seed |",
           "|---|---:|---:|---:|---:|---:|"]
    for key, label in ELBOW_FILES:
        el = elbow(rows, key)
        out.append(f"| {label} | {100 * el['best']:.1f} | {el['plateau']} | {span(el['seed_plateaus'])} "
                   f"| {el['knee'] if el['knee'] is not None else '-'} | {span(el['seed_knees'])} |")
    return out


def write_md(cells, path, timing):
    out = ["# Rank sweep", "",
           "Generated by `scripts/sweep-rank.sh` (or from its finished cells alone by "
           "`python3 scripts/sweep_report.py`; every number below is measured; the "
           "\"lesson predicted\" column is the lesson's table of expectations). Mean ± standard "
           "deviation over seeds; exact match is greedy decoding compared exactly. *Seen* "
           "frames: held-out sentences built on the sentence frames the training files use; "
           "*new* frames: frames that no training file contains. Collateral damage: the largest "
           "drop (points) of any taught verb on any form it was not taught (3sg, base, ing); "
           "control and held-out regular: change from the base on new frames, in points.", ""]
    if timing:
        out += [f"Wall time of the last sweep run: {timing}.", ""]
    for g in groups(cells):
        set_name = g[0]
        rows = group_rows(cells, g)
        base = rows[0]
        def b(key):
            return f"{100 * base[key]:.1f}%" if key in base else "-"
        out += [f"## {group_label(g)}", "",
                f"Base model: {b('base_test_exact')} exact on {set_name}_test (seen frames), "
                f"{b('base_test_new_exact')} on new frames, preference {b('base_test_pref')}; "
                f"control {b('base_control_exact')} seen / {b('base_control_new_exact')} new "
                f"(perplexity {base.get('base_control_ppl', 0):.4f}); held-out regular "
                f"{b('base_heldout_exact')} / {b('base_heldout_new_exact')}; non-past forms of the "
                f"taught verbs {b('base_nonpast_exact')} / {b('base_nonpast_new_exact')}.", "",
                "| rank | trainable | adapter bytes | test exact %, seen frames | test exact %, new frames "
                "| lesson predicted | preference % | collateral, seen (points) | collateral, new (points) "
                "| control Δ, new | held-out regular Δ, new | control ppl Δ | unseen verbs % | train s |",
                "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for rank in sorted({c["rank"] for c in rows}, key=order):
            rr = [c for c in rows if c["rank"] == rank]
            ppl = mean_std([c["control_ppl"] / c["base_control_ppl"] - 1 for c in rr])
            secs = mean_std([c["train_seconds"] for c in rr])
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                "full FT" if rank == "full" else rank, rr[0]["trainable_params"],
                "-" if rank == "full" else rr[0]["adapter_bytes"],
                pct([c.get("test_exact") for c in rr]), pct([c.get("test_new_exact") for c in rr]),
                "-" if rank == "full" else PREDICTED.get(rank, "-"),
                pct([c.get("test_pref") for c in rr]),
                points([c.get("collateral") for c in rr]), points([c.get("collateral_new") for c in rr]),
                delta(rr, "control_new_exact"), delta(rr, "heldout_new_exact"),
                f"{100 * ppl[0]:+.2f}%", pct([c.get("unseen_exact") for c in rr]), f"{secs[0]:.1f}"))
        out.append(f"\n{len(rows)} cells.\n")
        out += elbow_lines(rows) + [""]
    with open(path, "w") as f:
        f.write("\n".join(out))


def bar_row(label, values, bar, ok):
    """One row of a bars table: label, the values, the bar, whether every value meets it."""
    return "| %s | %s | %s | %s |" % (label, " | ".join(values), bar,
                                       "yes" if all(ok) else "**no**")


def write_base_md(cells, path):
    """The base model against the bars of SPEC §6 and issue 11, on seen and new frames."""
    c = next(c for c in cells if c["set"] == "irreg")
    def p(key):
        return 100 * c[key]
    rows = [("the 12 control verbs, past/pp (new frames)", "base_control_new_exact", "≥ 98%", lambda v: v >= 98),
            ("the 12 control verbs, past/pp (seen frames)", "base_control_exact", "≥ 98%", lambda v: v >= 98),
            ("40 regular verbs never seen in pretraining (new frames)", "base_heldout_new_exact", "≥ 90%", lambda v: v >= 90),
            ("40 regular verbs never seen in pretraining (seen frames)", "base_heldout_exact", "≥ 90%", lambda v: v >= 90),
            ("the 8 irregulars' non-past forms (new frames)", "base_nonpast_new_exact", "≥ 95%", lambda v: v >= 95),
            ("the 8 irregulars' non-past forms (seen frames)", "base_nonpast_exact", "≥ 95%", lambda v: v >= 95),
            ("the 8 irregulars' past/pp correct (new frames)", "base_test_new_exact", "≤ 10%", lambda v: v <= 10),
            ("the 8 irregulars' past/pp correct (seen frames)", "base_test_exact", "≤ 10%", lambda v: v <= 10),
            ("prefers the over-regularized form, P(goed) > P(went) (new frames)", "base_test_new_pref", "≥ 80%", lambda v: 100 - v >= 80),
            ("prefers the over-regularized form (seen frames)", "base_test_pref", "≥ 80%", lambda v: 100 - v >= 80)]
    out = ["| measured on the base (`lora-eval`, no adapter) | value | bar | holds |", "|---|---:|---|---|"]
    for label, key, bar, ok in rows:
        if key not in c:
            continue
        v = p(key) if "pref" not in key else 100 - p(key)
        out.append(bar_row(label, ["%.1f%%" % v], bar, [ok(p(key))]))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def write_adapter_md(cells, path, rank=8):
    """The default recipe's rank-8 adapters (one column per seed) against the bars."""
    # the recipe's own adapters: with alpha or targets varied, those at alpha 16 on every layer
    rr = sorted([c for c in cells if c["set"] == "irreg" and c["rank"] == rank
                 and c["alpha"] in (None, "16") and c["targets"] in (None, "all")],
                key=lambda c: c["seed"])
    if not rr:
        return
    head = "| metric | base | " + " | ".join("seed %d" % c["seed"] for c in rr) + " | bar | holds |"
    out = [head, "|---|---:|" + "---:|" * len(rr) + "---|---|"]
    def acc(label, key, bar=None, ok=None):
        vals = ["%.1f%%" % (100 * c[key]) for c in rr]
        base = "%.1f%%" % (100 * rr[0]["base_" + key])
        okv = [ok(100 * c[key]) for c in rr] if ok else []
        out.append("| %s | %s | %s | %s | %s |" % (label, base, " | ".join(vals), bar or "",
                                                   ("yes" if all(okv) else "**no**") if ok else ""))
    def dlt(label, key, bar=None, lim=None):
        vals = [100 * (c[key] - c["base_" + key]) for c in rr]
        holds = "" if lim is None else ("yes" if all(v >= -lim for v in vals) else "**no**")
        out.append("| %s | %.1f%% | %s | %s | %s |" % (
            label, 100 * rr[0]["base_" + key], " | ".join("%+.1f" % v for v in vals), bar or "",
            holds))
    def drop(label, key, bar, lim):
        vals = [c[key] for c in rr]
        out.append("| %s | - | %s | %s | %s |" % (label, " | ".join("%.1f" % v for v in vals), bar,
                                                 "yes" if all(v <= lim for v in vals) else "**no**"))
    acc("the 8 irregulars' past/pp, new frames", "test_new_exact", "≥ 95%", lambda v: v >= 95)
    acc("the 8 irregulars' past/pp, seen frames", "test_exact", "≥ 90%", lambda v: v >= 90)
    acc("preference for the real form over the over-regularized one, new frames", "test_new_pref")
    drop("collateral damage: largest drop of a taught verb on a non-past form, new frames (points)",
         "collateral_new", "≤ 2", 2)
    drop("collateral damage, seen frames (points)", "collateral", "≤ 2", 2)
    acc("the 8 irregulars' non-past forms, new frames", "nonpast_new_exact")
    acc("the 8 irregulars' non-past forms, seen frames", "nonpast_exact")
    dlt("control verbs, new frames (change, points)", "control_new_exact", "within 1", 1)
    dlt("control verbs, seen frames (change, points)", "control_exact")
    dlt("held-out regular verbs, new frames (change, points)", "heldout_new_exact", "within 1", 1)
    dlt("held-out regular verbs, seen frames (change, points)", "heldout_exact")
    ppl = [100 * (c["control_ppl"] / c["base_control_ppl"] - 1) for c in rr]
    out.append("| control perplexity (change) | %.4f | %s | ≤ +5%% | %s |" % (
        rr[0]["base_control_ppl"], " | ".join("%+.2f%%" % v for v in ppl),
        "yes" if all(v <= 5 for v in ppl) else "**no**"))
    acc("irregular verbs never taught (24), seen frames", "unseen_exact")
    out.append("| training time (s, %s) | - | %s | | |" % (
        "one thread, two runs at a time", " | ".join("%.1f" % c["train_seconds"] for c in rr)))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def plot(cells, outdir):
    if not shutil.which("gnuplot"):
        print("sweep_report: gnuplot not found; no plot (apt-get install gnuplot-nox)", file=sys.stderr)
        return
    ranks = sorted({c["rank"] for c in cells if c["rank"] != "full"})
    dat = os.path.join(outdir, "sweep", "plot.dat")
    sets = groups(cells)  # one curve per set, or per set and variant of a wider grid
    cols = ("test_exact", "test_new_exact", "collateral", "collateral_new")
    scale = (100, 100, 1, 1)

    def stats(rows):
        out = []
        for k, sc in zip(cols, scale):
            m, sd = mean_std([c.get(k) for c in rows])
            out += [float("nan"), 0.0] if m is None else [sc * m, sc * sd]
        return " ".join(f"{v:.3f}" for v in out)
    with open(dat, "w") as f:
        for g in sets:
            s = group_label(g)
            gr = group_rows(cells, g)
            f.write(f"# {s}: x, then mean and sd of " + ", ".join(cols) + "\n")
            for i, r in enumerate(ranks):
                f.write(f"{i} {stats([c for c in gr if c['rank'] == r])}\n")
            f.write("\n\n")
            # the full fine-tune in a block of its own: a marker, not a point of the rank curve
            fr = [c for c in gr if c["rank"] == "full"]
            f.write(f"{len(ranks)} {stats(fr) if fr else ' '.join(['nan 0'] * 4)}\n\n\n")
        # the elbow of each test file's mean curve: plateau, then knee (x, mean exact match %)
        for g in sets:
            s = group_label(g)
            rows = group_rows(cells, g)
            for which in ("plateau", "knee"):
                f.write(f"# {s}: {which} of seen frames, new frames\n")
                for key, _ in ELBOW_FILES:
                    el = elbow(rows, key)
                    r = el[which]
                    if r is None or r not in ranks:
                        f.write("nan nan\n")
                    else:
                        f.write(f"{ranks.index(r)} {100 * el['mean'][el['ranks'].index(r)]:.3f}\n")
                f.write("\n\n")
    xtics = ", ".join(f'"{r}" {i}' for i, r in enumerate(ranks)) + f', "full" {len(ranks)}'
    top, bottom = [], []
    marks = 2 * len(sets)  # the first elbow block
    for k, s in enumerate(sets):
        top.append(f"'{dat}' index {marks + 2 * k} using 1:2 with points pt 6 ps 3 lw 2 lc {k + 1} "
                   + ("title 'plateau (within 1 point of the best mean)'" if k == 0 else "notitle"))
        top.append(f"'{dat}' index {marks + 2 * k + 1} using 1:2 with points pt 4 ps 3.5 lw 2 lc {k + 1} "
                   + ("title 'knee (Kneedle, log2 rank)'" if k == 0 else "notitle"))
    for k, s in enumerate(map(group_label, sets)):
        for col, label, dash in ((2, "seen frames", 1), (4, "new frames", 2)):
            top.append(f"'{dat}' index {2 * k} using 1:{col}:{col + 1} with yerrorlines dt {dash} lw 2 "
                       f"pt 7 lc {k + 1} title '{s}: {label}'")
            top.append(f"'{dat}' index {2 * k + 1} using 1:{col}:{col + 1} with yerrorbars pt 9 ps 1.5 "
                       f"lc {k + 1} notitle")
        for col, label, dash in ((6, "seen frames", 1), (8, "new frames", 2)):
            bottom.append(f"'{dat}' index {2 * k} using 1:{col}:{col + 1} with yerrorlines dt {dash} "
                          f"lw 2 pt 7 lc {k + 1} title '{s}: {label}'")
            bottom.append(f"'{dat}' index {2 * k + 1} using 1:{col}:{col + 1} with yerrorbars pt 9 "
                          f"ps 1.5 lc {k + 1} notitle")
    script = f"""set terminal pngcairo size 900,820 font ',11' noenhanced
set output '{os.path.join(outdir, "sweep.png")}'
set multiplot layout 2,1 title "LoRA rank on Mini-GPT (103,680 parameters): taught forms and side effects\\n(mean ± sd over seeds; triangles: full fine-tune; circles: plateau; squares: knee)"
set xtics ({xtics})
set xrange [-0.3:{len(ranks) + 0.3}]
set grid
set key bottom right
set ylabel 'irregular past: exact match (%)'
set yrange [0:105]
plot {", ".join(top)}
set xlabel 'LoRA rank r (trainable parameters 2304·r)'
set ylabel 'collateral damage (points)'
set yrange [*:*]
set key top right
plot {", ".join(bottom)}
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "results"
    root = os.path.join(outdir, "sweep")
    cells = load_cells(root)
    if not cells:
        sys.exit(f"sweep_report: no finished cells under {root}")
    cells.sort(key=lambda c: (c["set"], float(c["alpha"]) if c["alpha"] else 0, c["targets"] or "",
                              order(c["rank"]), c["seed"]))
    write_csv(cells, os.path.join(outdir, "sweep.csv"))
    timing = ""
    tf = os.path.join(root, "wall_seconds")
    if os.path.exists(tf):
        secs, jobs, threads = open(tf).read().split()
        timing = f"{int(secs) // 60} min {int(secs) % 60} s with {jobs} cell(s) at a time, {threads} thread(s) each"
    write_md(cells, os.path.join(outdir, "sweep.md"), timing)
    write_base_md(cells, os.path.join(outdir, "base.md"))
    write_adapter_md(cells, os.path.join(outdir, "adapter.md"))
    plot(cells, outdir)
    print(f"sweep_report: {len(cells)} cells -> {outdir}/sweep.csv, sweep.md, sweep.png")


if __name__ == "__main__":
    main()
