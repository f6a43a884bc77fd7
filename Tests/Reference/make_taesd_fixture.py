#!/usr/bin/env python3
"""Writes the AutoencoderTiny (TAESD) reference: a small random-weight
diffusers AutoencoderTiny saved as a diffusers folder, and its outputs.

- Tests/Fixtures/sd/taesd/: config.json and diffusion_pytorch_model.safetensors
  (8 channels a level, blocks (1, 2, 2, 2) / (2, 2, 2, 1): TAESD's layout,
  narrower), weights drawn from torch.manual_seed(7), scaled so activations
  stay O(1) through the stack.
- Tests/Fixtures/sd/taesd_reference.safetensors: latent [2, 4, 8, 8] and
  decoded = model.decode(latent).sample [2, 3, 64, 64]; image [1, 3, 64, 64]
  in [-1, 1] and encoded = model.encode(image).latents [1, 4, 8, 8].

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_taesd_fixture.py

Pinned environment: requirements-sd.txt (torch 2.13.0+cpu, diffusers 0.39.0).
"""
from pathlib import Path

import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1] / "Fixtures" / "sd"
torch.manual_seed(7)
model = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                        num_encoder_blocks=(1, 2, 2, 2), num_decoder_blocks=(2, 2, 2, 1))
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.copy_(torch.randn_like(p) * 0.1)
        else:
            fan_in = p[0].numel()
            p.copy_(torch.randn_like(p) * (1.0 / fan_in) ** 0.5)
model.eval()
model.save_pretrained(str(ROOT / "taesd"), safe_serialization=True)

g = torch.Generator().manual_seed(11)
latent = torch.randn(2, 4, 8, 8, generator=g) * 2
image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
with torch.no_grad():
    decoded = model.decode(latent).sample
    encoded = model.encode(image).latents
save_file({"latent": latent.contiguous(), "decoded": decoded.contiguous(), "image": image.contiguous(),
           "encoded": encoded.contiguous()}, str(ROOT / "taesd_reference.safetensors"))
print("decoded", decoded.abs().mean().item(), "encoded", encoded.abs().mean().item())
