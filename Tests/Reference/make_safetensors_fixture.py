"""Writes Tests/Fixtures/safetensors/python_written.safetensors.

A tiny file written by the reference implementation, so the Swift reader is
checked against real output rather than only against our own writer.

Pinned versions (results were produced with exactly these):
    torch==2.13.0+cpu
    safetensors==0.8.0
    numpy==2.4.6

Run from the repository root:
    python Tests/Reference/make_safetensors_fixture.py

The values are chosen so that their narrowed forms are known exactly:
  - "weight.f32": [[1, -2, 0.5], [3.25, -0.0, 1e-3]]         (F32, shape [2, 3])
  - "weight.f16": 1/3, 65504 (F16 max), 2**-24 (smallest subnormal),
                  -inf, 0.1                                    (F16, shape [5])
  - "weight.bf16": 1/3, -2.5, 3e38, 1e-40                      (BF16, shape [2, 2])
  - "steps.i64": [0, -1, 2**40, -(2**62)]                      (I64, shape [4])
  - "scalar.f32": 7.0                                          (F32, shape [])
Re-running is not byte-identical: safetensors stores metadata in a Rust
HashMap, so the order of "__metadata__" keys varies from run to run. The
tensor entries, offsets and data are the same every time.

The test in Tests/SafeTensorsTests/PythonFixtureTests.swift expects the F16
and BF16 values as PyTorch rounds them (round to nearest, ties to even).
"""
import pathlib

import torch
from safetensors.torch import save_file

tensors = {
    "weight.f32": torch.tensor([[1.0, -2.0, 0.5], [3.25, -0.0, 1e-3]], dtype=torch.float32),
    "weight.f16": torch.tensor([1.0 / 3.0, 65504.0, 2.0**-24, float("-inf"), 0.1], dtype=torch.float32).half(),
    "weight.bf16": torch.tensor([[1.0 / 3.0, -2.5], [3e38, 1e-40]], dtype=torch.float32).bfloat16(),
    "steps.i64": torch.tensor([0, -1, 2**40, -(2**62)], dtype=torch.int64),
    "scalar.f32": torch.tensor(7.0, dtype=torch.float32),
}
metadata = {"format": "pt", "origin": "make_safetensors_fixture.py", "note": "ünïcode ✓"}

out = pathlib.Path(__file__).resolve().parent.parent / "Fixtures" / "safetensors" / "python_written.safetensors"
out.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(out), metadata=metadata)

for name, tensor in tensors.items():
    bits = tensor.view(torch.int16).tolist() if tensor.dtype in (torch.float16, torch.bfloat16) else None
    print(name, tensor.dtype, list(tensor.shape), tensor.tolist(), "bits:", bits)
print(out, out.stat().st_size, "bytes")
