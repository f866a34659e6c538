#!/usr/bin/env python3
"""exp_variants.py - the adapter variants against the plain run: the default recipe
(`lora-train --rank 8 --alpha 16 data/irreg.jsonl`, everything else from configs/lora-irreg.json)
plain, with --dora and with --dropout 0.1, one seed; then one lora-eval call over the test files
(seen and new frames) and the collateral files (control verbs, held-out regular verbs).

    python3 scripts/exp_variants.py [-o results] [-t THREADS]

Each run lives in OUT/variants/<name>/ (adapter.safetensors, train.json: lora-train --json plus
the run's CPU seconds); a run whose train.json exists is not rerun (delete the directory to
redo it). Writes OUT/variants.md. Wall seconds depend on what else the machine runs; CPU seconds
(user + system of the training process) less so. Standard library only.
"""
import json
import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LORA_BIN", os.path.join(ROOT, "bin"))
if os.path.isfile(BIN):  # LORA_BIN may be the lora binary itself (mk/asan.mk)
    BIN = os.path.dirname(BIN)
RUNS = [("plain", []), ("dora", ["--dora"]), ("dropout", ["--dropout", "0.1"])]
FILES = ["data/irreg_test.jsonl", "data/irreg_test_new.jsonl", "data/control_regular.jsonl",
         "data/control_new.jsonl", "data/regular_heldout.jsonl", "data/regular_heldout_new.jsonl"]


def train(d, flags, threads):
    """Trains one run into d unless its train.json exists; returns that JSON."""
    out = os.path.join(d, "train.json")
    if os.path.exists(out):
        return json.load(open(out))
    os.makedirs(d, exist_ok=True)
    cmd = [os.path.join(BIN, "lora"), "train", "--rank", "8", "--alpha", "16", "--quiet",
           "--json", "--threads", threads, "--out", os.path.join(d, "adapter.safetensors")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd + flags + ["data/irreg.jsonl"], cwd=ROOT, stdout=subprocess.PIPE,
                       text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("exp_variants: lora-train %s failed (%d)" % (" ".join(flags), p.returncode))
    j = json.loads(p.stdout.strip().splitlines()[-1])
    j["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out + ".tmp", "w") as f:
        json.dump(j, f)
    os.replace(out + ".tmp", out)
    return j


def main():
    args = sys.argv[1:]
    out = args[args.index("-o") + 1] if "-o" in args else os.path.join(ROOT, "results")
    threads = args[args.index("-t") + 1] if "-t" in args else "2"
    base = os.path.join(out, "variants")
    runs = [(name, flags, train(os.path.join(base, name), flags, threads)) for name, flags in RUNS]
    cmd = [os.path.join(BIN, "lora"), "eval", "--json", "--threads", threads]
    for name, _, _ in runs:
        cmd += ["--adapter", os.path.join(base, name, "adapter.safetensors")]
    p = subprocess.run(cmd + FILES, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("exp_variants: lora-eval failed (%d)" % p.returncode)
    summary = json.loads(p.stdout.strip().splitlines()[-1])["summary"]
    em = {}  # (file, model index) -> exact match; index 0 is the base
    models = [None] + [os.path.join(base, n, "adapter.safetensors") for n, _, _ in runs]
    for s in summary:
        k = 0 if s["model"] not in models else models.index(s["model"])
        em[(s["file"], k)] = 100.0 * s["exact_match"]

    def pct(f, k):
        return "%.1f%%" % em[(f, k)]

    lines = ["The default recipe (`lora-train --rank 8 --alpha 16 data/irreg.jsonl`), one seed, "
             "plain, `--dora` and `--dropout 0.1`; exact match from one `lora-eval` call. "
             "CPU seconds: user + system of the training process; wall seconds depend on what "
             "else the machine ran.", "",
             "| run | trainable | file bytes | CPU s | wall s | irreg_test | irreg_test_new | "
             "control_regular | control_new | regular_heldout | regular_heldout_new |",
             "|---|---|---|---|---|---|---|---|---|---|---|",
             "| base | | | | | " + " | ".join(pct(f, 0) for f in FILES) + " |"]
    for k, (name, flags, j) in enumerate(runs, 1):
        lines.append("| %s | %s | %s | %.1f | %.0f | %s |" % (
            " ".join(["plain"] if not flags else flags), "{:,}".format(j["trainable_params"]),
            "{:,}".format(j["bytes"]), j["cpu_seconds"], j["seconds"],
            " | ".join(pct(f, k) for f in FILES)))
    with open(os.path.join(out, "variants.md.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(out, "variants.md.tmp"), os.path.join(out, "variants.md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
