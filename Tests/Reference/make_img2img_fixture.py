#!/usr/bin/env python3
"""Writes Tests/Fixtures/sd/sd1_img2img.safetensors: diffusers'
StableDiffusionImg2ImgPipeline on the tiny SD1 fixture model
(Tests/Fixtures/sd/sd1, from make_sd_fixtures.py) with given prompt
embeddings, a given clean latent as the image (4 channels: used as is) and
the pipeline's own seeded noise, recorded: the reference for denoise
strength (Sample's `strength`, GuidedSampler's `firstStep`).

For each case NAME (scheduler, steps, strength): NAME.noise (what
randn_tensor drew), NAME.timesteps (the steps that ran) and NAME.latents_out
(output_type="latent"). Shared: init_latents, prompt_embeds,
negative_prompt_embeds. CFG 7.5.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_img2img_fixture.py
"""
import json
from pathlib import Path

import diffusers
import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       StableDiffusionImg2ImgPipeline)
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1] / "Fixtures" / "sd"
folder = ROOT / "sd1"
torch.manual_seed(0)
pipe = StableDiffusionImg2ImgPipeline.from_pretrained(str(folder), tokenizer=None, safety_checker=None,
                                                      feature_extractor=None, requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
unet_config = json.loads((folder / "unet" / "config.json").read_text())
size, hidden = unet_config["sample_size"], unet_config["cross_attention_dim"]
g = torch.Generator().manual_seed(11)
init = torch.randn(1, 4, size, size, generator=g) * 0.8
positive = torch.randn(1, 77, hidden, generator=g)
negative = torch.randn(1, 77, hidden, generator=g)
out = {"init_latents": init, "prompt_embeds": positive, "negative_prompt_embeds": negative}
base = dict(pipe.scheduler.config)
cases = [("ddim_5_0p6", DDIMScheduler, 5, 0.6), ("euler_4_0p5", EulerDiscreteScheduler, 4, 0.5),
         ("dpmpp_5_0p7", DPMSolverMultistepScheduler, 5, 0.7), ("ddim_4_1p0", DDIMScheduler, 4, 1.0)]
for name, kind, steps, strength in cases:
    pipe.scheduler = kind.from_config(base)
    seed = 100 + len(out)
    noise = randn_tensor(init.shape, generator=torch.Generator().manual_seed(seed), dtype=init.dtype)
    latents = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, image=init, strength=strength,
                   num_inference_steps=steps, guidance_scale=7.5, output_type="latent",
                   generator=torch.Generator().manual_seed(seed)).images
    pipe.scheduler.set_timesteps(steps)
    first = steps - min(int(steps * strength), steps)
    out[f"{name}.noise"] = noise
    out[f"{name}.timesteps"] = pipe.scheduler.timesteps[first:].to(torch.float32)
    out[f"{name}.latents_out"] = latents
save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()}, str(ROOT / "sd1_img2img.safetensors"),
          metadata={"diffusers": diffusers.__version__, "torch": torch.__version__})
print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", ROOT / "sd1_img2img.safetensors")
