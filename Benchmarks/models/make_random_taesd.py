#!/usr/bin/env python3
"""Writes a random-weight tiny autoencoder (TAESD's shapes) as MODEL/taesd,
for the preview benchmark (`pilot-bench models preview_taesd` and its peer).

    python Benchmarks/models/make_random_taesd.py [MODEL] [--seed N]

MODEL defaults to /work/bench-models/sd15-random (Benchmarks/models/
make_random_sd15.py); `taesd/` inside it is where the daemon looks for a
preview decoder in its models folder. The config is diffusers'
AutoencoderTiny default, which is madebyollin/taesd's: 64 channels a level,
encoder blocks 1, 3, 3, 3, decoder blocks 3, 3, 3, 1, ReLU, 2× nearest
upsampling (about 2.4 M parameters, 10 MB in float32). Weights are
N(0, min(0.02, 0.5/√fan-in)), biases 0, seeded: the timings depend only on
the shapes. Needs torch and diffusers (the peer's environment).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers import AutoencoderTiny  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=Path("/work/bench-models/sd15-random"))
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    out = args.model.resolve() / "taesd"
    if out == REPO or REPO in out.parents:
        parser.error(f"{out} is inside the repository; benchmark weights live outside it")
    generator = torch.Generator().manual_seed(args.seed)
    model = AutoencoderTiny()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                std = min(0.02, 0.5 / math.sqrt(p[0].numel()))
                p.copy_(torch.randn(p.shape, generator=generator) * std)
        decoded = model.eval().decode(torch.randn(1, 4, 16, 16, generator=generator)).sample
    if not torch.isfinite(decoded).all():
        raise SystemExit("make_random_taesd: the decoded image is not finite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".taesd-", dir=out.parent))
    model.save_pretrained(str(tmp), safe_serialization=True)
    os.chmod(tmp, 0o755)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"{out}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, decode {list(decoded.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
