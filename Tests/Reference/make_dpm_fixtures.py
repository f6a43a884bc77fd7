#!/usr/bin/env python3
"""Writes the DPM-Solver++ and UniPC references on the tiny SD1 fixture model
(Tests/Fixtures/sd/sd1): diffusers' StableDiffusionPipeline from given prompt
embeddings and initial noise, CFG 7.5, with DPMSolverMultistepScheduler
(solver_order 2, midpoint, final sigma 0, the pipeline's defaults otherwise):

- Tests/Fixtures/sd/sd1_dpm.safetensors, per case `NAME.{noise, sigmas,
  timesteps, latents_out}` and, for the SDE cases, `NAME.step_noise`
  [n, 1, 4, h, w] (the noise the scheduler drew at each step, recorded by
  wrapping the module's randn_tensor):
  - `karras`: algorithm dpmsolver++ (DPM++ 2M), use_karras_sigmas, 8 steps
  - `exponential`: DPM++ 2M, use_exponential_sigmas, 8 steps
  - `sde`: algorithm sde-dpmsolver++ (DPM++ 2M SDE), the schedule's spacing, 6 steps
  - `sde_karras`: DPM++ 2M SDE with Karras sigmas, 6 steps
  - `unipc`, `unipc_karras`: UniPCMultistepScheduler (order 2, bh2, predicting
    x0, lower order at the end, final sigma 0), the schedule's spacing and
    Karras sigmas, 7 steps
  plus `prompt_embeds`, `negative_prompt_embeds` shared by all.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_dpm_fixtures.py
"""
import sys
from pathlib import Path

import diffusers
import diffusers.schedulers.scheduling_dpmsolver_multistep as multistep
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sd1_pipeline import ROOT, base, hidden, pipe, recording_noise, run, size  # noqa: E402

g = torch.Generator().manual_seed(41)
positive, negative = torch.randn(1, 77, hidden, generator=g), torch.randn(1, 77, hidden, generator=g)
out = {"prompt_embeds": positive, "negative_prompt_embeds": negative}

CASES = [
    ("karras", 8, dict(algorithm_type="dpmsolver++", use_karras_sigmas=True)),
    ("exponential", 8, dict(algorithm_type="dpmsolver++", use_exponential_sigmas=True)),
    ("sde", 6, dict(algorithm_type="sde-dpmsolver++")),
    ("sde_karras", 6, dict(algorithm_type="sde-dpmsolver++", use_karras_sigmas=True)),
    ("unipc", 7, dict()),
    ("unipc_karras", 7, dict(use_karras_sigmas=True)),
]
for seed, (name, steps, options) in enumerate(CASES):
    noise = torch.randn(1, 4, size, size, generator=g)
    if name.startswith("unipc"):
        pipe.scheduler = UniPCMultistepScheduler.from_config(base, solver_order=2, solver_type="bh2", predict_x0=True,
                                                             lower_order_final=True, final_sigmas_type="zero", **options)
    else:
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(base, solver_order=2, final_sigmas_type="zero", **options)
    with recording_noise(multistep) as drawn:
        latents = run(positive, negative, noise, steps, generator=torch.Generator().manual_seed(100 + seed))
    out[f"{name}.noise"] = noise
    out[f"{name}.sigmas"] = pipe.scheduler.sigmas.to(torch.float32)
    out[f"{name}.timesteps"] = pipe.scheduler.timesteps.to(torch.float32)
    out[f"{name}.latents_out"] = latents
    if options.get("algorithm_type", "").startswith("sde"):
        assert len(drawn) == steps, (name, len(drawn))
        out[f"{name}.step_noise"] = torch.stack(drawn)
    else:
        assert not drawn, (name, len(drawn))
    print(name, "timesteps", pipe.scheduler.timesteps.tolist(), "sigmas", [round(s, 4) for s in pipe.scheduler.sigmas.tolist()])

save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()}, str(ROOT / "sd1_dpm.safetensors"),
          metadata={"diffusers": diffusers.__version__, "torch": torch.__version__})
print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", ROOT / "sd1_dpm.safetensors")
