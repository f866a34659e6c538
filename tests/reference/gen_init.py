#!/usr/bin/python3
"""Independent reference for lora-train --init pissa and olora (tests/test_lora_init.c).

Written from PEFT's LoraLayer.pissa_init / olora_init (peft/tuners/lora/layer.py), not from the
C sources: for a Linear weight W (out,in) and scale s,
  pissa:  V, S, Uh = torch.linalg.svd(W, full_matrices=False); S_r = S[:r] / s;
          A = diag(sqrt(S_r)) @ Uh[:r];  B = V[:, :r] @ diag(sqrt(S_r));  W_res = W - s * B @ A
  olora:  Q, R = torch.linalg.qr(W);  A = R[:r];  B = Q[:, :r];  W_res = W - s * B @ A
computed here in float64 from float32 weights (PEFT runs the same formulas in float32).

Three weights, one per shape of Mini-GPT's Linears: q (64,64), fc1 (256,64), fc2 (64,256).
Their entries come from a counter-based generator that the C test repeats (weight(): splitmix64
of seed*1000003 + row-major index, top 24 bits u, w = (u/2^24 - 0.5)/2, exact in float32), so
the fixture need not hold them. r = 4, alpha = 8, s = alpha/r = 2 (plain LoRA scale).
Stored per weight <w> in {q, fc1, fc2}: <w>.S (every singular value), <w>.Rdiag (the diagonal
of the thin QR's R: LAPACK's Householder sign convention), <w>.pissa.A, <w>.pissa.B (each
singular pair's sign flipped so that the largest-magnitude entry of A's row is positive: the
SVD's signs are arbitrary, the normalized factors are not), <w>.olora.A, <w>.olora.B. All F32.

Usage:  /usr/bin/python3 tests/reference/gen_init.py [OUTPUT]
        (default tests/fixtures/init-reference.safetensors). Needs Debian's python3-torch and
        python3-numpy. Deterministic: two runs give byte-identical files.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

SEED = 20261130
M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def weight(seed, rows, cols):
    """The test weight: the same bits as weight() in tests/test_lora_init.c."""
    u = [splitmix64((seed * 1000003 + n) & M64) >> 40 for n in range(rows * cols)]
    return torch.tensor([(v / 16777216.0 - 0.5) / 2 for v in u], dtype=torch.float32).reshape(rows, cols)


def sign_normalized(A, B):
    """Flips row t of A and column t of B together so that A[t]'s largest |entry| is positive."""
    A, B = A.clone(), B.clone()
    for t in range(A.shape[0]):
        if A[t, torch.argmax(torch.abs(A[t]))] < 0:
            A[t] = -A[t]
            B[:, t] = -B[:, t]
    return A, B
R, ALPHA = 4, 8.0
SCALE = ALPHA / R
SHAPES = [("q", 64, 64), ("fc1", 256, 64), ("fc2", 64, 256)]


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    chunks, off = [], 0
    for name, t in tensors:
        data = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((-len(hj)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(chunks))
    os.replace(tmp, path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/init-reference.safetensors"
    tensors = []
    for k, (name, o, i) in enumerate(SHAPES):
        w32 = weight(SEED + k, o, i)
        w = w32.to(torch.float64)
        # pissa (PEFT's formula)
        V, S, Uh = torch.linalg.svd(w, full_matrices=False)
        Sr = S[:R] / SCALE
        A = torch.diag(torch.sqrt(Sr)) @ Uh[:R]
        B = V[:, :R] @ torch.diag(torch.sqrt(Sr))
        p_sba = SCALE * B @ A
        p_res = w - p_sba
        # olora (PEFT's formula)
        Q, Rm = torch.linalg.qr(w)
        oa, ob = Rm[:R], Q[:, :R]
        o_res = w - SCALE * ob @ oa
        # self-checks against numpy, an independent LAPACK caller
        sn = np.linalg.svd(w.numpy(), compute_uv=False)
        assert np.allclose(sn, S.numpy(), rtol=1e-12, atol=1e-12), "svd: torch and numpy differ"
        qn, rn = np.linalg.qr(w.numpy())
        assert np.allclose(np.abs(rn), np.abs(Rm.numpy()), atol=1e-12), "qr: torch and numpy differ"
        assert torch.allclose(p_res + p_sba, w, atol=1e-12) and torch.allclose(o_res + SCALE * ob @ oa, w, atol=1e-12)
        pa, pb = sign_normalized(A, B)
        for key, t in [("S", S), ("Rdiag", torch.diagonal(Rm)), ("pissa.A", pa), ("pissa.B", pb),
                       ("olora.A", oa), ("olora.B", ob)]:
            tensors.append(("%s.%s" % (name, key), t.to(torch.float32).numpy()))
    write_safetensors(out, tensors, {"generator": "tests/reference/gen_init.py", "seed": str(SEED),
                                     "r": str(R), "lora_alpha": str(ALPHA), "scale": str(SCALE)})
    print("wrote %s (%d tensors)" % (out, len(tensors)))


if __name__ == "__main__":
    main()
