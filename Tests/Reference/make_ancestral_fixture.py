#!/usr/bin/env python3
"""Writes Tests/Fixtures/sd/sd1_ancestral.safetensors: diffusers'
StableDiffusionPipeline with EulerAncestralDiscreteScheduler on the tiny SD1
fixture model (Tests/Fixtures/sd/sd1) from given prompt embeddings and given
initial noise; the noise the scheduler adds at each step is recorded (the
module's randn_tensor is wrapped to keep what it draws): the reference for
EulerAncestralScheduler.

Recorded: prompt_embeds, negative_prompt_embeds, noise (the initial latent),
step_noise [steps, 1, 4, h, w], timesteps, latents_out. CFG 7.5, 5 steps.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_ancestral_fixture.py
"""
import json
from pathlib import Path

import diffusers
import diffusers.schedulers.scheduling_euler_ancestral_discrete as ancestral
import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1] / "Fixtures" / "sd"
folder = ROOT / "sd1"
pipe = StableDiffusionPipeline.from_pretrained(str(folder), tokenizer=None, safety_checker=None, feature_extractor=None,
                                               requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
config = json.loads((folder / "unet" / "config.json").read_text())
size, hidden = config["sample_size"], config["cross_attention_dim"]
g = torch.Generator().manual_seed(23)
positive = torch.randn(1, 77, hidden, generator=g)
negative = torch.randn(1, 77, hidden, generator=g)
noise = torch.randn(1, 4, size, size, generator=g)

drawn = []
original = ancestral.randn_tensor


def recording(*args, **kwargs):
    sample = original(*args, **kwargs)
    drawn.append(sample.clone())
    return sample


ancestral.randn_tensor = recording
steps = 5
latents = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, latents=noise.clone(), num_inference_steps=steps,
               guidance_scale=7.5, output_type="latent", generator=torch.Generator().manual_seed(29)).images
assert len(drawn) == steps, len(drawn)
out = {"prompt_embeds": positive, "negative_prompt_embeds": negative, "noise": noise,
       "step_noise": torch.stack(drawn), "timesteps": pipe.scheduler.timesteps.to(torch.float32), "latents_out": latents}
save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()}, str(ROOT / "sd1_ancestral.safetensors"),
          metadata={"diffusers": diffusers.__version__, "torch": torch.__version__})
print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", ROOT / "sd1_ancestral.safetensors")
