#!/usr/bin/python3
"""gen_nf4_reference.py — an independent NumPy implementation of QLoRA's NF4 quantization.

Written from the QLoRA paper (Dettmers et al. 2023, §3 and Appendix E) and the layout stated in
include/formats/nf4.h, not from src/formats/nf4.c. It writes
tests/fixtures/nf4_reference.safetensors; tests/test_nf4.c quantizes the same inputs in C and
must get the same codes, scales and dequantized values bit for bit.

The algorithm, as implemented here:
  * blocks of 64 values (the last may be shorter); absmax = max |w| of the block (float32);
  * x = w / absmax in float32; the code is the NF4 value nearest to x, found by argmin over the
    16 exact distances |x - code| in float64 (np.argmin returns the first minimum, so a value
    exactly between two codes takes the lower one); an all-zero block takes code 7 (= 0.0);
  * two codes per byte, the even element in the high nibble; an odd length pads a 0 nibble;
  * dequantized: code value * absmax (float32);
  * double quantization of a tensor's absmax list: mean = (sum in float64, in order) / count,
    rounded to float32; centered = absmax - mean (float32); per block of 256 the scale
    s = max |centered|, q = rint(centered / s * 127) (float32, ties to even; s = 0 gives 0);
    dequantized as q / 127 * s + mean (float32, one operation at a time).

Run: /usr/bin/python3 tests/reference/gen_nf4_reference.py [OUTPUT]
Deterministic (seed 20261130): two runs give byte-identical files. Needs only NumPy.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np

# QLoRA, Appendix E: the NF4 data type (also the table bitsandbytes uses).
NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)
BLOCK = 64
DQ_BLOCK = 256
F32 = np.float32


def quantize(w):
    """w: float32 (n,) -> codes uint8 (n,), absmax float32 (blocks,)."""
    n = w.size
    nb = (n + BLOCK - 1) // BLOCK
    padded = np.zeros(nb * BLOCK, dtype=np.float32)
    padded[:n] = w
    blk = padded.reshape(nb, BLOCK)
    absmax = np.abs(blk).max(axis=1).astype(np.float32)
    safe = np.where(absmax > 0, absmax, F32(1.0)).astype(np.float32)
    x = (blk / safe[:, None]).astype(np.float32)
    dist = np.abs(x.astype(np.float64)[:, :, None] - NF4.astype(np.float64)[None, None, :])
    codes = np.argmin(dist, axis=2).astype(np.uint8)
    codes[absmax == 0, :] = 7
    return codes.reshape(-1)[:n], absmax


def pack(codes):
    c = codes.astype(np.uint8)
    if c.size % 2:
        c = np.concatenate([c, np.zeros(1, dtype=np.uint8)])
    return ((c[0::2] << 4) | c[1::2]).astype(np.uint8)


def dequantize(codes, absmax):
    rep = np.repeat(absmax, BLOCK)[:codes.size]
    return (NF4[codes] * rep).astype(np.float32)


def double_quantize(absmax):
    acc = 0.0
    for v in absmax:
        acc += float(v)
    mean = F32(acc / absmax.size)
    centered = (absmax - mean).astype(np.float32)
    nd = (absmax.size + DQ_BLOCK - 1) // DQ_BLOCK
    q = np.zeros(absmax.size, dtype=np.int8)
    scale = np.zeros(nd, dtype=np.float32)
    for b in range(nd):
        c = centered[b * DQ_BLOCK:(b + 1) * DQ_BLOCK]
        s = F32(np.abs(c).max())
        scale[b] = s
        if s > 0:
            t = (c / s).astype(np.float32) * F32(127.0)
            q[b * DQ_BLOCK:(b + 1) * DQ_BLOCK] = np.clip(np.rint(t), -127, 127).astype(np.int8)
    return q, scale, mean


def double_dequantize(q, scale, mean):
    s = np.repeat(scale, DQ_BLOCK)[:q.size]
    t = (q.astype(np.float32) / F32(127.0)).astype(np.float32)
    t = (t * s).astype(np.float32)
    return (t + mean).astype(np.float32)


def make_cases(rng):
    cases = {}
    # a: odd length (partial last block, padding nibble), an all-zero block, a block of
    # midpoints and their float32 neighbours (ties and near-ties) at absmax 1, a block of exact
    # code values at absmax 3.7, then Gaussian values.
    a = (rng.standard_normal(1001) * 0.1).astype(np.float32)
    a[0:64] = 0.0
    mids = ((NF4[:-1].astype(np.float64) + NF4[1:].astype(np.float64)) / 2).astype(np.float32)
    special = np.concatenate([
        [F32(1.0)], mids, np.nextafter(mids, F32(2.0)), np.nextafter(mids, F32(-2.0)), NF4,
        [F32(-0.5), F32(0.25)]]).astype(np.float32)
    assert special.size == 64
    a[64:128] = special
    a[128:192] = np.tile(NF4, 4) * F32(3.7)
    cases["a"] = a
    # b: 301 blocks with log-normal scales: two blocks of 256 for double quantization.
    n = 64 * 300 + 10
    scales = np.exp(rng.standard_normal((n + 63) // 64) * 0.7).astype(np.float32) * F32(0.1)
    b = (rng.standard_normal(n).astype(np.float32) * np.repeat(scales, 64)[:n]).astype(np.float32)
    cases["b"] = b
    # c: fewer values than a block.
    cases["c"] = np.array([0.5, -0.25, 0.1], dtype=np.float32)
    # d: every block has the same absmax: the double-quantization scale is 0.
    d = (rng.uniform(-0.4, 0.4, 256)).astype(np.float32)
    d[0::64] = 0.5
    cases["d"] = d
    return cases


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


def self_check(w, codes, absmax, deq, q, scale, mean, adq):
    gaps = np.diff(NF4.astype(np.float64))
    half = gaps.max() / 2
    rep = np.repeat(absmax, BLOCK)[:w.size].astype(np.float64)
    err = np.abs(w.astype(np.float64) - deq)
    assert np.all(err <= rep * half * (1 + 1e-6) + 1e-30), "NF4 error bound"
    assert np.all(codes <= 15)
    dq_err = np.abs(adq.astype(np.float64) - absmax)
    srep = np.repeat(scale, DQ_BLOCK)[:absmax.size].astype(np.float64)
    assert np.all(dq_err <= srep / 254 * (1 + 1e-5) + 1e-6 * abs(float(mean))), "DQ bound"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "nf4_reference.safetensors"))
    rng = np.random.default_rng(20261130)
    tensors = {}
    for key, w in make_cases(rng).items():
        codes, absmax = quantize(w)
        deq = dequantize(codes, absmax)
        q, scale, mean = double_quantize(absmax)
        adq = double_dequantize(q, scale, mean)
        deq_dq = dequantize(codes, adq)
        self_check(w, codes, absmax, deq, q, scale, mean, adq)
        packed = pack(codes)
        tensors[key + ".w"] = ("F32", [w.size], w.astype("<f4").tobytes())
        tensors[key + ".nf4"] = ("U8", [packed.size], packed.tobytes())
        tensors[key + ".absmax"] = ("F32", [absmax.size], absmax.astype("<f4").tobytes())
        tensors[key + ".absmax_q"] = ("I8", [q.size], q.tobytes())
        tensors[key + ".absmax_scale"] = ("F32", [scale.size], scale.astype("<f4").tobytes())
        tensors[key + ".absmax_mean"] = ("F32", [1], np.array([mean], "<f4").tobytes())
        if w.size < 5000:  # the long case checks codes and scales only (fixture size)
            tensors[key + ".deq"] = ("F32", [w.size], deq.astype("<f4").tobytes())
            tensors[key + ".deq_dq"] = ("F32", [w.size], deq_dq.astype("<f4").tobytes())
        print(f"case {key}: n={w.size} blocks={absmax.size} max|err|={np.abs(w - deq).max():.4g}"
              f" (double-quant {np.abs(w - deq_dq).max():.4g}) codes used={np.unique(codes).size}")
    meta = {"generator": "tests/reference/gen_nf4_reference.py", "block_size": str(BLOCK),
            "dq_block_size": str(DQ_BLOCK), "cases": "a,b,c,d"}
    data = write_safetensors(out, tensors, meta)
    print(f"wrote {out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
