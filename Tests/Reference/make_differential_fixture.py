#!/usr/bin/env python3
"""Writes Tests/Fixtures/sd/sd1_differential.safetensors: differential
blending (soft-mask inpainting) written out in PyTorch on the tiny SD1
fixture UNet (Tests/Fixtures/sd/sd1) with diffusers' DDIMScheduler: the
reference for PILOTSampler's `differential` rule and InpaintingMasks' soft
keep-mask.

The rule: the keep-mask is K = 1 - avg_pool2d(mask, 8) (mask 1 = inpaint);
before step i of n, the latent is blended with the source re-noised to that
step, x <- (1-G)*x + G*(sqrt(a_t)*source + sqrt(1-a_t)*eps_i), where
G = (K > i/n); then one classifier-free-guided DDIM step (CFG 7.5).

Recorded: mask_pixels [1,1,128,128] (a soft radial hole), keep [1,1,16,16],
source, prompt_embeds, negative_prompt_embeds, noise (the initial latent),
blend_noise [n,1,4,16,16], latents_out.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_differential_fixture.py
"""
import json
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1] / "Fixtures" / "sd"
folder = ROOT / "sd1"
unet = UNet2DConditionModel.from_pretrained(str(folder / "unet")).eval()
scheduler = DDIMScheduler.from_pretrained(str(folder / "scheduler"))
config = json.loads((folder / "unet" / "config.json").read_text())
size, hidden = config["sample_size"], config["cross_attention_dim"]
steps = 6
scheduler.set_timesteps(steps)

g = torch.Generator().manual_seed(17)
source = torch.randn(1, 4, size, size, generator=g) * 0.8
positive = torch.randn(1, 77, hidden, generator=g)
negative = torch.randn(1, 77, hidden, generator=g)
noise = torch.randn(1, 4, size, size, generator=g)
blend_noise = torch.randn(steps, 1, 4, size, size, generator=g)
# A soft hole: 1 at its centre, falling to 0 over a wide band.
pixels = size * 8
y, x = torch.meshgrid(torch.arange(pixels, dtype=torch.float32), torch.arange(pixels, dtype=torch.float32), indexing="ij")
distance = ((y - 70.0) ** 2 + (x - 52.0) ** 2).sqrt()
mask = (1 - (distance - 20) / 40).clamp(0, 1).reshape(1, 1, pixels, pixels)
keep = 1 - F.avg_pool2d(mask, 8)

with torch.no_grad():
    latents = noise * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        gate = (keep > i / steps).to(torch.float32)
        a = scheduler.alphas_cumprod[t]
        noised = source * a.sqrt() + blend_noise[i] * (1 - a).sqrt()
        latents = latents * (1 - gate) + noised * gate
        out = unet(torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([negative, positive])).sample
        uncond, cond = out.chunk(2)
        latents = scheduler.step(uncond + 7.5 * (cond - uncond), t, latents).prev_sample

out = {"mask_pixels": mask, "keep": keep, "source": source, "prompt_embeds": positive,
       "negative_prompt_embeds": negative, "noise": noise, "blend_noise": blend_noise, "latents_out": latents}
save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()}, str(ROOT / "sd1_differential.safetensors"),
          metadata={"diffusers": diffusers.__version__, "torch": torch.__version__, "steps": str(steps)})
print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", ROOT / "sd1_differential.safetensors")
