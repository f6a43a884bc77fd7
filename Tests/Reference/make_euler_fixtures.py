#!/usr/bin/env python3
"""Writes the Euler-variant references on the tiny SD1 fixture model
(Tests/Fixtures/sd/sd1), diffusers' StableDiffusionPipeline from given prompt
embeddings and initial noise, CFG 7.5:

- Tests/Fixtures/sd/sd1_ancestral.safetensors: EulerAncestralDiscreteScheduler,
  5 steps; the noise the scheduler adds at each step is recorded (the module's
  randn_tensor is wrapped to keep what it draws) as step_noise [5, 1, 4, h, w].
  The reference for EulerAncestralScheduler.
- Tests/Fixtures/sd/sd1_karras.safetensors: EulerDiscreteScheduler with
  use_karras_sigmas=True, 6 steps, with its sigmas (final 0) and the
  fractional timesteps derived from them. The reference for Karras sigmas;
  beside it exponential.sigmas / exponential.timesteps, the schedule of
  use_exponential_sigmas=True (6 steps).

Each holds prompt_embeds, negative_prompt_embeds, noise, timesteps, latents_out.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_euler_fixtures.py
"""
import sys
from pathlib import Path

import diffusers
import diffusers.schedulers.scheduling_euler_ancestral_discrete as ancestral
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sd1_pipeline import ROOT, base, hidden, pipe, recording_noise, run, size  # noqa: E402


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 77, hidden, generator=g), torch.randn(1, 77, hidden, generator=g), torch.randn(1, 4, size, size, generator=g)


def save(name, out):
    save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()}, str(ROOT / name),
              metadata={"diffusers": diffusers.__version__, "torch": torch.__version__})
    print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", ROOT / name)


# Euler ancestral, its step noise recorded.
positive, negative, noise = inputs(23)
pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(base)
with recording_noise(ancestral) as drawn:
    latents = run(positive, negative, noise, 5, generator=torch.Generator().manual_seed(29))
assert len(drawn) == 5, len(drawn)
save("sd1_ancestral.safetensors", {"prompt_embeds": positive, "negative_prompt_embeds": negative, "noise": noise,
                                   "step_noise": torch.stack(drawn), "timesteps": pipe.scheduler.timesteps.to(torch.float32),
                                   "latents_out": latents})

# Euler on Karras sigmas.
positive, negative, noise = inputs(31)
pipe.scheduler = EulerDiscreteScheduler.from_config(base, use_karras_sigmas=True)
latents = run(positive, negative, noise, 6)
karras = {"prompt_embeds": positive, "negative_prompt_embeds": negative, "noise": noise,
          "timesteps": pipe.scheduler.timesteps.to(torch.float32), "sigmas": pipe.scheduler.sigmas.to(torch.float32),
          "latents_out": latents}
# Exponential sigmas: the schedule only (the sampling loop is Euler's, checked above).
exponential = EulerDiscreteScheduler.from_config(base, use_exponential_sigmas=True)
exponential.set_timesteps(6)
karras["exponential.sigmas"] = exponential.sigmas.to(torch.float32)
karras["exponential.timesteps"] = exponential.timesteps.to(torch.float32)
save("sd1_karras.safetensors", karras)
