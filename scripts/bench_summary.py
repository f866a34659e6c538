#!/usr/bin/env python3
"""bench_summary.py - several `make bench` runs summarized: median and range over the runs.

Each run is the JSON of `lora bench --json` and, measured right after it, the JSON of its
PyTorch peer (`scripts/bench_torch.py --json`). A shared machine's speed drifts, so every
figure is first taken as a ratio inside its own run: a row's fraction of the sgemm peak
measured around it in the same run (lora bench's "of peak"), and C / PyTorch with both
measured in the same run. Then, per row, the median and the min-max range over the runs of:
the row's figure (tokens/s, or the row's unit), its fraction of peak, the PyTorch figure and
the ratio C / PyTorch; and the median and range of the sgemm peak itself. An even number of
runs has the mean of the two middle values as its median (Python's statistics.median).

Rows are whatever the runs contain, in lora bench's order; they are matched across runs by
name, a trailing parenthesized figure such as "(7.0 tokens)" left out. A C row has a PyTorch
peer when bench_torch.py measured a row of the same name; "sequences/s" counts T tokens per
sequence for the ratio; other units (ms/completion) have no ratio.

Prints the last run's table (lora bench's columns, with the PyTorch figure and the ratio
beside), one line per run (BLAS kernel, threads, sgemm peak), then the summary table, and,
when the runs have it, lora bench's split of each row's time: the share inside the matrix
products (and in the thin r-wide ones), and the fraction of peak with all other work free.

    python3 scripts/bench_summary.py [--csv FILE] --run C.json [TORCH.json] [--run ...]

  --run C.json [TORCH.json]  one run, in the order measured; TORCH.json may be left out
  --csv FILE                 also write every run's rows, one line per run x row (written to
                             FILE.tmp, then renamed)

Bad input (a missing or unreadable file, malformed JSON, a missing field) stops it with one
line naming the file and what is wrong, exit status 1, nothing printed or written.
Standard library only.
"""
import argparse
import csv
import json
import os
import re
import statistics
import sys

PROG = "bench_summary.py"
C_KEYS = {"blas": str, "kernel": str, "threads": int, "batch": int, "T": int,
          "sgemm_peak_gflops": (int, float), "sgemm_1thread_gflops": (int, float),
          "forward_flops_per_token": (int, float), "rows": list}
C_ROW_KEYS = {"name": str, "value": (int, float), "unit": str, "flops_per_token": (int, float),
              "gflops": (int, float), "peak_gflops": (int, float),
              "fraction_of_peak": (int, float), "peak_rss_kib": int}
T_KEYS = {"torch": str, "T": int, "rows": list}
T_ROW_KEYS = {"name": str, "tokens_per_s": (int, float), "by_threads": dict}
KIND = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
TRAILING_FIGURE = re.compile(r"\s*\([^()]*\d[^()]*\)$")


class BadInput(Exception):
    pass


def row_key(name):
    """The name rows are matched by across runs: "greedy generation (7.0 tokens)" -> "greedy
    generation"."""
    return TRAILING_FIGURE.sub("", name)


def check_fields(obj, keys, where):
    if not isinstance(obj, dict):
        raise BadInput("%s: expected a JSON object" % where)
    for k, t in keys.items():
        if k not in obj:
            raise BadInput("%s: no \"%s\"" % (where, k))
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, t):
            raise BadInput("%s: \"%s\" is %s, not %s" % (where, k, json.dumps(v)[:40],
                                                         KIND.get(t, "a number")))


def load_json(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise BadInput("%s: cannot read: %s" % (path, e.strerror or e))
    try:
        return json.loads(text)
    except ValueError as e:
        raise BadInput("%s: malformed JSON: %s" % (path, e))


def load_c(path):
    """lora bench --json: checked; rows get "key" and "tokens_per_s" (None: not in tokens)."""
    d = load_json(path)
    check_fields(d, C_KEYS, path)
    if not d["rows"]:
        raise BadInput("%s: no rows" % path)
    seen = set()
    for i, r in enumerate(d["rows"]):
        check_fields(r, C_ROW_KEYS, "%s: row %d" % (path, i + 1))
        r["key"] = row_key(r["name"])
        if r["key"] in seen:
            raise BadInput("%s: row %d: \"%s\" twice" % (path, i + 1, r["key"]))
        seen.add(r["key"])
        if r["unit"] == "tokens/s":
            r["tokens_per_s"] = r["value"]
        elif r["unit"] == "sequences/s":
            r["tokens_per_s"] = r["value"] * d["T"]
        else:
            r["tokens_per_s"] = None
    return d


def load_torch(path, c, c_path):
    """bench_torch.py --json: checked against its C run (same tokens per sequence)."""
    d = load_json(path)
    check_fields(d, T_KEYS, path)
    if d["T"] != c["T"]:
        raise BadInput("%s: T = %d but %s has T = %d: not the same measurement"
                       % (path, d["T"], c_path, c["T"]))
    for i, r in enumerate(d["rows"]):
        check_fields(r, T_ROW_KEYS, "%s: row %d" % (path, i + 1))
        if not r["tokens_per_s"] > 0:
            raise BadInput("%s: row %d: tokens_per_s %g is not positive"
                           % (path, i + 1, r["tokens_per_s"]))
        r["key"] = row_key(r["name"])
    return d


def load_runs(pairs):
    runs = []
    for files in pairs:
        if len(files) > 2:
            raise BadInput("--run %s: expected C.json [TORCH.json]" % " ".join(files))
        c = load_c(files[0])
        t = load_torch(files[1], c, files[0]) if len(files) == 2 else None
        runs.append({"c": c, "torch": t,
                     "torch_rows": {r["key"]: r for r in t["rows"]} if t else {}})
    return runs


def run_rows(run):
    """One dict per row of a run: the C row's figures, its PyTorch peer's and the ratio.
    PyTorch rows with no C row come last, with the C figures None."""
    out = []
    c = run["c"]
    for r in c["rows"]:
        t = run["torch_rows"].get(r["key"])
        tt = t["tokens_per_s"] if t else None
        out.append({"key": r["key"], "name": r["name"], "c": r, "torch": tt,
                    "torch_threads": best_threads(t) if t else None,
                    "ratio": r["tokens_per_s"] / tt if tt and r["tokens_per_s"] else None,
                    "fraction": r["fraction_of_peak"] if r["flops_per_token"] > 0 else None})
    keys = {r["key"] for r in c["rows"]}
    for t in run["torch"]["rows"] if run["torch"] else []:
        if t["key"] not in keys:
            out.append({"key": t["key"], "name": t["name"], "c": None,
                        "torch": t["tokens_per_s"], "torch_threads": best_threads(t),
                        "ratio": None, "fraction": None})
    return out


def best_threads(t):
    """The thread count whose figure bench_torch.py kept (the best), as a string."""
    by = t["by_threads"]
    return max(by, key=lambda k: by[k]) if by else ""


def spread(values):
    """(median, min, max) of the values that are not None; None when there are none."""
    v = [x for x in values if x is not None]
    return (statistics.median(v), min(v), max(v)) if v else None


def cell(s, fmt, suffix=""):
    if s is None:
        return "-"
    return "%s [%s - %s]" % tuple((fmt % x) + suffix for x in s)


def print_last_run(run, n):
    c, t = run["c"], run["torch"]
    print("Run %d of %d (the last), as lora bench and its PyTorch peer printed it:" % (n, n))
    print("BLAS: %s\nkernel: %s\nthreads: %d   batch %d x %d tokens"
          % (c["blas"], c["kernel"], c["threads"], c["batch"], c["T"]))
    print("peak: sgemm 2048^3 up to %.1f GFLOP/s on %d threads (%.1f on 1); each row's fraction"
          " uses\n      the mean of the sgemm measured just before and just after it"
          % (c["sgemm_peak_gflops"], c["threads"], c["sgemm_1thread_gflops"]))
    print("model forward: %.0f FLOPs per token (T = %d)" % (c["forward_flops_per_token"], c["T"]))
    if t:
        print("PyTorch %s peer (scripts/bench_torch.py), the better of %s thread(s) per row"
              % (t["torch"], " and ".join(str(x) for x in t.get("threads", [])) or "its"))
    print()
    print("  %-34s %14s %-14s %12s %10s %8s %8s %9s %13s %12s"
          % ("", "", "", "FLOPs/token", "GFLOP/s", "peak", "of peak", "peak RSS",
             "PyTorch tok/s", "C / PyTorch"))
    for r in run_rows(run):
        cr = r["c"]
        if cr:
            line = "  %-34s %14.1f %-14s" % (cr["name"], cr["value"], cr["unit"])
            if cr["flops_per_token"] > 0:
                line += " %12.0f %10.1f %8.1f %8s" % (cr["flops_per_token"], cr["gflops"],
                                                      cr["peak_gflops"],
                                                      "%.1f%%" % (100 * cr["fraction_of_peak"]))
            else:
                line += " %12s %10s %8.1f %8s" % ("", "", cr["peak_gflops"], "")
            line += " %5.1f MiB" % (cr["peak_rss_kib"] / 1024.0)
        else:
            line = "  %-34s %14s %-14s %12s %10s %8s %8s %9s" % (r["name"], "-", "", "", "", "",
                                                                  "", "")
        if r["torch"] is not None:
            line += " %13.1f" % r["torch"]
            line += " %11.2fx" % r["ratio"] if r["ratio"] is not None else " %12s" % "-"
        print(line.rstrip())


def print_summary(runs):
    n = len(runs)
    print("Summary of %d run%s: each the C bench, then its PyTorch peer right after it;"
          % (n, "s" if n > 1 else ""))
    print("median [min - max] over the runs of each figure, the ratios taken inside each run\n")
    print("  %3s  %-12s %7s %18s %14s  %s" % ("run", "BLAS kernel", "threads", "sgemm GFLOP/s",
                                            "on 1 thread", "PyTorch"))
    for i, run in enumerate(runs):
        c, t = run["c"], run["torch"]
        print("  %3d  %-12s %7d %18.1f %14.1f  %s" % (i + 1, c["kernel"], c["threads"],
                                                     c["sgemm_peak_gflops"],
                                                     c["sgemm_1thread_gflops"],
                                                     t["torch"] if t else "-"))
    print("\n  %-34s %-34s GFLOP/s" % ("sgemm 2048^3 peak", cell(spread(
        [r["c"]["sgemm_peak_gflops"] for r in runs]), "%.1f")))
    print("  %-34s %-34s GFLOP/s\n" % ("sgemm 2048^3 on 1 thread", cell(spread(
        [r["c"]["sgemm_1thread_gflops"] for r in runs]), "%.1f")))
    per_run = [{r["key"]: r for r in run_rows(run)} for run in runs]
    order = []  # lora bench's order; a row only some runs have goes after its predecessor there
    for rows in per_run:
        prev = None
        for k in rows:
            if k not in order:
                order.insert(order.index(prev) + 1 if prev else 0, k)
            prev = k
    print("  %-34s %-34s %-14s %s" % ("", "figure", "unit", "of peak (same run)"))
    peers = []
    for k in order:
        have = [rows[k] for rows in per_run if k in rows]
        name = k if len(have) == n else "%s (%d of %d runs)" % (k, len(have), n)
        if any(r["torch"] is not None for r in have):
            peers.append((name, have))
        c_rows = [r["c"] for r in have if r["c"]]
        if not c_rows:
            continue
        line = "  %-34s %-34s %-14s %s" % (
            name, cell(spread([r["value"] for r in c_rows]), value_format(c_rows)),
            "/".join(sorted({r["unit"] for r in c_rows})),
            pct_cell(spread([r["fraction"] for r in have])))
        print(line.rstrip())
    split = [(k, [rows[k]["c"] for rows in per_run if k in rows and rows[k]["c"]
                  and rows[k]["c"].get("gemm_share", 0) > 0]) for k in order]
    split = [(k, rs) for k, rs in split if rs]
    if split:
        print("\n  where the time goes (lora bench's split; rest free: the row's fraction of peak"
              " if all\n  work outside the matrix products took no time)")
        print("  %-34s %-24s %-24s %s" % ("", "in products", "of which thin (r-wide)",
                                          "of peak, rest free"))
    for k, rs in split:
        print("  %-34s %-24s %-24s %s" % (
            k, pct_cell(spread([r["gemm_share"] for r in rs])),
            pct_cell(spread([r.get("thin_share", 0) for r in rs])),
            pct_cell(spread([r["fraction_of_peak"] / r["gemm_share"] for r in rs]))))
    ops = [(k, [r for r in rs if isinstance(r.get("op_share"), dict)]) for k, rs in split]
    ops = [(k, rs) for k, rs in ops if rs]
    if ops:  # lora bench's split of the other work, in its order of kinds
        kinds = list(ops[0][1][0]["op_share"])
        print("\n  the other work, median share of the threads' time (elementwise: RoPE, residual"
              " adds,\n  the embedding; rest: thread waits, copies, zeroing, gradient sums)")
        print("  %-34s" % "" + "".join(" %11s" % x for x in kinds + ["rest"]))
        for k, rs in ops:
            shares = [spread([r["op_share"].get(x, 0) for r in rs])[0] for x in kinds]
            rest = spread([1 - r["gemm_share"] - sum(r["op_share"].values()) for r in rs])[0]
            print("  %-34s" % k + "".join(" %10.1f%%" % (100 * v) for v in shares + [rest]))
    if peers:
        print("\n  %-34s %-34s %s" % ("", "PyTorch tokens/s", "C / PyTorch (same run)"))
    for name, have in peers:
        print("  %-34s %-34s %s" % (name, cell(spread([r["torch"] for r in have]), "%.1f"),
                                    cell(spread([r["ratio"] for r in have]), "%.2f", "x")))


def value_format(c_rows):
    """One decimal as lora bench prints, three below 10 (milliseconds per completion)."""
    return "%.1f" if min(r["value"] for r in c_rows) >= 10 else "%.3f"


def pct_cell(s):
    return cell(tuple(100 * x for x in s) if s else None, "%.1f", "%")


CSV_FIELDS = ["run", "row", "name", "value", "unit", "c_tokens_per_s", "flops_per_token",
              "gflops", "row_peak_gflops", "fraction_of_peak", "peak_rss_kib",
              "sgemm_peak_gflops", "sgemm_1thread_gflops", "kernel", "threads", "batch", "T",
              "torch_version", "torch_tokens_per_s", "torch_threads", "c_over_torch",
              "gemm_share", "thin_share"]


def csv_lines(runs):
    def f(x, fmt):
        return "" if x is None else fmt % x
    for i, run in enumerate(runs):
        c, t = run["c"], run["torch"]
        for r in run_rows(run):
            cr = r["c"] or {}
            yield [i + 1, r["key"], r["name"], f(cr.get("value"), "%.3f"), cr.get("unit", ""),
                   f(cr.get("tokens_per_s"), "%.3f"), f(cr.get("flops_per_token"), "%.0f"),
                   f(cr.get("gflops"), "%.3f"), f(cr.get("peak_gflops"), "%.3f"),
                   f(r["fraction"], "%.4f"), f(cr.get("peak_rss_kib"), "%d"),
                   "%.2f" % c["sgemm_peak_gflops"], "%.2f" % c["sgemm_1thread_gflops"],
                   c["kernel"], c["threads"], c["batch"], c["T"], t["torch"] if t else "",
                   f(r["torch"], "%.3f"), r["torch_threads"] or "", f(r["ratio"], "%.4f"),
                   f(cr.get("gemm_share"), "%.4f"), f(cr.get("thin_share"), "%.4f")]


def write_csv(path, runs):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(CSV_FIELDS)
            for line in csv_lines(runs):
                w.writerow(line)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BadInput("--csv %s: cannot write: %s" % (path, e.strerror or e))


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs="+", action="append", required=True,
                    metavar="FILE", help="C.json [TORCH.json]: one run (repeat, in order)")
    ap.add_argument("--csv", metavar="FILE", help="write every run's rows here as CSV")
    a = ap.parse_args()
    try:
        runs = load_runs(a.run)
        if a.csv:
            write_csv(a.csv, runs)
    except BadInput as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    print_last_run(runs[-1], len(runs))
    print()
    print_summary(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
