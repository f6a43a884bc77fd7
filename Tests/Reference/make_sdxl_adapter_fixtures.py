#!/usr/bin/env python3
"""Writes the SDXL adapter reference fixtures (Tests/Fixtures/sdxl/adapters/).

    python make_sdxl_adapter_fixtures.py            # rebuild everything, then run the checks
    python make_sdxl_adapter_fixtures.py --check    # recompute from the committed files and compare

Tiny random-weight adapters for the committed tiny SDXL model (Tests/Fixtures/sdxl/sdxl/,
built by make_sdxl_fixtures.py): a ControlNet made by ControlNetModel.from_unet (so it
has SDXL's text_time addition embedding), an IP-Adapter in the h94 single-file layout
with a tiny CLIPVisionModelWithProjection, and one LoRA on attention projections of the
UNet and of both text encoders, in kohya layout (diffusers module names and, as real
SDXL kohya files have them, SGM / LDM block names) and in diffusers/peft layout. Every
adapter weight is stored as float16. Reference outputs are PyTorch float32 results of
diffusers / transformers, computed from the written files. Conventions follow
make_adapter_fixtures.py (SD 1.x); see README.md ("SDXL adapter fixtures").
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_sd_fixtures as sdfx  # noqa: E402  (pinned environment, tokenizer, helpers)
import make_adapter_fixtures as adfx  # noqa: E402  (ControlNet builder, IP processor, images)

from diffusers import ControlNetModel, StableDiffusionXLPipeline  # noqa: E402
from transformers import CLIPVisionModelWithProjection  # noqa: E402

from detrand import GENERATOR  # noqa: E402

ROOT = HERE.parents[1]
SDXL_FOLDER = ROOT / "Tests" / "Fixtures" / "sdxl" / "sdxl"
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "sdxl" / "adapters"
SIZE_LIMIT = 700_000    # bytes, the whole Tests/Fixtures/sdxl/adapters/ folder
REL_TOL = 1e-6          # --check: recomputed reference vs committed (0 on the writing machine)
MAX_LENGTH = sdfx.MAX_LENGTH
PROMPT = "a red fox in the snow"
REFERENCE = "reference.safetensors"
VERSIONS = adfx.VERSIONS

# --------------------------------------------------------------------------- parameters

SEED = 7000                  # base seed (sd 1000/2000, sd adapters 5000, sdxl 3000)
UNET_T = 451.0               # timestep of every UNet / ControlNet call (both rows)
TIME_IDS = [[128.0, 96.0, 8.0, 0.0, 128.0, 128.0],    # original h, w, crop top, left, target h, w
            [64.0, 64.0, 0.0, 16.0, 128.0, 128.0]]
CN_HINT = (4, 8, 8, 16)      # conditioning_embedding_out_channels: 3 stride-2 convs, 128 -> 16
CN_SCALE = 1.0
IP_SCALE = 0.7
IP_TOKENS = 4
CLIP_VISION = {**adfx.CLIP_VISION,   # the SD 1.x fixtures' image encoder (same key order), but:
               "intermediate_size": 16, "image_size": 32, "patch_size": 8, "projection_dim": 6,
               "hidden_act": "gelu"}
LORA_SCALE = 0.8
LORA_RANK = 2
# One alpha per component (alpha / rank a power of two, so the peft file can carry it
# exactly in lora_B). diffusers 0.39 applies a kohya file's most common alpha to every
# attention projection (see the SD 1.x README section); with one alpha per component
# that is the file's own alpha, so diffusers' result is the kohya formula.
LORA_ALPHA = {"unet": 1.0, "text_encoder": 4.0, "text_encoder_2": 1.0}
LORA_DELTA = 0.5             # (alpha / rank) up.down has std 0.5 std(W)
UNET_PROJ = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_PROJ = ("q_proj", "k_proj", "v_proj", "out_proj")
LORA_UNET_ATTN = [           # attention modules (+ "." + projection) the LoRA touches
    "down_blocks.1.attentions.0.transformer_blocks.1.attn1",
    "down_blocks.1.attentions.0.transformer_blocks.1.attn2",
    "down_blocks.2.attentions.1.transformer_blocks.2.attn2",
    "mid_block.attentions.0.transformer_blocks.2.attn1",
    "mid_block.attentions.0.transformer_blocks.2.attn2",
    "up_blocks.0.attentions.2.transformer_blocks.0.attn2",
    "up_blocks.1.attentions.1.transformer_blocks.1.attn1",
]
TEXT_LAYERS = {"text_encoder": 2, "text_encoder_2": 3}   # every layer of both encoders
LORA_STORED_MERGED = [       # fused weights stored in the reference (debugging aid)
    "unet.down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q.weight",
    "unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight",
    "unet.mid_block.attentions.0.transformer_blocks.2.attn2.to_out.0.weight",
    "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight",
    "text_encoder_2.text_model.encoder.layers.2.self_attn.out_proj.weight",
]
KOHYA_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}

# --------------------------------------------------------------------------- helpers

META_ORDER = ("kind", "entries", "configs", "layers", "generator", "versions", "notes")


def canonical_safetensors(path: Path) -> None:
    adfx.canonical_safetensors(path)


def save_torch(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    adfx.save_torch(tensors, path, meta)


class Dump(sdfx.Dump):
    """sdfx.Dump that may store an input as U8 (integer values 0...255 only)."""

    def __init__(self, dtype=torch.float32):
        super().__init__(dtype)
        self.u8: set[str] = set()

    def put_u8(self, name: str, a: np.ndarray, desc: str, **info) -> None:
        assert a.dtype == np.uint8
        self.put(name, a.astype(np.float32), desc, dtype="U8", **info)
        self.u8.add(name)

    def stored(self) -> dict[str, np.ndarray]:
        return {k: (v.astype(np.uint8) if k in self.u8 else v) for k, v in self.tensors.items()}


def write_reference(d: Dump, path: Path, configs: dict, layers: dict) -> None:
    meta = {
        "kind": "sdxl_adapters",
        "entries": json.dumps(d.entries, ensure_ascii=False, allow_nan=False),
        "configs": json.dumps(configs, ensure_ascii=False, allow_nan=False,
                              default=sdfx._json_default),
        "layers": json.dumps(layers, ensure_ascii=False),
        "generator": GENERATOR,
        "versions": json.dumps(VERSIONS),
        "notes": NOTES,
    }
    path.write_bytes(safetensors.numpy.save(d.stored(), metadata=meta))
    canonical_safetensors(path)


def model_config(m) -> dict:
    return {k: v for k, v in dict(m.config).items() if not k.startswith("_")}


def rel(a, b) -> float:
    return sdfx.rel_err(a, b)


# --------------------------------------------------------------------------- base model

class Base:
    """The committed tiny SDXL pipeline (tokenizers rebuilt, as make_sdxl_fixtures does)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.folder = tmp / "sdxl"
        shutil.copytree(SDXL_FOLDER, self.folder)
        for name, pad in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
            sdfx.build_tokenizer(tmp / ("tok-" + name), pad).save_pretrained(str(self.folder / name))
        self.pipe = self.load_pipe()
        p = self.pipe
        self.unet, self.te1, self.te2 = p.unet, p.text_encoder, p.text_encoder_2
        self.tok1, self.tok2 = p.tokenizer, p.tokenizer_2

    def load_pipe(self) -> StableDiffusionXLPipeline:
        pipe = StableDiffusionXLPipeline.from_pretrained(
            str(self.folder), variant="fp16", torch_dtype=torch.float16, local_files_only=True)
        pipe = pipe.to(torch.float32)
        pipe.set_progress_bar_config(disable=True)
        for m in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
            m.eval()
        return pipe

    def model(self, component: str):
        return {"unet": self.unet, "text_encoder": self.te1, "text_encoder_2": self.te2}[component]


# --------------------------------------------------------------------------- ControlNet

def hint_u8() -> np.ndarray:
    """make_adapter_fixtures' conditioning images (row 0 a line drawing, row 1 a colour
    picture) as the 8-bit values k they are made of: the hint is k / 255. Stored as U8
    (a quarter of the F32 bytes)."""
    img = adfx.conditioning_images()
    k = torch.round(img.double() * 255)
    assert torch.equal((k / 255).float(), img) and torch.equal(k.float() / 255, img)
    return k.numpy().astype(np.uint8)


def hint_from_u8(k: np.ndarray, dtype) -> torch.Tensor:
    """float32 k / 255 (correctly rounded: the same as float64 k / 255 rounded to float32)."""
    return torch.from_numpy(k.astype(np.float32)).to(dtype) / 255


def build_controlnet(unet, seed: int) -> ControlNetModel:
    """adfx.build_controlnet: from_unet (SDXL: copies conv_in, time and add embeddings,
    down and mid blocks), trunk perturbed (so it is not the UNet), zero convs given
    non-zero random values, hint net normalised, everything float16-exact."""
    cn = adfx.build_controlnet(unet, CN_HINT, seed)
    assert cn.config.addition_embed_type == "text_time"
    return cn


# --------------------------------------------------------------------------- IP-Adapter

def build_image_encoder(seed: int) -> CLIPVisionModelWithProjection:
    """adfx.build_image_encoder with this script's CLIP_VISION."""
    return adfx.build_image_encoder(seed, CLIP_VISION)


def build_ip_adapter(unet, seed: int) -> dict[str, torch.Tensor]:
    """adfx.build_ip_adapter (h94 layout, as ip-adapter_sdxl.safetensors) for this
    script's image encoder and IP_TOKENS."""
    return adfx.build_ip_adapter(unet, seed, CLIP_VISION["projection_dim"], IP_TOKENS)


# --------------------------------------------------------------------------- LoRA

def lora_targets() -> list[tuple[str, str]]:
    out = [("unet", f"{a}.{p}") for a in LORA_UNET_ATTN for p in UNET_PROJ]
    for comp, n in TEXT_LAYERS.items():
        out += [(comp, f"text_model.encoder.layers.{i}.self_attn.{p}")
                for i in range(n) for p in TEXT_PROJ]
    return out


def build_lora(base: Base, seed: int) -> list[dict]:
    """Records (component, module, down [r, in], up [out, r], alpha), float16-exact."""
    g = torch.Generator().manual_seed(seed)
    recs = []
    for comp, module in lora_targets():
        w = base.model(comp).get_submodule(module).weight.detach()
        out_ch, fan = w.shape
        down = torch.randn((LORA_RANK, fan), generator=g, dtype=torch.float64)
        up = torch.randn((out_ch, LORA_RANK), generator=g, dtype=torch.float64)
        ratio = LORA_ALPHA[comp] / LORA_RANK
        c = math.sqrt(LORA_DELTA * float(w.double().std()) / (ratio * float((up @ down).std())))
        recs.append({"component": comp, "module": module, "down": (down * c).half().float(),
                     "up": (up * c).half().float(), "rank": LORA_RANK, "alpha": LORA_ALPHA[comp]})
    return recs


def unet_module_to_sgm(module: str, unet_config) -> str:
    """diffusers UNet module path -> SGM (original SDXL) path, for the blocks a LoRA on
    attention layers touches; inverse of diffusers' _maybe_map_sgm_blocks_to_diffusers:
    down_blocks.b.attentions.j -> input_blocks.(1 + b (lpb + 1) + j).1, mid_block.attentions.0
    -> middle_block.1, up_blocks.b.attentions.j -> output_blocks.(b (lpb + 1) + j).1."""
    lpb = unet_config.layers_per_block
    p = module.split(".")
    if p[0] == "down_blocks" and p[2] == "attentions":
        return ".".join(["input_blocks", str(1 + int(p[1]) * (lpb + 1) + int(p[3])), "1"] + p[4:])
    if p[0] == "mid_block" and p[1] == "attentions" and p[2] == "0":
        return ".".join(["middle_block", "1"] + p[3:])
    if p[0] == "up_blocks" and p[2] == "attentions":
        return ".".join(["output_blocks", str(int(p[1]) * (lpb + 1) + int(p[3])), "1"] + p[4:])
    raise KeyError(f"no SGM name for {module}")


def kohya_dict(recs: list[dict], unet_config=None) -> dict[str, torch.Tensor]:
    out = {}
    for r in recs:
        mod = r["module"]
        if unet_config is not None and r["component"] == "unet":
            mod = unet_module_to_sgm(mod, unet_config)
        stem = KOHYA_PREFIX[r["component"]] + mod.replace(".", "_")
        out[stem + ".lora_down.weight"] = r["down"].half()
        out[stem + ".lora_up.weight"] = r["up"].half()
        out[stem + ".alpha"] = torch.tensor(r["alpha"], dtype=torch.float16)
    return out


def peft_dict(recs: list[dict]) -> dict[str, torch.Tensor]:
    """diffusers/peft layout: no alphas (diffusers uses lora_alpha = rank), so lora_B
    carries alpha / rank (a power of two: exact)."""
    out = {}
    for r in recs:
        ratio = r["alpha"] / r["rank"]
        stem = f"{r['component']}.{r['module']}"
        out[stem + ".lora_A.weight"] = r["down"].half()
        out[stem + ".lora_B.weight"] = (r["up"] * ratio).half()
        assert torch.equal(out[stem + ".lora_B.weight"].float(), r["up"] * ratio)
    return out


def read_kohya(path: Path, base: Base, sgm: bool) -> list[dict]:
    """Parse a kohya file by resolving the underscore names against the module tree
    (the SGM variant through unet_module_to_sgm)."""
    sd = safetensors.torch.load_file(str(path))
    names = {}
    for comp in KOHYA_PREFIX:
        for mname, mod in base.model(comp).named_modules():
            if isinstance(mod, torch.nn.Linear):
                shown = mname
                if sgm and comp == "unet":
                    try:
                        shown = unet_module_to_sgm(mname, base.unet.config)
                    except KeyError:
                        continue
                names[KOHYA_PREFIX[comp] + shown.replace(".", "_")] = (comp, mname)
    recs = []
    for stem in sorted({k.split(".")[0] for k in sd}):
        comp, mname = names[stem]
        recs.append({"component": comp, "module": mname,
                     "down": sd[stem + ".lora_down.weight"].float(),
                     "up": sd[stem + ".lora_up.weight"].float(),
                     "rank": sd[stem + ".lora_down.weight"].shape[0],
                     "alpha": float(sd[stem + ".alpha"])})
    assert 3 * len(recs) == len(sd), "kohya file has unpaired keys"
    return recs


def manual_merge(base: Base, recs: list[dict], scale: float) -> dict[str, torch.Tensor]:
    """float64: W + scale (alpha / rank) up . down. Keys '<component>.<module>.weight'."""
    out = {}
    for r in recs:
        w = base.model(r["component"]).get_submodule(r["module"]).weight.detach().double()
        delta = r["up"].double() @ r["down"].double()
        out[f"{r['component']}.{r['module']}.weight"] = w + scale * (r["alpha"] / r["rank"]) * delta
    return out


def weights(models: dict, keys) -> dict[str, torch.Tensor]:
    """'<component>.<parameter name>' -> that parameter of models[component], detached."""
    return {key: models[key.split(".", 1)[0]].get_parameter(key.split(".", 1)[1]).detach()
            for key in keys}


def diffusers_lora_pipe(base: Base, folder: Path, weight_name: str, fuse: bool):
    """A fresh pipeline with the LoRA loaded by diffusers (load_lora_weights), either
    fused at LORA_SCALE (fuse_lora(lora_scale=0.8), then unload_lora_weights) or left
    unfused with set_adapters(weight 0.8)."""
    pipe = base.load_pipe()
    pipe.load_lora_weights(str(folder), weight_name=weight_name, adapter_name="lora",
                           local_files_only=True)
    if fuse:
        pipe.fuse_lora(components=["unet", "text_encoder", "text_encoder_2"],
                       lora_scale=LORA_SCALE, adapter_names=["lora"])
        pipe.unload_lora_weights()
    else:
        pipe.set_adapters(["lora"], adapter_weights=[LORA_SCALE])
    return pipe


# --------------------------------------------------------------------------- generation

def write_weights(base: Base, out: Path) -> None:
    cn = build_controlnet(base.unet, SEED + 100)
    copy.deepcopy(cn).half().save_pretrained(str(out / "controlnet"), safe_serialization=True)
    adfx.finish_folder(out / "controlnet")
    enc = build_image_encoder(SEED + 400)
    enc.half().save_pretrained(str(out / "image_encoder"), safe_serialization=True)
    adfx.finish_folder(out / "image_encoder")
    ip = build_ip_adapter(base.unet, SEED + 410)
    save_torch({k: v.half() for k, v in ip.items()}, out / "ip_adapter.safetensors", {
        "format": "pt", "description": "PILOT tiny random-weight IP-Adapter (h94 SDXL layout) for "
                                       "the tiny SDXL fixture UNet"})
    recs = build_lora(base, SEED + 500)
    save_torch(kohya_dict(recs), out / "lora_kohya.safetensors", {
        "format": "pt", "description": "PILOT tiny SDXL LoRA, kohya key format with diffusers module "
                                       "names (lora_unet_ / lora_te1_ / lora_te2_), F16"})
    save_torch(kohya_dict(recs, base.unet.config), out / "lora_kohya_sgm.safetensors", {
        "format": "pt", "description": "PILOT tiny SDXL LoRA, kohya key format with SGM UNet block "
                                       "names (input_blocks / middle_block / output_blocks), F16"})
    save_torch(peft_dict(recs), out / "lora_peft.safetensors", {
        "format": "pt", "description": "PILOT tiny SDXL LoRA, diffusers/peft key format (no alphas: "
                                       "alpha/rank folded into lora_B), F16"})


class Adapters:
    """Everything loaded back from the written files."""

    def __init__(self, out: Path, base: Base):
        self.out = out
        kw = dict(torch_dtype=torch.float32, local_files_only=True)
        self.cn = ControlNetModel.from_pretrained(str(out / "controlnet"), **kw).eval()
        self.image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(out / "image_encoder"), **kw).eval()
        self.lora_recs = read_kohya(out / "lora_kohya.safetensors", base, sgm=False)


def compute_all(base: Base, ad: Adapters, dtype=torch.float32) -> Dump:
    """Every reference tensor. dtype float64 only for the informational deviation check."""
    torch.manual_seed(0)
    d = Dump(dtype)
    cast = adfx.cast
    unet = cast(base.unet, dtype)
    cad = unet.config.cross_attention_dim
    # ---- inputs
    x = d.rand("inputs.sample", [2, 4, 16, 16], SEED * 10 + 1, 2.0, "latents, every UNet call")
    ts = torch.tensor([UNET_T, UNET_T], dtype=dtype)
    d.put("inputs.timestep", ts, "timestep per row, every UNet / ControlNet call")
    ctx = d.rand("inputs.encoder_hidden_states", [2, MAX_LENGTH, cad], SEED * 10 + 2, 1.0,
                 "encoder_hidden_states, every UNet / ControlNet call")
    te = d.rand("inputs.text_embeds", [2, base.te2.config.projection_dim], SEED * 10 + 3, 1.0,
                "added_cond_kwargs text_embeds (pooled), every UNet / ControlNet call")
    tid = torch.tensor(TIME_IDS, dtype=dtype)
    d.put("inputs.time_ids", tid, "added_cond_kwargs time_ids: original h, w, crop top, left, "
          "target h, w (rows differ)")
    added = {"text_embeds": te, "time_ids": tid}
    k = hint_u8()
    hint = hint_from_u8(k, dtype)
    d.put_u8("inputs.hint_u8", k, "ControlNet conditioning images as 8-bit values k, NCHW, stored "
             "U8; the hint given to the ControlNet is k / 255 in [0, 1] (float32 division; equals "
             "make_adapter_fixtures' cond_image)")
    pix = d.rand("inputs.ip_pixel_values", [1, 3, CLIP_VISION["image_size"],
                                             CLIP_VISION["image_size"]], SEED * 10 + 4, 2.0,
                 "preprocessed image (already normalised) for the IP-Adapter image encoder")
    ids1 = sdfx.padded_ids(base.tok1, PROMPT)
    ids2 = sdfx.padded_ids(base.tok2, PROMPT)
    d.put("inputs.input_ids", torch.tensor([ids1]), "tokenizer ids of the prompt (pad "
          "<|endoftext|>), exact integers", prompt=PROMPT)
    d.put("inputs.input_ids_2", torch.tensor([ids2]), "tokenizer_2 ids of the prompt (pad '!' "
          "= id 0)", prompt=PROMPT)
    with torch.no_grad():
        d.put("inputs.unet_out", unet(x, ts, encoder_hidden_states=ctx,
                                      added_cond_kwargs=added).sample,
              "plain UNet output on these inputs (no adapter): every adapter's baseline")

    # ---- ControlNet
    cn = cast(ad.cn, dtype)
    with torch.no_grad():
        d.put("controlnet.hint_embedding", cn.controlnet_cond_embedding(hint),
              "controlnet_cond_embedding(hint): 128 -> 16, debugging aid")
        down, mid = cn(x, ts, encoder_hidden_states=ctx, controlnet_cond=hint,
                       conditioning_scale=CN_SCALE, added_cond_kwargs=added, return_dict=False)
        for j, r in enumerate(down):
            d.put(f"controlnet.down_residual.{j}", r, f"down residual {j} (controlnet_down_blocks."
                  f"{j} output x conditioning_scale {CN_SCALE})")
        d.put("controlnet.mid_residual", mid, f"mid residual (controlnet_mid_block output x "
              f"{CN_SCALE})")
        d.put("controlnet.unet_out", unet(x, ts, encoder_hidden_states=ctx, added_cond_kwargs=added,
                                          down_block_additional_residuals=list(down),
                                          mid_block_additional_residual=mid).sample,
              "UNet output with the residuals (down_block_additional_residuals, "
              "mid_block_additional_residual)")

    # ---- IP-Adapter (diffusers load_ip_adapter on a fresh pipeline)
    pipe = adfx.load_ip_adapter(base.load_pipe(), ad.out, dtype, IP_SCALE)
    with torch.no_grad():
        emb = pipe.image_encoder(pix).image_embeds
        d.put("ip.image_embeds", emb, "image_encoder(ip_pixel_values).image_embeds")
        embeds = pipe.prepare_ip_adapter_image_embeds([pix], None, torch.device("cpu"), 1, True)
        assert embeds[0].shape == (2, 1, CLIP_VISION["projection_dim"])
        assert bool((embeds[0][0] == 0).all()) and torch.equal(embeds[0][1, 0], emb[0])
        tokens = pipe.unet.encoder_hid_proj.image_projection_layers[0](embeds[0][:, 0])
        d.put("ip.image_tokens", tokens, "image_proj of [zeros, image_embeds]: Linear -> reshape "
              f"[{IP_TOKENS}, {cad}] -> LayerNorm; row 0 the unconditional (zero) embedding")
        d.put("ip.unet_out", pipe.unet(x, ts, encoder_hidden_states=ctx,
                                       added_cond_kwargs={**added, "image_embeds": embeds}).sample,
              f"UNet with the IP-Adapter at scale {IP_SCALE}; image embeds per row [zeros, "
              "image_embeds] (prepare_ip_adapter_image_embeds' CFG order), plus text_embeds / "
              "time_ids")
    del pipe

    # ---- LoRA (diffusers load_lora_weights + fuse_lora(lora_scale 0.8) on the kohya file)
    if dtype == torch.float32:
        lp = diffusers_lora_pipe(base, ad.out, "lora_kohya.safetensors", fuse=True)
        l_unet, l_te1, l_te2 = lp.unet, lp.text_encoder, lp.text_encoder_2
        merged = {}
        for r in ad.lora_recs:
            key = f"{r['component']}.{r['module']}.weight"
            model = {"unet": l_unet, "text_encoder": l_te1, "text_encoder_2": l_te2}[r["component"]]
            merged[key] = model.get_parameter(r["module"] + ".weight").detach().clone()
    else:  # float64: the manual merge (diffusers' float32 fuse would cap the precision)
        merged = manual_merge(base, ad.lora_recs, LORA_SCALE)
        l_unet, l_te1, l_te2 = cast(base.unet, dtype), cast(base.te1, dtype), cast(base.te2, dtype)
        with torch.no_grad():
            for key, w in merged.items():
                comp, rest = key.split(".", 1)
                {"unet": l_unet, "text_encoder": l_te1,
                 "text_encoder_2": l_te2}[comp].get_parameter(rest).copy_(w)
    for key in LORA_STORED_MERGED:
        d.put(f"lora.merged.{key}", merged[key], f"fused weight: W + {LORA_SCALE} (alpha / rank) "
              "up . down (diffusers fuse_lora, float32)")
    with torch.no_grad():
        d.put("lora.unet_out", l_unet(x, ts, encoder_hidden_states=ctx,
                                      added_cond_kwargs=added).sample,
              f"UNet output with the LoRA fused at scale {LORA_SCALE}")
        o1 = l_te1(torch.tensor([ids1]), output_hidden_states=True)
        o2 = l_te2(torch.tensor([ids2]), output_hidden_states=True)
        d.put("lora.te1.penultimate", o1.hidden_states[-2], "text_encoder hidden_states[-2] with "
              "the LoRA (= output of layer 0: layer 1's LoRA does not reach it)")
        d.put("lora.te2.penultimate", o2.hidden_states[-2], "text_encoder_2 hidden_states[-2] with "
              "the LoRA (output of layer 1)")
        d.put("lora.te2.text_embeds", o2.text_embeds, "text_encoder_2 pooled text_embeds with the "
              "LoRA (layer 2 included)")
    return d


# --------------------------------------------------------------------------- metadata

def configs(base: Base, ad: Adapters) -> dict:
    lora_layers = [{"component": r["component"], "module": r["module"], "rank": r["rank"],
                    "alpha": r["alpha"], "down_shape": list(r["down"].shape),
                    "up_shape": list(r["up"].shape)} for r in ad.lora_recs]
    return {
        "base_model": "Tests/Fixtures/sdxl/sdxl",
        "unet_timestep": UNET_T,
        "controlnet": {"config": model_config(ad.cn), "conditioning_scale": CN_SCALE},
        "ip_adapter": {"scale": IP_SCALE, "num_tokens": IP_TOKENS, "image_encoder": CLIP_VISION,
                       "cross_attention_dim": base.unet.config.cross_attention_dim},
        "lora": {"scale": LORA_SCALE, "rank": LORA_RANK, "alpha": LORA_ALPHA, "prompt": PROMPT,
                 "files": {"lora_kohya.safetensors": "kohya, diffusers module names",
                           "lora_kohya_sgm.safetensors": "kohya, SGM UNet block names",
                           "lora_peft.safetensors": "diffusers/peft, lora_B = up x alpha/rank"},
                 "layers": lora_layers},
    }


def ip_layers(base: Base) -> dict:
    return {"cross_attention_layers": [
        {k: l[k] for k in ("ip_index", "module", "hidden_size", "heads")}
        for l in adfx.cross_attention_layers(base.unet)]}


NOTES = ("Every UNet / ControlNet call uses inputs.sample, inputs.timestep, "
         "inputs.encoder_hidden_states and added_cond_kwargs {text_embeds: inputs.text_embeds, "
         "time_ids: inputs.time_ids}. All tensors F32 except inputs.hint_u8 (U8; the hint is k / 255). ControlNet "
         "residuals are already multiplied by the conditioning scale. IP-Adapter: diffusers "
         "load_ip_adapter / IPAdapterAttnProcessor2_0 (to_out once); ip_adapter.<i> numbers are "
         "positions in unet.attn_processors (layers.cross_attention_layers). LoRA: diffusers "
         "load_lora_weights + fuse_lora(lora_scale) on lora_kohya.safetensors; the other two files "
         "hold the same LoRA.")


# --------------------------------------------------------------------------- checks

def report_sizes(out: Path) -> int:
    total = 0
    for p in sorted(q for q in out.rglob("*") if q.is_file()):
        total += p.stat().st_size
        shown = p.relative_to(ROOT) if p.is_relative_to(ROOT) else p
        print(f"{p.stat().st_size:>10,d}  {shown}")
    print(f"{total:>10,d}  total")
    return total


@contextlib.contextmanager
def base_and_adapters(out: Path, write: bool = False):
    """(Base in a temporary folder, Adapters read back from out); write: build the adapter
    weights into out first."""
    with tempfile.TemporaryDirectory() as tmpd:
        base = Base(Path(tmpd))
        if write:
            write_weights(base, out)
        yield base, Adapters(out, base)


def stored_unet_inputs(stored: dict) -> tuple:
    """(sample, timestep, encoder_hidden_states, added_cond_kwargs) of every UNet /
    ControlNet call, from the stored inputs.*."""
    x = torch.from_numpy(stored["inputs.sample"])
    ts = torch.from_numpy(stored["inputs.timestep"])
    ctx = torch.from_numpy(stored["inputs.encoder_hidden_states"])
    added = {"text_embeds": torch.from_numpy(stored["inputs.text_embeds"]),
             "time_ids": torch.from_numpy(stored["inputs.time_ids"])}
    return x, ts, ctx, added


def lora_text_errs(te1, te2, stored: dict) -> dict[str, float]:
    """The two text encoders' outputs on the stored prompt ids vs the stored lora.te*."""
    with torch.no_grad():
        o1 = te1(torch.from_numpy(stored["inputs.input_ids"]).long(), output_hidden_states=True)
        o2 = te2(torch.from_numpy(stored["inputs.input_ids_2"]).long(), output_hidden_states=True)
    return {"te1.penultimate": rel(o1.hidden_states[-2], stored["lora.te1.penultimate"]),
            "te2.penultimate": rel(o2.hidden_states[-2], stored["lora.te2.penultimate"]),
            "te2.text_embeds": rel(o2.text_embeds, stored["lora.te2.text_embeds"])}


def lora_output_errs(unet, te1, te2, stored: dict) -> dict[str, float]:
    """UNet and text encoder outputs on the stored inputs vs the stored lora.* outputs."""
    x, ts, ctx, added = stored_unet_inputs(stored)
    with torch.no_grad():
        u = unet(x, ts, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
    return {"unet_out": rel(u, stored["lora.unet_out"]), **lora_text_errs(te1, te2, stored)}


def check(out: Path) -> int:
    expect = sdfx.Expect()
    expect.size(report_sizes(out), SIZE_LIMIT)
    expect.strict_json(out)
    for f in ("controlnet/diffusion_pytorch_model.safetensors", "image_encoder/model.safetensors",
              "ip_adapter.safetensors", "lora_kohya.safetensors", "lora_kohya_sgm.safetensors",
              "lora_peft.safetensors"):
        dt = sdfx.file_dtypes(out / f)
        expect(dt == {"F16"}, f"{f}: dtypes {sorted(dt)}")

    with base_and_adapters(out) as (base, ad):
        meta, stored, dtypes = sdfx.read_safetensors(out / REFERENCE)
        want_dt = {k: ("U8" if k == "inputs.hint_u8" else "F32") for k in stored}
        expect(dtypes == want_dt, "reference: every tensor F32, inputs.hint_u8 U8")
        sd1_inputs = ROOT / "Tests" / "Fixtures" / "adapters" / "inputs.safetensors"
        if sd1_inputs.exists():
            with safetensors.safe_open(str(sd1_inputs), "numpy") as f:
                cond = f.get_tensor("cond_image")
            expect(np.array_equal(hint_from_u8(stored["inputs.hint_u8"], torch.float32).numpy(),
                                  cond), "inputs.hint_u8 / 255 == Tests/Fixtures/adapters "
                   "cond_image (bit-exact)")

        print("controlnet")
        controlnet_checks(base, ad, stored, expect)
        print("ip_adapter")
        ip_checks(base, ad, stored, expect)
        print("lora")
        lora_checks(base, ad, stored, expect)

        print("reference")
        fresh = compute_all(base, ad)
        entries = json.loads(meta["entries"])
        expect(set(entries) == set(stored) == set(fresh.tensors),
               f"entries == stored == recomputed ({len(stored)} tensors)")
        worst, wname = sdfx.worst_rel_err(stored, fresh.tensors)
        expect(worst <= REL_TOL, f"recomputed from the committed files, worst max|diff|/max|ref| "
               f"{worst:.3g} ({wname or 'all identical'})")
        expect(json.loads(meta["configs"]) == json.loads(json.dumps(configs(base, ad),
                                                                     default=sdfx._json_default))
               and json.loads(meta["layers"]) == ip_layers(base), "metadata configs / layers current")
        base_out = stored["inputs.unet_out"]
        print("  info  adapter effect on the UNet output, max|out - plain|/max|plain|:")
        sens = {}
        for k in ("controlnet.unet_out", "ip.unet_out", "lora.unet_out"):
            sens[k] = rel(base_out, stored[k])
            print(f"          {k:24s} {sens[k]:.3g}")
        expect(all(v > 0.05 for v in sens.values()), "every adapter moves the UNet output by > 5%")
        float64_deviation(base, ad, stored)
    return expect.verdict()


def controlnet_checks(base: Base, ad: Adapters, stored: dict, expect) -> None:
    cfg = ad.cn.config
    expect(cfg.addition_embed_type == "text_time" and hasattr(ad.cn, "add_embedding")
           and cfg.projection_class_embeddings_input_dim
           == base.unet.config.projection_class_embeddings_input_dim
           and list(cfg.transformer_layers_per_block) == list(base.unet.config.transformer_layers_per_block),
           "ControlNet has the UNet's text_time addition embedding and transformer depths")
    expect(stored["controlnet.hint_embedding"].shape[-2:] == stored["inputs.sample"].shape[-2:]
           and stored["inputs.hint_u8"].shape[-1] == 8 * stored["inputs.sample"].shape[-1],
           "hint is 8x the latent; hint embedding has the latent's size")
    zero_convs = [m for n, m in ad.cn.named_modules()
                  if n.startswith(("controlnet_down_blocks.", "controlnet_mid_block"))
                  and isinstance(m, torch.nn.Conv2d)]
    expect(len(zero_convs) == 10 and all(bool((m.weight != 0).any()) and bool((m.bias != 0).any())
                                         for m in zero_convs),
           "controlnet_down_blocks (9) and controlnet_mid_block are non-zero")
    usd = base.unet.state_dict()
    same = [k for k, v in ad.cn.state_dict().items() if k in usd and torch.equal(v, usd[k])]
    expect(not same, f"the ControlNet trunk differs from the UNet in every shared tensor "
           f"({len(same)} equal)")
    x, ts, ctx, added = stored_unet_inputs(stored)
    hint = hint_from_u8(stored["inputs.hint_u8"], torch.float32)

    def residuals(cn, im, add):
        down, mid = cn(x, ts, encoder_hidden_states=ctx, controlnet_cond=im, added_cond_kwargs=add,
                       conditioning_scale=CN_SCALE, return_dict=False)
        return torch.cat([r.flatten() for r in down] + [mid.flatten()])

    with torch.no_grad():
        ref = residuals(ad.cn, hint, added)
        e_hint = rel(residuals(ad.cn, hint * 0, added), ref)
        e_time = rel(residuals(ad.cn, hint, {**added, "time_ids": added["time_ids"].flip(0)}), ref)
        cn_unet_add = copy.deepcopy(ad.cn)
        cn_unet_add.add_embedding.load_state_dict(base.unet.add_embedding.state_dict())
        e_add = rel(residuals(cn_unet_add, hint, added), ref)
    print(f"  info  residuals: hint zeroed {e_hint:.3g}; time_ids rows swapped {e_time:.3g}; "
          f"UNet's add_embedding instead of the ControlNet's {e_add:.3g}")
    expect(min(e_hint, e_time, e_add) > 0.01, "residuals depend on the hint, the time ids and the "
           "ControlNet's own add_embedding")


def ip_checks(base: Base, ad: Adapters, stored: dict, expect) -> None:
    ip_file = safetensors.torch.load_file(str(ad.out / "ip_adapter.safetensors"))
    pipe = adfx.load_ip_adapter(base.load_pipe(), ad.out)
    layers = adfx.cross_attention_layers(base.unet)
    idx = [l["ip_index"] for l in layers]
    expect(adfx.ip_weights_loaded(pipe.unet, layers, ip_file)
           and idx == list(range(1, 2 * len(layers), 2)),
           f"load_ip_adapter puts ip_adapter.<i> on the layer at position i of attn_processors: "
           f"{len(layers)} layers, indices 1, 3, ..., {idx[-1]} (mid block last: "
           f"{[l['ip_index'] for l in layers if l['module'].startswith('mid_block')]})")
    proj = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    expect(type(proj).__name__ == "ImageProjection" and proj.num_image_text_embeds == IP_TOKENS
           and torch.equal(proj.image_embeds.weight, ip_file["image_proj.proj.weight"].float()),
           f"image_proj.proj -> ImageProjection.image_embeds ({IP_TOKENS} tokens)")
    x, ts, ctx, added = stored_unet_inputs(stored)
    emb = torch.from_numpy(stored["ip.image_embeds"])
    embeds = [torch.stack([torch.zeros_like(emb), emb])]       # [2, 1, D]
    pipe.set_ip_adapter_scale(IP_SCALE)
    with torch.no_grad():
        ref = pipe.unet(x, ts, encoder_hidden_states=ctx,
                        added_cond_kwargs={**added, "image_embeds": embeds}).sample
        adfx.use_own_ip_processors(pipe.unet, IP_SCALE)
        own = pipe.unet(x, ts, encoder_hidden_states=ctx,
                        added_cond_kwargs={**added, "image_embeds": embeds}).sample
    e = rel(own, ref)
    expect(e < 1e-5, f"own decoupled attention (to_out once, scale {IP_SCALE}) == diffusers "
           f"IPAdapterAttnProcessor2_0: {e:.2g}")
    expect(rel(ref, stored["ip.unet_out"]) <= REL_TOL, "stored ip.unet_out == UNet with "
           "embeds [zeros, stored image_embeds]")


def lora_checks(base: Base, ad: Adapters, stored: dict, expect) -> None:
    recs = ad.lora_recs
    targets = {(c, m) for c, m in lora_targets()}
    expect({(r["component"], r["module"]) for r in recs} == targets
           and all(r["rank"] == LORA_RANK and r["alpha"] == LORA_ALPHA[r["component"]]
                   for r in recs),
           f"lora_kohya.safetensors resolves to the {len(targets)} target layers, rank "
           f"{LORA_RANK}, alphas {LORA_ALPHA}")
    sgm = read_kohya(ad.out / "lora_kohya_sgm.safetensors", base, sgm=True)
    peft_sd = safetensors.torch.load_file(str(ad.out / "lora_peft.safetensors"))

    def same(a, b):
        return [(x["component"], x["module"]) for x in a] == [(x["component"], x["module"]) for x in b]
    sgm_sorted = sorted(sgm, key=lambda r: (r["component"], r["module"]))
    recs_sorted = sorted(recs, key=lambda r: (r["component"], r["module"]))
    expect(same(sgm_sorted, recs_sorted) and all(
        torch.equal(a["down"], b["down"]) and torch.equal(a["up"], b["up"]) and a["alpha"] == b["alpha"]
        for a, b in zip(sgm_sorted, recs_sorted)), "lora_kohya_sgm == lora_kohya (SGM names)")
    ok = len(peft_sd) == 2 * len(recs)
    for r in recs:
        stem = f"{r['component']}.{r['module']}"
        ok &= torch.equal(peft_sd[stem + ".lora_A.weight"].float(), r["down"])
        ok &= torch.equal(peft_sd[stem + ".lora_B.weight"].float(), r["up"] * r["alpha"] / r["rank"])
    expect(ok, "lora_peft == lora_kohya with lora_B = up x alpha / rank")

    ref_merged = manual_merge(base, recs, LORA_SCALE)
    fused = {}
    for wn in ("lora_kohya.safetensors", "lora_kohya_sgm.safetensors", "lora_peft.safetensors"):
        try:
            pipe = diffusers_lora_pipe(base, ad.out, wn, fuse=True)
        except Exception as e:  # noqa: BLE001 - reported
            expect(False, f"{wn}: diffusers load_lora_weights + fuse_lora failed: "
                   f"{type(e).__name__}: {str(e)[:300]}")
            continue
        models = {"unet": pipe.unet, "text_encoder": pipe.text_encoder,
                  "text_encoder_2": pipe.text_encoder_2}
        worst, wk = sdfx.worst_rel_err(weights(models, ref_merged), ref_merged)
        untouched = adfx.untouched_diff(models, {c: base.model(c) for c in models}, ref_merged)
        expect(worst < 1e-6 and untouched == 0.0,
               f"{wn}: diffusers load_lora_weights + fuse_lora(lora_scale={LORA_SCALE}) == float64 "
               f"manual merge W + s (alpha/r) up.down: worst {worst:.2g} ({wk}); untouched weights "
               f"max diff {untouched:g}")
        fused[wn] = models
    if "lora_kohya.safetensors" in fused:
        w = weights(fused["lora_kohya.safetensors"], LORA_STORED_MERGED)
        e = max(rel(w[key], stored[f"lora.merged.{key}"]) for key in LORA_STORED_MERGED)
        expect(e == 0.0, f"stored lora.merged.* are diffusers' fused kohya weights ({e:.2g})")
    # runtime (unfused) scale: set_adapters(weight 0.8), the path pipelines use
    for wn in ("lora_kohya.safetensors", "lora_peft.safetensors"):
        pipe = diffusers_lora_pipe(base, ad.out, wn, fuse=False)
        errs = lora_output_errs(pipe.unet, pipe.text_encoder, pipe.text_encoder_2, stored)
        expect(max(errs.values()) < 1e-5, f"{wn} unfused, set_adapters([{LORA_SCALE}]) agrees with "
               f"the fused reference: " + ", ".join(f"{k} {v:.2g}" for k, v in errs.items()))
    # the manual merge's outputs, float32
    l = {c: adfx.cast(base.model(c), torch.float32) for c in KOHYA_PREFIX}
    with torch.no_grad():
        for key, w in ref_merged.items():
            comp, rest = key.split(".", 1)
            l[comp].get_parameter(rest).copy_(w.float())
    errs = lora_output_errs(l["unet"], l["text_encoder"], l["text_encoder_2"], stored)
    expect(max(errs.values()) < 1e-5, "float64 manual merge (rounded to float32) gives the same "
           "outputs: " + ", ".join(f"{k} {v:.2g}" for k, v in errs.items()))
    moved = lora_text_errs(base.te1, base.te2, stored)
    expect(min(moved.values()) > 0.05, "the LoRA moves every text output by > 5%: "
           + ", ".join(f"{k} {v:.3g}" for k, v in moved.items()))


def float64_deviation(base: Base, ad: Adapters, stored: dict) -> None:
    """Informational: the float32 references vs the same computation in float64."""
    d64 = sdfx.recompute_float64(lambda: compute_all(base, ad, torch.float64), 300)
    if d64 is None:
        return
    print("  info  float32 reference vs float64 recomputation, max|diff|/max|ref| per group:")
    names = [k for k in d64.tensors if not k.startswith("inputs.") or k == "inputs.unet_out"]
    groups = sdfx.worst_by_group(stored, d64.tensors, names, ("lora.",))
    for g, (e, k) in groups.items():
        print(f"          {g:22s} {e:9.2e}  ({k})")


# --------------------------------------------------------------------------- main

def generate(out: Path) -> None:
    sdfx.fresh_output(out)
    with base_and_adapters(out, write=True) as (base, ad):
        d = compute_all(base, ad)
        write_reference(d, out / REFERENCE, configs(base, ad), ip_layers(base))
        print(f"wrote {REFERENCE}: {len(d.tensors)} tensors")


def main() -> int:
    args = sdfx.parse_args(__doc__, DEFAULT_OUT)
    t0 = time.time()
    if not args.check:
        generate(args.out)
        print(f"generated in {time.time() - t0:.1f} s")
    t1 = time.time()
    rc = check(args.out)
    print(f"check took {time.time() - t1:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
