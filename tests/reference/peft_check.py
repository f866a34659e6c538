#!/usr/bin/python3
"""Loads a PEFT adapter directory (as `lora-export --peft` writes it) into the PyTorch
reference Mini-GPT and checks `lora-eval --json`'s per-example log-probabilities against it.

The directory is read the way PEFT reads it, from its own two files only: adapter_config.json
(r, lora_alpha, use_rslora, target_modules, layers_to_transform) with Python's json, and
adapter_model.safetensors with the 20-line reader below (struct + torch, no `safetensors`
package). Each tensor base_model.model.<path>.lora_A.weight / lora_B.weight goes to <path>;
the scale is lora_alpha/r (lora_alpha/sqrt(r) with use_rslora). The model is
gen_reference.forward (written from SPEC.md only), run in float64.

For each record of DATA the log-probability of the completion (and of the distractor, when
there is one) plus the end token, given the prompt, is computed here and compared with the
line of EVAL_JSON (lora-eval --json output) whose "model" is DIR and whose "line" is the
record's. Also checked: the adapter changes the log-probabilities (so an adapter silently
dropped on either side cannot pass).

Usage:  /usr/bin/python3 tests/reference/peft_check.py [--tol X] BASE DATA EVAL_JSON DIR [DIR ...]
Prints, per DIR, the number of values compared and the largest |difference|; exits 1 when one
is above the tolerance (1e-4).
"""

import json
import math
import os
import re
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_reference import forward  # noqa: E402  (the reference model of SPEC §2, §3)

DTYPES = {"F32": torch.float32, "F16": torch.float16}


def read_safetensors(path):
    """name -> float64 tensor, and the metadata; strict about offsets."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).to(torch.float64)
    return out, meta


def load_peft(directory, n_layers):
    """PEFT semantics: (lora dict path -> (A, B), scale) from the directory's own files."""
    with open(os.path.join(directory, "adapter_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    assert cfg["peft_type"] == "LORA", cfg["peft_type"]
    assert cfg.get("bias", "none") == "none" and not cfg.get("fan_in_fan_out", False)
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora", False) else alpha / r
    targets = set(cfg["target_modules"])
    layers = cfg.get("layers_to_transform")
    layers = set(range(n_layers)) if layers is None else set(
        [layers] if isinstance(layers, int) else layers)
    tensors, _ = read_safetensors(os.path.join(directory, "adapter_model.safetensors"))
    pairs = {}
    for name, t in tensors.items():
        m = re.fullmatch(r"base_model\.model\.(blocks\.(\d+)\..+)\.lora_([AB])\.weight", name)
        assert m, "not a LoRA tensor: " + name
        path, block, which = m.group(1), int(m.group(2)), m.group(3)
        assert path.rsplit(".", 1)[1] in targets and block in layers, name
        assert t.shape[0 if which == "A" else 1] == r, name
        pairs.setdefault(path, {})[which] = t
    lora = {p: (ab["A"], ab["B"]) for p, ab in pairs.items()}
    return lora, scale


def logprob(cfg, params, lora, scale, ids, n_prompt):
    """Σ log P(ids[j] | ids[<j]) over j >= n_prompt (the completion and the end token)."""
    tokens = torch.tensor([ids[:-1]], dtype=torch.int64)
    logits = forward(cfg, params, tokens, lora, scale)[0]
    logp = torch.log_softmax(logits, dim=-1)
    return sum(float(logp[j - 1, ids[j]]) for j in range(n_prompt, len(ids)))


def check(base, directory, data, eval_json, tol):
    """Compares one directory; returns an error message or None."""
    params, meta = read_safetensors(base)
    cfg = json.loads(meta["config"])
    vocab = json.loads(meta["vocab"])
    index = {s: i for i, s in enumerate(vocab)}
    lora, scale = load_peft(directory, cfg["n_layers"])
    got = {}
    with open(eval_json, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("model") == directory and d.get("file") == data:
                got[d["line"]] = d
    worst, n, moved = 0.0, 0, 0.0
    with torch.no_grad(), open(data, encoding="utf-8") as f:
        for lineno, text in enumerate(f, 1):
            rec = json.loads(text)
            c = got.get(lineno)
            if c is None:
                return "%s:%d: no lora-eval line for %s" % (data, lineno, directory)
            prompt = [index[ch] for ch in rec["prompt"]]
            for key, field in (("completion", "logprob_target"), ("distractor", "logprob_distractor")):
                if key not in rec:
                    continue
                ids = prompt + [index[ch] for ch in rec[key]] + [0]
                ref = logprob(cfg, params, lora, scale, ids, len(prompt))
                base_lp = logprob(cfg, params, None, 0.0, ids, len(prompt))
                worst = max(worst, abs(ref - c[field]))
                moved = max(moved, abs(ref - base_lp))
                n += 1
    print("%s: %d log-probabilities, max |C - PyTorch| = %.3g (tolerance %g); the adapter moves "
          "them by up to %.3g" % (directory, n, worst, tol, moved))
    if n == 0 or len(got) != n_lines(data):
        return "%s: lora-eval scored %d records, the file has %d" % (data, len(got), n_lines(data))
    if not worst <= tol:
        return "FAIL: %s: max |C - PyTorch| %.3g exceeds %g" % (directory, worst, tol)
    if not moved > 0.01:
        return "FAIL: %s: the adapter moves no log-probability by 0.01 (%.3g)" % (directory, moved)
    return None


def main(argv):
    args = argv[1:]
    tol = 1e-4
    if args[:1] == ["--tol"] and len(args) > 1:
        tol = float(args[1])
        args = args[2:]
    if len(args) < 4:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    base, data, eval_json = args[:3]
    errors = [m for m in (check(base, d, data, eval_json, tol) for d in args[3:]) if m]
    if errors:
        sys.exit("; ".join(errors))


def n_lines(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


if __name__ == "__main__":
    main(sys.argv)
