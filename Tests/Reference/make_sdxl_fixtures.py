#!/usr/bin/env python3
"""Writes the SDXL reference fixtures (Tests/Fixtures/sdxl/).

    python make_sdxl_fixtures.py            # rebuild everything, then run the checks
    python make_sdxl_fixtures.py --check    # recompute the reference and compare

A tiny random-weight SDXL pipeline saved by diffusers' StableDiffusionXLPipeline:
a UNet with SDXL's layout (a plain first level, cross-attention below it, per-level
transformer depths, linear projections, "text_time" added conditioning), an OpenAI
CLIP text encoder (quick_gelu) and an OpenCLIP-style CLIPTextModelWithProjection
(gelu, pooled projection), and a VAE with SDXL's scaling factor 0.13025. Every
parameter is rounded to float16 precision and the weights are stored as fp16 files
(`*.fp16.safetensors`), which is what keeps the folder small.

The tokenizer folders are NOT committed (two copies of the CLIP vocabulary would
be 1 MB): the Swift side uses its built-in vocabulary (the same BPE file,
Sources/Diffusion/Resources) with the family's padding (tokenizer: <|endoftext|>,
tokenizer_2: "!"). The reference is computed from a temporary copy that has them.

Reference outputs (sdxl_reference.safetensors, float32, diffusers 0.39.0 /
transformers 4.57.6 from requirements-sd.txt):
  ids.prompt / ids.prompt_2                    token ids (exact integers as float32)
  te1.penultimate                              text_encoder hidden_states[-2]
  te2.penultimate / te2.text_embeds            text_encoder_2 hidden_states[-2], pooled projection
  prompt_embeds / pooled_prompt_embeds         pipeline.encode_prompt (the two concatenated)
  unet.sample / unet.timestep / unet.context / unet.text_embeds / unet.time_ids / unet.out
                                               one UNet call, batch 2
  txt2img.noise / txt2img.latent               a 4-step DDIM txt2img run (guidance 5, empty
                                               negative prompt -> zero embeddings) from noise
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_sd_fixtures as sdfx  # noqa: E402  (pinned environment, helpers)
from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline,  # noqa: E402
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "sdxl"
SIZE_LIMIT = 1_700_000  # bytes, the whole Tests/Fixtures/sdxl/ folder
CHECK_TOL = 1e-6        # --check: max|stored - recomputed| / max|stored|
SEED = 3000

TEXT1 = {"vocab_size": 49408, "hidden_size": 4, "intermediate_size": 16,
         "num_attention_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 77,
         "hidden_act": "quick_gelu", "projection_dim": 4}
TEXT2 = {**TEXT1, "num_hidden_layers": 3, "hidden_act": "gelu", "projection_dim": 4}
UNET = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4,
    "block_out_channels": [8, 16, 16],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 2, "norm_num_groups": 4,
    "transformer_layers_per_block": [1, 2, 3],
    "attention_head_dim": [2, 4, 4],
    "cross_attention_dim": TEXT1["hidden_size"] + TEXT2["hidden_size"],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 4,
    "projection_class_embeddings_input_dim": TEXT2["projection_dim"] + 6 * 4,
}
VAE = {**sdfx.VAE_CONFIG, "scaling_factor": 0.13025, "force_upcast": True}
SCHEDULER = {**sdfx.DDIM_BASE, "prediction_type": "epsilon"}

PROMPT = "a red fox in the snow"
STEPS = 4
GUIDANCE = 5.0
HEIGHT = WIDTH = 128          # latent 16x16 (the tiny VAE halves three times)
UNET_TIMESTEP = 501.0
UNET_TIME_IDS = [[128.0, 96.0, 8.0, 0.0, 128.0, 128.0], [64.0, 64.0, 0.0, 16.0, 128.0, 128.0]]
NOISE_SEED = 3100


def build_pipeline(workdir: Path) -> StableDiffusionXLPipeline:
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(**UNET)
    sdfx.sharpen_attention(unet)
    sdfx.round_to_half(unet, SEED + 1)
    torch.manual_seed(SEED + 10)
    vae = AutoencoderKL(**VAE)
    sdfx.sharpen_attention(vae)
    sdfx.round_to_half(vae, SEED + 11)
    encoders = []
    for i, (cls, cfg) in enumerate(((CLIPTextModel, TEXT1), (CLIPTextModelWithProjection, TEXT2))):
        torch.manual_seed(SEED + 20 + 10 * i)
        te = cls(CLIPTextConfig(**cfg))
        sdfx.widen_text_embeddings(te, SEED + 22 + 10 * i)
        sdfx.sharpen_attention(te)
        sdfx.round_to_half(te, SEED + 21 + 10 * i)
        encoders.append(te.eval())
    tok1 = sdfx.build_tokenizer(workdir / "tok1", "<|endoftext|>")
    tok2 = sdfx.build_tokenizer(workdir / "tok2", "!")
    return StableDiffusionXLPipeline(
        vae=vae.eval(), text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=tok1,
        tokenizer_2=tok2, unet=unet.eval(), scheduler=DDIMScheduler(**SCHEDULER),
        force_zeros_for_empty_prompt=True)


def save_folder(pipe: StableDiffusionXLPipeline, folder: Path, with_tokenizers: bool) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    pipe.to(torch.float16).save_pretrained(str(folder), safe_serialization=True, variant="fp16")
    pipe.to(torch.float32)
    if not with_tokenizers:
        for name in ("tokenizer", "tokenizer_2"):
            shutil.rmtree(folder / name)
    for p in folder.rglob("*.safetensors"):
        sdfx.canonical_safetensors(p)


def load_folder(folder: Path) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(str(folder), variant="fp16",
                                                     torch_dtype=torch.float16,
                                                     local_files_only=True)
    return pipe.to(torch.float32)


def reference(pipe: StableDiffusionXLPipeline) -> tuple[dict, dict]:
    t, e = {}, {}

    def put(name, v, desc):
        v = torch.as_tensor(v).detach().to(torch.float32)
        t[name] = v.numpy()
        e[name] = {"shape": list(v.shape), "desc": desc}

    ids1 = sdfx.padded_ids(pipe.tokenizer, PROMPT)
    ids2 = sdfx.padded_ids(pipe.tokenizer_2, PROMPT)
    put("ids.prompt", torch.tensor([ids1]), "tokenizer ids (pads with <|endoftext|>)")
    put("ids.prompt_2", torch.tensor([ids2]), "tokenizer_2 ids (pads with '!', id 0)")
    with torch.no_grad():
        o1 = pipe.text_encoder(torch.tensor([ids1]), output_hidden_states=True)
        o2 = pipe.text_encoder_2(torch.tensor([ids2]), output_hidden_states=True)
        put("te1.penultimate", o1.hidden_states[-2], "text_encoder hidden_states[-2] (no final norm)")
        put("te2.penultimate", o2.hidden_states[-2], "text_encoder_2 hidden_states[-2] (no final norm)")
        put("te2.text_embeds", o2.text_embeds, "text_encoder_2 pooled projection: "
            "text_projection(final_layer_norm(last)[first EOS])")
        pe, ne, pp, npool = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                               do_classifier_free_guidance=True, negative_prompt=None)
        put("prompt_embeds", pe, "encode_prompt: [te1.penultimate, te2.penultimate] on features")
        put("pooled_prompt_embeds", pp, "encode_prompt pooled (= te2.text_embeds)")
        assert float(ne.abs().max()) == 0 and float(npool.abs().max()) == 0, "force_zeros_for_empty_prompt"
        g = torch.Generator().manual_seed(NOISE_SEED)
        sample = torch.randn([2, 4, 16, 16], generator=g)
        ctx = torch.randn([2, 77, UNET["cross_attention_dim"]], generator=g)
        text_embeds = torch.randn([2, TEXT2["projection_dim"]], generator=g)
        time_ids = torch.tensor(UNET_TIME_IDS)
        out = pipe.unet(sample, torch.tensor(UNET_TIMESTEP), encoder_hidden_states=ctx,
                        added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
        put("unet.sample", sample, "UNet input latents (torch.randn)")
        put("unet.timestep", torch.tensor([UNET_TIMESTEP]), "the timestep (both rows)")
        put("unet.context", ctx, "encoder_hidden_states (torch.randn)")
        put("unet.text_embeds", text_embeds, "added_cond_kwargs text_embeds (torch.randn)")
        put("unet.time_ids", time_ids, "added_cond_kwargs time_ids: original h, w, crop top, "
            "left, target h, w")
        put("unet.out", out, "UNet output")
        noise = torch.randn([1, 4, 16, 16], generator=g)
        latent = pipe(PROMPT, height=HEIGHT, width=WIDTH, num_inference_steps=STEPS,
                      guidance_scale=GUIDANCE, latents=noise.clone(), output_type="latent").images
        put("txt2img.noise", noise, "initial latents (torch.randn; DDIM's init sigma is 1)")
        put("txt2img.latent", latent, f"latent after {STEPS} DDIM steps, guidance {GUIDANCE}, "
            "empty negative prompt (zero embeddings), default size/crop conditioning "
            f"({HEIGHT}, {WIDTH}, 0, 0, {HEIGHT}, {WIDTH})")
    return t, e


def write_reference(path: Path, tensors: dict, entries: dict) -> None:
    meta = {"variant": "sdxl",
            "entries": json.dumps(entries, ensure_ascii=False),
            "configs": json.dumps({"unet": UNET, "vae": VAE, "text_encoder": TEXT1,
                                   "text_encoder_2": TEXT2, "scheduler": SCHEDULER,
                                   "pipeline": {"prompt": PROMPT, "negative_prompt": None,
                                                "steps": STEPS, "guidance_scale": GUIDANCE,
                                                "height": HEIGHT, "width": WIDTH,
                                                "force_zeros_for_empty_prompt": True}}),
            "versions": json.dumps(sdfx.VERSIONS),
            "notes": __doc__.split("\n\n")[1].replace("\n", " ")}
    path.write_bytes(safetensors.numpy.save(tensors, metadata=meta))
    sdfx.canonical_safetensors(path)


def report_sizes(out: Path) -> int:
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            print(f"{p.stat().st_size:>10,d}  {p.relative_to(ROOT)}")
    print(f"{total:>10,d}  total")
    return total


def check(out: Path) -> int:
    problems = []

    def expect(cond: bool, msg: str) -> None:
        print(("  ok    " if cond else "  FAIL  ") + msg)
        if not cond:
            problems.append(msg)

    expect(report_sizes(out) <= SIZE_LIMIT, f"folder <= {SIZE_LIMIT:,d} bytes")
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        folder = tmp / "sdxl"
        shutil.copytree(out / "sdxl", folder)
        # the committed folder has no tokenizers: add the ones the pipeline was built with
        built = build_pipeline(tmp / "work")
        for name, tok in (("tokenizer", built.tokenizer), ("tokenizer_2", built.tokenizer_2)):
            tok.save_pretrained(str(folder / name))
        pipe = load_folder(folder)
        same = all(torch.equal(a, b) for m1, m2 in ((built.unet, pipe.unet), (built.vae, pipe.vae),
                                                   (built.text_encoder, pipe.text_encoder),
                                                   (built.text_encoder_2, pipe.text_encoder_2))
                   for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
        expect(same, "the committed fp16 weights are the rebuilt pipeline's (float16-exact)")
        tensors, _ = reference(pipe)
    with safetensors.safe_open(str(out / "sdxl_reference.safetensors"), "numpy") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    expect(set(stored) == set(tensors), f"same {len(tensors)} reference tensors")
    worst = max(sdfx.rel_err(stored[k], tensors[k]) for k in tensors if k in stored)
    expect(worst <= CHECK_TOL, f"recomputed reference within {CHECK_TOL}: {worst:.3g}")
    ue = stored["unet.out"]
    expect(float(np.abs(ue).max()) > 0.1, "UNet output is not trivially small")
    print("all checks passed" if not problems else f"FAILED: {len(problems)} problem(s)")
    return 1 if problems else 0


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        pipe = build_pipeline(tmp / "work")
        full = tmp / "sdxl-full"
        save_folder(pipe, full, with_tokenizers=True)
        tensors, entries = reference(load_folder(full))
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        save_folder(pipe, out / "sdxl", with_tokenizers=False)
        write_reference(out / "sdxl_reference.safetensors", tensors, entries)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if not args.check:
        generate(args.out)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
