#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures used by the Swift tensor tests.

    python make_tensor_fixtures.py            # (re)write Tests/Fixtures/tensors/*.safetensors
    python make_tensor_fixtures.py --check    # re-read every file, verify heads against detrand

One safetensors file per case. Inputs are not stored: the Swift side regenerates
them from the "inputs" metadata with the splitmix64-v1 generator (detrand.py);
only an 8-value head of each input is stored, as "<input>.head", so Swift can
check that its generator agrees. Every reference is computed in float64 from
the float32 inputs and stored as F32. See README.md for the schema.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detrand import GENERATOR, detrand  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "Fixtures" / "tensors"
SIZE_LIMIT = 3_000_000  # bytes, whole fixtures folder
HEAD = 8

VERSIONS = {
    "torch": torch.__version__,
    "numpy": np.__version__,
    "safetensors": safetensors.__version__,
}


class Case:
    """Collects inputs (as metadata + head), outputs and parameters of one case."""

    def __init__(self, name: str, op: str, params: dict | None = None):
        self.name = name
        self.op = op
        self.params = dict(params or {})
        self.inputs: dict[str, dict] = {}
        self.tensors: dict[str, np.ndarray] = {}

    def input(self, name: str, shape, seed: int, scale: float = 1.0, offset: float = 0.0,
              grad: bool = True) -> torch.Tensor:
        if name in self.inputs:
            raise ValueError(f"{self.name}: duplicate input {name}")
        if seed in ALL_SEEDS:
            raise ValueError(f"{self.name}: seed {seed} already used")
        ALL_SEEDS.add(seed)
        x32 = detrand(shape, seed, scale, offset)
        self.inputs[name] = {"shape": [int(s) for s in shape], "seed": int(seed),
                             "scale": float(scale), "offset": float(offset)}
        self.tensors[f"{name}.head"] = x32.reshape(-1)[:HEAD].copy()
        t = torch.from_numpy(x32).to(torch.float64)
        return t.requires_grad_(grad)

    def store(self, name: str, t: torch.Tensor) -> None:
        if name in self.tensors:
            raise ValueError(f"{self.name}: duplicate tensor {name}")
        t = t.detach()
        if t.dtype != torch.float64:
            raise TypeError(f"{self.name}/{name}: reference must be float64, got {t.dtype}")
        if name in self.params.get("row_strided", ()):
            axis, stride = self.params["row_axis"], self.params["row_stride"]
            t = t.index_select(axis, torch.arange(0, t.shape[axis], stride))
        self.tensors[name] = np.ascontiguousarray(t.numpy().astype(np.float32))

    def store_grads(self, **tensors: torch.Tensor) -> None:
        for name, t in tensors.items():
            self.store(f"grad.{name}", t.grad)

    def metadata(self) -> dict[str, str]:
        return {
            "op": self.op,
            "params": json.dumps(self.params),
            "inputs": json.dumps(self.inputs),
            "generator": GENERATOR,
            "versions": json.dumps(VERSIONS),
        }

    def write(self, outdir: Path) -> Path:
        for name in self.params.get("row_strided", ()):
            if name not in self.tensors:
                raise ValueError(f"{self.name}: row_strided names missing tensor {name}")
        path = outdir / f"{self.name}.safetensors"
        blob = safetensors.numpy.save(self.tensors, metadata=self.metadata())
        path.write_bytes(canonical_header(blob))
        return path


META_ORDER = ("op", "params", "inputs", "generator", "versions")


def canonical_header(blob: bytes) -> bytes:
    """Rewrites the header of a safetensors blob in a fixed key order.

    safetensors writes "__metadata__" and the tensor entries in hash-map order,
    which changes from run to run; re-emitting the same JSON with the metadata
    in META_ORDER and the tensors in data-offset order makes regenerated files
    byte-identical. The data section is untouched.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__")
    out = {"__metadata__": {k: meta[k] for k in META_ORDER}}
    for name in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        out[name] = header[name]
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:
        raise AssertionError("canonical header is longer than the original")
    text += b" " * (n - len(text))  # same length, so the 8-byte alignment is kept
    return blob[:8] + text + blob[8 + n:]


ALL_SEEDS: set[int] = set()  # seeds are distinct across all cases


def strided(stride: int, axis: int, names: list[str]) -> dict:
    return {"row_stride": stride, "row_axis": axis, "row_strided": names}


# --------------------------------------------------------------------------- cases

def conv2d_case(name, seed, x_shape, w_shape, bias, stride, padding, groups, w_scale,
                keep_every=None):
    params = {"stride": stride, "padding": padding, "dilation": 1, "groups": groups,
              "bias": bias}
    if keep_every:
        params.update(keep_every)
    c = Case(name, "conv2d", params)
    x = c.input("x", x_shape, seed)
    w = c.input("weight", w_shape, seed + 1, scale=w_scale)
    b = c.input("bias", [w_shape[0]], seed + 2, scale=0.5) if bias else None
    out = F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    dout = c.input("dout", out.shape, seed + 3, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(x=x, weight=w)
    if bias:
        c.store_grads(bias=b)
    return c


def group_norm_case(name, seed, x_shape, groups, eps, x_scale=1.0, x_offset=0.0):
    c = Case(name, "group_norm", {"num_groups": groups, "eps": eps, "affine": True})
    x = c.input("x", x_shape, seed, scale=x_scale, offset=x_offset)
    w = c.input("weight", [x_shape[1]], seed + 1, scale=0.5, offset=1.0)
    b = c.input("bias", [x_shape[1]], seed + 2, scale=0.5)
    out = F.group_norm(x, groups, w, b, eps=eps)
    dout = c.input("dout", out.shape, seed + 3, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(x=x, weight=w, bias=b)
    return c


def layer_norm_case():
    shape = [2, 77, 320]
    c = Case("layer_norm", "layer_norm", {"normalized_shape": [320], "eps": 1e-5})
    x = c.input("x", shape, 700)
    w = c.input("weight", [320], 701, scale=0.5, offset=1.0)
    b = c.input("bias", [320], 702, scale=0.5)
    out = F.layer_norm(x, [320], w, b, eps=1e-5)
    dout = c.input("dout", shape, 703, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(x=x, weight=w, bias=b)
    return c


def softmax_case():
    c = Case("softmax", "softmax", {"dim": -1})
    x = c.input("x", [4, 77, 77], 800, scale=4.0)
    out = torch.softmax(x, dim=-1)
    dout = c.input("dout", out.shape, 801, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(x=x)
    return c


def attention(q, k, v, heads):
    """Multi-head attention on [B, N, heads*d] tensors, head h at channels h*d..h*d+d-1."""
    B, Nq, C = q.shape
    Nk = k.shape[1]
    d = C // heads
    qh = q.reshape(B, Nq, heads, d).transpose(1, 2)
    kh = k.reshape(B, Nk, heads, d).transpose(1, 2)
    vh = v.reshape(B, Nk, heads, d).transpose(1, 2)
    scores = (qh @ kh.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    o = torch.softmax(scores, dim=-1) @ vh
    return o.transpose(1, 2).reshape(B, Nq, C)


def attention_case(name, seed, q_shape, kv_shape, heads, keep_every=None):
    d = q_shape[-1] // heads
    params = {"heads": heads, "head_dim": d, "scale": 1.0 / math.sqrt(d),
              "layout": "B,N,heads*head_dim; head h at channels h*head_dim..(h+1)*head_dim-1"}
    if keep_every:
        params.update(keep_every)
    c = Case(name, "attention", params)
    q = c.input("q", q_shape, seed)
    k = c.input("k", kv_shape, seed + 1)
    v = c.input("v", kv_shape, seed + 2)
    out = attention(q, k, v, heads)
    # Cross-check the hand-written layout against torch's SDPA.
    B, Nq, C = q_shape
    Nk = kv_shape[1]
    sdpa = F.scaled_dot_product_attention(
        q.detach().reshape(B, Nq, heads, d).transpose(1, 2),
        k.detach().reshape(B, Nk, heads, d).transpose(1, 2),
        v.detach().reshape(B, Nk, heads, d).transpose(1, 2)).transpose(1, 2).reshape(B, Nq, C)
    assert torch.allclose(out.detach(), sdpa, rtol=0, atol=1e-12)
    dout = c.input("dout", out.shape, seed + 3, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(q=q, k=k, v=v)
    return c


def linear_case():
    c = Case("linear", "linear", {"bias": True, "formula": "out = x @ weight^T + bias"})
    x = c.input("x", [2, 16, 96], 1200)
    w = c.input("weight", [40, 96], 1201, scale=0.125)
    b = c.input("bias", [40], 1202, scale=0.5)
    out = F.linear(x, w, b)
    dout = c.input("dout", out.shape, 1203, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(x=x, weight=w, bias=b)
    return c


def bmm_case():
    c = Case("bmm", "bmm", {})
    a = c.input("a", [3, 17, 33], 1300)
    b = c.input("b", [3, 33, 9], 1301, scale=0.25)
    out = torch.bmm(a, b)
    dout = c.input("dout", out.shape, 1302, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(a=a, b=b)
    return c


ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def activations_case():
    c = Case("activations", "activations", {
        "functions": list(ACTIVATIONS),
        "definitions": {
            "gelu": "x * 0.5 * (1 + erf(x / sqrt(2)))",
            "gelu_tanh": "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))",
            "silu": "x * sigmoid(x)",
            "quick_gelu": "x * sigmoid(1.702 * x)",
            "sigmoid": "1 / (1 + exp(-x))",
            "tanh": "tanh(x)",
        },
    })
    x32 = c.input("x", [2048], 1400, scale=4.0, grad=False)
    dout = c.input("dout", [2048], 1401, grad=False)
    for name, fn in ACTIVATIONS.items():
        x = x32.detach().clone().requires_grad_(True)
        out = fn(x)
        out.backward(dout)
        c.store(f"{name}.out", out)
        c.store(f"{name}.grad.x", x.grad)
    return c


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool,
                       downscale_freq_shift: float, max_period: float = 10000.0,
                       scale: float = 1.0) -> torch.Tensor:
    """diffusers get_timestep_embedding, written out from its formula, in float64."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float64)
    exponent = exponent / (half - downscale_freq_shift)
    emb = t[:, None] * torch.exp(exponent)[None, :] * scale
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def timestep_embedding_case():
    timesteps = [1.0, 250.0, 500.5, 999.0]
    variants = {
        "flip1_shift0": {"dim": 320, "flip_sin_to_cos": True, "downscale_freq_shift": 0.0},
        "flip0_shift1": {"dim": 320, "flip_sin_to_cos": False, "downscale_freq_shift": 1.0},
        "odd_dim": {"dim": 7, "flip_sin_to_cos": True, "downscale_freq_shift": 0.0},
    }
    c = Case("timestep_embedding", "timestep_embedding", {
        "timesteps": timesteps, "max_period": 10000.0, "scale": 1.0, "variants": variants,
    })
    t = torch.tensor(timesteps, dtype=torch.float64)
    for name, v in variants.items():
        c.store(name, timestep_embedding(t, v["dim"], v["flip_sin_to_cos"],
                                         v["downscale_freq_shift"]))
    return c


def upsample_nearest_case():
    c = Case("upsample_nearest", "upsample_nearest", {"scale_factor": 2, "mode": "nearest"})
    x = c.input("x", [1, 3, 5, 4], 1600)
    out = F.interpolate(x, scale_factor=2, mode="nearest")
    dout = c.input("dout", out.shape, 1601, grad=False)
    out.backward(dout)
    c.store("out", out)
    c.store_grads(x=x)
    return c


def build_cases():
    # conv2d_s1 keeps every 2nd channel (axis 1) of out and grad.x: stored in
    # full, the folder would be ~3.2 MB, over SIZE_LIMIT. All spatial positions,
    # padding borders included, are still stored.
    yield conv2d_case("conv2d_s1", 100, [1, 64, 32, 32], [64, 64, 3, 3], True, 1, 1, 1, 0.0625,
                      keep_every=strided(2, 1, ["out", "grad.x"]))
    yield conv2d_case("conv2d_s2", 200, [1, 64, 32, 32], [64, 64, 3, 3], True, 2, 1, 1, 0.0625)
    yield conv2d_case("conv2d_grouped", 300, [2, 64, 16, 16], [64, 16, 3, 3], True, 1, 1, 4,
                      0.125)
    yield conv2d_case("conv2d_1x1", 400, [2, 32, 8, 8], [16, 32, 1, 1], True, 1, 0, 1, 0.125)
    yield conv2d_case("conv2d_rect", 500, [1, 8, 9, 7], [12, 8, 3, 3], False, 2, 0, 1, 0.125)
    yield group_norm_case("group_norm", 600, [2, 64, 16, 16], 32, 1e-5)
    yield group_norm_case("group_norm_eps6", 650, [1, 32, 8, 8], 8, 1e-6, x_scale=2.0,
                          x_offset=3.0)
    yield layer_norm_case()
    yield softmax_case()
    yield attention_case("attention_self", 900, [1, 1024, 320], [1, 1024, 320], 8,
                         keep_every=strided(16, 1, ["out", "grad.q", "grad.k", "grad.v"]))
    yield attention_case("attention_cross", 1000, [1, 1024, 320], [1, 77, 320], 8,
                         keep_every=strided(16, 1, ["out", "grad.q"]))
    yield attention_case("attention_odd", 1100, [2, 37, 24], [2, 13, 24], 3)
    yield linear_case()
    yield bmm_case()
    yield activations_case()
    yield timestep_embedding_case()
    yield upsample_nearest_case()


# --------------------------------------------------------------------------- check

def check(outdir: Path) -> int:
    files = sorted(outdir.glob("*.safetensors"))
    if not files:
        print(f"no fixtures in {outdir}", file=sys.stderr)
        return 1
    failures = 0
    for path in files:
        problems = []
        with safetensors.safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            names = set(f.keys())
            for key in ("op", "params", "inputs", "generator", "versions"):
                if key not in meta:
                    problems.append(f"metadata lacks {key!r}")
            if meta.get("generator") != GENERATOR:
                problems.append(f"generator {meta.get('generator')!r} != {GENERATOR!r}")
            inputs = json.loads(meta.get("inputs", "{}"))
            params = json.loads(meta.get("params", "{}"))
            for name, spec in inputs.items():
                head_name = f"{name}.head"
                if head_name not in names:
                    problems.append(f"missing {head_name}")
                    continue
                want = detrand(spec["shape"], spec["seed"], spec["scale"], spec["offset"])
                want = want.reshape(-1)[:HEAD]
                got = f.get_tensor(head_name)
                if got.dtype != np.float32 or not np.array_equal(got.view(np.uint32),
                                                                 want.view(np.uint32)):
                    problems.append(f"{head_name} does not match detrand")
                grad = f"grad.{name}"
                if grad in names:
                    shape = list(spec["shape"])
                    if grad in params.get("row_strided", ()):
                        ax, r = params["row_axis"], params["row_stride"]
                        shape[ax] = -(-shape[ax] // r)
                    if list(f.get_slice(grad).get_shape()) != shape:
                        problems.append(f"{grad} shape {f.get_slice(grad).get_shape()} != {shape}")
            for name in names:
                if f.get_slice(name).get_dtype() != "F32":
                    problems.append(f"{name} is not F32")
            for name in params.get("row_strided", ()):
                if name not in names:
                    problems.append(f"row_strided tensor {name} missing")
        status = "ok" if not problems else "FAIL: " + "; ".join(problems)
        print(f"{path.name:34s} {len(inputs)} inputs  {status}")
        failures += bool(problems)
    print(f"{len(files) - failures}/{len(files)} files ok")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixtures folder")
    ap.add_argument("--check", action="store_true",
                    help="only re-read the files and verify input heads against detrand")
    args = ap.parse_args()
    if args.check:
        return check(args.out)

    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.safetensors"):
        stale.unlink()
    for case in build_cases():
        path = case.write(args.out)
        print(f"{path.name:34s} {path.stat().st_size:>9,d} bytes  "
              f"{', '.join(k for k in case.tensors if not k.endswith('.head'))}")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"total {total:,d} bytes ({total / 2**20:.2f} MiB) in {args.out}")
    if total >= SIZE_LIMIT:
        print(f"ERROR: fixtures exceed {SIZE_LIMIT:,d} bytes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
