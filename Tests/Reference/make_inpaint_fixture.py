#!/usr/bin/env python3
"""Writes the 9-channel inpainting reference: Tests/Fixtures/sd/sd1-inpaint/unet
(the tiny SD1 fixture UNet, Tests/Fixtures/sd/sd1 from make_sd_fixtures.py,
with a seeded 9-channel conv_in: an inpainting UNet) and
Tests/Fixtures/sd/sd1-inpaint.safetensors (the same as a single-file
checkpoint, LDM keys, fp16), and Tests/Fixtures/sd/sd1_inpaint.safetensors:
diffusers' StableDiffusionInpaintPipeline on it (the sd1 text encoder and VAE beside it)
with given prompt embeddings, a given clean latent as the image, a given
pixel mask and a given masked-image latent, recorded: the reference for
GuidedSampler's inpainting channels and InpaintConditioning's mask.

Shared: init_latents, prompt_embeds, negative_prompt_embeds, mask_pixels
([1, 1, H, W], 0/1), mask_latent (what the pipeline made of it: nearest
downsampling to the latent size), masked_image_latents. For each case NAME
(scheduler, steps, strength): NAME.noise, NAME.timesteps, NAME.latents_out
(output_type="latent"). CFG 7.5.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_inpaint_fixture.py
"""
import json
import shutil
from pathlib import Path

import sys

import diffusers
import torch
from diffusers import (DDIMScheduler, EulerDiscreteScheduler, StableDiffusionInpaintPipeline,
                       UNet2DConditionModel)
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1] / "Fixtures" / "sd"
base = ROOT / "sd1"
target = ROOT / "sd1-inpaint"

# The inpainting UNet: the fixture UNet's weights, conv_in widened to 9 channels.
unet4 = UNet2DConditionModel.from_pretrained(str(base / "unet"))
config = dict(unet4.config)
config["in_channels"] = 9
unet9 = UNet2DConditionModel.from_config(config)
state = unet4.state_dict()
g = torch.Generator().manual_seed(5)
weight = state["conv_in.weight"]
state["conv_in.weight"] = torch.randn(weight.shape[0], 9, *weight.shape[2:], generator=g) * weight.std()
unet9.load_state_dict(state)
if target.exists():
    shutil.rmtree(target)
unet9.save_pretrained(str(target / "unet"))
# The rest of the pipeline is the sd1 fixture's: links, so the folder loads as a whole.
for component in ["model_index.json", "scheduler", "text_encoder", "tokenizer", "vae"]:
    (target / component).symlink_to(Path("..") / "sd1" / component)

# The same model as one single-file checkpoint (LDM keys, fp16, as real ones ship).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ldm_keys  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402
from diffusers import AutoencoderKL  # noqa: E402
vae = AutoencoderKL.from_pretrained(str(base / "vae"))
text = CLIPTextModel.from_pretrained(str(base / "text_encoder"))
ckpt = ldm_keys.to_ldm(unet9.state_dict(), vae.state_dict(), text.state_dict(), dict(unet9.config), dict(vae.config), "openai")
save_file({k: t.detach().to(torch.float16).contiguous() for k, t in ckpt.items()}, str(ROOT / "sd1-inpaint.safetensors"),
          metadata={"diffusers": diffusers.__version__, "torch": torch.__version__})

pipe = StableDiffusionInpaintPipeline.from_pretrained(str(base), unet=unet9, tokenizer=None, safety_checker=None,
                                                      feature_extractor=None, requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
size, hidden = config["sample_size"], config["cross_attention_dim"]
scale = pipe.vae_scale_factor
g = torch.Generator().manual_seed(13)
init = torch.randn(1, 4, size, size, generator=g) * 0.8
positive = torch.randn(1, 77, hidden, generator=g)
negative = torch.randn(1, 77, hidden, generator=g)
masked_latents = torch.randn(1, 4, size, size, generator=g) * 0.8
# A hole: a rectangle, with edges inside latent cells so downsampling has a rule to follow.
mask = torch.zeros(1, 1, size * scale, size * scale)
mask[:, :, 37:101, 20:91] = 1
mask_latent = torch.nn.functional.interpolate(mask, size=(size, size))
out = {"init_latents": init, "prompt_embeds": positive, "negative_prompt_embeds": negative, "mask_pixels": mask,
       "mask_latent": mask_latent, "masked_image_latents": masked_latents}
config_s = dict(pipe.scheduler.config)
for name, kind, steps, strength in [("ddim_5_1p0", DDIMScheduler, 5, 1.0), ("euler_4_0p6", EulerDiscreteScheduler, 4, 0.6)]:
    pipe.scheduler = kind.from_config(config_s)
    seed = 200 + len(out)
    noise = randn_tensor(init.shape, generator=torch.Generator().manual_seed(seed), dtype=init.dtype)
    kwargs = dict(prompt_embeds=positive, negative_prompt_embeds=negative, image=init, mask_image=mask,
                  masked_image_latents=masked_latents, height=size * scale, width=size * scale, strength=strength,
                  num_inference_steps=steps, guidance_scale=7.5, output_type="latent",
                  generator=torch.Generator().manual_seed(seed))
    if strength == 1.0:
        kwargs["latents"] = noise  # the pipeline scales it by init_noise_sigma
    latents = pipe(**kwargs).images
    pipe.scheduler.set_timesteps(steps)
    first = steps - min(int(steps * strength), steps)
    out[f"{name}.noise"] = noise
    out[f"{name}.timesteps"] = pipe.scheduler.timesteps[first:].to(torch.float32)
    out[f"{name}.latents_out"] = latents
save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()}, str(ROOT / "sd1_inpaint.safetensors"),
          metadata={"diffusers": diffusers.__version__, "torch": torch.__version__})
print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", target, ROOT / "sd1_inpaint.safetensors")
