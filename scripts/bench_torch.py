#!/usr/bin/python3
"""The PyTorch peer of `lora bench`: the same measurements on the committed reference model.

The model is tests/reference/gen_reference.py's Mini-GPT (written from SPEC.md, not from the C
sources), run in float32 on the shipped base. The shapes and the optimizer are lora bench's:
batch 64 x 32 tokens of random full-length sequences (loss on every position), AdamW with
lr 1e-4, betas (0.9, 0.999), eps 1e-8, no weight decay; LoRA rank 8, alpha 16 (scale alpha/r)
on all 12 Linears with A ~ U(+-1/sqrt(in)) and B = 0, base frozen. Scoring is a forward pass
and the loss of 256 sequences without gradients. Each figure is the best of 4 windows of S/4
seconds after 3 warm-up steps (1 warm-up pass for scoring), on 1 and on 2 threads
(torch.set_num_threads); the row's figure is the better of the two.

Usage:  /usr/bin/python3 scripts/bench_torch.py [--base FILE] [--seconds S] [--threads "1 2"]
                                                [--only TEXT] [--c-table FILE] [--json]
  --c-table FILE  the text table `lora bench` printed in the same run: each row gets the C
                  figure beside it and the ratio C / PyTorch (scripts/bench.sh does this).
  --json          one JSON object instead of the table: the settings and, per row, the
                  figure, the figure per thread count (and the C figure and ratio with
                  --c-table); scripts/bench.sh --runs K feeds it to scripts/bench_summary.py.
Needs Debian's python3-torch (PyTorch 1.13); no other packages.
"""

import argparse
import json
import os
import re
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import gen_reference as ref  # noqa: E402  (the reference model: forward, masked_mean_ce)

WINDOWS = 4
WARMUP = 3
BATCH, T, RANK, ALPHA, LR, N_SCORE = 64, 32, 8, 16.0, 1e-4, 256
# name in lora bench's table -> what this script measures
ROWS = ["train LoRA r=8", "train full model", "score sequences"]


def load_base(path):
    """The checkpoint's float32 tensors by name and its config (dict without vocab)."""
    params, meta = ref.read_safetensors(path)
    cfg = json.loads(meta["config"])
    for k in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "context"):
        if k not in cfg:
            sys.exit("bench_torch.py: %s: config has no %s" % (path, k))
    return {k: v.clone() for k, v in params.items()}, cfg


def random_sequences(n, seq_len, vocab, seed):
    """n full-length sequences of seq_len + 1 tokens in [1, V): inputs and next-token targets."""
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(1, vocab, (n, seq_len + 1), generator=g, dtype=torch.int64)
    return tok[:, :-1].contiguous(), tok[:, 1:].contiguous()


def best_rate(step, units_per_call, seconds):
    """The best of WINDOWS windows of seconds/WINDOWS: units per second."""
    best = 0.0
    for _ in range(WINDOWS):
        done = 0
        t0 = time.perf_counter()
        while True:
            step()
            done += 1
            if time.perf_counter() - t0 >= seconds / WINDOWS:
                break
        best = max(best, done * units_per_call / (time.perf_counter() - t0))
    return best


def train_rate(params, cfg, rank, seq_len, seconds):
    """Training steps of BATCH x seq_len, tokens/s. rank None: the whole model is trained."""
    inp, tgt = random_sequences(BATCH, seq_len, cfg["vocab_size"], 1)
    p = {k: v.clone() for k, v in params.items()}
    lora, scale = None, 0.0
    if rank is None:
        for v in p.values():
            v.requires_grad_(True)
        trained = list(p.values())
    else:
        g = torch.Generator().manual_seed(1)
        lora = {}
        for path in ref.lora_paths(cfg):
            out_f, in_f = p[path + ".weight"].shape
            bound = 1.0 / in_f ** 0.5
            a = (torch.rand((rank, in_f), generator=g) * 2 - 1) * bound
            lora[path] = (a.requires_grad_(True), torch.zeros(out_f, rank, requires_grad=True))
        trained = [t for pair in lora.values() for t in pair]
        scale = ALPHA / rank
    opt = torch.optim.AdamW(trained, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = ref.masked_mean_ce(ref.forward(cfg, p, inp, lora, scale), tgt)
        loss.backward()
        opt.step()

    for _ in range(WARMUP):
        step()
    return best_rate(step, BATCH * seq_len, seconds)


def score_rate(params, cfg, seq_len, seconds):
    """Forward pass and loss of N_SCORE sequences without gradients: tokens/s."""
    inp, tgt = random_sequences(N_SCORE, seq_len, cfg["vocab_size"], 2)

    def step():
        with torch.no_grad():
            ref.masked_mean_ce(ref.forward(cfg, params, inp), tgt)

    step()
    return best_rate(step, N_SCORE * seq_len, seconds)


C_ROW = re.compile(r"^  (\S.*?)\s+([0-9]+(?:\.[0-9]+)?) (tokens/s|sequences/s)\b")


def read_c_table(path, seq_len):
    """lora bench's rows as name -> tokens/s (sequences/s times the tokens per sequence)."""
    rows = {}
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            m = C_ROW.match(line)
            if m:
                v = float(m.group(2))
                rows[m.group(1)] = v * seq_len if m.group(3) == "sequences/s" else v
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=os.path.join(REPO, "data", "minigpt-base.safetensors"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", default="1 2")
    ap.add_argument("--only", default=None)
    ap.add_argument("--c-table", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 0.01 <= a.seconds <= 600:
        sys.exit("bench_torch.py: --seconds %g: expected 0.01..600" % a.seconds)
    try:
        threads = [int(x) for x in a.threads.split()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        sys.exit("bench_torch.py: --threads %r: expected positive integers" % a.threads)
    params, cfg = load_base(a.base)
    seq_len = min(T, cfg["context"])  # as lora bench: sequences fill at most the context
    c_rows = read_c_table(a.c_table, seq_len) if a.c_table else {}
    if a.c_table and not c_rows:
        sys.exit("bench_torch.py: %s: no lora bench rows in it" % a.c_table)
    torch.manual_seed(0)
    results = []
    for name in ROWS:
        if a.only and a.only not in name:
            continue
        per = {}
        for n in threads:
            torch.set_num_threads(n)
            if name == "score sequences":
                per[n] = score_rate(params, cfg, seq_len, a.seconds)
            else:
                rank = None if name == "train full model" else RANK
                per[n] = train_rate(params, cfg, rank, seq_len, a.seconds)
        best = max(per.values())
        c = c_rows.get(name)
        results.append({"name": name, "tokens_per_s": best, "by_threads": per, "c_tokens_per_s": c,
                        "c_over_torch": c / best if c else None})
    if a.json:
        print(json.dumps({"torch": torch.__version__, "batch": BATCH, "T": seq_len,
                          "threads": threads, "seconds": a.seconds, "windows": WINDOWS,
                          "rows": [dict(r, by_threads={str(k): v for k, v in
                                                       r["by_threads"].items()})
                                   for r in results]}))
        return
    print("PyTorch %s peer: tests/reference/gen_reference.py's model in float32 on %s"
          % (torch.__version__, os.path.relpath(a.base, REPO) if a.base.startswith(REPO)
             else a.base))
    print("batch %d x %d tokens, AdamW lr %g, LoRA r=%d alpha %g on all %d Linears; best of %d"
          % (BATCH, seq_len, LR, RANK, ALPHA, len(ref.lora_paths(cfg)), WINDOWS))
    print("windows of %.2f s after the warm-up, on %s thread(s); scoring: %d sequences, no grad\n"
          % (a.seconds / WINDOWS, " and ".join(map(str, threads)), N_SCORE))
    head = "  %-22s %18s" % ("", "PyTorch tokens/s")
    head += "".join(" %12s" % ("%d thread%s" % (n, "s" if n > 1 else "")) for n in threads)
    if c_rows:
        head += " %14s %12s" % ("C tokens/s", "C / PyTorch")
    print(head)
    for r in results:
        line = "  %-22s %18.1f" % (r["name"], r["tokens_per_s"])
        line += "".join(" %12.1f" % r["by_threads"][n] for n in threads)
        if c_rows:
            line += (" %14.1f %11.2fx" % (r["c_tokens_per_s"], r["c_over_torch"])
                     if r["c_tokens_per_s"] else " %14s %12s" % ("-", "-"))
        print(line)


if __name__ == "__main__":
    main()
