#!/usr/bin/env python3
"""Writes Tests/Fixtures/masks/mask_ops.safetensors: a procedural soft 61x47
mask (a disc, a bar, a gradient and scattered dots) and SciPy's results for
Imaging's mask operations, the reference for GrowMask and FeatherMask:

- grow_round_R / shrink_round_R / grow_square_R: scipy.ndimage.grey_dilation
  or grey_erosion with a disk (dx^2 + dy^2 <= R^2) or square footprint, the
  outside ignored (mode="constant", cval 0 for dilation, 1 for erosion);
- blur_S: scipy.ndimage.gaussian_filter(sigma=S, mode="reflect",
  truncate=4.0), clipped to [0, 1] (S written with "p" for the point).

    python3 -m venv ~/venvs/pilot-mask
    ~/venvs/pilot-mask/bin/pip install numpy==2.4.6 scipy==1.17.1 safetensors==0.8.0
    ~/venvs/pilot-mask/bin/python Tests/Reference/make_mask_fixtures.py
"""
from pathlib import Path

import numpy as np
import scipy
from scipy import ndimage
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parents[1] / "Fixtures" / "masks"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)
h, w = 47, 61
y, x = np.mgrid[0:h, 0:w]
mask = np.zeros((h, w), np.float32)
mask[((x - 20) ** 2 + (y - 18) ** 2) <= 64] = 1.0                # a disc
mask[30:34, 35:58] = 0.75                                        # a bar, soft
mask[:, 0:6] = np.linspace(0, 1, h, dtype=np.float32)[:, None]   # a gradient on the border
dots = rng.integers(0, [h, w], size=(12, 2))
mask[dots[:, 0], dots[:, 1]] = rng.uniform(0.2, 1.0, 12).astype(np.float32)


def disk(r):
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx ** 2 + yy ** 2) <= r * r


tensors = {"mask": mask}
for r in (1, 3, 6):
    tensors[f"grow_round_{r}"] = ndimage.grey_dilation(mask, footprint=disk(r), mode="constant", cval=0.0)
    tensors[f"shrink_round_{r}"] = ndimage.grey_erosion(mask, footprint=disk(r), mode="constant", cval=1.0)
    tensors[f"grow_square_{r}"] = ndimage.grey_dilation(mask, footprint=np.ones((2 * r + 1, 2 * r + 1), bool),
                                                        mode="constant", cval=0.0)
for s in (0.8, 2.0, 5.5):
    blurred = ndimage.gaussian_filter(mask.astype(np.float64), sigma=s, mode="reflect", truncate=4.0)
    tensors[f"blur_{str(s).replace('.', 'p')}"] = np.clip(blurred, 0, 1).astype(np.float32)
save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(OUT / "mask_ops.safetensors"),
          metadata={"scipy": scipy.__version__, "numpy": np.__version__})
print("scipy", scipy.__version__, "->", OUT / "mask_ops.safetensors")
