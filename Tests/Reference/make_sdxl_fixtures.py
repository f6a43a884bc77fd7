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

The same weights as a single-file SDXL checkpoint in Stability's "SGM" layout
(what A1111 / ComfyUI read: model.diffusion_model.*, first_stage_model.*,
conditioner.embedders.0.transformer.* = text_encoder as transformers names it,
conditioner.embedders.1.model.* = text_encoder_2 as OpenCLIP's text tower, with
fused q;k;v in_proj rows, text_projection stored [width, proj] = the transpose of
transformers' text_projection.weight, and logit_scale) are NOT committed as a
second copy: single_file_recipe.json.gz (gzipped JSON) says how to assemble that file from the
folder's tensors (ldm_keys.sgm_recipe):

    {"constants":    [{"key", "shape", "value"}],         tensors with no diffusers
                                                         counterpart (logit_scale)
     "ignored_keys": [{"key", "shape", "dtype"}],         may be in real files; a loader
                                                         must skip them (no values)
     "entries":      [{"key", "op", "sources": [{"component", "name"}]}]}   sorted by key

op: "copy" (one source as is), "rows" (sources concatenated along dim 0: q, k, v),
"transpose" (one 2-D source), "conv1x1" (one source with two trailing size-1 dims:
the VAE mid-block attention q/k/v/proj_out are 1x1 convs in LDM). component is
unet / vae / text_encoder / text_encoder_2; name the key in that folder's
safetensors file.

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

--check also assembles the single file from the committed folder by the recipe and
verifies that it is exactly ldm_keys.to_sgm(folder tensors), that ldm_keys.from_sgm +
load_state_dict(strict=True) gives the folder's weights bit for bit, and that so does
diffusers' own StableDiffusionXLPipeline.from_single_file(config=<folder copy with
tokenizers>) -- with text_encoder_2 converted by diffusers' create_diffusers_clip_model_from_ldm
from the file without its conditioner.embedders.0 section, because diffusers picks the
text encoders' sections by width (768 vs 1280 in real SDXL) and both tiny towers are 4 wide.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ldm_keys  # noqa: E402
import make_sd_fixtures as sdfx  # noqa: E402  (pinned environment, helpers)
from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline,  # noqa: E402
                       UNet2DConditionModel)
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "sdxl"
SIZE_LIMIT = 1_700_000  # bytes, the whole Tests/Fixtures/sdxl/ folder (recipe: ~8 KB gzipped)
RECIPE = "single_file_recipe.json.gz"


def write_gzip_text(path: Path, text: str) -> None:
    """Deterministic gzip (no name, mtime 0), so regenerating gives the same bytes."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(text.encode("utf-8"))


def read_gzip_text(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode("utf-8")
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

# --------------------------------------------------------------------------- single-file recipe

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
# OpenCLIP's contrastive temperature: clamped to ln 100 in training, where trained towers
# (bigG included) sit; float16-exact (4.60546875). A loader must not need it.
SGM_CONSTANTS = [{"key": ldm_keys.SDXL_TEXT2_PREFIX + "logit_scale", "shape": [],
                  "value": float(torch.tensor(math.log(100.0)).half())}]
# Tensors real SDXL single files may carry besides the weights; a loader must skip them.
# The DDPM buffers of LDM-era trainers (float32 [1000]), SGM's DiscreteDenoiser buffer,
# and the text_encoder's position ids (int64 [1, 77]; transformers 4.57 no longer
# writes them, so the folder has none).
SGM_IGNORED = [{"key": k, "shape": shape, "dtype": dt} for k, shape, dt in (
    ("alphas_cumprod", [1000], "F32"),
    ("alphas_cumprod_prev", [1000], "F32"),
    ("betas", [1000], "F32"),
    (ldm_keys.SDXL_TEXT1_PREFIX + "text_model.embeddings.position_ids", [1, 77], "I64"),
    ("denoiser.sigmas", [1000], "F32"),
)]
ST_DTYPES = {"F16": torch.float16, "F32": torch.float32, "I64": torch.int64}


def folder_tensors(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The committed fp16 tensors, per component, exactly as stored."""
    out = {}
    for c in COMPONENTS:
        (path,) = sorted((folder / c).glob("*.fp16.safetensors"))
        with safetensors.safe_open(str(path), "pt") as f:
            out[c] = {k: f.get_tensor(k) for k in f.keys()}
    return out


def make_recipe(folder: Path) -> dict:
    cfg = {c: json.loads((folder / c / "config.json").read_text()) for c in ("unet", "vae")}
    keys = {}
    for c in COMPONENTS:
        (path,) = sorted((folder / c).glob("*.fp16.safetensors"))
        with safetensors.safe_open(str(path), "pt") as f:
            keys[c] = sorted(f.keys())
    entries = ldm_keys.sgm_recipe(keys["unet"], keys["vae"], keys["text_encoder"],
                                  keys["text_encoder_2"], cfg["unet"], cfg["vae"])
    return {"constants": SGM_CONSTANTS, "ignored_keys": SGM_IGNORED, "entries": entries}


def recipe_text(recipe: dict) -> str:
    """Compact, one object a line, fixed key order (the file is byte-reproducible)."""
    def lines(items):
        return ",\n".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in items)
    return ('{"constants":[\n' + lines(recipe["constants"]) + "\n],\n"
            '"ignored_keys":[\n' + lines(recipe["ignored_keys"]) + "\n],\n"
            '"entries":[\n' + lines(recipe["entries"]) + "\n]}\n")


def assemble(recipe: dict, tensors: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """What the Swift test does: the single file's weights and constants (no ignored keys)."""
    out = {}
    for e in recipe["entries"]:
        src = [tensors[s["component"]][s["name"]] for s in e["sources"]]
        op = e["op"]
        if op == "copy":
            (t,) = src
        elif op == "rows":
            t = torch.cat(src, 0)
        elif op == "transpose":
            (t,) = src
            assert t.dim() == 2, e
            t = t.t().contiguous()
        elif op == "conv1x1":
            (t,) = src
            t = t.reshape(*t.shape, 1, 1)
        else:
            raise ValueError(f"unknown op {op}")
        out[e["key"]] = t
    dtype = next(iter(out.values())).dtype
    for c in recipe["constants"]:
        out[c["key"]] = torch.full(c["shape"], c["value"], dtype=dtype)
    return out


def with_ignored(ckpt: dict[str, torch.Tensor], recipe: dict) -> dict[str, torch.Tensor]:
    """Adds the ignored keys (zeros of their shape and dtype): a loader must skip them."""
    out = dict(ckpt)
    for i in recipe["ignored_keys"]:
        out[i["key"]] = torch.zeros(i["shape"], dtype=ST_DTYPES[i["dtype"]])
    return out


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


OWN = ("sdxl", "sdxl_reference.safetensors", RECIPE)  # adapters/ is make_sdxl_adapter_fixtures.py's


def report_sizes(out: Path) -> int:
    total = 0
    for p in sorted(q for name in OWN for q in ([out / name] + sorted((out / name).rglob("*")))):
        if p.is_file():
            total += p.stat().st_size
            print(f"{p.stat().st_size:>10,d}  {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"{total:>10,d}  total")
    return total


def state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> tuple[bool, str]:
    sa, sb = a.state_dict(), b.state_dict()
    if set(sa) != set(sb):
        return False, f"key sets differ: {sorted(set(sa) ^ set(sb))[:4]}"
    bad = [k for k in sa if sa[k].is_meta or sb[k].is_meta or sa[k].shape != sb[k].shape
           or not torch.equal(sa[k].float(), sb[k].float())]
    return not bad, (f"{len(bad)} differ, e.g. {bad[:3]}" if bad else f"{len(sa)} tensors bit-identical")


def check_single_file(out: Path, folder: Path, pipe: StableDiffusionXLPipeline, tmp: Path,
                      expect) -> None:
    """The SGM single file, assembled from the committed folder by the committed recipe."""
    print("single file (SGM layout) from", RECIPE)
    text = read_gzip_text(out / RECIPE)
    recipe = sdfx.strict_json(text)
    fresh = make_recipe(out / "sdxl")
    expect(recipe == fresh and text == recipe_text(fresh),
           f"{RECIPE} == ldm_keys.sgm_recipe(committed folder) ({len(recipe['entries'])} entries, "
           f"{len(text.encode()):,d} bytes, canonical text)")
    keys = [e["key"] for e in recipe["entries"]]
    expect(keys == sorted(keys) and len(set(keys)) == len(keys), "entries sorted by key, unique")
    raw = folder_tensors(out / "sdxl")
    sources = sorted((s["component"], s["name"]) for e in recipe["entries"] for s in e["sources"])
    every = sorted((c, k) for c in COMPONENTS for k in raw[c])
    expect(sources == every, f"every folder tensor is used exactly once ({len(every)})")

    ckpt = assemble(recipe, raw)
    (ls,) = [c for c in recipe["constants"] if c["key"].endswith("logit_scale")]
    ref = ldm_keys.to_sgm(raw["unet"], raw["vae"], raw["text_encoder"], raw["text_encoder_2"],
                          dict(pipe.unet.config), dict(pipe.vae.config),
                          torch.tensor(ls["value"], dtype=torch.float16))
    same = set(ckpt) == set(ref) and all(
        ckpt[k].dtype == ref[k].dtype and ckpt[k].shape == ref[k].shape and torch.equal(ckpt[k], ref[k])
        for k in ref)
    expect(same, f"assembled by the recipe == ldm_keys.to_sgm(folder tensors) bit for bit "
           f"({len(ref)} tensors, all {sorted({str(t.dtype) for t in ref.values()})})")

    path = tmp / "sdxl_sgm.safetensors"
    safetensors.torch.save_file(with_ignored(ckpt, recipe), str(path))
    loaded = {k: t for k, t in safetensors.torch.load_file(str(path)).items()}

    # ours: the inverse map into freshly built models, strict
    unet_sd, vae_sd, te1_sd, te2_sd = ldm_keys.from_sgm(
        loaded, list(pipe.unet.state_dict()), list(pipe.vae.state_dict()),
        dict(pipe.unet.config), dict(pipe.vae.config), pipe.text_encoder_2.config.num_hidden_layers)
    mods = {"unet": UNet2DConditionModel.from_config(pipe.unet.config),
            "vae": AutoencoderKL.from_config(pipe.vae.config),
            "text_encoder": CLIPTextModel(pipe.text_encoder.config),
            "text_encoder_2": CLIPTextModelWithProjection(pipe.text_encoder_2.config)}
    for name, sd in zip(COMPONENTS, (unet_sd, vae_sd, te1_sd, te2_sd)):
        mods[name].load_state_dict(sd, strict=True)
        ok, msg = state_dicts_equal(getattr(pipe, name), mods[name])
        expect(ok, f"ldm_keys.from_sgm -> {name}.load_state_dict(strict=True): {msg}")

    # diffusers: its own converter, config = the folder copy with tokenizers
    no_te1 = {k: v for k, v in loaded.items() if not k.startswith(ldm_keys.SDXL_TEXT1_PREFIX)}
    te2 = create_diffusers_clip_model_from_ldm(
        CLIPTextModelWithProjection, no_te1, subfolder="text_encoder_2", config=str(folder),
        torch_dtype=torch.float32, local_files_only=True)
    dpipe = StableDiffusionXLPipeline.from_single_file(
        str(path), config=str(folder), local_files_only=True, torch_dtype=torch.float32,
        text_encoder_2=te2)
    for name in COMPONENTS:
        ok, msg = state_dicts_equal(getattr(pipe, name), getattr(dpipe, name))
        how = ("create_diffusers_clip_model_from_ldm(file without conditioner.embedders.0.*)"
               if name == "text_encoder_2" else "StableDiffusionXLPipeline.from_single_file")
        expect(ok, f"diffusers {how} -> {name}: {msg}")


def check(out: Path) -> int:
    expect = sdfx.Expect()
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
        check_single_file(out, folder, pipe, tmp, expect)
    stored = sdfx.read_safetensors(out / "sdxl_reference.safetensors")[1]
    expect(set(stored) == set(tensors), f"same {len(tensors)} reference tensors")
    worst = max(sdfx.rel_err(stored[k], tensors[k]) for k in tensors if k in stored)
    expect(worst <= CHECK_TOL, f"recomputed reference within {CHECK_TOL}: {worst:.3g}")
    ue = stored["unet.out"]
    expect(float(np.abs(ue).max()) > 0.1, "UNet output is not trivially small")
    return expect.verdict()


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        pipe = build_pipeline(tmp / "work")
        full = tmp / "sdxl-full"
        save_folder(pipe, full, with_tokenizers=True)
        tensors, entries = reference(load_folder(full))
        if out.exists():
            for name in OWN:
                if (out / name).is_dir():
                    shutil.rmtree(out / name)
                elif (out / name).exists():
                    (out / name).unlink()
        out.mkdir(parents=True, exist_ok=True)
        save_folder(pipe, out / "sdxl", with_tokenizers=False)
        write_reference(out / "sdxl_reference.safetensors", tensors, entries)
        write_gzip_text(out / RECIPE, recipe_text(make_recipe(out / "sdxl")))


def main() -> int:
    args = sdfx.parse_args(__doc__, DEFAULT_OUT, check_help=None)
    torch.use_deterministic_algorithms(True)
    if not args.check:
        generate(args.out)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
