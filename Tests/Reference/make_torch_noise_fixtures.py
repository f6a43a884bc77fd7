#!/usr/bin/env python3
"""Writes Tests/Fixtures/noise/torch_randn.json: fingerprints of
torch.randn(shape, generator=torch.Generator(device).manual_seed(seed)), float32,
for TorchNoiseTests (TorchCPUGenerator, TorchCUDAPhiloxGenerator).

Pinned environment (the one of Tests/Reference/requirements.txt, venv
~/venvs/pilot-sd-reference):
    torch==2.13.0+cpu    numpy==2.4.6    Python 3, Linux x86-64 with AVX2

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_torch_noise_fixtures.py

Modes (each entry names one):
- torch-cpu-avx2     torch's CPU kernel with ATEN_CPU_CAPABILITY=avx2 (what any
                     AVX2 or AVX-512 x86-64 CPU runs in torch 2.13; the script
                     checks that the machine's native capability gives the same
                     bytes and records the answer as native_equals_avx2).
- torch-cpu-default  ATEN_CPU_CAPABILITY=default: torch's generic kernel (glibc
                     logf/cosf/sinf).
- torch-cuda         torch.randn on a CUDA device when torch.cuda.is_available();
                     otherwise the numpy reference below of AUTOMATIC1111's
                     "NV" source (rng_philox.py), marked
                     "source": "numpy-philox-reference (unverified on GPU)".
                     Real GPU entries carry "gpu_threads" (multiprocessors x
                     max threads per multiprocessor): A1111's scheme only
                     holds for tensors no larger than that.

Each CPU mode runs in a child process (ATEN_CPU_CAPABILITY is read when torch
is imported). An entry draws its "shapes" in order from one generator; its
fingerprint covers all of them concatenated: "count" elements, "sha256" of the
little-endian float32 bytes, "first" (32) and "last" (8) values as float32 bit
patterns (uint32). Seeds are decimal strings of the uint64 torch uses (Python's
negative seeds are taken modulo 2^64; "python_seed" keeps what was passed).
Output is deterministic; the file stays under 100 kB.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "Fixtures" / "noise" / "torch_randn.json"

BIG = [[1, 4, 64, 64], [2, 4, 96, 128], [4, 4, 64, 64]]
SMALL = [[1], [2, 3], [15], [16], [17], [31], [3, 5, 7]]
SEEDS = [0, 1, 42, 123456789, 2**32 + 5, 2**63 - 1, -1]


def cases(mode):
    """(python_seed, [shapes]) drawn for a mode."""
    # Every seed on the first shape, the larger shapes on a few (the Swift
    # tests hash every value in a debug build: keep the volume moderate).
    out = []
    big_seeds = [0, 42] if mode == "torch-cpu-default" else [0, 42, 2**63 - 1]
    for seed in (big_seeds if mode == "torch-cpu-default" else SEEDS):
        out.append((seed, [BIG[0]]))
    for seed in big_seeds:
        for shape in BIG[1:]:
            out.append((seed, [shape]))
    for seed in [0, 42]:
        for shape in SMALL:
            out.append((seed, [shape]))
    # One generator, several calls: the stream (and, on the CPU, the cached
    # Box-Muller sine of small tensors; on CUDA the offset) carries over.
    out.append((7, [[3], [1, 4, 8, 8], [5], [2, 3], [17]]))
    return out


def fingerprint(mode, seed, shapes, arrays, source):
    flat = np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays]).astype("<f4")
    bits = flat.view("<u4")
    entry = {"mode": mode, "seed": str(seed % 2**64), "shapes": shapes, "count": int(flat.size),
             "sha256": hashlib.sha256(flat.tobytes()).hexdigest(),
             "first": [int(b) for b in bits[:32]], "last": [int(b) for b in bits[-8:]], "source": source}
    if seed < 0:
        entry["python_seed"] = str(seed)
    return entry


# ---------------------------------------------------------------- numpy Philox
# Written from the description of AUTOMATIC1111's modules/rng_philox.py: for
# element i of the k-th randn call, Philox4x32 with 10 rounds on the counter
# (k, 0, i, 0), key (seed low 32 bits, seed high 32 bits) bumped by the Weyl
# constants after each round; words x, y of the result feed one Box-Muller
# branch, u = x * c + c/2, v = y * d + d/2 with c = float32(2.3283064e-10) and
# d = float32(2.3283064e-10 * 6.2831855), sqrt(-2 ln u) * sin v in float64,
# then rounded to float32.

PHILOX_M = (0xD2511F53, 0xCD9E8D57)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def philox_words(seed, offset, n):
    lo = np.uint64(0xFFFFFFFF)
    c = [np.full(n, offset, dtype=np.uint64), np.zeros(n, dtype=np.uint64),
         np.arange(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)]
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = c[0] * np.uint64(PHILOX_M[0])  # 32 x 32 bits: exact in uint64
        p1 = c[2] * np.uint64(PHILOX_M[1])
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0), p1 & lo,
             (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1), p0 & lo]
        k0 = (k0 + PHILOX_W[0]) & 0xFFFFFFFF
        k1 = (k1 + PHILOX_W[1]) & 0xFFFFFFFF
    return c[0], c[1]


def philox_randn(seed, offset, n):
    x, y = philox_words(seed % 2**64, offset, n)
    c = np.float64(np.float32(2.3283064e-10))
    c_half = np.float64(np.float32(2.3283064e-10) / np.float32(2))
    d = np.float64(np.float32(2.3283064e-10 * 6.2831855))
    d_half = np.float64(np.float32(2.3283064e-10 * 6.2831855) / np.float32(2))
    u = x.astype(np.float64) * c + c_half
    v = y.astype(np.float64) * d + d_half
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


def check_philox_against_a1111_docstring():
    """rng_philox.py documents Generator(seed=0).randn((3, 4)). Those numbers
    were evidently printed from a GPU: A1111's own numpy code (and this one)
    differs from them by up to 6 float32 ulp. Require agreement to 8 ulp."""
    doc = np.array([-0.92466259, -0.42534415, -2.6438457, 0.14518388, -0.12086647, -0.57972564,
                    -0.62285122, -0.32838709, -1.07454231, -0.36314407, -1.67105067, 2.26550497], dtype=np.float32)
    ours = philox_randn(0, 0, 12)
    ulps = np.abs(ours.view(np.int32).astype(np.int64) - doc.view(np.int32).astype(np.int64))
    assert ulps.max() <= 8, f"numpy Philox disagrees with A1111's documented output: {ours} vs {doc}"


# ---------------------------------------------------------------- children

def child(mode):
    """Runs in a child process with ATEN_CPU_CAPABILITY already set."""
    import torch
    entries = []
    device = "cuda" if mode == "torch-cuda" else "cpu"
    gpu_threads = None
    if device == "cuda":
        # A1111's imitation holds only while every element gets its own thread.
        props = torch.cuda.get_device_properties(0)
        per_sm = getattr(props, "max_threads_per_multi_processor", None)
        gpu_threads = props.multi_processor_count * per_sm if per_sm else None
    for seed, shapes in cases(mode):
        g = torch.Generator(device).manual_seed(seed)
        arrays = [torch.randn(s, generator=g, dtype=torch.float32, device=device).cpu().numpy() for s in shapes]
        if device == "cuda":
            source = f"torch {torch.__version__} CUDA {torch.version.cuda} ({torch.cuda.get_device_name()})"
        else:
            source = f"torch {torch.__version__} cpu capability {torch.backends.cpu.get_cpu_capability()}"
        entries.append(fingerprint(mode, seed, shapes, arrays, source))
        if gpu_threads:
            entries[-1]["gpu_threads"] = gpu_threads
    json.dump({"capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
               "cuda": torch.cuda.is_available(), "entries": entries}, sys.stdout)


def run_child(mode, capability):
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability is not None:
        env["ATEN_CPU_CAPABILITY"] = capability
    out = subprocess.run([sys.executable, __file__, "--child", mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    global OUT
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        # Elsewhere than the fixture: scripts/gpu-check.sh records the GPU's noise into its $OUT.
        OUT = Path(sys.argv[2]).resolve()
    elif len(sys.argv) != 1:
        sys.exit("usage: make_torch_noise_fixtures.py [--out PATH]")
    import torch
    if torch.__version__.split("+")[0] != "2.13.0" or np.__version__ != "2.4.6":
        print(f"warning: pinned torch 2.13.0 / numpy 2.4.6, running torch {torch.__version__} numpy {np.__version__}",
              file=sys.stderr)

    avx2 = run_child("torch-cpu-avx2", "avx2")
    if avx2["capability"] != "AVX2":
        sys.exit(f"ATEN_CPU_CAPABILITY=avx2 gave capability {avx2['capability']}: this machine has no AVX2")
    default = run_child("torch-cpu-default", "default")
    assert default["capability"] == "DEFAULT", default["capability"]
    native = run_child("torch-cpu-avx2", None)
    native_equals_avx2 = [e["sha256"] for e in native["entries"]] == [e["sha256"] for e in avx2["entries"]]
    if not native_equals_avx2:
        print(f"note: native capability {native['capability']} gives other noise than AVX2", file=sys.stderr)

    check_philox_against_a1111_docstring()
    if torch.cuda.is_available():
        cuda_entries = run_child("torch-cuda", None)["entries"]
        cuda_source = "torch"
    else:
        cuda_entries = []
        for seed, shapes in cases("torch-cuda"):
            arrays = [philox_randn(seed, k, int(np.prod(s))) for k, s in enumerate(shapes)]
            cuda_entries.append(fingerprint("torch-cuda", seed, shapes, arrays,
                                            "numpy-philox-reference (unverified on GPU)"))
        cuda_source = "numpy-philox-reference (unverified on GPU)"

    doc = {
        "script": "Tests/Reference/make_torch_noise_fixtures.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_equals_avx2": native_equals_avx2,
        "modes": {
            "torch-cpu-avx2": {"env": "ATEN_CPU_CAPABILITY=avx2", "capability": avx2["capability"]},
            "torch-cpu-default": {"env": "ATEN_CPU_CAPABILITY=default", "capability": default["capability"]},
            "torch-cuda": {"source": cuda_source},
        },
        "entries": avx2["entries"] + default["entries"] + cuda_entries,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One entry per line: small diffs when an entry changes.
    lines = [json.dumps(e, separators=(",", ":")) for e in doc["entries"]]
    head = json.dumps({k: v for k, v in doc.items() if k != "entries"}, indent=1)
    text = head[:-2] + ',\n "entries": [\n' + ",\n".join(lines) + "\n ]\n}\n"
    json.loads(text)
    OUT.write_text(text)
    print(f"{len(lines)} entries ({OUT.stat().st_size} bytes) -> {OUT}; cpu {doc['cpu_capability']}, "
          f"native equals AVX2: {native_equals_avx2}, torch-cuda from {cuda_source}")


if __name__ == "__main__":
    main()
