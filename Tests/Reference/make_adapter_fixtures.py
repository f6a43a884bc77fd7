#!/usr/bin/env python3
"""Writes the multi-modal adapter reference fixtures (Tests/Fixtures/adapters/).

    python make_adapter_fixtures.py            # rebuild everything, then run the checks
    python make_adapter_fixtures.py --check    # reload the committed files and re-verify

Tiny random-weight adapters for the sd1 fixture model (Tests/Fixtures/sd/sd1/):
ControlNet (a diffusers folder and an original-layout single file, plus a
second ControlNet for the MultiControlNet case), T2I-Adapter (full and light),
IP-Adapter (a tiny CLIP vision encoder, CLIP image preprocessing, the image
projection and to_k_ip / to_v_ip in the common single-file layout) and two
LoRAs (kohya/webui and diffusers/peft formats). Every adapter weight is rounded
to float16 precision, so F16 and F32 files hold the same values. Reference
outputs are PyTorch float32 results of diffusers / transformers, computed from
the written files. See README.md ("Adapter fixtures") for files and schema.
"""

from __future__ import annotations

import copy
import json
import math
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
import make_sd_fixtures as sdfx  # noqa: E402  (environment setup, tokenizer and helpers)
import ldm_keys  # noqa: E402

import accelerate  # noqa: E402
import diffusers  # noqa: E402
import peft  # noqa: E402
import PIL  # noqa: E402
import transformers  # noqa: E402
from diffusers import (ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline,  # noqa: E402
                       StableDiffusionPipeline, T2IAdapter, UNet2DConditionModel)
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0  # noqa: E402
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel  # noqa: E402
from transformers import (CLIPImageProcessor, CLIPVisionConfig,  # noqa: E402
                          CLIPVisionModelWithProjection)

from detrand import GENERATOR  # noqa: E402

ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "adapters"
SD1_FOLDER = ROOT / "Tests" / "Fixtures" / "sd" / "sd1"
SIZE_LIMIT = 3_000_000  # bytes, the whole Tests/Fixtures/adapters/ folder
REL_TOL = 1e-6          # --check: recomputed dumps vs committed (0 on the writing machine)
MAX_LENGTH = sdfx.MAX_LENGTH
PROMPT = "a red fox in the snow"

VERSIONS = {**sdfx.VERSIONS, "peft": peft.__version__, "accelerate": accelerate.__version__,
            "pillow": PIL.__version__}

# --------------------------------------------------------------------------- parameters

SEED = 5000                  # base seed of this script (sd fixtures use 1000 / 2000)
UNET_T = 451                 # timestep of every single UNet / ControlNet call
CN_HINT_A = (4, 8, 8, 8)     # conditioning_embedding_out_channels, ControlNet A
CN_HINT_B = (4, 8, 8, 12)    # ControlNet B (MultiControlNet case)
CN_TRUNK_PERTURB = 0.25      # trunk = UNet copy + N(0, (0.25 std(param))^2)
ZERO_CONV_GAIN = 0.5         # zero convs re-initialised as 0.5 x PyTorch's default conv init
HINT_RMS = 0.5               # hint net normalised (on cond_image) to this output RMS
CN_SCALE = 0.8
MULTI_SCALES = [0.9, 0.5]
PIPE_STEPS, PIPE_GUIDANCE, PIPE_CN_SCALE = 3, 7.5, 1.0
PIPE_GUIDANCE_END = 0.5      # second pipeline run: control_guidance_end
T2I_SCALE = 0.7
T2I_CONFIGS = {
    "t2i_full": {"in_channels": 3, "channels": [8, 12, 12], "num_res_blocks": 2,
                 "downscale_factor": 8, "adapter_type": "full_adapter"},
    # LightAdapter makes len(channels) + 1 features: [8, 12] -> 8@16, 12@8, 12@4.
    "t2i_light": {"in_channels": 3, "channels": [8, 12], "num_res_blocks": 1,
                  "downscale_factor": 8, "adapter_type": "light_adapter"},
}
IP_SCALE = 0.6
IP_TOKENS = 4
CLIP_VISION = {"hidden_size": 8, "intermediate_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 2, "image_size": 224, "patch_size": 32,
               "projection_dim": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
               "num_channels": 3}
IP_SOURCE_HW = (160, 200)    # procedural RGB image given to the CLIP preprocessing

# LoRAs: (component, diffusers module path, rank, alpha). alpha None: no alpha
# (peft files: diffusers then uses lora_alpha = rank, i.e. alpha / rank = 1).
LORA_KOHYA = [
    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 4, 2.0),
    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", 2, 2.0),
    ("unet", "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_out.0", 4, 4.0),
    ("unet", "down_blocks.0.resnets.0.conv1", 2, 1.0),                 # 3x3 conv (LoCon)
    ("unet", "down_blocks.1.attentions.0.proj_in", 2, 2.0),            # 1x1 conv
    ("unet", "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj", 4, 2.0),
    ("unet", "up_blocks.2.attentions.2.transformer_blocks.0.attn1.to_v", 4, 3.0),
    ("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj", 2, 1.0),
    ("text_encoder", "text_model.encoder.layers.0.self_attn.out_proj", 2, 2.0),
    ("text_encoder", "text_model.encoder.layers.1.mlp.fc1", 2, 2.0),
]
LORA_PEFT = [
    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 2, None),  # also kohya
    ("unet", "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v", 2, None),
    ("unet", "down_blocks.1.resnets.0.conv2", 2, None),                # 3x3 conv
    ("unet", "mid_block.resnets.1.time_emb_proj", 2, None),
    ("unet", "up_blocks.0.resnets.2.conv_shortcut", 2, None),          # 1x1 conv
    ("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj", 2, None),     # also kohya
    ("text_encoder", "text_model.encoder.layers.1.self_attn.v_proj", 2, None),
]
LORA_DELTA = 0.3             # (alpha / rank) up.down has std 0.3 std(W)
LORA_CASES = {"a": {"kohya": 1.0, "peft": 1.0}, "b": {"kohya": 0.5, "peft": 0.75}}

# --------------------------------------------------------------------------- helpers

META_ORDER = ("kind", "entries", "configs", "layers", "generator", "versions", "notes")


def canonical_safetensors(path: Path) -> None:
    """Header re-emitted with metadata in META_ORDER and tensors in data order, so
    regeneration is byte-identical (see make_sd_fixtures.canonical_safetensors)."""
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {}
    if meta is not None:
        key = lambda k: (META_ORDER.index(k) if k in META_ORDER else len(META_ORDER), k)  # noqa: E731
        out["__metadata__"] = {k: meta[k] for k in sorted(meta, key=key)}
    for name in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        out[name] = header[name]
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n
    path.write_bytes(blob[:8] + text + b" " * (n - len(text)) + blob[8 + n:])


def save_torch(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    safetensors.torch.save_file({k: v.detach().contiguous() for k, v in tensors.items()},
                                str(path), metadata=meta)
    canonical_safetensors(path)


def write_dump(d: sdfx.Dump, path: Path, kind: str, configs: dict, notes: str,
               layers: dict | None = None) -> None:
    meta = {
        "kind": kind,
        "entries": json.dumps(d.entries, ensure_ascii=False, allow_nan=False),
        "configs": json.dumps(configs, ensure_ascii=False, allow_nan=False,
                              default=sdfx._json_default),
        "generator": GENERATOR,
        "versions": json.dumps(VERSIONS),
        "notes": notes,
    }
    if layers is not None:
        meta["layers"] = json.dumps(layers, ensure_ascii=False)
    path.write_bytes(safetensors.numpy.save(d.tensors, metadata=meta))
    canonical_safetensors(path)


def finish_folder(folder: Path) -> None:
    for p in folder.rglob("*.safetensors"):
        canonical_safetensors(p)


def assert_half_exact(sd: dict[str, torch.Tensor], what: str) -> None:
    for k, v in sd.items():
        if v.is_floating_point() and not torch.equal(v.float(), v.half().float()):
            raise AssertionError(f"{what}.{k} is not float16-representable")


# --------------------------------------------------------------------------- images

def _quantise(img: torch.Tensor) -> torch.Tensor:
    """[0,1] float64 -> multiples of 1/255 in float32, like an 8-bit image read as tensor."""
    return (torch.round(img.clamp(0, 1) * 255) / 255).float()


def conditioning_images() -> torch.Tensor:
    """[2, 3, 128, 128] in [0, 1]: row 0 a grey line drawing (rings and a bar, white on
    black, like an edge / scribble map), row 1 a colour picture (waves, a disc)."""
    y, x = torch.meshgrid(torch.arange(128, dtype=torch.float64) + 0.5,
                          torch.arange(128, dtype=torch.float64) + 0.5, indexing="ij")
    r = torch.hypot(x - 70, y - 58)
    rings = torch.exp(-(((r % 20) - 10) ** 2) / 3) * (r < 52)
    bar = torch.exp(-((x - 0.6 * y - 12) ** 2) / 4) * (y > 70)
    edges = torch.maximum(rings, bar)
    row0 = edges.expand(3, 128, 128)
    red = 0.5 + 0.5 * torch.sin(2 * math.pi * (1.3 * x / 128 + 0.4 * y / 128))
    green = (x / 128) * (1 - y / 128)
    disc = (torch.hypot(x - 40, y - 88) < 26).double()
    blue = 0.2 + 0.7 * disc
    row1 = torch.stack([red, green, blue])
    return _quantise(torch.stack([row0, row1]))


def ip_source_image() -> np.ndarray:
    """uint8 [160, 200, 3] (H, W, RGB): a sine wave, a radial ramp and a checkerboard
    (sharp edges, so bicubic overshoot is clipped)."""
    h, w = IP_SOURCE_HW
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    red = 127.5 + 127.5 * np.sin(2 * np.pi * (x / 61 + y / 97))
    green = 255 * np.clip(1 - np.hypot(x - 120, y - 70) / 60, 0, 1)
    blue = np.where(((x // 25) + (y // 20)) % 2 == 1, 200.0, 40.0)
    return np.round(np.stack([red, green, blue], -1)).clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- base model

class Base:
    """The sd1 fixture model, loaded from its committed folder."""

    def __init__(self, tmp: Path):
        self.folder = sdfx.unpacked_copy(SD1_FOLDER, tmp / "sd1")
        m = sdfx.load_folder("sd1", self.folder)
        self.unet, self.vae, self.text, self.tokenizer = m.unet, m.vae, m.text, m.tokenizer
        self.unet_config = dict(self.unet.config)

    def fresh_unet(self, dtype=torch.float32) -> UNet2DConditionModel:
        u = UNet2DConditionModel.from_pretrained(str(self.folder / "unet"), torch_dtype=torch.float32,
                                                 local_files_only=True)
        return u.to(dtype).eval()


# --------------------------------------------------------------------------- ControlNet

ZERO_CONVS = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out.")


def build_controlnet(unet: UNet2DConditionModel, hint: tuple, seed: int) -> ControlNetModel:
    """ControlNetModel.from_unet (trunk copied from the UNet, as training starts), then:
    trunk perturbed so that it differs from the UNet, zero convs given small random
    values, constant parameters perturbed and everything rounded to float16 precision."""
    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if name.startswith("controlnet_"):
                continue
            p.add_(CN_TRUNK_PERTURB * p.std() * torch.randn(p.shape, generator=g))
        for name, mod in cn.named_modules():
            if isinstance(mod, torch.nn.Conv2d) and (name + ".").startswith(ZERO_CONVS):
                mod.reset_parameters()
                mod.weight.mul_(ZERO_CONV_GAIN)
                mod.bias.mul_(ZERO_CONV_GAIN)
        normalise_hint_net(cn, conditioning_images())
    sdfx.round_to_half(cn, seed + 2)
    return cn.eval()


def normalise_hint_net(cn: ControlNetModel, images: torch.Tensor) -> None:
    """PyTorch's default conv init shrinks activations by ~3x per layer, so after the
    hint net's 8 convs the conditioning image would change the residuals by ~1e-5 (a
    test could not see it). Data-dependent rescaling instead: each conv's weight and
    bias are scaled so that its output on the conditioning images has RMS 1 (conv_out:
    HINT_RMS, about the RMS of conv_in(latents))."""
    emb = cn.controlnet_cond_embedding
    convs = [emb.conv_in, *emb.blocks, emb.conv_out]
    h = images
    for conv in convs:
        y = conv(h)
        s = (HINT_RMS if conv is emb.conv_out else 1.0) / float(y.pow(2).mean().sqrt())
        conv.weight.mul_(s)
        conv.bias.mul_(s)
        h = torch.nn.functional.silu(y * s)


LDM_CONTROL_PREFIX = "control_model."


def controlnet_key_to_ldm(key: str, config: dict) -> str:
    """One diffusers ControlNetModel key -> original ControlNet (cldm) key, without prefix.

    The trunk (conv_in, time_embedding, down_blocks, mid_block) is named as in the
    LDM UNet (ldm_keys.unet_key_to_ldm: input_blocks.*, time_embed.*, middle_block.*).
    The hint network is one nn.Sequential of convs with SiLUs between them
    (input_hint_block.0 conv, .1 SiLU, .2 conv, ...): conv_in -> 0, blocks.k -> 2(k+1),
    conv_out -> 2(n_blocks+1). controlnet_down_blocks.N -> zero_convs.N.0 (each zero
    conv is wrapped in a one-element Sequential), controlnet_mid_block -> middle_block_out.0.
    """
    n_blocks = 2 * (len(config["conditioning_embedding_out_channels"]) - 1)
    parts = key.split(".")
    if parts[0] == "controlnet_cond_embedding":
        if parts[1] == "conv_in":
            idx, rest = 0, parts[2:]
        elif parts[1] == "conv_out":
            idx, rest = 2 * (n_blocks + 1), parts[2:]
        elif parts[1] == "blocks":
            idx, rest = 2 * (int(parts[2]) + 1), parts[3:]
        else:
            raise KeyError(key)
        return f"input_hint_block.{idx}." + ".".join(rest)
    if parts[0] == "controlnet_down_blocks":
        return f"zero_convs.{int(parts[1])}.0." + ".".join(parts[2:])
    if parts[0] == "controlnet_mid_block":
        return "middle_block_out.0." + ".".join(parts[1:])
    if parts[0] in ("conv_in", "time_embedding", "down_blocks", "mid_block"):
        return ldm_keys.unet_key_to_ldm(key, config)
    raise KeyError(f"unmapped ControlNet key {key}")


def controlnet_to_ldm(sd: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        lk = LDM_CONTROL_PREFIX + controlnet_key_to_ldm(k, config)
        if lk in out:
            raise KeyError(f"duplicate {lk}")
        out[lk] = v
    return out


def controlnet_from_ldm(ckpt: dict[str, torch.Tensor], keys, config: dict) -> dict[str, torch.Tensor]:
    """Inverse of controlnet_to_ldm for the diffusers key list `keys` (the forward map is
    a bijection). Refuses unused entries, so nothing in the file is silently dropped."""
    sd = {k: ckpt[LDM_CONTROL_PREFIX + controlnet_key_to_ldm(k, config)] for k in keys}
    used = {LDM_CONTROL_PREFIX + controlnet_key_to_ldm(k, config) for k in keys}
    extra = set(ckpt) - used
    if extra:
        raise KeyError(f"unused single-file keys: {sorted(extra)[:5]}")
    return sd


# --------------------------------------------------------------------------- IP-Adapter

def build_image_encoder(seed: int, config: dict = CLIP_VISION) -> CLIPVisionModelWithProjection:
    torch.manual_seed(seed)
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # CLIP initialises position embeddings with std 0.02: next to patch embeddings of
        # std ~1 the model would hardly see positions. std 0.5 makes them matter.
        pe = enc.vision_model.embeddings.position_embedding.weight
        pe.copy_(0.5 * torch.randn(pe.shape, generator=g))
    sdfx.sharpen_attention(enc)
    sdfx.round_to_half(enc, seed + 2)
    return enc.eval()


class ImageProj(torch.nn.Module):
    """The SD 1.x IP-Adapter image projection as the original files name it."""

    def __init__(self, embed_dim: int, cross_dim: int, tokens: int):
        super().__init__()
        self.proj = torch.nn.Linear(embed_dim, tokens * cross_dim)
        self.norm = torch.nn.LayerNorm(cross_dim)


def cross_attention_layers(unet: UNet2DConditionModel) -> list[dict]:
    """Every attention processor in diffusers' attn_processors order (down blocks, up
    blocks, then the mid block: module registration order, NOT execution order), with
    the original IP-Adapter index (position in that list, attn1 included: cross-attention
    layers get 1, 3, 5, ...) and the layer's channel count."""
    layers = []
    cfg = unet.config
    for idx, name in enumerate(unet.attn_processors.keys()):
        if not name.endswith("attn2.processor"):
            continue
        mod = unet.get_submodule(name[:-len(".processor")])
        layers.append({"ip_index": idx, "module": name[:-len(".processor")],
                       "hidden_size": mod.to_q.out_features, "heads": mod.heads,
                       "cross_attention_dim": cfg.cross_attention_dim})
    return layers


def build_ip_adapter(unet: UNet2DConditionModel, seed: int, embed_dim: int = CLIP_VISION["projection_dim"],
                     tokens: int = IP_TOKENS) -> dict[str, torch.Tensor]:
    """h94 layout: image_proj.proj [tokens * cross, embed_dim], image_proj.norm [cross],
    ip_adapter.<i>.to_k_ip / to_v_ip [channels, cross], i = the layer's position in
    unet.attn_processors (attn1 processors counted too)."""
    torch.manual_seed(seed)
    cross = unet.config.cross_attention_dim
    proj = ImageProj(embed_dim, cross, tokens)
    sdfx.round_to_half(proj, seed + 1)
    sd = {f"image_proj.{k}": v.detach().clone() for k, v in proj.state_dict().items()}
    for layer in cross_attention_layers(unet):
        k_ip = torch.nn.Linear(cross, layer["hidden_size"], bias=False)
        v_ip = torch.nn.Linear(cross, layer["hidden_size"], bias=False)
        with torch.no_grad():
            k_ip.weight.mul_(sdfx.QK_GAIN)  # as the UNet's to_k (sharpened)
        for nm, lin in (("to_k_ip", k_ip), ("to_v_ip", v_ip)):
            sd[f"ip_adapter.{layer['ip_index']}.{nm}.weight"] = lin.weight.detach().half().float()
    return sd


class OwnIPProcessor:
    """Decoupled cross-attention written from the formula, for the --check comparison:
    out = to_out( softmax(Q K^T / sqrt(d)) V + scale * softmax(Q K_ip^T / sqrt(d)) V_ip ),
    K_ip = to_k_ip(image tokens), V_ip = to_v_ip(image tokens); to_out applied once."""

    def __init__(self, k_ip: torch.Tensor, v_ip: torch.Tensor, scale: float):
        self.k_ip, self.v_ip, self.scale = k_ip, v_ip, scale

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kw):
        text, image = encoder_hidden_states[0], encoder_hidden_states[1][0]  # image [B, 1, 4, C]
        image = image[:, 0]
        b, n, _ = hidden_states.shape
        h = attn.heads

        def heads(x):
            return x.view(b, -1, h, x.shape[-1] // h).transpose(1, 2)

        q = heads(attn.to_q(hidden_states))
        d = q.shape[-1]

        def attend(k, v):
            a = torch.softmax(q @ heads(k).transpose(-1, -2) / math.sqrt(d), -1)
            return (a @ heads(v)).transpose(1, 2).reshape(b, n, -1)

        out = attend(attn.to_k(text), attn.to_v(text))
        out = out + self.scale * attend(image @ self.k_ip.T, image @ self.v_ip.T)
        return attn.to_out[1](attn.to_out[0](out))


def load_ip_adapter(pipe, folder: Path, dtype=None, scale: float | None = None):
    """diffusers load_ip_adapter of folder/ip_adapter.safetensors with folder/image_encoder;
    then (if given) image encoder and UNet cast to dtype, and the scale set."""
    pipe.load_ip_adapter(str(folder), subfolder="", weight_name="ip_adapter.safetensors",
                         image_encoder_folder="image_encoder", local_files_only=True)
    if dtype is not None:
        pipe.image_encoder.to(dtype)
        pipe.unet.to(dtype)
    if scale is not None:
        pipe.set_ip_adapter_scale(scale)
    return pipe


def ip_weights_loaded(unet, layers: list[dict], ip_file: dict[str, torch.Tensor]) -> bool:
    """load_ip_adapter gave every cross-attention layer an IPAdapterAttnProcessor2_0 with
    the file's ip_adapter.<ip_index> weights, and the file has no other ip_adapter.<i>."""
    procs = unet.attn_processors
    ok = True
    for layer in layers:
        p = procs[layer["module"] + ".processor"]
        i = layer["ip_index"]
        ok &= isinstance(p, IPAdapterAttnProcessor2_0)
        ok &= torch.equal(p.to_k_ip[0].weight, ip_file[f"ip_adapter.{i}.to_k_ip.weight"].float())
        ok &= torch.equal(p.to_v_ip[0].weight, ip_file[f"ip_adapter.{i}.to_v_ip.weight"].float())
    n_ip = len({k.split(".")[1] for k in ip_file if k.startswith("ip_adapter.")})
    return bool(ok) and n_ip == len(layers)


def use_own_ip_processors(unet, scale: float) -> None:
    """Every IPAdapterAttnProcessor2_0 of unet replaced by OwnIPProcessor (same weights)."""
    own_procs = {}
    for name, p in unet.attn_processors.items():
        if isinstance(p, IPAdapterAttnProcessor2_0):
            own_procs[name] = OwnIPProcessor(p.to_k_ip[0].weight, p.to_v_ip[0].weight, scale)
        else:
            own_procs[name] = p
    unet.set_attn_processor(own_procs)


# --------------------------------------------------------------------------- LoRA

def base_weight(base: Base, component: str, module: str) -> torch.Tensor:
    model = base.unet if component == "unet" else base.text
    return model.get_submodule(module).weight.detach()


def build_loras(base: Base, seed: int) -> tuple[dict, dict]:
    """(kohya state dict (F16), peft state dict (F32)); factors float16-exact."""
    g = torch.Generator().manual_seed(seed)

    def factors(w: torch.Tensor, rank: int, alpha: float | None):
        out_ch, fan = w.shape[0], w[0].numel()
        down = torch.randn((rank,) + tuple(w.shape[1:]), generator=g, dtype=torch.float64)
        up = torch.randn((out_ch, rank) + (1,) * (w.dim() - 2), generator=g, dtype=torch.float64)
        delta = up.reshape(out_ch, rank) @ down.reshape(rank, fan)
        ratio = (alpha if alpha is not None else rank) / rank
        c = math.sqrt(LORA_DELTA * float(w.double().std()) / (ratio * float(delta.std())))
        return (down * c).half(), (up * c).half()

    kohya, peft_sd = {}, {}
    for comp, module, rank, alpha in LORA_KOHYA:
        down, up = factors(base_weight(base, comp, module), rank, alpha)
        prefix = ("lora_unet_" if comp == "unet" else "lora_te_") + module.replace(".", "_")
        kohya[prefix + ".lora_down.weight"] = down
        kohya[prefix + ".lora_up.weight"] = up
        kohya[prefix + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)
    for comp, module, rank, alpha in LORA_PEFT:
        down, up = factors(base_weight(base, comp, module), rank, alpha)
        peft_sd[f"{comp}.{module}.lora_A.weight"] = down.float()
        peft_sd[f"{comp}.{module}.lora_B.weight"] = up.float()
    return kohya, peft_sd


def read_kohya(path: Path, base: Base) -> list[dict]:
    """Parse a kohya/webui LoRA file into (component, module, down, up, alpha) records,
    resolving the underscore-joined module name against the real module tree."""
    sd = safetensors.torch.load_file(str(path))
    names = {}
    for comp, model in (("unet", base.unet), ("text_encoder", base.text)):
        pre = "lora_unet_" if comp == "unet" else "lora_te_"
        for mname, mod in model.named_modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
                names[pre + mname.replace(".", "_")] = (comp, mname)
    recs = []
    stems = sorted({k.split(".")[0] for k in sd})
    for stem in stems:
        if stem not in names:
            raise KeyError(f"kohya key {stem} names no Linear / Conv2d module")
        comp, mname = names[stem]
        down, up = sd[stem + ".lora_down.weight"], sd[stem + ".lora_up.weight"]
        alpha = float(sd[stem + ".alpha"]) if stem + ".alpha" in sd else None
        recs.append({"lora": "kohya", "component": comp, "module": mname, "down": down, "up": up,
                     "rank": down.shape[0], "alpha": alpha})
    return recs


def read_peft(path: Path) -> list[dict]:
    sd = safetensors.torch.load_file(str(path))
    recs = []
    for k in sorted(sd):
        if not k.endswith(".lora_A.weight"):
            continue
        stem = k[:-len(".lora_A.weight")]
        comp, module = stem.split(".", 1)
        down, up = sd[k], sd[stem + ".lora_B.weight"]
        recs.append({"lora": "peft", "component": comp, "module": module, "down": down, "up": up,
                     "rank": down.shape[0], "alpha": None})
    assert 2 * len(recs) == len(sd), "peft file has unpaired keys"
    return recs


def lora_merge(base: Base, recs: list[dict], scales: dict[str, float],
               ratios: dict | None = None) -> dict[str, torch.Tensor]:
    """W + sum over LoRAs of scale * (alpha / rank) * up . down, in float64.
    Keys: '<component>.<module>.weight'. `ratios` ((lora, component, module) -> alpha / rank)
    overrides the files' alphas (used only to reproduce diffusers in --check)."""
    merged: dict[str, torch.Tensor] = {}
    for r in recs:
        key = f"{r['component']}.{r['module']}.weight"
        w = merged.get(key)
        if w is None:
            w = base_weight(base, r["component"], r["module"]).double().clone()
        down, up = r["down"].double(), r["up"].double()
        rank = r["rank"]
        ratio = (r["alpha"] if r["alpha"] is not None else rank) / rank
        if ratios is not None:
            ratio = ratios[(r["lora"], r["component"], r["module"])]
        delta = (up.reshape(up.shape[0], rank) @ down.reshape(rank, -1)).reshape(w.shape)
        merged[key] = w + scales[r["lora"]] * ratio * delta
    return merged


def apply_merged(base: Base, merged: dict[str, torch.Tensor], dtype) -> tuple:
    unet = copy.deepcopy(base.unet).to(dtype)
    text = copy.deepcopy(base.text).to(dtype)
    with torch.no_grad():
        for key, w in merged.items():
            comp, rest = key.split(".", 1)
            model = unet if comp == "unet" else text
            model.get_parameter(rest).copy_(w.to(dtype))
    return unet, text


def untouched_diff(models: dict[str, torch.nn.Module], refs: dict[str, torch.nn.Module],
                   merged: dict[str, torch.Tensor]) -> float:
    """Largest |change| (models[c] vs refs[c]) of a weight that is not a '<c>.<name>' key of
    merged: fusing a LoRA must leave those exactly as they were."""
    untouched = 0.0
    for comp, model in models.items():
        ref_sd = refs[comp].state_dict()
        for k, v in model.state_dict().items():
            if f"{comp}.{k}" not in merged:
                untouched = max(untouched, float((v - ref_sd[k]).abs().max()))
    return untouched


# --------------------------------------------------------------------------- generation

def write_weights(base: Base, out: Path) -> None:
    unet = base.unet
    # ControlNet A: diffusers folder (F32) and original single file (F16)
    cn_a = build_controlnet(unet, CN_HINT_A, SEED + 100)
    cn_a.save_pretrained(str(out / "controlnet"), safe_serialization=True)
    finish_folder(out / "controlnet")
    ldm = controlnet_to_ldm({k: v.half() for k, v in cn_a.state_dict().items()}, dict(cn_a.config))
    save_torch(ldm, out / "controlnet_ldm.safetensors", {
        "format": "pt",
        "description": "PILOT tiny random-weight ControlNet (for the sd1 fixture UNet), original "
                       "ControlNet (cldm) layout with the control_model. prefix"})
    # ControlNet B: folder in F16
    cn_b = build_controlnet(unet, CN_HINT_B, SEED + 200)
    copy.deepcopy(cn_b).half().save_pretrained(str(out / "controlnet_b"), safe_serialization=True)
    finish_folder(out / "controlnet_b")
    # T2I-Adapters
    for i, (name, cfg) in enumerate(T2I_CONFIGS.items()):
        torch.manual_seed(SEED + 300 + 10 * i)
        ad = T2IAdapter(**cfg)
        sdfx.round_to_half(ad, SEED + 301 + 10 * i)
        ad.save_pretrained(str(out / name), safe_serialization=True)
        finish_folder(out / name)
    # IP-Adapter: image encoder (F16 folder), preprocessor config, weights (F16)
    enc = build_image_encoder(SEED + 400)
    enc.half().save_pretrained(str(out / "image_encoder"), safe_serialization=True)
    finish_folder(out / "image_encoder")
    CLIPImageProcessor().save_pretrained(str(out / "feature_extractor"))
    ip = build_ip_adapter(unet, SEED + 410)
    save_torch({k: v.half() for k, v in ip.items()}, out / "ip_adapter.safetensors", {
        "format": "pt",
        "description": "PILOT tiny random-weight IP-Adapter (SD 1.x base layout) for the sd1 fixture UNet"})
    # LoRAs
    kohya, peft_sd = build_loras(base, SEED + 500)
    save_torch(kohya, out / "lora_kohya.safetensors", {
        "format": "pt", "description": "PILOT tiny LoRA, kohya/webui key format (F16, alphas as 0-d tensors)"})
    save_torch(peft_sd, out / "lora_peft.safetensors", {
        "format": "pt", "description": "PILOT tiny LoRA, diffusers/peft key format (F32, no alphas)"})


class Adapters:
    """Everything loaded back from the written files."""

    def __init__(self, out: Path, base: Base):
        self.out = out
        kw = dict(torch_dtype=torch.float32, local_files_only=True)
        self.cn_a = ControlNetModel.from_pretrained(str(out / "controlnet"), **kw).eval()
        self.cn_b = ControlNetModel.from_pretrained(str(out / "controlnet_b"), **kw).eval()
        self.t2i = {n: T2IAdapter.from_pretrained(str(out / n), **kw).eval() for n in T2I_CONFIGS}
        self.image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(out / "image_encoder"), **kw).eval()
        self.feature_extractor = CLIPImageProcessor.from_pretrained(str(out / "feature_extractor"))
        self.lora_recs = read_kohya(out / "lora_kohya.safetensors", base) + \
            read_peft(out / "lora_peft.safetensors")


def cast(m: torch.nn.Module, dtype) -> torch.nn.Module:
    return copy.deepcopy(m).to(dtype).eval()


def compute_inputs(d: sdfx.Dump, base: Base, unet) -> dict[str, torch.Tensor]:
    cad = base.unet_config["cross_attention_dim"]
    x = d.rand("latents", [2, 4, 16, 16], SEED * 10 + 1, 2.0, "latents (batch 2), every UNet call")
    ctx = d.rand("context", [2, MAX_LENGTH, cad], SEED * 10 + 2, 1.0,
                 "encoder_hidden_states (batch 2), every UNet call")
    ts = torch.tensor([UNET_T, UNET_T], dtype=torch.float32)
    d.put("timestep", ts, "timestep per row, every UNet call")
    img = conditioning_images().to(d.dtype)
    d.put("cond_image", img, "conditioning images in [0, 1] (multiples of 1/255), NCHW; row 0 a "
          "line drawing, row 1 a colour picture")
    src = ip_source_image()
    d.put("ip_source_image", src.astype(np.float32), "uint8 RGB image (values 0-255 stored as "
          "float32), HWC [160, 200, 3], given to CLIPImageProcessor as a uint8 array")
    with torch.no_grad():
        d.put("unet_out", unet(x, ts.to(d.dtype), encoder_hidden_states=ctx).sample,
              "plain UNet output (no adapter), the baseline of every adapter case")
    return {"x": x, "ctx": ctx, "ts": ts.to(d.dtype), "img": img, "src": src}


def controlnet_dumps(d: sdfx.Dump, base: Base, ad: Adapters, inp: dict, dtype) -> None:
    unet = cast(base.unet, dtype)
    cn_a, cn_b = cast(ad.cn_a, dtype), cast(ad.cn_b, dtype)
    x, ctx, ts, img = inp["x"], inp["ctx"], inp["ts"], inp["img"]
    with torch.no_grad():
        d.put("controlnet.hint_embedding", cn_a.controlnet_cond_embedding(img),
              "ControlNet A controlnet_cond_embedding(cond_image) (input_hint_block output)")
        down, mid = cn_a(x, ts, encoder_hidden_states=ctx, controlnet_cond=img,
                         conditioning_scale=CN_SCALE, return_dict=False)
        for j, r in enumerate(down):
            d.put(f"controlnet.down_residual.{j}", r, f"ControlNet A down residual {j} "
                  f"(x conditioning_scale {CN_SCALE}) = zero_convs.{j} output x scale")
        d.put("controlnet.mid_residual", mid, "ControlNet A mid residual (middle_block_out x scale)")
        out = unet(x, ts, encoder_hidden_states=ctx, down_block_additional_residuals=list(down),
                   mid_block_additional_residual=mid).sample
        d.put("controlnet.unet_out", out, "UNet output with ControlNet A's residuals")

        multi = MultiControlNetModel([cn_a, cn_b])
        img_b = img[[1, 0]]
        down, mid = multi(x, ts, encoder_hidden_states=ctx, controlnet_cond=[img, img_b],
                          conditioning_scale=MULTI_SCALES, return_dict=False)
        for j, r in enumerate(down):
            d.put(f"multi.down_residual.{j}", r, f"sum of ControlNet A (cond_image, scale "
                  f"{MULTI_SCALES[0]}) and B (cond_image rows swapped, scale {MULTI_SCALES[1]}) "
                  f"down residual {j}")
        d.put("multi.mid_residual", mid, "summed mid residual")
        out = unet(x, ts, encoder_hidden_states=ctx, down_block_additional_residuals=list(down),
                   mid_block_additional_residual=mid).sample
        d.put("multi.unet_out", out, "UNet output with the summed residuals")

        # ---- StableDiffusionControlNetPipeline
        pipe = StableDiffusionControlNetPipeline(
            vae=cast(base.vae, dtype), text_encoder=cast(base.text, dtype), tokenizer=base.tokenizer,
            unet=unet, controlnet=cn_a, scheduler=DDIMScheduler(**sdfx.ddim_config("sd1")),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        lat = d.rand("pipeline.latents_in", [1, 4, 16, 16], SEED * 10 + 3, 2.0,
                     "initial latents (latents=; init_noise_sigma is 1 for DDIM)")
        pe, npe = pipe.encode_prompt(PROMPT, torch.device("cpu"), 1, True, negative_prompt="")
        d.put("pipeline.prompt_embeds", pe, "encode_prompt(prompt)", prompt=PROMPT)
        d.put("pipeline.negative_prompt_embeds", npe, "encode_prompt(negative '')")
        control = img[:1]
        for tag, end in (("pipeline", 1.0), ("pipeline_end05", PIPE_GUIDANCE_END)):
            steps = []

            def cb(p, i, t, kw):
                steps.append((int(t), kw["latents"].clone()))
                return kw

            kwargs = dict(prompt=PROMPT, negative_prompt="", image=control,
                          num_inference_steps=PIPE_STEPS, guidance_scale=PIPE_GUIDANCE, eta=0.0,
                          controlnet_conditioning_scale=PIPE_CN_SCALE, control_guidance_start=0.0,
                          control_guidance_end=end)
            out_lat = pipe(latents=lat.clone(), output_type="latent", callback_on_step_end=cb,
                           **kwargs).images
            for i, (t, l) in enumerate(steps):
                d.put(f"{tag}.step.{i}.latents", l, f"latents after denoising step {i} (t={t})",
                      timestep=t)
            d.put(f"{tag}.latents_out", out_lat, f"final latents, control_guidance_end {end}")
            if tag == "pipeline":
                d.put("pipeline.timesteps", torch.tensor([t for t, _ in steps]), "timesteps used")
                img_out = pipe(latents=lat.clone(), output_type="np", **kwargs).images
                d.put("pipeline.image", img_out, "output_type='np': (vae.decode(latents / "
                      "0.18215) / 2 + 0.5).clamp(0, 1), NHWC")


def t2i_dumps(d: sdfx.Dump, base: Base, ad: Adapters, inp: dict, dtype) -> None:
    unet = cast(base.unet, dtype)
    x, ctx, ts = inp["x"], inp["ctx"], inp["ts"]
    image = inp["img"][1:2]
    with torch.no_grad():
        for name in T2I_CONFIGS:
            feats = cast(ad.t2i[name], dtype)(image)
            for j, f in enumerate(feats):
                d.put(f"{name}.feature.{j}", f, f"{name} feature {j} for cond_image row 1 (unscaled)")
            res = [torch.cat([f * T2I_SCALE] * 2) for f in feats]
            out = unet(x, ts, encoder_hidden_states=ctx,
                       down_intrablock_additional_residuals=[r.clone() for r in res]).sample
            d.put(f"{name}.unet_out", out, f"UNet output with down_intrablock_additional_residuals"
                  f" = features x {T2I_SCALE}, each repeated to batch 2")


def ip_dumps(d: sdfx.Dump, base: Base, ad: Adapters, inp: dict, dtype) -> dict:
    x, ctx, ts = inp["x"], inp["ctx"], inp["ts"]
    pix = ad.feature_extractor(inp["src"], return_tensors="pt").pixel_values
    d.put("ip.pixel_values", pix, "CLIPImageProcessor(ip_source_image).pixel_values: resize "
          "shortest side to 224 (PIL bicubic on uint8, 160x200 -> 224x280), centre crop 224 "
          "(columns 28..251), x/255, (x - mean) / std")
    enc = cast(ad.image_encoder, dtype)
    with torch.no_grad():
        emb = enc(pix.to(dtype)).image_embeds
    d.put("ip.image_embeds", emb, "CLIPVisionModelWithProjection(pixel_values).image_embeds")
    pipe = StableDiffusionPipeline(
        vae=cast(base.vae, dtype), text_encoder=cast(base.text, dtype), tokenizer=base.tokenizer,
        unet=cast(base.unet, dtype), scheduler=DDIMScheduler(**sdfx.ddim_config("sd1")),
        safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)
    load_ip_adapter(pipe, ad.out, dtype, IP_SCALE)
    with torch.no_grad():
        embeds = pipe.prepare_ip_adapter_image_embeds(
            [inp["src"]], None, torch.device("cpu"), 1, True)
        tokens = pipe.unet.encoder_hid_proj.image_projection_layers[0](embeds[0][:, 0])
        d.put("ip.image_tokens", tokens, "image_proj(image embedding): row 0 from the zero "
              "embedding (unconditional), row 1 from image_embeds; Linear 8 -> 24, reshape [4, 6], "
              "LayerNorm(6)")
        out = pipe.unet(x, ts, encoder_hidden_states=ctx,
                        added_cond_kwargs={"image_embeds": embeds}).sample
        d.put("ip.unet_out", out, f"UNet output, batch 2 = [uncond (zero image embedding), cond],"
              f" ip_adapter_scale {IP_SCALE}")
    return {"pipe": pipe, "embeds": embeds}


def lora_dumps(d: sdfx.Dump, base: Base, ad: Adapters, inp: dict, dtype) -> dict:
    x, ctx, ts = inp["x"], inp["ctx"], inp["ts"]
    ids = torch.tensor([sdfx.padded_ids(base.tokenizer, PROMPT)])
    d.put("lora.input_ids", ids, "token ids of the prompt, padded to 77", prompt=PROMPT)
    merged_all = {}
    for case, scales in LORA_CASES.items():
        merged = lora_merge(base, ad.lora_recs, scales)
        merged_all[case] = merged
        for key in sorted(merged):
            d.put(f"lora.{case}.merged.{key}", merged[key], f"W + sum scale (alpha/rank) up.down, "
                  f"float64 then rounded; scales {scales}")
        unet, text = apply_merged(base, merged, dtype)
        with torch.no_grad():
            d.put(f"lora.{case}.unet_out", unet(x, ts, encoder_hidden_states=ctx).sample,
                  f"UNet output with the merged weights (scales {scales})")
            d.put(f"lora.{case}.text_out", text(ids).last_hidden_state,
                  f"text encoder last_hidden_state with the merged weights (scales {scales})")
    return merged_all


def compute_all(base: Base, ad: Adapters, dtype=torch.float32) -> dict[str, sdfx.Dump]:
    torch.manual_seed(0)
    dumps = {n: sdfx.Dump(dtype) for n in ("inputs", "controlnet", "t2i", "ip_adapter", "lora")}
    unet = cast(base.unet, dtype)
    inp = compute_inputs(dumps["inputs"], base, unet)
    controlnet_dumps(dumps["controlnet"], base, ad, inp, dtype)
    t2i_dumps(dumps["t2i"], base, ad, inp, dtype)
    ip_dumps(dumps["ip_adapter"], base, ad, inp, dtype)
    lora_dumps(dumps["lora"], base, ad, inp, dtype)
    return dumps


# --------------------------------------------------------------------------- metadata

def lora_layout(ad: Adapters) -> dict:
    touched = {}
    for r in ad.lora_recs:
        key = f"{r['component']}.{r['module']}.weight"
        touched.setdefault(key, []).append({"lora": r["lora"], "rank": r["rank"],
                                            "alpha": r["alpha"], "down_shape": list(r["down"].shape),
                                            "up_shape": list(r["up"].shape)})
    return {"touched": touched, "cases": LORA_CASES}


def model_config(m) -> dict:
    """A model's config without diffusers' bookkeeping keys (_name_or_path is a local path)."""
    return {k: v for k, v in dict(m.config).items() if not k.startswith("_")}


def configs_for(kind: str, base: Base, ad: Adapters) -> dict:
    common = {"unet_timestep": UNET_T, "base_model": "Tests/Fixtures/sd/sd1"}
    if kind == "inputs":
        return common
    if kind == "controlnet":
        return {**common, "controlnet": model_config(ad.cn_a), "controlnet_b": model_config(ad.cn_b),
                "conditioning_scale": CN_SCALE, "multi_scales": MULTI_SCALES,
                "multi_images": ["cond_image", "cond_image[[1, 0]] (rows swapped)"],
                "pipeline": {"prompt": PROMPT, "negative_prompt": "", "num_inference_steps": PIPE_STEPS,
                             "guidance_scale": PIPE_GUIDANCE, "eta": 0.0, "image": "cond_image[0:1]",
                             "controlnet_conditioning_scale": PIPE_CN_SCALE,
                             "control_guidance_start": 0.0,
                             "control_guidance_end": {"pipeline": 1.0,
                                                      "pipeline_end05": PIPE_GUIDANCE_END},
                             "scheduler": sdfx.ddim_config("sd1")}}
    if kind == "t2i":
        return {**common, "t2i_full": model_config(ad.t2i["t2i_full"]),
                "t2i_light": model_config(ad.t2i["t2i_light"]), "scale": T2I_SCALE,
                "image": "cond_image[1:2]"}
    if kind == "ip_adapter":
        return {**common, "image_encoder": CLIP_VISION,
                "feature_extractor": ad.feature_extractor.to_dict(), "scale": IP_SCALE,
                "num_tokens": IP_TOKENS}
    if kind == "lora":
        return {**common, "prompt": PROMPT, **lora_layout(ad)}
    raise KeyError(kind)


NOTES = {
    "inputs": "Shared inputs: every UNet call in the adapter fixtures uses latents, timestep, "
              "context; unet_out is the plain UNet on them.",
    "controlnet": "ControlNet A = controlnet/ (also controlnet_ldm.safetensors), B = controlnet_b/ "
                  "(F16). Residual lists follow ControlNetModel: 9 down residuals (conv_in output, "
                  "then every resnet/attention output and downsampler output of the down blocks) "
                  "and one mid residual, each already multiplied by the conditioning scale.",
    "t2i": "Features are the adapter outputs before scaling; the UNet adds scale x feature j to "
           "the output of down block j's last layer (before its downsampler), so the skip "
           "connection and the next block both see it.",
    "ip_adapter": "IP-Adapter through diffusers' load_ip_adapter and IPAdapterAttnProcessor2_0 "
                  "(to_out applied once, ip scale honoured). layers: the cross-attention layers "
                  "in diffusers' attn_processors order with their ip_adapter.<index> numbers.",
    "lora": "Merged weights computed in float64 from the files (W + scale (alpha / rank) "
            "up.down summed over both LoRAs), then rounded to float32. peft file: no alphas "
            "(alpha / rank = 1).",
}


# --------------------------------------------------------------------------- checks

def sensitivity(dumps: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    base = dumps["inputs"]["unet_out"]
    out = {}
    for f, k in (("controlnet", "controlnet.unet_out"), ("controlnet", "multi.unet_out"),
                 ("t2i", "t2i_full.unet_out"), ("t2i", "t2i_light.unet_out"),
                 ("ip_adapter", "ip.unet_out"), ("lora", "lora.a.unet_out"),
                 ("lora", "lora.b.unet_out")):
        out[k] = sdfx.rel_err(base, dumps[f][k])
    return out


def detail_sensitivity(base: Base, ad: Adapters, stored: dict) -> dict[str, float]:
    """What the references can see (max|diff|/max|ref|), for the README."""
    inp = stored["inputs"]
    x, ctx = torch.from_numpy(inp["latents"]), torch.from_numpy(inp["context"])
    ts, img = torch.from_numpy(inp["timestep"]), torch.from_numpy(inp["cond_image"])

    def residuals(cn, im):
        down, mid = cn(x, ts, encoder_hidden_states=ctx, controlnet_cond=im,
                       conditioning_scale=CN_SCALE, return_dict=False)
        return torch.cat([r.flatten() for r in down] + [mid.flatten()])

    out = {}
    with torch.no_grad():
        ref = residuals(ad.cn_a, img)
        out["controlnet residuals: conditioning image all 0"] = sdfx.rel_err(
            residuals(ad.cn_a, img * 0), ref)
        trunk = copy.deepcopy(ad.cn_a)
        usd = base.unet.state_dict()
        trunk.load_state_dict({k: usd.get(k, v) for k, v in trunk.state_dict().items()})
        out["controlnet residuals: trunk = the UNet's weights"] = sdfx.rel_err(
            residuals(trunk, img), ref)
        c = stored["controlnet"]
        out["controlnet pipeline: final latents, control_guidance_end 0.5 vs 1"] = sdfx.rel_err(
            c["pipeline_end05.latents_out"], c["pipeline.latents_out"])
        pix = torch.from_numpy(stored["ip_adapter"]["ip.pixel_values"])
        emb = ad.image_encoder(pix).image_embeds
        enc = copy.deepcopy(ad.image_encoder)
        enc.vision_model.embeddings.position_embedding.weight.zero_()
        out["ip image_embeds: position embeddings zeroed"] = sdfx.rel_err(enc(pix).image_embeds, emb)
        out["ip image_embeds: image flipped left-right"] = sdfx.rel_err(
            ad.image_encoder(pix.flip(-1)).image_embeds, emb)
    return out


def report_sizes(out: Path) -> int:
    total = 0
    for p in sorted(q for q in out.rglob("*") if q.is_file()):
        total += p.stat().st_size
        print(f"{p.stat().st_size:>10,d}  {p.relative_to(ROOT)}")
    print(f"{total:>10,d}  total ({total / 1e6:.2f} MB)")
    return total


def dump_file(name: str) -> str:
    return "inputs.safetensors" if name == "inputs" else f"{name}_reference.safetensors"


def check(out: Path) -> int:
    expect = sdfx.Expect()
    expect.size(report_sizes(out), SIZE_LIMIT)
    expect.strict_json(out)

    with tempfile.TemporaryDirectory() as tmpd:
        base = Base(Path(tmpd))
        ad = Adapters(out, base)

        # ---- weights are float16-exact, dtypes as documented
        for name, model in (("controlnet", ad.cn_a), ("controlnet_b", ad.cn_b),
                            ("t2i_full", ad.t2i["t2i_full"]), ("t2i_light", ad.t2i["t2i_light"]),
                            ("image_encoder", ad.image_encoder)):
            assert_half_exact(model.state_dict(), name)
        assert_half_exact(safetensors.torch.load_file(str(out / "lora_peft.safetensors")), "lora_peft")
        for f, want in (("controlnet/diffusion_pytorch_model.safetensors", {"F32"}),
                        ("controlnet_b/diffusion_pytorch_model.safetensors", {"F16"}),
                        ("controlnet_ldm.safetensors", {"F16"}),
                        ("image_encoder/model.safetensors", {"F16"}),
                        ("ip_adapter.safetensors", {"F16"}), ("lora_kohya.safetensors", {"F16"}),
                        ("lora_peft.safetensors", {"F32"})):
            dt = sdfx.file_dtypes(out / f)
            expect(dt == want, f"{f}: dtypes {sorted(dt)}")
        expect(True, "every adapter weight is float16-representable")

        # ---- ControlNet single file <-> folder
        print("controlnet")
        ckpt = {k: v.float() for k, v in safetensors.torch.load_file(
            str(out / "controlnet_ldm.safetensors")).items()}
        cfg = dict(ad.cn_a.config)
        sd = controlnet_from_ldm(ckpt, list(ad.cn_a.state_dict()), cfg)
        cn_sf = ControlNetModel.from_config(ad.cn_a.config)
        cn_sf.load_state_dict(sd, strict=True)
        same = all(torch.equal(a, b) for a, b in zip(cn_sf.state_dict().values(),
                                                     ad.cn_a.state_dict().values()))
        expect(same and set(ckpt) == set(controlnet_to_ldm(ad.cn_a.state_dict(), cfg)),
               f"controlnet_ldm.safetensors ({len(ckpt)} keys) == controlnet/ weights through "
               f"the own converter")
        try:
            cn_d = ControlNetModel.from_single_file(str(out / "controlnet_ldm.safetensors"),
                                                    config=str(out / "controlnet"),
                                                    local_files_only=True, torch_dtype=torch.float32)
            diff = max(float((a.float() - b).abs().max()) for a, b in
                       zip(cn_d.state_dict().values(), ad.cn_a.state_dict().values()))
            expect(set(cn_d.state_dict()) == set(ad.cn_a.state_dict()) and diff == 0.0,
                   f"diffusers ControlNetModel.from_single_file(config=controlnet/) agrees "
                   f"(max |weight diff| {diff:g})")
        except Exception as e:  # noqa: BLE001 - reported
            print(f"  note  diffusers from_single_file failed: {type(e).__name__}: {str(e)[:200]}")

        # ---- IP-Adapter index mapping and processor semantics
        print("ip_adapter")
        ip_file = safetensors.torch.load_file(str(out / "ip_adapter.safetensors"))
        ip_checks(base, ad, ip_file, expect)

        # ---- LoRA: own float64 merge vs diffusers load_lora_weights + fuse_lora
        print("lora")
        lora_check(base, ad, expect)

        # ---- recompute every dump from the committed files
        print("dumps")
        fresh = compute_all(base, ad)
        stored_all = {}
        for name, d in fresh.items():
            meta, stored, dtypes = sdfx.read_safetensors(out / dump_file(name))
            stored_all[name] = stored
            entries = json.loads(meta["entries"])
            expect(set(dtypes.values()) == {"F32"}, f"{name}: all tensors F32")
            expect(set(entries) == set(stored) == set(d.tensors),
                   f"{name}: entries == stored == recomputed ({len(stored)} tensors)")
            worst, wname = sdfx.worst_rel_err(stored, d.tensors)
            expect(worst <= REL_TOL, f"{name}: recomputed from the committed files, worst "
                   f"max|diff|/max|ref| {worst:.3g} ({wname or 'all identical'})")
        sens = sensitivity(stored_all)
        print("  info  adapter effect on the UNet output, max|out - plain|/max|plain|:")
        for k, v in sens.items():
            print(f"          {k:24s} {v:.3g}")
        expect(all(v > 0.05 for v in sens.values()), "every adapter moves the UNet output by > 5%")
        for k, v in detail_sensitivity(base, ad, stored_all).items():
            print(f"  info  {k}: {v:.3g}")
        float64_deviation(base, ad, stored_all)
    return expect.verdict()


def ip_checks(base: Base, ad: Adapters, ip_file: dict, expect) -> None:
    pipe = StableDiffusionPipeline(
        vae=base.vae, text_encoder=base.text, tokenizer=base.tokenizer, unet=base.fresh_unet(),
        scheduler=DDIMScheduler(**sdfx.ddim_config("sd1")), safety_checker=None,
        feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    load_ip_adapter(pipe, ad.out)
    layers = cross_attention_layers(base.unet)
    expect(ip_weights_loaded(pipe.unet, layers, ip_file),
           f"load_ip_adapter puts ip_adapter.<i> on the layer at position i of attn_processors: "
           f"indices {[l['ip_index'] for l in layers]}")
    expect(pipe.feature_extractor.to_dict() == ad.feature_extractor.to_dict(),
           "load_ip_adapter's default CLIPImageProcessor(224) == feature_extractor/")
    src = ip_source_image()
    with torch.no_grad():
        embeds = pipe.prepare_ip_adapter_image_embeds([src], None, torch.device("cpu"), 1, True)[0]
        pix = ad.feature_extractor(src, return_tensors="pt").pixel_values
        emb = ad.image_encoder(pix).image_embeds
    expect(embeds.shape == (2, 1, CLIP_VISION["projection_dim"]) and bool((embeds[0] == 0).all())
           and torch.equal(embeds[1, 0], emb[0]),
           "pipeline image embeds for CFG are [zeros, image_embeds] (uncond row first)")
    # own processor (to_out once, scale) vs diffusers
    pipe.set_ip_adapter_scale(IP_SCALE)
    inp = {"x": torch.from_numpy(sdfx.detrand([2, 4, 16, 16], SEED * 10 + 1, 2.0)),
           "ctx": torch.from_numpy(sdfx.detrand([2, MAX_LENGTH, 6], SEED * 10 + 2, 1.0)),
           "ts": torch.tensor([UNET_T, UNET_T], dtype=torch.float32)}
    with torch.no_grad():
        ref = pipe.unet(inp["x"], inp["ts"], encoder_hidden_states=inp["ctx"],
                        added_cond_kwargs={"image_embeds": [embeds]}).sample
        use_own_ip_processors(pipe.unet, IP_SCALE)
        own = pipe.unet(inp["x"], inp["ts"], encoder_hidden_states=inp["ctx"],
                        added_cond_kwargs={"image_embeds": [embeds]}).sample
    e = sdfx.rel_err(own, ref)
    expect(e < 1e-5, f"own decoupled attention (to_out once, scale {IP_SCALE}) == diffusers "
           f"IPAdapterAttnProcessor2_0: {e:.2g}")


def lora_check(base: Base, ad: Adapters, expect) -> None:
    """diffusers' load_lora_weights + set_adapters + fuse_lora against the own float64 merge.

    diffusers 0.39 does not apply every kohya alpha: it keys the alphas of attention
    projections (UNet to_q/to_k/to_v/to_out.0, text self_attn q/k/v/out_proj) by their
    old attention-processor names (e.g. `attn2.processor.to_out_lora.down.weight`), which
    match no peft target module, so those layers get the LoRA's most common alpha instead
    of their own. The check reads the alpha / rank that peft actually uses for every layer,
    lists where it differs from the file, and verifies that diffusers' fused weights equal
    the own merge computed with those effective ratios (so the difference is exactly the
    alpha, nothing else)."""
    for case, scales in LORA_CASES.items():
        pipe = StableDiffusionPipeline(
            vae=base.vae, text_encoder=copy.deepcopy(base.text), tokenizer=base.tokenizer,
            unet=base.fresh_unet(), scheduler=DDIMScheduler(**sdfx.ddim_config("sd1")),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        try:
            pipe.load_lora_weights(str(ad.out), weight_name="lora_kohya.safetensors",
                                   adapter_name="kohya", local_files_only=True)
            pipe.load_lora_weights(str(ad.out), weight_name="lora_peft.safetensors",
                                   adapter_name="peft", local_files_only=True)
            effective, deviating = {}, []
            for r in ad.lora_recs:
                model = pipe.unet if r["component"] == "unet" else pipe.text_encoder
                layer = model.get_submodule(r["module"])
                eff = layer.lora_alpha[r["lora"]] / layer.r[r["lora"]]
                want = (r["alpha"] if r["alpha"] is not None else r["rank"]) / r["rank"]
                effective[(r["lora"], r["component"], r["module"])] = eff
                if abs(eff - want) > 1e-12:
                    deviating.append(f"{r['lora']}:{r['component']}.{r['module']} "
                                     f"alpha/rank {want:g} in the file, diffusers uses {eff:g}")
            pipe.set_adapters(["kohya", "peft"], adapter_weights=[scales["kohya"], scales["peft"]])
            pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0,
                           adapter_names=["kohya", "peft"])
            pipe.unload_lora_weights()
        except Exception as e:  # noqa: BLE001 - reported
            expect(False, f"lora {case}: diffusers could not load / fuse: {type(e).__name__}: {e}")
            continue
        ours = lora_merge(base, ad.lora_recs, scales)
        as_diffusers = lora_merge(base, ad.lora_recs, scales, effective)
        worst, wk, worst_formula = 0.0, "", 0.0
        for key, w in as_diffusers.items():
            comp, rest = key.split(".", 1)
            model = pipe.unet if comp == "unet" else pipe.text_encoder
            fused = model.get_parameter(rest).detach()
            e = sdfx.rel_err(fused, w)
            if e > worst:
                worst, wk = e, key
            worst_formula = max(worst_formula, sdfx.rel_err(fused, ours[key]))
        untouched = untouched_diff({"unet": pipe.unet, "text_encoder": pipe.text_encoder},
                                   {"unet": base.unet, "text_encoder": base.text}, ours)
        expect(worst < 1e-6 and untouched == 0.0,
               f"lora {case} {scales}: diffusers load_lora_weights + set_adapters + fuse_lora == "
               f"own float64 merge with diffusers' effective alpha/rank: worst {worst:.2g} ({wk}); "
               f"untouched weights max diff {untouched:g}")
        print(f"  note  lora {case}: diffusers deviates from the per-module alpha of the file on "
              f"{len(deviating)} layer(s) (fused vs reference formula: worst {worst_formula:.2g}):")
        for line in deviating:
            print(f"          {line}")


def float64_deviation(base: Base, ad: Adapters, stored: dict) -> None:
    """Informational: PyTorch float32 references vs the same computation in float64."""
    d64 = sdfx.recompute_float64(lambda: compute_all(base, ad, torch.float64), 200)
    if d64 is None:
        return
    print("  info  float32 reference vs float64 recomputation, max|diff|/max|ref| per group:")
    for name, d in d64.items():
        names = [k for k in d.tensors if not d.entries[k].get("detrand") and k not in (
            "timestep", "cond_image", "ip_source_image", "lora.input_ids", "pipeline.timesteps")]
        groups = sdfx.worst_by_group(stored[name], d.tensors, names, ("lora.",))
        for g, (e, k) in groups.items():
            print(f"          {name + ':' + g:34s} {e:9.2e}  ({k})")


# --------------------------------------------------------------------------- main

def generate(out: Path) -> None:
    sdfx.fresh_output(out)
    with tempfile.TemporaryDirectory() as tmpd:
        base = Base(Path(tmpd))
        write_weights(base, out)
        ad = Adapters(out, base)
        dumps = compute_all(base, ad)
        layers = {"cross_attention_layers": cross_attention_layers(base.unet)}
        for name, d in dumps.items():
            write_dump(d, out / dump_file(name), name, configs_for(name, base, ad),
                       NOTES[name], layers if name == "ip_adapter" else None)
            print(f"wrote {name}: {len(d.tensors)} tensors")


def main() -> int:
    args = sdfx.parse_args(__doc__, DEFAULT_OUT)
    if not args.check:
        generate(args.out)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
