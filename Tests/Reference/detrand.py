"""Deterministic input generator shared by the PyTorch reference and the Swift tests.

Generator "splitmix64-v1" (the Swift side implements exactly the same thing):

    state = seed                                    (uint64)
    next():
        state = (state + 0x9E3779B97F4A7C15) mod 2^64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) mod 2^64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) mod 2^64
        return z ^ (z >> 31)

Element i (row-major order) of a tensor with (seed, scale, offset), each tensor
starting from a fresh state = seed:

    k = next() >> 40                                 (24-bit integer)
    u = float32(k) * float32(2**-23) - float32(1)    (exact, in [-1, 1))
    v = float32(u * float32(scale)) + float32(offset) (float32 arithmetic)

Scales are powers of two, so u * scale is exact; the only rounding is the final
float32 addition of the offset (round to nearest even, as in IEEE 754).

The i-th call to next() (0-based) sees state = seed + (i + 1) * GAMMA mod 2^64,
which is what the vectorised implementation below uses.
"""

from __future__ import annotations

import math
import sys

import numpy as np

GENERATOR = "splitmix64-v1"

GAMMA = 0x9E3779B97F4A7C15
MUL1 = 0xBF58476D1CE4E5B9
MUL2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1


def splitmix64_scalar(seed: int, count: int) -> list[int]:
    """Plain-integer reference implementation (slow; used to cross-check)."""
    state = seed & MASK64
    out = []
    for _ in range(count):
        state = (state + GAMMA) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * MUL1) & MASK64
        z = ((z ^ (z >> 27)) * MUL2) & MASK64
        out.append(z ^ (z >> 31))
    return out


def splitmix64(seed: int, count: int) -> np.ndarray:
    """First `count` outputs of splitmix64 from `seed`, as a uint64 array.

    numpy uint64 array arithmetic wraps modulo 2^64, which is exactly what the
    spec asks for.
    """
    if not 0 <= seed <= MASK64:
        raise ValueError(f"seed {seed} is not a uint64")
    with np.errstate(over="ignore"):
        i = np.arange(1, count + 1, dtype=np.uint64)
        z = i * np.uint64(GAMMA) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MUL1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MUL2)
        z ^= z >> np.uint64(31)
    return z


def _check_power_of_two(scale: float) -> None:
    m, _ = math.frexp(scale)
    if scale <= 0 or m != 0.5:
        raise ValueError(f"scale {scale} is not a positive power of two")


def detrand(shape, seed: int, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """float32 tensor of `shape` filled per the splitmix64-v1 spec above."""
    _check_power_of_two(scale)
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    k = splitmix64(seed, n) >> np.uint64(40)
    u = k.astype(np.float32) * np.float32(2.0**-23) - np.float32(1.0)
    v = (u * np.float32(scale)).astype(np.float32) + np.float32(offset)
    assert v.dtype == np.float32
    return v.reshape(shape)


def _selftest() -> None:
    # Vectorised generator agrees with the plain-integer one, including seeds
    # near 2^64 where state additions wrap.
    for seed in (0, 1, 12345, MASK64, MASK64 - GAMMA + 3):
        assert splitmix64(seed, 64).tolist() == splitmix64_scalar(seed, 64), seed
    # Published splitmix64 output for seed 0.
    assert splitmix64_scalar(0, 1)[0] == 0xE220A8397B1DCDAF
    # Scalar re-derivation of the float mapping.
    for seed, scale, offset in ((7, 1.0, 0.0), (8, 0.0625, 0.0), (9, 2.0, 3.0), (10, 0.5, 1.0)):
        ref = []
        for z in splitmix64_scalar(seed, 32):
            u = np.float32(z >> 40) * np.float32(2.0**-23) - np.float32(1.0)
            ref.append(np.float32(u * np.float32(scale)) + np.float32(offset))
        got = detrand([32], seed, scale, offset)
        assert np.array_equal(got.view(np.uint32), np.array(ref, np.float32).view(np.uint32))
    # Range.
    u = detrand([1 << 16], 42)
    assert u.min() >= -1.0 and u.max() < 1.0


if __name__ == "__main__":
    import time

    _selftest()
    t0 = time.perf_counter()
    detrand([1 << 20], 1)
    dt = time.perf_counter() - t0
    print(f"self-test ok; 1M elements in {dt * 1e3:.1f} ms")
    for seed in (0, 1) if len(sys.argv) < 2 else (int(a, 0) for a in sys.argv[1:]):
        raw = splitmix64_scalar(seed, 4)
        vals = detrand([4], seed)
        print(f"seed {seed}: next() = {[hex(r) for r in raw]}")
        print(f"         k = {[r >> 40 for r in raw]}  u = {vals.tolist()}")
