#!/usr/bin/env python3
"""Writes a random-weight Stable Diffusion 1.5-size diffusers folder for the
model benchmarks (Benchmarks/models.sh).

    python Benchmarks/models/make_random_sd15.py [OUT] [--seed N] [--force]

OUT defaults to /work/bench-models/sd15-random and must lie outside the
repository: the folder is about 5.7 GB of float32 safetensors (UNet 3.4 GB,
ControlNet 1.4 GB, text encoder 0.5 GB, VAE 0.3 GB) and is never committed.
The shapes are those of runwayml/stable-diffusion-v1-5: the configs below
repeat its `unet/config.json`, `vae/config.json`, `text_encoder/config.json`
and the DDIM form of its `scheduler/scheduler_config.json`. `controlnet/` is
an SD 1.5 ControlNet (the config of lllyasviel's sd15 ControlNets, e.g.
control_v11p_sd15_canny); it is not a pipeline component (model_index.json
does not list it), only the `controlnet_step` benchmark loads it. No
tokenizer is written; the benchmarks feed token ids directly.

An existing folder without `controlnet/` gets one added (the other
components are left as they are); a complete folder is left alone unless
--force is given, which rewrites everything.

The weights are random (seeded, so two runs write identical files) and small:
every matrix and kernel is N(0, std) with std = min(0.02, 0.5/sqrt(fan_in)),
normalisation scales are 1, biases 0. That keeps each layer's output at or
below its input's scale, so activations stay finite through the 1.5 UNet's
~25 residual blocks and the VAE decoder; the script checks that on a small
forward pass of each component before it returns. The timings do not depend
on the values, only on the shapes.

Needs torch, diffusers and transformers (the PyTorch peer's environment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("/work/bench-models/sd15-random")

# runwayml/stable-diffusion-v1-5, unet/config.json.
UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# An SD 1.5 ControlNet's config.json (lllyasviel/control_v11p_sd15_canny): the
# UNet's encoder half plus the hint embedding (512x512 RGB hint -> 64x64x320).
CONTROLNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 768,
    "down_block_types": UNET_CONFIG["down_block_types"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "only_cross_attention": False,
    "resnet_time_scale_shift": "default",
    "upcast_attention": False,
    "use_linear_projection": False,
}

# vae/config.json.
VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# text_encoder/config.json (OpenAI CLIP ViT-L/14's text tower).
TEXT_CONFIG = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

# scheduler/scheduler_config.json with DDIM as the class (the PILOT sampler's).
SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Small seeded weights: N(0, min(0.02, 0.5/sqrt(fan_in))) for every
    matrix, kernel and embedding; norm scales 1; biases 0."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = math.prod(p.shape[1:])
                std = min(0.02, 0.5 / math.sqrt(fan_in))
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float32) * std)
            elif name.endswith("bias"):
                p.zero_()
            else:  # GroupNorm / LayerNorm scales
                p.fill_(1.0)


def build(seed: int):
    generator = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    randomise(unet, generator)
    vae = AutoencoderKL(**VAE_CONFIG)
    randomise(vae, generator)
    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    randomise(text, generator)
    return unet.eval(), vae.eval(), text.eval()


def build_controlnet(seed: int) -> ControlNetModel:
    """Its own generator (seed + 1), so a ControlNet added to an existing
    folder is the one a fresh run writes. The zero convolutions get random
    weights like every other kernel (a trained ControlNet's are not zero
    either); the timings do not depend on the values."""
    controlnet = ControlNetModel(**CONTROLNET_CONFIG)
    randomise(controlnet, torch.Generator().manual_seed(seed + 1))
    return controlnet.eval()


@torch.no_grad()
def check_finite(unet, vae, text) -> None:
    """A small pass through each component (16x16 latent, 128x128 image,
    77 ids) must give finite, non-degenerate outputs."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, TEXT_CONFIG["vocab_size"], (1, 77), generator=g)
    ctx = text(ids).last_hidden_state
    eps = unet(torch.randn(1, 4, 16, 16, generator=g), torch.tensor([500.0]), encoder_hidden_states=ctx).sample
    image = vae.decode(torch.randn(1, 4, 16, 16, generator=g)).sample
    latent = vae.encode(torch.rand(1, 3, 128, 128, generator=g) * 2 - 1).latent_dist.mean
    for name, t in [("text", ctx), ("unet", eps), ("vae_decode", image), ("vae_encode", latent)]:
        if not torch.isfinite(t).all() or float(t.abs().max()) == 0:
            raise SystemExit(f"make_random_sd15: {name} output is not finite or all zero")
        print(f"  {name:<10} {list(t.shape)} std {float(t.std()):.3g} max|x| {float(t.abs().max()):.3g}")


@torch.no_grad()
def check_controlnet(controlnet) -> None:
    """Its residuals on a 16x16 latent with a 128x128 hint must be finite and
    not all zero (12 down residuals and the mid one)."""
    g = torch.Generator().manual_seed(2)
    down, mid = controlnet(torch.randn(1, 4, 16, 16, generator=g), torch.tensor([500.0]),
                           encoder_hidden_states=torch.randn(1, 77, 768, generator=g),
                           controlnet_cond=torch.rand(1, 3, 128, 128, generator=g), return_dict=False)
    for t in [*down, mid]:
        if not torch.isfinite(t).all() or float(t.abs().max()) == 0:
            raise SystemExit("make_random_sd15: controlnet residual is not finite or all zero")
    print(f"  controlnet {len(down)} down residuals + mid {list(mid.shape)}, "
          f"max|x| {max(float(t.abs().max()) for t in [*down, mid]):.3g}")


@contextlib.contextmanager
def replacing(target: Path, mode: int | None = None):
    """A temporary folder beside `target`, renamed over it when the block
    ends normally and removed when it raises: no half-written folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    if mode is not None:
        tmp.chmod(mode)
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_controlnet(out: Path, controlnet) -> None:
    """OUT/controlnet, written beside it and renamed into place."""
    with replacing(out / "controlnet", mode=0o755) as tmp:  # mkdtemp's 0700; the other component folders are 0755
        controlnet.save_pretrained(tmp, safe_serialization=True)


def write(out: Path, seed: int, unet, vae, text, controlnet=None, readme: str | None = None) -> None:
    """The diffusers folder (and controlnet/ when given), written beside OUT
    and renamed into place, so an interrupted run leaves no half folder.
    Benchmarks/peers/gpu.py make-model writes its folders through this too."""
    with replacing(out) as tmp:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        vae.save_pretrained(tmp / "vae", safe_serialization=True)
        text.save_pretrained(tmp / "text_encoder", safe_serialization=True)
        DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(tmp / "scheduler")
        if controlnet is not None:
            write_controlnet(tmp, controlnet)
        (tmp / "model_index.json").write_text(json.dumps({
            "_class_name": "StableDiffusionPipeline",
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }, indent=2) + "\n")
        (tmp / "README.txt").write_text(readme or (
            "Random-weight SD 1.5-size components for PILOT-Swift's model benchmarks.\n"
            f"Written by Benchmarks/models/make_random_sd15.py (seed {seed}); not a usable model.\n"))


def parse_arguments(doc: str, default_out: Path, seed: int, size: str):
    """OUT, --seed, --force; OUT resolved and refused inside the repository."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=default_out)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--force", action="store_true", help="rewrite an existing folder")
    args = parser.parse_args()
    args.out = args.out.resolve()
    if args.out == REPO or REPO in args.out.parents:
        parser.error(f"{args.out} is inside the repository; the weights ({size}) must live outside it")
    return args


def main() -> int:
    args = parse_arguments(__doc__, DEFAULT_OUT, 1515, "5.7 GB")
    out = args.out
    torch.manual_seed(args.seed)
    if (out / "model_index.json").exists() and not args.force:
        if (out / "controlnet" / "config.json").exists():
            print(f"{out} already exists (use --force to rewrite it)")
            return 0
        print(f"{out} exists without a ControlNet; adding controlnet/ (seed {args.seed + 1})...")
        controlnet = build_controlnet(args.seed)
        print(f"  controlnet   {sum(p.numel() for p in controlnet.parameters()) / 1e6:8.1f} M parameters")
        check_controlnet(controlnet)
        write_controlnet(out, controlnet)
    else:
        print(f"building random SD 1.5-size components (seed {args.seed})...")
        unet, vae, text = build(args.seed)
        controlnet = build_controlnet(args.seed)
        for name, m in [("unet", unet), ("vae", vae), ("text_encoder", text), ("controlnet", controlnet)]:
            print(f"  {name:<12} {sum(p.numel() for p in m.parameters()) / 1e6:8.1f} M parameters")
        print("checking a small forward pass of each...")
        check_finite(unet, vae, text)
        check_controlnet(controlnet)
        print(f"writing {out}...")
        write(out, args.seed, unet, vae, text, controlnet)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"done: {total / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
