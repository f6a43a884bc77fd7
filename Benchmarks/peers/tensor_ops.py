#!/usr/bin/env python3
"""PyTorch peer of `pilot-bench`: the same ops, shapes, thread count and
timing method (one warm-up call, then the median of N timed calls on
CLOCK_MONOTONIC), printed as the same JSON record (schema "pilot-bench/1")
so `pilot-bench report` can merge the two.

Every case mirrors the one of the same `op` name in
Benchmarks/pilot-bench/TensorOpCases.swift; keep the two in step. Only the
times are read from this record: FLOP and byte counts, yardsticks and
targets come from ours.

Usage: python3 Benchmarks/peers/tensor_ops.py [--threads N] [--reps N] [--only OP,OP] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SCHEMA = "pilot-bench/1"

# Stable Diffusion 1.x's first UNet level at 512x512 (see TensorOpCases.swift).
N_GEMM = 2048
IMAGE = (2, 320, 64, 64)
TOKENS, HEADS, HEAD_DIM, TEXT_TOKENS = 4096, 8, 40, 77
CHANNELS = HEADS * HEAD_DIM
COPY_MIB = 256


def uniform(*shape, scale=1.0, requires_grad=False):
    x = (torch.rand(*shape, dtype=torch.float32) * 2 - 1) * scale
    return x.requires_grad_(requires_grad)


def heads_attention(q, k, v):
    """diffusers' layout: [B, N, heads*d] -> [B, heads, N, d] -> SDPA -> back."""
    b, nq, c = q.shape
    nk = k.shape[1]
    split = lambda t, n: t.view(b, n, HEADS, c // HEADS).transpose(1, 2)
    out = F.scaled_dot_product_attention(split(q, nq), split(k, nk), split(v, nk))
    return out.transpose(1, 2).reshape(b, nq, c)


# Each case: op name -> (shape text, prepare), where prepare() makes the inputs
# and returns the call to time.

def case_sgemm():
    a, b = uniform(N_GEMM, N_GEMM), uniform(N_GEMM, N_GEMM)
    c = torch.empty(N_GEMM, N_GEMM)
    return lambda: torch.mm(a, b, out=c)   # MKL sgemm into a preallocated C


def case_matmul():
    a, b = uniform(N_GEMM, N_GEMM), uniform(N_GEMM, N_GEMM)
    return lambda: torch.matmul(a, b)


def conv_inputs(requires_grad=False):
    x = uniform(*IMAGE, requires_grad=requires_grad)
    w = uniform(320, 320, 3, 3, scale=0.05, requires_grad=requires_grad)
    return x, w, uniform(320)


def case_conv2d():
    x, w, b = conv_inputs()
    return lambda: F.conv2d(x, w, b, padding=1)


def case_conv2d_bwd():
    x, w, b = conv_inputs(requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    dy = uniform(*y.shape)
    return lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True)


def case_attention():
    q, k, v = (uniform(1, TOKENS, CHANNELS) for _ in range(3))
    return lambda: heads_attention(q, k, v)


def case_cross_attention():
    q = uniform(1, TOKENS, CHANNELS)
    k, v = uniform(1, TEXT_TOKENS, CHANNELS), uniform(1, TEXT_TOKENS, CHANNELS)
    return lambda: heads_attention(q, k, v)


def case_attention_bwd():
    q, k, v = (uniform(1, TOKENS, CHANNELS, requires_grad=True) for _ in range(3))
    y = heads_attention(q, k, v)
    dy = uniform(*y.shape)
    return lambda: torch.autograd.grad(y, (q, k, v), dy, retain_graph=True)


def case_copy():
    n = COPY_MIB << 18
    src, dst = torch.ones(n), torch.zeros(n)
    return lambda: dst.copy_(src)


def case_group_norm():
    x, w, b = uniform(*IMAGE), uniform(320), uniform(320)
    return lambda: F.group_norm(x, 32, w, b, eps=1e-5)


def case_layer_norm():
    x, w, b = uniform(2, TOKENS, CHANNELS), uniform(CHANNELS), uniform(CHANNELS)
    return lambda: F.layer_norm(x, (CHANNELS,), w, b, eps=1e-5)


def case_softmax():
    x = uniform(HEADS, TOKENS, TEXT_TOKENS, scale=4)
    return lambda: torch.softmax(x, dim=-1)


def case_silu():
    x = uniform(*IMAGE, scale=4)
    return lambda: F.silu(x)


def case_geglu():
    x = uniform(2, TOKENS, 8 * CHANNELS, scale=4)

    def call():
        h, gate = x.chunk(2, dim=-1)   # diffusers' GEGLU after its projection
        return h * F.gelu(gate)
    return call


def case_add_bcast():
    x, temb = uniform(*IMAGE), uniform(IMAGE[0], IMAGE[1], 1, 1)
    return lambda: x + temb


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


CONV_FLOPS = 2 * IMAGE[0] * 320 * IMAGE[2] * IMAGE[3] * 320 * 9
ATTN_FLOPS = 4 * HEADS * TOKENS * TOKENS * HEAD_DIM
ROUND_TRIP = lambda *shape: 2 * numel(shape) * 4   # read once + write once, float32

# (op, shape text, work kind, work per call, yardstick, prepare); the counts
# repeat TensorOpCases.swift's so the report can check the two agree.
CASES = [
    ("sgemm", f"{N_GEMM}x{N_GEMM}x{N_GEMM} torch.mm(out=)", "flops", 2 * N_GEMM**3, "sgemm", case_sgemm),
    ("matmul", f"[{N_GEMM},{N_GEMM}]@[{N_GEMM},{N_GEMM}]", "flops", 2 * N_GEMM**3, "sgemm", case_matmul),
    ("conv2d", "x[2,320,64,64] w[320,320,3,3] pad1 +bias", "flops", CONV_FLOPS, "sgemm", case_conv2d),
    ("attention", f"q=k=v[1,{TOKENS},{CHANNELS}] {HEADS} heads d{HEAD_DIM}", "flops", ATTN_FLOPS, "sgemm",
     case_attention),
    ("cross_attention", f"q[1,{TOKENS},{CHANNELS}] k=v[1,{TEXT_TOKENS},{CHANNELS}]", "flops",
     4 * HEADS * TOKENS * TEXT_TOKENS * HEAD_DIM, "sgemm", case_cross_attention),
    ("attention_bwd", "dq,dk,dv of attention above", "flops", 2.5 * ATTN_FLOPS, "sgemm", case_attention_bwd),
    ("conv2d_bwd", "dx+dW of conv2d above", "flops", 2 * CONV_FLOPS, "sgemm", case_conv2d_bwd),
    ("copy", f"copy_ {COPY_MIB} MiB", "bytes", 2 * COPY_MIB << 20, "copy", case_copy),
    ("group_norm", "[2,320,64,64] 32 groups +affine", "bytes", ROUND_TRIP(*IMAGE), "copy", case_group_norm),
    ("layer_norm", f"[2,{TOKENS},{CHANNELS}] +affine", "bytes", ROUND_TRIP(2, TOKENS, CHANNELS), "copy",
     case_layer_norm),
    ("softmax", f"[{HEADS},{TOKENS},{TEXT_TOKENS}] last dim", "bytes", ROUND_TRIP(HEADS, TOKENS, TEXT_TOKENS),
     "copy", case_softmax),
    ("silu", "[2,320,64,64]", "bytes", ROUND_TRIP(*IMAGE), "copy", case_silu),
    ("geglu", f"[2,{TOKENS},{8 * CHANNELS}] -> h*gelu(gate)", "bytes", 3 * TOKENS * 8 * CHANNELS * 4, "copy",
     case_geglu),
    ("add_bcast", "[2,320,64,64] + [2,320,1,1]", "bytes", (2 * numel(IMAGE) + IMAGE[0] * IMAGE[1]) * 4, "copy",
     case_add_bcast),
]


def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) * 1e-9


def samples(call, reps, warmups=1):
    for _ in range(warmups):
        call()
    out = []
    for _ in range(reps):
        start = now()
        call()
        out.append((now() - start) * 1e3)
    return out


def library():
    cfg = torch.__config__.show()
    blas = "MKL" if "BLAS_INFO=mkl" in cfg else "BLAS?"
    dnn = " + oneDNN" if torch.backends.mkldnn.is_available() else ""
    return f"torch {torch.__version__} ({blas}{dnn}, CPU capability {torch.backends.cpu.get_cpu_capability()})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", type=lambda s: set(s.split(",")), default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = [case[0] for case in CASES]
    if args.only and not args.only <= set(names):
        parser.error(f"unknown op(s) {sorted(args.only - set(names))}; known: {names}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for name, shape, kind, work, reference, prepare in CASES:
        if args.only and name not in args.only:
            continue
        # Forward cases run without autograd; backward cases build their graph in prepare().
        with torch.set_grad_enabled(name.endswith("_bwd")):
            call = prepare()
            times = samples(call, args.reps)
            del call
        ms = statistics.median(times)
        print(f"{name:<16} {ms:9.2f} ms", file=sys.stderr)
        results.append({"op": name, "shape": shape, kind: float(work), "reference": reference,
                        "median_ms": ms, "samples_ms": times})

    record = {"schema": SCHEMA, "implementation": "pytorch", "library": library(),
              "threads": torch.get_num_threads(), "reps": args.reps, "results": results}
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for r in results:
            print(f"{r['op']:<16} {r['shape']:<44} {r['median_ms']:9.2f} ms")


if __name__ == "__main__":
    main()
