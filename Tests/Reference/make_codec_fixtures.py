#!/usr/bin/env python3
"""Writes Tests/Fixtures/codecs/: small JPEG and WebP files made with Pillow
and, for each, Pillow's decoded RGB as a PNG: the reference for Imaging's
JPEG (libjpeg-turbo) and WebP (libwebp) readers.

- photo.jpg (48x32, quality 90, 4:2:0) and gray.jpg (a grayscale JPEG);
- rotated.jpg: photo.jpg's pixels with EXIF orientation 6 (rotate 90 degrees
  clockwise to display); its reference is ImageOps.exif_transpose's result;
- lossless.webp (exact) and lossy.webp (quality 80).

    ~/venvs/pilot-mask/bin/pip install pillow==11.3.0 numpy==2.4.6
    ~/venvs/pilot-mask/bin/python Tests/Reference/make_codec_fixtures.py
"""
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageOps

OUT = Path(__file__).resolve().parents[1] / "Fixtures" / "codecs"
OUT.mkdir(parents=True, exist_ok=True)
h, w = 32, 48
y, x = np.mgrid[0:h, 0:w]
rgb = np.zeros((h, w, 3), np.uint8)
rgb[..., 0] = (x * 5) % 256
rgb[..., 1] = (y * 7 + 30) % 256
rgb[..., 2] = np.where(((x - 20) ** 2 + (y - 14) ** 2) < 80, 220, 40)
picture = Image.fromarray(rgb)


def write(name, image, **options):
    path = OUT / name
    image.save(path, **options)
    decoded = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    decoded.save(OUT / (path.stem + ".expected.png"))


write("photo.jpg", picture, quality=90, subsampling=2)
write("gray.jpg", picture.convert("L"), quality=90)
exif = Image.Exif()
exif[0x0112] = 6
write("rotated.jpg", picture, quality=90, subsampling=2, exif=exif.tobytes())
write("lossless.webp", picture, lossless=True)
write("lossy.webp", picture, quality=80)
print("Pillow", PIL.__version__, "->", OUT)

# large.jpg: a 1000x750 procedural "photo" for the crop-and-stitch test (smooth, so it stays small).
H, W = 750, 1000
yy, xx = np.mgrid[0:H, 0:W]
big = np.zeros((H, W, 3), np.uint8)
big[..., 0] = (128 + 90 * np.sin(xx / 97.0) * np.cos(yy / 61.0)).astype(np.uint8)
big[..., 1] = (100 + 80 * np.cos((xx + yy) / 150.0)).astype(np.uint8)
big[..., 2] = np.clip(60 + yy / 5.0, 0, 255).astype(np.uint8)
Image.fromarray(big).save(OUT / "large.jpg", quality=80)
