#!/usr/bin/python3
"""Independent PyTorch reference for minilora's Mini-GPT (SPEC.md §2, §3, §4).

Written from the specification text only (not from the C sources). It draws a random
model in float32, runs it in float64, and stores the weights, a batch, the logits, the
loss, the gradients of every parameter, some intermediate activations and a LoRA case
(r=4, alpha=8) in tests/fixtures/reference.safetensors, which the C tests compare against.

It also writes one smaller fixture per model shape of the issue-12 matrix (SHAPES below:
context 16, 48 and 128, d_model 32 and 96, heads 2, 3 and 6, layers 1, 2 and 3, d_ff not
4*d_model, an 89-symbol vocabulary) to tests/fixtures/reference-<shape>.safetensors: the
weights, a batch of BATCH_SHAPES rows that fill the whole context, logits, loss, every
gradient, and the LoRA case (no activations, no KL case).

And a DoRA fixture (PEFT's use_dora, weight norm detached as PEFT does) on the default model
in tests/fixtures/reference-dora.safetensors (write_dora).

Usage:  /usr/bin/python3 tests/reference/gen_reference.py            (every fixture)
        /usr/bin/python3 tests/reference/gen_reference.py OUTPUT     (the default model only)
        /usr/bin/python3 tests/reference/gen_reference.py --shape NAME OUTPUT
        /usr/bin/python3 tests/reference/gen_reference.py --dora OUTPUT   (the DoRA case only)
Needs Debian's python3-torch (PyTorch 1.13); no other packages.
The output is deterministic: two runs give byte-identical files.
"""

import hashlib
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

SEED = 20261129
BATCH = 4
LORA_R = 4
LORA_ALPHA = 8
# preservation-term (KL) case: sequences are prefixes of the rows of the existing batch
KL_LENGTHS = [32, 20, 27, 13]   # sequence lengths in tokens (inputs: length - 1 positions)
KL_PROMPT = [5, 8, 0, 4]        # prompt tokens (0: a text record, loss on all but the first)
KL_N = 3                        # the first KL_N sequences carry the term
KL_LAMBDA = 0.75                # exact in float32
GENERATOR = "tests/reference/gen_reference.py"

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_PATH = os.path.join(REPO, "configs", "minigpt.json")
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "reference.safetensors")

# The shape matrix: changes to configs/minigpt.json. Each shape draws from its own seed, so the
# default fixture is unchanged by it. "extra_vocab" symbols are appended to the vocabulary.
EXTRA_VOCAB = list("0123456789") + list("\"#$%&*+/<=>@[]_")
SHAPES = {
    "s1": dict(d_model=32, n_heads=2, n_layers=1, d_ff=80, context=16),
    "s2": dict(d_model=96, n_heads=3, n_layers=3, d_ff=200, context=128),
    "s3": dict(d_model=96, n_heads=6, n_layers=2, d_ff=136, context=48, extra_vocab=EXTRA_VOCAB),
}
BATCH_SHAPES = 3

LINEAR_NAMES = ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj", "ffn.fc1", "ffn.fc2"]


# ---------------------------------------------------------------------------------------
# configuration and parameters
# ---------------------------------------------------------------------------------------

def load_config():
    with open(CONFIG_PATH, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    vocab = cfg.pop("vocab")
    assert len(vocab) == cfg["vocab_size"] == 64
    assert cfg["d_model"] % cfg["n_heads"] == 0
    return cfg, vocab


def param_shapes(cfg):
    """Checkpoint names and shapes, in the order of SPEC §4 (weights stored (out, in))."""
    V, C, L, D = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["d_ff"]
    shapes = [("tok_emb.weight", (V, C))]
    for i in range(L):
        p = "blocks.%d." % i
        shapes += [
            (p + "ln1.weight", (C,)), (p + "ln1.bias", (C,)),
            (p + "attn.q_proj.weight", (C, C)), (p + "attn.k_proj.weight", (C, C)),
            (p + "attn.v_proj.weight", (C, C)), (p + "attn.o_proj.weight", (C, C)),
            (p + "ln2.weight", (C,)), (p + "ln2.bias", (C,)),
            (p + "ffn.fc1.weight", (D, C)), (p + "ffn.fc1.bias", (D,)),
            (p + "ffn.fc2.weight", (C, D)), (p + "ffn.fc2.bias", (C,)),
        ]
    shapes += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return shapes


def draw_params(cfg):
    """Random float32 parameters (drawn in the fixed order of param_shapes)."""
    params = {}
    for name, shape in param_shapes(cfg):
        if name == "tok_emb.weight":
            t = torch.randn(shape, dtype=torch.float32) * 0.5
        elif ".ln" in name or name.startswith("ln_f."):
            if name.endswith(".weight"):
                t = 1.0 + torch.randn(shape, dtype=torch.float32) * 0.1
            else:
                t = torch.randn(shape, dtype=torch.float32) * 0.05
        elif name.endswith(".bias"):
            t = torch.randn(shape, dtype=torch.float32) * 0.05
        else:
            t = torch.randn(shape, dtype=torch.float32) * 0.15
        params[name] = t.contiguous()
    return params


def lora_paths(cfg):
    return ["blocks.%d.%s" % (i, n) for i in range(cfg["n_layers"]) for n in LINEAR_NAMES]


def draw_lora(cfg, params, r):
    """A ~ U(-1/sqrt(in), 1/sqrt(in)) as in SPEC §3; B ~ N(0, 0.2^2) (non-zero on purpose)."""
    lora = {}
    for path in lora_paths(cfg):
        out_f, in_f = params[path + ".weight"].shape
        bound = 1.0 / math.sqrt(in_f)
        a = (torch.rand((r, in_f), dtype=torch.float32) * 2.0 - 1.0) * bound
        b = torch.randn((out_f, r), dtype=torch.float32) * 0.2
        lora[path] = (a.contiguous(), b.contiguous())
    return lora


def make_batch(cfg):
    V, T = cfg["vocab_size"], cfg["context"]
    tokens = torch.randint(0, V, (BATCH, T), dtype=torch.int64)
    tokens[0, 7] = 0            # the end-of-text token appears as an input ...
    tokens[2, 30] = 0           # ... and (shifted) as a target
    tokens[1, 3] = V - 1        # the last vocab entry too
    targets = torch.empty_like(tokens)
    targets[:, :-1] = tokens[:, 1:]
    targets[:, -1] = torch.randint(0, V, (BATCH,), dtype=torch.int64)
    targets[1, :10] = -1        # row 0: no masking
    targets[2, :20] = -1
    targets[3, :T - 5] = -1     # row 3: only the last 5 targets count
    return tokens, targets


# ---------------------------------------------------------------------------------------
# the model (SPEC §2), written plainly
# ---------------------------------------------------------------------------------------

def rope_angles(T, head_size, base, dtype):
    """cos/sin of p*theta_i, shape (T, head_size/2); theta_i = base^(-2i/head_size)."""
    i = torch.arange(head_size // 2, dtype=dtype)
    theta = base ** (-2.0 * i / head_size)
    p = torch.arange(T, dtype=dtype)
    ang = p[:, None] * theta[None, :]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    """x: (B, H, T, hs). Interleaved pairs (2i, 2i+1) inside each head:
    (a, b) -> (a cos - b sin, a sin + b cos)."""
    a = x[..., 0::2]
    b = x[..., 1::2]
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    return torch.stack((ra, rb), dim=-1).flatten(-2)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(h, p, path, lora, scale, bias):
    """h W^T (+ b) (+ s * (h A^T) B^T when a LoRA pair is given for this path; with a DoRA
    triple (A, B, m), PEFT's DoraLinearLayer: + (g - 1) * (h W^T) + g * s * (h A^T) B^T,
    g = m / ||W + s B A|| per output row, the norm detached from the graph)."""
    w = p[path + ".weight"]
    y = h @ w.t()
    if lora is not None and path in lora and len(lora[path]) == 3:
        a, b, m = lora[path]
        norm = torch.linalg.norm(w + scale * (b @ a).detach(), dim=1).detach()
        g = (m / norm).view(1, -1)
        y = y + (g - 1) * (h @ w.t()) + g * ((h @ a.t()) @ b.t()) * scale
    elif lora is not None and path in lora:
        a, b = lora[path]
        y = y + scale * ((h @ a.t()) @ b.t())
    if bias:
        y = y + p[path + ".bias"]
    return y


def forward(cfg, p, tokens, lora=None, scale=0.0, acts=None):
    """Logits (B, T, V). p: name -> tensor; lora: path -> (A, B); acts: optional dict to fill."""
    C, H, eps = cfg["d_model"], cfg["n_heads"], cfg["ln_eps"]
    hs = C // H
    Bn, T = tokens.shape
    x = p["tok_emb.weight"][tokens]                      # no scaling, no learned positions
    if acts is not None:
        acts["embed"] = x
    cos, sin = rope_angles(T, hs, cfg["rope_base"], x.dtype)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg["n_layers"]):
        pre = "blocks.%d." % i
        h = F.layer_norm(x, (C,), p[pre + "ln1.weight"], p[pre + "ln1.bias"], eps)
        q = linear(h, p, pre + "attn.q_proj", lora, scale, False)
        k = linear(h, p, pre + "attn.k_proj", lora, scale, False)
        v = linear(h, p, pre + "attn.v_proj", lora, scale, False)
        q = q.view(Bn, T, H, hs).transpose(1, 2)         # (B, H, T, hs); head j = cols 16j..16j+15
        k = k.view(Bn, T, H, hs).transpose(1, 2)
        v = v.view(Bn, T, H, hs).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if acts is not None:
            acts["blocks.%d.q_rope" % i] = q.transpose(1, 2).reshape(Bn, T, C)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)    # / 4
        s = s.masked_fill(~causal, float("-inf"))
        att = torch.softmax(s, dim=-1)
        if acts is not None:
            acts["blocks.%d.att" % i] = att
        y = (att @ v).transpose(1, 2).reshape(Bn, T, C)  # heads concatenated in order
        x = x + linear(y, p, pre + "attn.o_proj", lora, scale, False)
        h = F.layer_norm(x, (C,), p[pre + "ln2.weight"], p[pre + "ln2.bias"], eps)
        u = linear(h, p, pre + "ffn.fc1", lora, scale, True)
        if acts is not None:
            acts["blocks.%d.fc1" % i] = u
        x = x + linear(gelu_tanh(u), p, pre + "ffn.fc2", lora, scale, True)
        if acts is not None:
            acts["blocks.%d.out" % i] = x
    xf = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    if acts is not None:
        acts["ln_f"] = xf
    return xf @ p["tok_emb.weight"].t()                  # tied head


def masked_mean_ce(logits, targets):
    """Sum of -log softmax at the target over unmasked positions / number of unmasked positions."""
    logp = torch.log_softmax(logits, dim=-1)
    valid = targets >= 0
    nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * valid).sum() / valid.sum()


# ---------------------------------------------------------------------------------------
# self-checks
# ---------------------------------------------------------------------------------------

def fd_check(loss_fn, tensors, gen, per_tensor=4, h=1e-6):
    """Compare autograd gradients with central finite differences on a few elements of each
    tensor (float64). Returns (max abs error, max rel error, number of elements checked)."""
    for t in tensors.values():
        t.grad = None
    loss = loss_fn()
    grads = torch.autograd.grad(loss, list(tensors.values()))
    max_abs = max_rel = 0.0
    n = 0
    with torch.no_grad():
        for (name, t), g in zip(tensors.items(), grads):
            flat = t.view(-1)
            gflat = g.reshape(-1)
            idx = torch.randint(0, flat.numel(), (per_tensor,), generator=gen).tolist()
            idx.append(int(gflat.abs().argmax()))        # also the largest-gradient element
            for j in idx:
                old = flat[j].item()
                flat[j] = old + h
                lp = loss_fn().item()
                flat[j] = old - h
                lm = loss_fn().item()
                flat[j] = old
                fd = (lp - lm) / (2 * h)
                ag = gflat[j].item()
                err = abs(fd - ag)
                max_abs = max(max_abs, err)
                max_rel = max(max_rel, err / max(abs(ag), 1e-3))
                n += 1
    return max_abs, max_rel, n


def rope_complex(x, T, hs, base):
    """RoPE as complex multiplication: z_i = x[2i] + j x[2i+1], z_i * exp(j p theta_i)."""
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], hs // 2, 2).contiguous())
    i = torch.arange(hs // 2, dtype=torch.float64)
    theta = base ** (-2.0 * i / hs)
    p = torch.arange(T, dtype=torch.float64)
    rot = torch.polar(torch.ones(T, hs // 2, dtype=torch.float64), p[:, None] * theta[None, :])
    return torch.view_as_real(z * rot).flatten(-2)


def self_checks(cfg, p64, lora64, scale, tokens, targets, per_tensor=4):
    res = {}
    gen = torch.Generator().manual_seed(12345)           # separate stream: output unaffected
    C, H = cfg["d_model"], cfg["n_heads"]
    hs = C // H
    T = tokens.shape[1]

    # parameter counts from the spec (103,680 and 2304·r for the default model)
    V, L, D = cfg["vocab_size"], cfg["n_layers"], cfg["d_ff"]
    n_params = sum(t.numel() for t in p64.values())
    assert n_params == V * C + L * (4 * C * C + 2 * C * D + D + 5 * C) + 2 * C, n_params
    n_lora = sum(a.numel() + b.numel() for a, b in lora64.values())
    assert n_lora == L * (10 * C + 2 * D) * LORA_R, n_lora

    # (1) gradients vs central finite differences
    base = {k: v.clone().requires_grad_(True) for k, v in p64.items()}
    res["fd_base"] = fd_check(lambda: masked_mean_ce(forward(cfg, base, tokens), targets), base,
                              gen, per_tensor)
    lt = {}
    for path, (a, b) in lora64.items():
        lt[path + ".lora_A"] = a.clone().requires_grad_(True)
        lt[path + ".lora_B"] = b.clone().requires_grad_(True)
    lpairs = {path: (lt[path + ".lora_A"], lt[path + ".lora_B"]) for path in lora64}
    res["fd_lora"] = fd_check(
        lambda: masked_mean_ce(forward(cfg, p64, tokens, lpairs, scale), targets), lt, gen,
        per_tensor)
    # and torch.autograd.gradcheck (full numerical Jacobian) on a reduced function: the loss on
    # 2 rows of 8 tokens w.r.t. a few whole small tensors spread over the network
    small_tok, small_tgt = tokens[:2, :8], targets[:2, :8]
    last = cfg["n_layers"] - 1
    names = ["blocks.0.ln1.weight", "blocks.0.ln2.bias", "blocks.%d.ffn.fc2.bias" % last,
             "ln_f.weight"]

    def reduced(*ts):
        pp = dict(p64)
        pp.update(zip(names, ts))
        return masked_mean_ce(forward(cfg, pp, small_tok), small_tgt)

    res["gradcheck"] = torch.autograd.gradcheck(
        reduced, tuple(p64[n].clone().requires_grad_(True) for n in names), eps=1e-6, atol=1e-7)

    # (2) RoPE vs complex formulation (on the recorded pre-RoPE q of block 0 and random data)
    cos, sin = rope_angles(T, hs, cfg["rope_base"], torch.float64)
    Bn = tokens.shape[0]
    x = torch.randn(Bn, H, T, hs, dtype=torch.float64, generator=gen)
    err = (apply_rope(x, cos, sin) - rope_complex(x, T, hs, cfg["rope_base"])).abs().max().item()
    h = F.layer_norm(p64["tok_emb.weight"][tokens], (C,), p64["blocks.0.ln1.weight"],
                     p64["blocks.0.ln1.bias"], cfg["ln_eps"])
    q = (h @ p64["blocks.0.attn.q_proj.weight"].t()).view(Bn, T, H, hs).transpose(1, 2)
    acts = {}
    forward(cfg, p64, tokens, acts=acts)
    qr = rope_complex(q, T, hs, cfg["rope_base"]).transpose(1, 2).reshape(Bn, T, C)
    err = max(err, (qr - acts["blocks.0.q_rope"]).abs().max().item())
    # position 0 is the identity
    err = max(err, (acts["blocks.0.q_rope"][:, 0] - q.transpose(1, 2).reshape(Bn, T, C)[:, 0])
              .abs().max().item())
    res["rope"] = err

    # (3) LoRA logits == base model with merged weights W + s B A
    merged = dict(p64)
    for path, (a, b) in lora64.items():
        merged[path + ".weight"] = p64[path + ".weight"] + scale * (b @ a)
    lora_logits = forward(cfg, p64, tokens, lora64, scale)
    res["merge"] = (lora_logits - forward(cfg, merged, tokens)).abs().max().item()

    # (4) B = 0 -> LoRA logits == base logits
    zero = {path: (a, torch.zeros_like(b)) for path, (a, b) in lora64.items()}
    base_logits = forward(cfg, p64, tokens)
    res["b_zero"] = (forward(cfg, p64, tokens, zero, scale) - base_logits).abs().max().item()

    # extra: helpers against PyTorch built-ins, and causality
    u = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    res["gelu"] = (gelu_tanh(u) - F.gelu(u, approximate="tanh")).abs().max().item()
    res["ce"] = abs(masked_mean_ce(base_logits, targets).item() -
                    F.cross_entropy(base_logits.reshape(-1, base_logits.shape[-1]),
                                    targets.reshape(-1), ignore_index=-1).item())
    cut = min(20, T // 2)
    t2 = tokens.clone()
    t2[:, cut:] = (t2[:, cut:] + 1) % cfg["vocab_size"]
    res["causal"] = (forward(cfg, p64, t2)[:, :cut] - base_logits[:, :cut]).abs().max().item()

    # how "non-trivial" the random model is
    res["att_max_mean"] = torch.stack(
        [acts["blocks.%d.att" % i].max(-1).values[..., 1:].mean() for i in range(cfg["n_layers"])]
    ).mean().item()
    res["att_max_uniform"] = (1.0 / torch.arange(2, T + 1, dtype=torch.float64)).mean().item()
    fc1 = torch.cat([acts["blocks.%d.fc1" % i].reshape(-1) for i in range(cfg["n_layers"])])
    res["fc1_neg_frac"] = (fc1 < 0).double().mean().item()
    res["lora_delta"] = (lora_logits - base_logits).abs().max().item()
    return res


# ---------------------------------------------------------------------------------------
# the preservation term (KL case)
# ---------------------------------------------------------------------------------------

def kl_sequences(tokens):
    """The KL case's sequences: row b of the batch cut to KL_LENGTHS[b] tokens."""
    return [tokens[b, :KL_LENGTHS[b]] for b in range(len(KL_LENGTHS))]


def preserve_loss(cfg, p, seqs, lora, scale, lam=KL_LAMBDA, n_kl=KL_N):
    """From the definition, one sequence at a time (no padding anywhere):
    L = (sum of CE over the completion targets of every sequence) / (number of those targets)
      + lam * (sum over the first n_kl sequences and all their input positions of
               KL(p_base || p_model)) / (number of those positions),
    where a sequence of n tokens has n - 1 input positions (input t predicts token t+1), its
    completion targets are the positions t >= n_prompt - 1 (t >= 0 for a text record), and
    p_base is the model without the adapter. Returns (L, mean CE, mean KL)."""
    ce_sum = 0.0
    ce_n = 0
    kl_sum = 0.0
    kl_n = 0
    for b, seq in enumerate(seqs):
        inp, nxt = seq[:-1], seq[1:]
        logp = torch.log_softmax(forward(cfg, p, inp[None], lora, scale)[0], dim=-1)  # (n-1, V)
        first = max(KL_PROMPT[b] - 1, 0)
        ce_sum = ce_sum - logp[first:].gather(-1, nxt[first:, None]).sum()
        ce_n += len(nxt) - first
        if b < n_kl:
            with torch.no_grad():
                logq = torch.log_softmax(forward(cfg, p, inp[None])[0], dim=-1)    # the base
            kl_sum = kl_sum + (logq.exp() * (logq - logp)).sum()
            kl_n += len(inp)
    ce = ce_sum / ce_n
    kl = kl_sum / kl_n if kl_n else torch.zeros((), dtype=torch.float64)
    return ce + lam * kl, ce, kl


def preserve_checks(cfg, p64, lora64, scale, tokens):
    """Self-checks of the KL case: finite differences of L in A and B, the KL against
    F.kl_div, KL = 0 exactly with B = 0, and the padded batch equal to the unpadded one."""
    res = {}
    gen = torch.Generator().manual_seed(777)             # separate stream: output unaffected
    seqs = kl_sequences(tokens)
    lt = {}
    for path, (a, b) in lora64.items():
        lt[path + ".lora_A"] = a.clone().requires_grad_(True)
        lt[path + ".lora_B"] = b.clone().requires_grad_(True)
    lpairs = {path: (lt[path + ".lora_A"], lt[path + ".lora_B"]) for path in lora64}
    res["fd_kl"] = fd_check(lambda: preserve_loss(cfg, p64, seqs, lpairs, scale)[0], lt, gen,
                            per_tensor=2)
    # the KL of one sequence with PyTorch's kl_div (input log p, target log p_base)
    inp = seqs[0][:-1][None]
    logp = torch.log_softmax(forward(cfg, p64, inp, lora64, scale), dim=-1)
    logq = torch.log_softmax(forward(cfg, p64, inp), dim=-1)
    mine = (logq.exp() * (logq - logp)).sum()
    res["kl_div"] = abs(mine.item() - F.kl_div(logp, logq, reduction="sum", log_target=True).item())
    # B = 0: the adapted model is the base, so KL is exactly 0
    zero = {path: (a, torch.zeros_like(b)) for path, (a, b) in lora64.items()}
    res["kl_b_zero"] = abs(preserve_loss(cfg, p64, seqs, zero, scale)[2].item())
    # one padded batch (inputs padded with token 0 after each sequence) gives the same
    # log-probs at every real position (causality), so padding may not change the term
    T = max(len(s) for s in seqs) - 1
    padded = torch.zeros(len(seqs), T, dtype=torch.int64)
    for b, s in enumerate(seqs):
        padded[b, :len(s) - 1] = s[:-1]
    lp_pad = torch.log_softmax(forward(cfg, p64, padded, lora64, scale), dim=-1)
    err = 0.0
    for b, s in enumerate(seqs):
        lp = torch.log_softmax(forward(cfg, p64, s[:-1][None], lora64, scale), dim=-1)[0]
        err = max(err, (lp - lp_pad[b, :len(s) - 1]).abs().max().item())
    res["kl_padding"] = err
    return res


# ---------------------------------------------------------------------------------------
# safetensors writer
# ---------------------------------------------------------------------------------------

DTYPES = {torch.float32: ("F32", "<f4"), torch.int32: ("I32", "<i4")}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    code, fmt = DTYPES[t.dtype]
    data = t.numpy().astype(fmt, copy=False).tobytes(order="C")
    assert len(data) == t.numel() * 4
    return code, data


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) in file order; metadata: str -> str."""
    header = {"__metadata__": metadata}
    chunks = []
    off = 0
    for name, t in tensors:
        code, data = tensor_bytes(t)
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return 8 + len(hj) + off


def read_safetensors(path):
    """Minimal reader used to re-check the written file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__")
    data = raw[8 + n:]
    out = {}
    end = 0
    for name, info in header.items():
        b, e = info["data_offsets"]
        assert b == end, "gap before " + name
        end = e
        dt = {"F32": torch.float32, "I32": torch.int32}[info["dtype"]]
        out[name] = torch.frombuffer(bytearray(data[b:e]), dtype=dt).reshape(info["shape"])
    assert end == len(data)
    return out, meta


# ---------------------------------------------------------------------------------------

def shape_config(name):
    """configs/minigpt.json with the shape SHAPES[name]: (config without vocab, vocab)."""
    cfg, vocab = load_config()
    kw = dict(SHAPES[name])
    vocab = vocab + kw.pop("extra_vocab", [])
    assert len(set(vocab)) == len(vocab)
    cfg.update(kw)
    cfg["vocab_size"] = len(vocab)
    assert cfg["d_model"] % cfg["n_heads"] == 0 and (cfg["d_model"] // cfg["n_heads"]) % 2 == 0
    assert cfg["d_ff"] != 4 * cfg["d_model"]
    return cfg, vocab


def make_shape_batch(cfg):
    """BATCH_SHAPES rows filling the whole context; token 0 and V-1 appear, some targets
    are masked (row 0: none; row 1: the first third; row 2: all but the last 5)."""
    V, T = cfg["vocab_size"], cfg["context"]
    tokens = torch.randint(0, V, (BATCH_SHAPES, T), dtype=torch.int64)
    tokens[0, T // 4] = 0
    tokens[1, 3] = V - 1
    targets = torch.empty_like(tokens)
    targets[:, :-1] = tokens[:, 1:]
    targets[:, -1] = torch.randint(0, V, (BATCH_SHAPES,), dtype=torch.int64)
    targets[1, :T // 3] = -1
    targets[2, :T - 5] = -1
    return tokens, targets


def write_shape(name, out_path):
    """The fixture of one shape of the matrix: weights, batch, logits, loss, every gradient and
    the LoRA case, after the same self-checks as the default model (fewer elements)."""
    cfg, vocab = shape_config(name)
    torch.manual_seed(SEED + 1 + sorted(SHAPES).index(name))
    params32 = draw_params(cfg)
    tokens, targets = make_shape_batch(cfg)
    lora32 = draw_lora(cfg, params32, LORA_R)
    scale = LORA_ALPHA / LORA_R
    p64 = {k: v.double() for k, v in params32.items()}
    lora64 = {k: (a.double(), b.double()) for k, (a, b) in lora32.items()}

    checks = self_checks(cfg, p64, lora64, scale, tokens, targets, per_tensor=1)
    tol = {"rope": 1e-12, "merge": 1e-12, "b_zero": 0.0, "gelu": 1e-14, "ce": 1e-12,
           "causal": 0.0}
    for k, lim in tol.items():
        assert checks[k] <= lim, (name, k, checks[k])
    for k in ("fd_base", "fd_lora"):
        assert checks[k][0] < 1e-7, (name, k, checks[k])
    assert checks["gradcheck"]

    pg = {k: v.clone().requires_grad_(True) for k, v in p64.items()}
    logits = forward(cfg, pg, tokens)
    loss = masked_mean_ce(logits, targets)
    grads = torch.autograd.grad(loss, list(pg.values()))
    lg = {path: (a.clone().requires_grad_(True), b.clone().requires_grad_(True))
          for path, (a, b) in lora64.items()}
    lora_logits = forward(cfg, p64, tokens, lg, scale)
    lora_loss = masked_mean_ce(lora_logits, targets)
    lgrads = torch.autograd.grad(lora_loss, [t for path in lg for t in lg[path]])

    f32 = lambda t: t.detach().to(torch.float32)
    tensors = [(k, params32[k]) for k, _ in param_shapes(cfg)]
    tensors.append(("ref.tokens", tokens.to(torch.int32)))
    tensors.append(("ref.targets", targets.to(torch.int32)))
    tensors.append(("ref.logits", f32(logits)))
    tensors.append(("ref.loss", f32(loss).reshape(1)))
    for (k, _), g in zip(param_shapes(cfg), grads):
        tensors.append(("ref.grad." + k, f32(g)))
    for path, (a, b) in lora32.items():
        tensors.append(("lora.%s.lora_A" % path, a))
        tensors.append(("lora.%s.lora_B" % path, b))
    tensors.append(("lora.logits", f32(lora_logits)))
    tensors.append(("lora.loss", f32(lora_loss).reshape(1)))
    gi = iter(lgrads)
    for path in lg:
        tensors.append(("lora.grad.%s.lora_A" % path, f32(next(gi))))
        tensors.append(("lora.grad.%s.lora_B" % path, f32(next(gi))))
    metadata = {
        "config": json.dumps(cfg, separators=(",", ":")),
        "vocab": json.dumps(vocab, separators=(",", ":")),
        "lora_r": str(LORA_R),
        "lora_alpha": str(LORA_ALPHA),
        "shape": name,
        "generator": GENERATOR,
        "torch_version": torch.__version__,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    size = write_safetensors(out_path, tensors, metadata)
    back, meta = read_safetensors(out_path)
    assert meta == metadata and list(back) == [n for n, _ in tensors]
    for n, t in tensors:
        assert torch.equal(back[n], t.detach().contiguous()), n
    with open(out_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    print("shape %s: V %d C %d NH %d L %d F %d context %d; batch %dx%d; loss %.6f, lora loss %.6f"
          % (name, cfg["vocab_size"], cfg["d_model"], cfg["n_heads"], cfg["n_layers"],
             cfg["d_ff"], cfg["context"], BATCH_SHAPES, cfg["context"], loss.item(),
             lora_loss.item()))
    print("  self-checks: finite differences base %.2e, lora %.2e; rope %.2e, merge %.2e"
          % (checks["fd_base"][0], checks["fd_lora"][0], checks["rope"], checks["merge"]))
    print("  wrote %s: %d tensors, %d bytes, sha256 %s" % (out_path, len(tensors), size, sha))


DORA_OUT = os.path.join(os.path.dirname(DEFAULT_OUT), "reference-dora.safetensors")


def write_dora(out_path):
    """The DoRA case (PEFT's use_dora) on the default model: every Linear adapted with r=4,
    alpha=8, A and B random (B != 0), m = ||W|| * (1 + 0.3 N(0,1)) per output row so that
    m/||W + sBA|| is away from 1. Logits, loss and the gradients of A, B and m with the weight
    norm detached (PEFT, DoRA paper section 4.3), and the logits of the merged model
    W' = m * (W + sBA)/||W + sBA||, which must equal the adapter's."""
    torch.manual_seed(SEED + 100)
    cfg, vocab = load_config()
    params32 = draw_params(cfg)
    tokens, targets = make_shape_batch(cfg)
    lora32 = draw_lora(cfg, params32, LORA_R)
    scale = LORA_ALPHA / LORA_R
    dora32 = {}
    for path, (a, b) in lora32.items():
        w = params32[path + ".weight"]
        m = torch.linalg.norm(w, dim=1) * (1.0 + 0.3 * torch.randn(w.shape[0], dtype=torch.float32))
        dora32[path] = (a, b, m.contiguous())
    p64 = {k: v.double() for k, v in params32.items()}
    dg = {path: tuple(t.double().clone().requires_grad_(True) for t in abm)
          for path, abm in dora32.items()}
    logits = forward(cfg, p64, tokens, dg, scale)
    loss = masked_mean_ce(logits, targets)
    grads = torch.autograd.grad(loss, [t for path in dg for t in dg[path]])

    # self-checks: merged weights give the same logits; B = 0 with m = ||W|| is the base
    merged = dict(p64)
    for path, (a, b, m) in dg.items():
        w = p64[path + ".weight"] + scale * (b.detach() @ a.detach())
        merged[path + ".weight"] = (m.detach() / torch.linalg.norm(w, dim=1))[:, None] * w
    merge_err = (logits - forward(cfg, merged, tokens)).abs().max().item()
    assert merge_err < 1e-12, merge_err
    step0 = {path: (a.double(), torch.zeros_like(b.double()),
                    torch.linalg.norm(p64[path + ".weight"], dim=1))
             for path, (a, b, m) in dora32.items()}
    step0_err = (forward(cfg, p64, tokens, step0, scale) - forward(cfg, p64, tokens)).abs().max().item()
    assert step0_err < 1e-12, step0_err
    # the detached gradient is not the full one: m's is, A's and B's differ
    full = {path: tuple(t.double().clone().requires_grad_(True) for t in abm)
            for path, abm in dora32.items()}

    def full_linear_forward():
        saved = globals()["linear"]

        def undetached(h, p, path, lora, scale_, bias):
            w = p[path + ".weight"]
            a, b, m = lora[path]
            wp = w + scale_ * (b @ a)
            y = h @ ((m / torch.linalg.norm(wp, dim=1))[:, None] * wp).t()
            return y + p[path + ".bias"] if bias else y
        globals()["linear"] = undetached
        try:
            return forward(cfg, p64, tokens, full, scale)
        finally:
            globals()["linear"] = saved
    full_loss = masked_mean_ce(full_linear_forward(), targets)
    assert abs(full_loss.item() - loss.item()) < 1e-12
    fgrads = torch.autograd.grad(full_loss, [t for path in full for t in full[path]])
    detach_gap = max((g1 - g2).abs().max().item() for g1, g2 in zip(grads, fgrads))

    f32 = lambda t: t.detach().to(torch.float32)
    tensors = [(k, params32[k]) for k, _ in param_shapes(cfg)]
    tensors.append(("ref.tokens", tokens.to(torch.int32)))
    tensors.append(("ref.targets", targets.to(torch.int32)))
    for path, (a, b, m) in dora32.items():
        tensors.append(("dora.%s.lora_A" % path, a))
        tensors.append(("dora.%s.lora_B" % path, b))
        tensors.append(("dora.%s.lora_magnitude_vector" % path, m))
    tensors.append(("dora.logits", f32(logits)))
    tensors.append(("dora.loss", f32(loss).reshape(1)))
    gi = iter(grads)
    for path in dg:
        for which in ("lora_A", "lora_B", "lora_magnitude_vector"):
            tensors.append(("dora.grad.%s.%s" % (path, which), f32(next(gi))))
    metadata = {
        "config": json.dumps(cfg, separators=(",", ":")),
        "vocab": json.dumps(vocab, separators=(",", ":")),
        "lora_r": str(LORA_R),
        "lora_alpha": str(LORA_ALPHA),
        "use_dora": "true",
        "generator": GENERATOR,
        "torch_version": torch.__version__,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    size = write_safetensors(out_path, tensors, metadata)
    back, meta = read_safetensors(out_path)
    assert meta == metadata and list(back) == [n for n, _ in tensors]
    for n, t in tensors:
        assert torch.equal(back[n], t.detach().contiguous()), n
    with open(out_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    print("dora: r=%d alpha=%d s=%g, batch %dx%d; loss %.6f; merged vs adapter logits %.2e, "
          "step 0 vs base %.2e; detached vs full gradient max gap %.3e"
          % (LORA_R, LORA_ALPHA, scale, BATCH_SHAPES, cfg["context"], loss.item(), merge_err,
             step0_err, detach_gap))
    print("  wrote %s: %d tensors, %d bytes, sha256 %s" % (out_path, len(tensors), size, sha))


def main(argv):
    torch.set_num_threads(1)                             # fixed reduction order
    if len(argv) > 1 and argv[1] == "--dora":
        if len(argv) != 3:
            sys.exit("usage: gen_reference.py --dora OUTPUT")
        write_dora(os.path.abspath(argv[2]))
        return
    if len(argv) > 1 and argv[1] == "--shape":
        if len(argv) != 4 or argv[2] not in SHAPES:
            sys.exit("usage: gen_reference.py --shape {%s} OUTPUT" % ",".join(sorted(SHAPES)))
        write_shape(argv[2], os.path.abspath(argv[3]))
        return
    if len(argv) == 1:
        for name in sorted(SHAPES):
            write_shape(name, os.path.join(os.path.dirname(DEFAULT_OUT),
                                           "reference-%s.safetensors" % name))
        write_dora(DORA_OUT)
    write_default(os.path.abspath(argv[1]) if len(argv) > 1 else DEFAULT_OUT)


def write_default(out_path):
    torch.set_num_threads(1)                             # fixed reduction order
    torch.manual_seed(SEED)
    cfg, vocab = load_config()

    # all random draws, in this fixed order
    params32 = draw_params(cfg)
    tokens, targets = make_batch(cfg)
    lora32 = draw_lora(cfg, params32, LORA_R)
    scale = LORA_ALPHA / LORA_R

    p64 = {k: v.double() for k, v in params32.items()}
    lora64 = {k: (a.double(), b.double()) for k, (a, b) in lora32.items()}

    checks = self_checks(cfg, p64, lora64, scale, tokens, targets)
    tol = {"rope": 1e-12, "merge": 1e-12, "b_zero": 0.0, "gelu": 1e-14, "ce": 1e-12,
           "causal": 0.0}
    for k, lim in tol.items():
        assert checks[k] <= lim, (k, checks[k])
    for k in ("fd_base", "fd_lora"):
        assert checks[k][0] < 1e-7, (k, checks[k])
    assert checks["gradcheck"]
    kchecks = preserve_checks(cfg, p64, lora64, scale, tokens)
    assert kchecks["fd_kl"][0] < 1e-7, ("fd_kl", kchecks["fd_kl"])
    for k, lim in {"kl_div": 1e-12, "kl_b_zero": 0.0, "kl_padding": 1e-12}.items():
        assert kchecks[k] <= lim, (k, kchecks[k])

    # base case: logits, loss, gradients of every parameter, activations
    pg = {k: v.clone().requires_grad_(True) for k, v in p64.items()}
    acts = {}
    logits = forward(cfg, pg, tokens, acts=acts)
    loss = masked_mean_ce(logits, targets)
    grads = torch.autograd.grad(loss, list(pg.values()))

    # LoRA case: gradients w.r.t. A and B only (base frozen)
    lg = {path: (a.clone().requires_grad_(True), b.clone().requires_grad_(True))
          for path, (a, b) in lora64.items()}
    lora_logits = forward(cfg, p64, tokens, lg, scale)
    lora_loss = masked_mean_ce(lora_logits, targets)
    lflat = [t for path in lg for t in lg[path]]
    lgrads = torch.autograd.grad(lora_loss, lflat)

    f32 = lambda t: t.detach().to(torch.float32)
    tensors = [(k, params32[k]) for k, _ in param_shapes(cfg)]
    tensors.append(("ref.tokens", tokens.to(torch.int32)))
    tensors.append(("ref.targets", targets.to(torch.int32)))
    tensors.append(("ref.logits", f32(logits)))
    tensors.append(("ref.loss", f32(loss).reshape(1)))
    for (k, _), g in zip(param_shapes(cfg), grads):
        tensors.append(("ref.grad." + k, f32(g)))
    tensors.append(("ref.act.embed", f32(acts["embed"])))
    for i in range(cfg["n_layers"]):
        tensors.append(("ref.act.blocks.%d.q_rope" % i, f32(acts["blocks.%d.q_rope" % i])))
        tensors.append(("ref.act.blocks.%d.out" % i, f32(acts["blocks.%d.out" % i])))
    tensors.append(("ref.act.ln_f", f32(acts["ln_f"])))
    for path, (a, b) in lora32.items():
        tensors.append(("lora.%s.lora_A" % path, a))
        tensors.append(("lora.%s.lora_B" % path, b))
    tensors.append(("lora.logits", f32(lora_logits)))
    tensors.append(("lora.loss", f32(lora_loss).reshape(1)))
    gi = iter(lgrads)
    for path in lg:
        tensors.append(("lora.grad.%s.lora_A" % path, f32(next(gi))))
        tensors.append(("lora.grad.%s.lora_B" % path, f32(next(gi))))

    # KL case: the LoRA case's adapter, the preservation term on the first KL_N sequences
    seqs = kl_sequences(tokens)
    kg = {path: (a.clone().requires_grad_(True), b.clone().requires_grad_(True))
          for path, (a, b) in lora64.items()}
    kl_loss, kl_ce, kl_mean = preserve_loss(cfg, p64, seqs, kg, scale)
    kflat = [t for path in kg for t in kg[path]]
    kgrads = torch.autograd.grad(kl_loss, kflat)
    kl_tokens = torch.full((BATCH, tokens.shape[1]), -1, dtype=torch.int32)
    for b, s in enumerate(seqs):
        kl_tokens[b, :len(s)] = s.to(torch.int32)
    tensors.append(("kl.tokens", kl_tokens))
    tensors.append(("kl.lengths", torch.tensor(KL_LENGTHS, dtype=torch.int32)))
    tensors.append(("kl.n_prompt", torch.tensor(KL_PROMPT, dtype=torch.int32)))
    tensors.append(("kl.n_kl", torch.tensor([KL_N], dtype=torch.int32)))
    tensors.append(("kl.lambda", torch.tensor([KL_LAMBDA], dtype=torch.float32)))
    tensors.append(("kl.loss", f32(kl_loss).reshape(1)))
    tensors.append(("kl.ce", f32(kl_ce).reshape(1)))
    tensors.append(("kl.kl_mean", f32(kl_mean).reshape(1)))
    gi = iter(kgrads)
    for path in kg:
        tensors.append(("kl.grad.%s.lora_A" % path, f32(next(gi))))
        tensors.append(("kl.grad.%s.lora_B" % path, f32(next(gi))))

    metadata = {
        "config": json.dumps(cfg, separators=(",", ":")),
        "vocab": json.dumps(vocab, separators=(",", ":")),
        "lora_r": str(LORA_R),
        "lora_alpha": str(LORA_ALPHA),
        "generator": GENERATOR,
        "torch_version": torch.__version__,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    size = write_safetensors(out_path, tensors, metadata)

    # re-read and compare
    back, meta = read_safetensors(out_path)
    assert meta == metadata and list(back) == [n for n, _ in tensors]
    for n, t in tensors:
        assert torch.equal(back[n], t.detach().contiguous()), n
    with open(out_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    print("minilora reference (seed %d, torch %s, float64 compute, F32 storage)" % (SEED, torch.__version__))
    print("  base loss  %.9f   (unmasked targets: %d of %d)" %
          (loss.item(), int((targets >= 0).sum()), targets.numel()))
    print("  lora loss  %.9f   (r=%d, alpha=%d, s=%g; max |lora - base logit| %.4f)" %
          (lora_loss.item(), LORA_R, LORA_ALPHA, scale, checks["lora_delta"]))
    print("  self-checks: finite differences base max abs %.2e rel %.2e (%d elems), "
          "lora max abs %.2e rel %.2e (%d elems), gradcheck %s"
          % (*checks["fd_base"], *checks["fd_lora"], checks["gradcheck"]))
    print("               rope vs complex %.2e, lora vs merged %.2e, B=0 vs base %.2e, "
          "gelu %.2e, ce %.2e, causal %.2e"
          % (checks["rope"], checks["merge"], checks["b_zero"], checks["gelu"], checks["ce"],
             checks["causal"]))
    print("  kl case    L %.9f = ce %.9f + %g x kl %.9f (n_kl %d of %d, lengths %s)"
          % (kl_loss.item(), kl_ce.item(), KL_LAMBDA, kl_mean.item(), KL_N, len(KL_LENGTHS),
             KL_LENGTHS))
    print("  kl self-checks: finite differences max abs %.2e rel %.2e (%d elems), kl_div %.2e, "
          "B=0 kl %.2e, padded vs unpadded %.2e"
          % (*kchecks["fd_kl"], kchecks["kl_div"], kchecks["kl_b_zero"], kchecks["kl_padding"]))
    print("  model stats: mean max attention prob %.3f (uniform attention: %.3f), "
          "fc1 pre-activations negative %.1f%%"
          % (checks["att_max_mean"], checks["att_max_uniform"], 100 * checks["fc1_neg_frac"]))
    print("  wrote %s: %d tensors, %d bytes, sha256 %s" % (out_path, len(tensors), size, sha))


if __name__ == "__main__":
    main(sys.argv)
