#!/usr/bin/env python3
"""Writes Tests/Fixtures/canny/: a procedural 128x96 RGB picture (sine shading,
a disc, stripes and Gaussian noise) and OpenCV's edges for it, the reference
for Imaging's CannyEdges with sigma 0 (cv2.Canny does not blur).

    pip install opencv-python-headless==4.14.0.94 numpy
    python Tests/Reference/make_canny_fixture.py
"""
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "Fixtures" / "canny"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
h, w = 96, 128
y, x = np.mgrid[0:h, 0:w]
img = np.zeros((h, w, 3), np.float64)
img[..., 0] = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 9.0)
img[..., 1] = (((x - 60) ** 2 + (y - 40) ** 2) < 900) * 200 + 20
img[..., 2] = ((x + y) % 40 < 20) * 150 + rng.normal(0, 20, (h, w))
img = np.clip(img, 0, 255).astype(np.uint8)
cv2.imwrite(str(OUT / "input.png"), img[..., ::-1])                       # RGB picture, stored as PNG
cv2.imwrite(str(OUT / "cv2_l1_100_200.png"), cv2.Canny(img, 100, 200))     # ControlNet's annotator defaults
cv2.imwrite(str(OUT / "cv2_l2_50_120.png"), cv2.Canny(img, 50, 120, L2gradient=True))
print("cv2", cv2.__version__)
