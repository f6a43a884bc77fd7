#!/usr/bin/env python3
"""Writes a random-weight SDXL-base-size diffusers folder for the SDXL model
benchmarks (`Benchmarks/models.sh --only sdxl_unet,sdxl_pilot_inner`).

    python Benchmarks/models/make_random_sdxl.py [OUT] [--seed N] [--force]

OUT defaults to /work/bench-models/sdxl-random and must lie outside the
repository: the folder is about 6.9 GB of float16 safetensors (UNet 5.1 GB,
text encoders 1.6 GB, VAE 0.2 GB), as SDXL checkpoints are distributed, and
is never committed. The shapes are those of
stabilityai/stable-diffusion-xl-base-1.0: the configs below repeat its
`unet/config.json`, `text_encoder/config.json` (CLIP ViT-L),
`text_encoder_2/config.json` (OpenCLIP ViT-bigG with projection) and
`vae/config.json`, with a DDIM scheduler of its betas. No tokenizer is
written; the benchmarks feed token ids and embeddings directly.

The weights are random and small, by make_random_sd15.randomise (every
matrix N(0, min(0.02, 0.5/sqrt(fan_in))), norm scales 1, biases 0), built in
float32 and stored as float16; the script checks one small forward pass of
the UNet with added conditioning before writing. Timings do not depend on the
values, only on the shapes. Needs torch, diffusers and transformers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_random_sd15 as sd15  # noqa: E402  (environment, randomise, VAE config)
import torch  # noqa: E402
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

DEFAULT_OUT = Path("/work/bench-models/sdxl-random")

# stabilityai/stable-diffusion-xl-base-1.0, unet/config.json.
UNET_CONFIG = {
    "act_fn": "silu", "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
    "center_input_sample": False, "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816, "sample_size": 128, "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": True,
}
VAE_CONFIG = {**sd15.VAE_CONFIG, "scaling_factor": 0.13025, "sample_size": 1024, "force_upcast": True}
TEXT_CONFIG = {**sd15.TEXT_CONFIG, "projection_dim": 768}
TEXT2_CONFIG = {**sd15.TEXT_CONFIG, "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu",
                "hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32,
                "projection_dim": 1280, "pad_token_id": 1}
SCHEDULER_CONFIG = sd15.SCHEDULER_CONFIG


@torch.no_grad()
def check_unet(unet) -> None:
    g = torch.Generator().manual_seed(1)
    out = unet(torch.randn(1, 4, 16, 16, generator=g), torch.tensor([500.0]),
               encoder_hidden_states=torch.randn(1, 77, 2048, generator=g),
               added_cond_kwargs={"text_embeds": torch.randn(1, 1280, generator=g),
                                  "time_ids": torch.tensor([[128.0, 128, 0, 0, 128, 128]])}).sample
    if not torch.isfinite(out).all() or float(out.abs().max()) == 0:
        raise SystemExit("make_random_sdxl: unet output is not finite or all zero")
    print(f"  unet {list(out.shape)} std {float(out.std()):.3g} max|x| {float(out.abs().max()):.3g}")


def main() -> int:
    args = sd15.parse_arguments(__doc__, DEFAULT_OUT, 2048, "6.9 GB")
    out = args.out
    if (out / "model_index.json").exists() and not args.force:
        print(f"{out} exists (--force rewrites it)")
        return 0
    with sd15.replacing(out) as tmp:
        generator = torch.Generator().manual_seed(args.seed)
        # One component at a time, each written as float16 and freed: the
        # float32 UNet alone is 10.3 GB.
        unet = UNet2DConditionModel(**UNET_CONFIG)
        sd15.randomise(unet, generator)
        check_unet(unet.eval())
        unet.to(torch.float16).save_pretrained(tmp / "unet", safe_serialization=True)
        del unet
        for folder, cls, config in (("text_encoder", CLIPTextModel, TEXT_CONFIG),
                                    ("text_encoder_2", CLIPTextModelWithProjection, TEXT2_CONFIG)):
            text = cls(CLIPTextConfig(**config))
            sd15.randomise(text, generator)
            text.to(torch.float16).save_pretrained(tmp / folder, safe_serialization=True)
            del text
        vae = AutoencoderKL(**VAE_CONFIG)
        sd15.randomise(vae, generator)
        vae.to(torch.float16).save_pretrained(tmp / "vae", safe_serialization=True)
        DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(tmp / "scheduler")
        (tmp / "model_index.json").write_text(json.dumps({
            "_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": True,
            "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        }, indent=2) + "\n")
        (tmp / "README.txt").write_text(
            "Random-weight SDXL-base-size components (float16) for PILOT-Swift's SDXL benchmarks.\n"
            f"Written by Benchmarks/models/make_random_sdxl.py (seed {args.seed}); not a usable model.\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
