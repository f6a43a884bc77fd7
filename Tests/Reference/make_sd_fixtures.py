#!/usr/bin/env python3
"""Writes the Stable Diffusion reference fixtures (Tests/Fixtures/sd/).

    python make_sd_fixtures.py            # rebuild everything, then run the checks
    python make_sd_fixtures.py --check    # reload the committed files and re-verify

Two tiny random-weight pipelines, "sd1" (OpenAI CLIP text encoder, epsilon
prediction, conv 1x1 transformer projections) and "sd2" (OpenCLIP-style text
encoder, v-prediction, linear projections, per-block head counts), each as a
diffusers folder and as a single-file original-LDM checkpoint, plus reference
outputs computed with diffusers / transformers in float32. Every parameter is
rounded to float16 precision, so the fp32 and fp16 files hold the same values.
See README.md ("Stable Diffusion fixtures") for the file list and schema.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,  # noqa: E402
                       EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402
from transformers.models.clip.tokenization_clip import bytes_to_unicode  # noqa: E402

diffusers.utils.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
logging.getLogger("diffusers").setLevel(logging.ERROR)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ldm_keys  # noqa: E402
from detrand import GENERATOR, detrand  # noqa: E402
from sd_prompts import all_prompts  # noqa: E402

ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "sd"
BPE_FILE = ROOT / "Sources" / "Diffusion" / "Resources" / "bpe_simple_vocab_16e6.txt.gz"
SIZE_LIMIT = 10_000_000  # bytes: Tests/Fixtures/sd/ plus the BPE vocabulary file
MAX_LENGTH = 77
REL_TOL = 1e-5  # --check: max|a-b| / max|b| allowed when recomputing a dump

VERSIONS = {
    "torch": torch.__version__,
    "numpy": np.__version__,
    "safetensors": safetensors.__version__,
    "diffusers": diffusers.__version__,
    "transformers": transformers.__version__,
}

# --------------------------------------------------------------------------- configs

DDIM_BASE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

UNET_BASE = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [8, 12, 12],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 2,
    "norm_num_groups": 4,
    "transformer_layers_per_block": 1,
}

VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 16, 16, 16],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 128,
    "scaling_factor": 0.18215,
}

TEXT_BASE = {
    "vocab_size": 49408,
    "hidden_size": 6,
    "intermediate_size": 24,
    "num_attention_heads": 2,
    "max_position_embeddings": MAX_LENGTH,
    "projection_dim": 6,
}

VARIANTS = {
    "sd1": {
        "seed": 1000,
        "unet": {**UNET_BASE, "cross_attention_dim": 6, "attention_head_dim": 2,
                 "use_linear_projection": False},
        "vae": VAE_CONFIG,
        "text": {**TEXT_BASE, "num_hidden_layers": 2, "hidden_act": "quick_gelu"},
        "text_kind": "openai",
        "pad_token": "<|endoftext|>",
        "prediction_type": "epsilon",
    },
    "sd2": {
        "seed": 2000,
        "unet": {**UNET_BASE, "cross_attention_dim": 6, "attention_head_dim": [2, 4, 4],
                 "use_linear_projection": True, "upcast_attention": True},
        "vae": VAE_CONFIG,
        "text": {**TEXT_BASE, "num_hidden_layers": 3, "hidden_act": "gelu"},
        # The single file's OpenCLIP tower has one more layer than the diffusers text
        # encoder (SD2 conditions on the penultimate layer: OpenCLIP 24 vs diffusers 23).
        "openclip_layers": 4,
        "text_kind": "openclip",
        "pad_token": "!",
        "prediction_type": "v_prediction",
    },
}


def ddim_config(variant: str) -> dict:
    return {**DDIM_BASE, "prediction_type": VARIANTS[variant]["prediction_type"]}


# --------------------------------------------------------------------------- helpers

def canonical_safetensors(path: Path) -> None:
    """Re-emits a safetensors header with sorted metadata and tensors in data order.

    safetensors writes the header JSON in hash-map order, which changes between
    runs; the same bytes in a fixed order make regeneration reproducible.
    """
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {}
    if meta is not None:
        out["__metadata__"] = {k: meta[k] for k in sorted(meta, key=META_ORDER_KEY)}
    for name in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        out[name] = header[name]
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:
        raise AssertionError("canonical header is longer than the original")
    text += b" " * (n - len(text))
    path.write_bytes(blob[:8] + text + blob[8 + n:])


REF_META_ORDER = ("variant", "entries", "configs", "generator", "versions", "notes")


def META_ORDER_KEY(k: str):
    return (REF_META_ORDER.index(k) if k in REF_META_ORDER else len(REF_META_ORDER), k)


def gzip_bytes(data: bytes) -> bytes:
    bio = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=bio, mtime=0, compresslevel=9) as f:
        f.write(data)
    return bio.getvalue()


def widen_text_embeddings(model: CLIPTextModel, seed: int) -> None:
    """CLIP initialises token and position embeddings with std 0.02, far below the
    (randomised) biases of a tiny model, so the output would barely depend on the
    tokens; std 0.5 makes every token matter."""
    g = torch.Generator().manual_seed(seed)
    emb = model.text_model.embeddings
    with torch.no_grad():
        for w in (emb.token_embedding.weight, emb.position_embedding.weight):
            w.copy_(0.5 * torch.randn(w.shape, generator=g))


QK_GAIN = 3.0


def sharpen_attention(module: torch.nn.Module) -> None:
    """Default init gives attention logits of std ~0.3, i.e. an almost uniform
    softmax, under which head splitting and masking hardly change the result.
    Scaling the query and key projections by QK_GAIN (logits x9) makes the
    attention patterns peaked, as in trained models."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("to_q.weight", "to_k.weight", "q_proj.weight", "k_proj.weight")):
                p.mul_(QK_GAIN)


def round_to_half(module: torch.nn.Module, seed: int) -> None:
    """Gives constant-initialised parameters (norm weights 1, zero biases) random
    values, so the fixtures tell weight from bias, then rounds every parameter to
    float16 precision."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in module.named_parameters():
            flat = p.reshape(-1)
            if bool((flat == flat[0]).all()):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())


def rel_err(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    if a.shape != b.shape:
        return math.inf
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


# --------------------------------------------------------------------------- tokenizer

def vocab_and_merges(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """OpenAI CLIP's vocabulary construction from bpe_simple_vocab_16e6.txt.gz."""
    lines = gzip.decompress(bpe_gz.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split(" ")) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(merges) == 48894 and len(vocab) == 49408 and len(set(vocab)) == 49408
    return {t: i for i, t in enumerate(vocab)}, merges


def build_tokenizer(workdir: Path, pad_token: str) -> CLIPTokenizer:
    vocab, merges = vocab_and_merges(BPE_FILE)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (workdir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n",
                                        encoding="utf-8")
    tok = CLIPTokenizer(str(workdir / "vocab.json"), str(workdir / "merges.txt"),
                        pad_token=pad_token, model_max_length=MAX_LENGTH)
    assert tok.fix_text is None, "ftfy is installed: the fixtures assume it is not"
    return tok


def padded_ids(tok: CLIPTokenizer, text: str) -> list[int]:
    return tok(text, padding="max_length", max_length=MAX_LENGTH, truncation=True).input_ids


def prompts_document(tok1: CLIPTokenizer, tok2: CLIPTokenizer) -> dict:
    entries = []
    for text in all_prompts():
        entries.append({"text": text, "tokens": tok1.tokenize(text),
                        "ids_sd1": tok1(text, truncation=False).input_ids,
                        "ids_sd2": tok2(text, truncation=False).input_ids,
                        "sd1": padded_ids(tok1, text), "sd2": padded_ids(tok2, text)})
    return {
        "description": (
            "CLIP BPE tokenization by transformers' slow CLIPTokenizer without ftfy. "
            "ids_sd1 / ids_sd2: un-truncated [BOS] + tokens + [EOS]; sd1 / sd2: 77 ids, "
            "truncated to BOS + first 75 + EOS, then padded (sd1 with <|endoftext|> 49407, "
            "sd2 with '!' = id 0). The two tokenizers differ only where the text contains '!': "
            "sd2's pad token '!' is a special added token, so every '!' in the text is split "
            "out as its own token with id 0 (sd1 BPE-merges it, e.g. '!</w>' 256, '!!!</w>' 995). "
            "tokens: sd1's BPE token strings (byte-level characters; '</w>' ends a word)."),
        "max_length": MAX_LENGTH,
        "bos": 49406, "eos": 49407, "sd1_pad": 49407, "sd2_pad": 0,
        "versions": {"transformers": transformers.__version__},
        "prompts": entries,
    }


def write_prompts(path: Path, doc: dict) -> None:
    head = {k: v for k, v in doc.items() if k != "prompts"}
    lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in doc["prompts"]]
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    text += ',\n "prompts": [\n' + ",\n".join(lines) + "\n ]\n}\n"
    path.write_text(text, encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == doc


# --------------------------------------------------------------------------- models

class Models:
    def __init__(self, variant, unet, vae, text, tokenizer, extra_text=None, openclip_text=None):
        self.variant = variant
        self.unet = unet.eval()
        self.vae = vae.eval()
        self.text = text.eval()
        self.tokenizer = tokenizer
        self.extra_text = extra_text or {}
        self.openclip_text = openclip_text  # SD2: the full OpenCLIP-depth text state dict

    def pipeline(self, scheduler=None) -> StableDiffusionPipeline:
        return StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=scheduler or DDIMScheduler(**ddim_config(self.variant)),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_models(variant: str, tok: CLIPTokenizer) -> Models:
    v = VARIANTS[variant]
    seed = v["seed"]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**v["unet"])
    sharpen_attention(unet)
    round_to_half(unet, seed + 1)
    torch.manual_seed(seed + 10)
    vae = AutoencoderKL(**v["vae"])
    sharpen_attention(vae)
    round_to_half(vae, seed + 11)
    torch.manual_seed(seed + 20)
    extra, openclip_text = None, None
    if v["text_kind"] == "openai":
        text = CLIPTextModel(CLIPTextConfig(**v["text"]))
        widen_text_embeddings(text, seed + 22)
        sharpen_attention(text)
        round_to_half(text, seed + 21)
    else:
        # Build the deeper OpenCLIP-like tower, then keep its first layers as the
        # diffusers text encoder, as SD2's conversion does.
        deep = CLIPTextModel(CLIPTextConfig(**{**v["text"],
                                               "num_hidden_layers": v["openclip_layers"]}))
        widen_text_embeddings(deep, seed + 22)
        sharpen_attention(deep)
        round_to_half(deep, seed + 21)
        openclip_text = {k: t.detach().clone() for k, t in deep.state_dict().items()}
        text = CLIPTextModel(CLIPTextConfig(**v["text"]))
        missing, unexpected = text.load_state_dict(openclip_text, strict=False)
        assert not missing and all(".layers." in k for k in unexpected), (missing, unexpected)
        g = torch.Generator().manual_seed(seed + 30)
        width, proj = v["text"]["hidden_size"], v["text"]["projection_dim"]
        extra = {
            "text_projection": (torch.randn(width, proj, generator=g) * width ** -0.5).half().float(),
            "logit_scale": torch.tensor(math.log(1 / 0.07)).half().float(),
        }
    return Models(variant, unet, vae, text, tok, extra, openclip_text)


def save_folder(m: Models, folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    m.pipeline().save_pretrained(str(folder), safe_serialization=True)
    # text encoder in float16 (values are already float16-exact)
    shutil.rmtree(folder / "text_encoder")
    copy.deepcopy(m.text).half().save_pretrained(str(folder / "text_encoder"),
                                                 safe_serialization=True)
    # fp16 variant of the UNet beside the fp32 weights
    copy.deepcopy(m.unet).half().save_pretrained(str(folder / "unet"), variant="fp16",
                                                 safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        p = folder / "tokenizer" / name
        (p.parent / (name + ".gz")).write_bytes(gzip_bytes(p.read_bytes()))
        p.unlink()
    for p in folder.rglob("*.safetensors"):
        canonical_safetensors(p)


def ldm_schedule_buffers() -> dict[str, torch.Tensor]:
    """The DDPM buffers original checkpoints carry (the loader should ignore them)."""
    betas = torch.linspace(DDIM_BASE["beta_start"] ** 0.5, DDIM_BASE["beta_end"] ** 0.5, 1000,
                           dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    return {"betas": betas, "alphas_cumprod": ac,
            "alphas_cumprod_prev": torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])}


def single_file_dict(m: Models) -> dict[str, torch.Tensor]:
    v = VARIANTS[m.variant]
    text_sd = m.openclip_text if m.openclip_text is not None else m.text.state_dict()
    ckpt = ldm_keys.to_ldm(m.unet.state_dict(), m.vae.state_dict(), text_sd,
                           dict(m.unet.config), dict(m.vae.config), v["text_kind"], m.extra_text)
    ckpt.update(ldm_schedule_buffers())
    return ckpt


def save_single_file(m: Models, path: Path) -> None:
    ckpt = {k: t.detach().to(torch.float16).contiguous() for k, t in single_file_dict(m).items()}
    safetensors.torch.save_file(ckpt, str(path), metadata={
        "format": "pt",
        "description": f"PILOT tiny random-weight {m.variant} test checkpoint, original LDM layout"})
    canonical_safetensors(path)


def unpacked_copy(folder: Path, dest: Path) -> Path:
    """A copy of a fixture folder with the tokenizer files un-gzipped (loadable)."""
    shutil.copytree(folder, dest)
    for gz in (dest / "tokenizer").glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    return dest


def load_folder(variant: str, folder: Path, fp16_unet: bool = False) -> Models:
    pipe = StableDiffusionPipeline.from_pretrained(
        str(folder), torch_dtype=torch.float32, local_files_only=True, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
        variant="fp16" if fp16_unet else None)
    unet = pipe.unet.float()
    return Models(variant, unet, pipe.vae.float(), pipe.text_encoder.float(), pipe.tokenizer)


def load_single_file(variant: str, path: Path, like: Models) -> Models:
    v = VARIANTS[variant]
    ckpt = {k: t.float() for k, t in safetensors.torch.load_file(str(path)).items()}
    unet_sd, vae_sd, text_sd = ldm_keys.from_ldm(
        ckpt, list(like.unet.state_dict()), list(like.vae.state_dict()),
        dict(like.unet.config), dict(like.vae.config), v["text_kind"],
        v["text"]["num_hidden_layers"])
    unet = UNet2DConditionModel.from_config(like.unet.config)
    vae = AutoencoderKL.from_config(like.vae.config)
    text = CLIPTextModel(like.text.config)
    unet.load_state_dict(unet_sd, strict=True)
    vae.load_state_dict(vae_sd, strict=True)
    text.load_state_dict(text_sd, strict=True)
    return Models(variant, unet, vae, text, like.tokenizer)


# --------------------------------------------------------------------------- dumps

class Dump:
    def __init__(self, dtype: torch.dtype = torch.float32):
        self.dtype = dtype  # dtype the inputs are handed to the models in
        self.tensors: dict[str, np.ndarray] = {}
        self.entries: dict[str, dict] = {}

    def put(self, name: str, t, desc: str, **info) -> None:
        if name in self.tensors:
            raise ValueError(f"duplicate {name}")
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        a = np.ascontiguousarray(a.astype(np.float32))
        self.tensors[name] = a
        self.entries[name] = {"shape": list(a.shape), "desc": desc, **info}

    def rand(self, name: str, shape, seed: int, scale: float = 1.0, desc: str = "",
             **info) -> torch.Tensor:
        a = detrand(shape, seed, scale)
        self.put(name, a, desc or "input", detrand={"seed": seed, "scale": scale, "offset": 0.0},
                 **info)
        return torch.from_numpy(a.copy()).to(self.dtype)


TEXT_PROMPTS = [
    "a red fox in the snow",
    "",
    "Caf\u00e9 \u2615 \u6771\u4eac\u306e\u591c \U0001f303, it's 3:00am!",
    ("a highly detailed matte painting of an ancient city built into the side of a cliff, "
     "waterfalls, lush vegetation, flying birds, golden hour lighting, volumetric fog, "
     "intricate architecture, towers and bridges, tiny people walking on the streets, "
     "market stalls, colourful banners, trending on artstation, 8k, masterpiece"),
]

PIPE_PROMPT = "a red fox in the snow"
PIPE_STEPS = 3
PIPE_GUIDANCE = 7.5


def vae_test_image() -> torch.Tensor:
    """Smooth procedural RGB pattern in [-1, 1], [1, 3, 128, 128] (float32)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 128, dtype=torch.float64),
                          torch.linspace(0, 1, 128, dtype=torch.float64), indexing="ij")
    r = torch.sin(2 * math.pi * (1.5 * x + 0.25 * y))
    g = torch.cos(2 * math.pi * (2.0 * y - 0.5 * x)) * torch.exp(-((x - 0.5) ** 2) * 2)
    b = 2 * torch.exp(-(((x - 0.3) ** 2) + ((y - 0.6) ** 2)) * 12) - 1
    img = torch.stack([r, g, b]).clamp(-1, 1)[None] * 0.95
    return img.float()


def residual_shapes(unet_config: dict, batch: int, res: int) -> tuple[list[list[int]], list[int]]:
    """Shapes of down_block_additional_residuals (one per skip connection) and the mid residual."""
    ch = unet_config["block_out_channels"]
    lpb = unet_config["layers_per_block"]
    shapes = [[batch, ch[0], res, res]]
    for i, c in enumerate(ch):
        shapes += [[batch, c, res, res]] * lpb
        if i < len(ch) - 1:
            res //= 2
            shapes.append([batch, c, res, res])
    return shapes, [batch, ch[-1], res, res]


def compute_dumps(m: Models, with_vae: bool = True, dtype: torch.dtype = torch.float32) -> Dump:
    """Every reference entry. dtype float64 (models converted by the caller) is only
    used by --check to estimate float32 rounding error; the fixtures are float32."""
    variant = m.variant
    base = VARIANTS[variant]["seed"] * 10  # detrand seeds: distinct per variant and entry
    d = Dump(dtype)
    tok = m.tokenizer
    torch.manual_seed(0)

    with torch.no_grad():
        # ---- text encoder
        for i, prompt in enumerate(TEXT_PROMPTS):
            ids = padded_ids(tok, prompt)
            d.put(f"text.{i}.input_ids", torch.tensor([ids]),
                  "token ids (exact integers stored as float32), padded to 77", prompt=prompt)
            out = m.text(torch.tensor([ids]), output_hidden_states=False).last_hidden_state
            d.put(f"text.{i}.last_hidden_state", out,
                  "CLIPTextModel last_hidden_state (after final_layer_norm)", prompt=prompt)

        # ---- UNet
        cad = m.unet.config.cross_attention_dim
        for i, t in enumerate([999, 500, 1]):
            x = d.rand(f"unet.{i}.sample", [2, 4, 16, 16], base + 10 * i, 2.0, "latents (batch 2)")
            ehs = d.rand(f"unet.{i}.encoder_hidden_states", [2, MAX_LENGTH, cad], base + 10 * i + 1,
                         1.0, "text conditioning (batch 2)")
            ts = torch.tensor([t, t], dtype=torch.float32)
            d.put(f"unet.{i}.timestep", ts, "timestep per row (integers as float32)")
            out = m.unet(x, ts, encoder_hidden_states=ehs).sample
            d.put(f"unet.{i}.out", out, "UNet2DConditionModel(...).sample")
        shapes, mid_shape = residual_shapes(dict(m.unet.config), 2, 16)
        x = d.rand("unet.control.sample", [2, 4, 16, 16], base + 100, 2.0, "latents (batch 2)")
        ehs = d.rand("unet.control.encoder_hidden_states", [2, MAX_LENGTH, cad], base + 101, 1.0,
                     "text conditioning")
        ts = torch.tensor([500, 500], dtype=torch.float32)
        d.put("unet.control.timestep", ts, "timestep per row")
        res = [d.rand(f"unet.control.down_residual.{j}", s, base + 110 + j, 0.5,
                      f"down_block_additional_residuals[{j}]") for j, s in enumerate(shapes)]
        mid = d.rand("unet.control.mid_residual", mid_shape, base + 130, 0.5,
                     "mid_block_additional_residual")
        out = m.unet(x, ts, encoder_hidden_states=ehs, down_block_additional_residuals=res,
                     mid_block_additional_residual=mid).sample
        d.put("unet.control.out", out, "UNet output with ControlNet-style residuals added",
              down_residual_shapes=shapes, mid_residual_shape=mid_shape)

        # ---- VAE
        if with_vae:
            img = vae_test_image().to(dtype)
            d.put("vae.image", img, "input image in [-1, 1], NCHW")
            dist = m.vae.encode(img).latent_dist
            d.put("vae.posterior_mean", dist.mean, "encoder posterior mean (unscaled latents)")
            d.put("vae.posterior_logvar", dist.logvar, "posterior log-variance (clamped to [-30, 20])")
            noise = torch.randn(dist.mean.shape, dtype=torch.float32,
                                generator=torch.Generator().manual_seed(base + 200)).to(dtype)
            d.put("vae.noise", noise, "standard normal noise used for the sample")
            sample = dist.mean + dist.std * noise
            if dtype == torch.float32:
                check = dist.sample(generator=torch.Generator().manual_seed(base + 200))
                assert torch.equal(sample, check), "latent_dist.sample() != mean + std * noise"
            d.put("vae.sample", sample, "mean + exp(0.5 * logvar) * noise")
            z = d.rand("vae.decode.latent", [1, 4, 16, 16], base + 210, 4.0,
                       "unscaled latent, as vae.decode takes it")
            d.put("vae.decode.out", m.vae.decode(z).sample, "decoder output, NCHW, not clamped")

        # ---- schedulers
        sched_dumps(d, variant, base + 300)

        # ---- full pipeline
        pipe = m.pipeline()
        pipe.set_progress_bar_config(disable=True)
        lat = d.rand("pipeline.latents_in", [1, 4, 16, 16], base + 500, 2.0,
                     "initial latents passed as latents= (the pipeline multiplies them by "
                     "init_noise_sigma, 1.0 for DDIM)")
        pe, npe = pipe.encode_prompt(PIPE_PROMPT, torch.device("cpu"), 1, True, negative_prompt="")
        d.put("pipeline.prompt_embeds", pe, "encode_prompt(prompt)", prompt=PIPE_PROMPT)
        d.put("pipeline.negative_prompt_embeds", npe, "encode_prompt(negative '')")
        steps = []

        def cb(p, i, t, kw):
            steps.append((int(t), kw["latents"].clone()))
            return kw

        kwargs = dict(prompt=PIPE_PROMPT, negative_prompt="", num_inference_steps=PIPE_STEPS,
                      guidance_scale=PIPE_GUIDANCE, eta=0.0)
        out_lat = pipe(latents=lat.clone(), output_type="latent", callback_on_step_end=cb,
                       **kwargs).images
        for i, (t, l) in enumerate(steps):
            d.put(f"pipeline.step.{i}.latents", l, f"latents after denoising step {i} (t={t})",
                  timestep=t)
        d.put("pipeline.timesteps", torch.tensor([t for t, _ in steps]), "timesteps used")
        d.put("pipeline.latents_out", out_lat, "final latents (output_type='latent')")
        img = pipe(latents=lat.clone(), output_type="np", **kwargs).images
        d.put("pipeline.image", img, "output_type='np': (vae.decode(latents / scaling_factor) "
              "/ 2 + 0.5).clamp(0, 1), NHWC float32")
        del pipe
    return d


def sched_dumps(d: Dump, variant: str, seed: int) -> None:
    cfg = ddim_config(variant)
    ddim = DDIMScheduler(**cfg)
    d.put("ddim.alphas_cumprod", ddim.alphas_cumprod, "DDIMScheduler.alphas_cumprod (float32)")
    ddim.set_timesteps(4)
    d.put("ddim.timesteps_4", ddim.timesteps, "set_timesteps(4)")
    ddim.set_timesteps(50)
    d.put("ddim.timesteps_50", ddim.timesteps, "set_timesteps(50)")
    shape = [1, 4, 8, 8]
    for k, t in enumerate([981, 501, 1]):
        x = d.rand(f"ddim.step.{t}.x_t", shape, seed + 10 * k, 2.0, "sample x_t")
        mo = d.rand(f"ddim.step.{t}.model_output", shape, seed + 10 * k + 1, 1.0,
                    f"model output ({cfg['prediction_type']})")
        noise = d.rand(f"ddim.step.{t}.variance_noise", shape, seed + 10 * k + 2, 1.0,
                       "variance_noise for eta > 0")
        for eta in (0.0, 0.5):
            o = ddim.step(mo, t, x, eta=eta, variance_noise=noise if eta > 0 else None)
            tag = f"ddim.step.{t}." + ("eta0" if eta == 0 else "eta0p5")
            d.put(f"{tag}.prev_sample", o.prev_sample,
                  f"DDIMScheduler.step(t={t}, eta={eta:g}) after set_timesteps(50)",
                  timestep=t, eta=eta, prev_timestep=t - 1000 // 50)
            d.put(f"{tag}.pred_original_sample", o.pred_original_sample, "predicted x_0")

    for name, cls, extra in (
            ("euler", EulerDiscreteScheduler, {}),
            ("dpmpp2m", DPMSolverMultistepScheduler,
             {"algorithm_type": "dpmsolver++", "solver_order": 2})):
        s = cls.from_config(DDIMScheduler(**cfg).config, **extra)
        s.set_timesteps(10)
        d.put(f"{name}.timesteps", s.timesteps, "set_timesteps(10)")
        d.put(f"{name}.sigmas", s.sigmas, "sigmas after set_timesteps(10) (last is the final sigma)")
        d.put(f"{name}.init_noise_sigma", torch.tensor([float(s.init_noise_sigma)]),
              "init_noise_sigma")
        base = seed + (100 if name == "euler" else 200)
        noise = d.rand(f"{name}.noise", shape, base, 1.0, "initial noise")
        x = noise * s.init_noise_sigma
        for i, t in enumerate(s.timesteps):
            inp = s.scale_model_input(x, t)
            d.put(f"{name}.step.{i}.model_input", inp, "scale_model_input(x, t)", timestep=float(t))
            mo = d.rand(f"{name}.step.{i}.model_output", shape, base + 1 + i, 1.0,
                        f"given model output ({cfg['prediction_type']})")
            x = s.step(mo, t, x).prev_sample
            d.put(f"{name}.step.{i}.prev_sample", x, f"sample after step {i}")


def sched_configs(variant: str) -> dict:
    cfg = ddim_config(variant)
    out = {"ddim": dict(DDIMScheduler(**cfg).config)}
    out["euler"] = dict(EulerDiscreteScheduler.from_config(DDIMScheduler(**cfg).config).config)
    out["dpmpp2m"] = dict(DPMSolverMultistepScheduler.from_config(
        DDIMScheduler(**cfg).config, algorithm_type="dpmsolver++", solver_order=2).config)
    # drop diffusers' bookkeeping keys (e.g. _use_default_values, a list in set order)
    return {n: {k: v for k, v in c.items() if not k.startswith("_")} for n, c in out.items()}


def write_dump(d: Dump, path: Path, variant: str, notes: str) -> None:
    v = VARIANTS[variant]
    meta = {
        "variant": variant,
        "entries": json.dumps(d.entries, ensure_ascii=False, allow_nan=False),
        "configs": json.dumps(finite_json(
            {"unet": v["unet"], "vae": v["vae"], "text": v["text"],
             "schedulers": sched_configs(variant),
             "pipeline": {"prompt": PIPE_PROMPT, "negative_prompt": "",
                          "num_inference_steps": PIPE_STEPS, "guidance_scale": PIPE_GUIDANCE,
                          "eta": 0.0}}), default=_json_default, allow_nan=False),
        "generator": GENERATOR,
        "versions": json.dumps(VERSIONS),
        "notes": notes,
    }
    path.write_bytes(safetensors.numpy.save(d.tensors, metadata=meta))
    canonical_safetensors(path)


def finite_json(o):
    """JSON-safe copy: non-finite floats (e.g. DPMSolver's lambda_min_clipped = -inf)
    become the strings "inf" / "-inf" / "nan", since strict JSON has no such numbers."""
    if isinstance(o, float) and not math.isfinite(o):
        return "nan" if math.isnan(o) else ("inf" if o > 0 else "-inf")
    if isinstance(o, dict):
        return {k: finite_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_json(v) for v in o]
    return o


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (as the Swift header parser does)."""
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def _json_default(o):
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def strict_safetensors_header(blob: bytes) -> dict:
    """A safetensors file's header by strict_json, and every JSON-looking metadata value
    in it (ValueError on NaN / Infinity)."""
    header = strict_json(blob[8:8 + int.from_bytes(blob[:8], "little")].decode("utf-8"))
    for v in header.get("__metadata__", {}).values():
        if v[:1] in "[{":
            strict_json(v)
    return header


def strict_json_failures(folder: Path) -> list[str]:
    """'<file name>: <error>' for every .json file and safetensors header below folder
    that strict_json refuses."""
    bad = []
    for p in sorted(folder.rglob("*")):
        try:
            if p.suffix == ".json":
                strict_json(p.read_text(encoding="utf-8"))
            elif p.suffix == ".safetensors":
                strict_safetensors_header(p.read_bytes())
        except ValueError as e:
            bad.append(f"{p.name}: {e}")
    return bad


# --------------------------------------------------------------------------- shared helpers
# (--check, generate and the command line of every fixture script in this folder)

class Expect:
    """The --check collector: expect(cond, msg) prints `ok` / `FAIL` with the message and
    remembers every failure; verdict() prints the outcome and returns the exit status."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, cond: bool, msg: str) -> None:
        print(("  ok    " if cond else "  FAIL  ") + msg)
        if not cond:
            self.problems.append(msg)

    def size(self, size: int, limit: int, what: str = "total") -> None:
        self(size <= limit, f"{what} {size:,d} bytes <= {limit:,d}")

    def strict_json(self, folder: Path,
                    what: str = "strict JSON in every .json and safetensors header") -> None:
        bad = strict_json_failures(folder)
        self(not bad, f"{what} {bad or ''}")

    def verdict(self) -> int:
        print(f"FAILED: {len(self.problems)} problem(s)" if self.problems else "all checks passed")
        return 1 if self.problems else 0


def worst_rel_err(stored: dict, fresh: dict) -> tuple[float, str]:
    """(largest rel_err(stored[k], fresh[k]) over the names in both, its name); (0.0, "")
    when every one is 0."""
    worst, name = 0.0, ""
    for k, v in fresh.items():
        if k in stored:
            e = rel_err(stored[k], v)
            if e > worst:
                worst, name = e, k
    return worst, name


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """torch's default dtype set to dtype inside (transformers builds CLIP's causal mask in
    it), then back to what it was."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(prev)


def recompute_float64(compute, note_chars: int):
    """compute() with float64 as the default dtype; a failure is printed as a note (its
    message cut to note_chars characters) and gives None."""
    try:
        with default_dtype(torch.float64):
            return compute()
    except Exception as e:  # noqa: BLE001 - reported
        print(f"  note  float64 recomputation failed: {type(e).__name__}: {str(e)[:note_chars]}")
        return None


def worst_by_group(stored: dict, fresh: dict, names, deep: tuple[str, ...]) -> dict[str, tuple[float, str]]:
    """For float64_deviation: per group of names (the first two dot-separated parts of a name
    starting with one of deep, else the first part), in first-seen order, the largest
    rel_err(stored[k], fresh[k]) (the last one on ties) and its name."""
    groups: dict[str, tuple[float, str]] = {}
    for k in names:
        g = ".".join(k.split(".")[:2]) if k.startswith(deep) else k.split(".")[0]
        e = rel_err(stored[k], fresh[k])
        if e >= groups.get(g, (-1.0, ""))[0]:
            groups[g] = (e, k)
    return groups


def read_safetensors(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """(metadata, tensors as numpy, dtype name per tensor) of a safetensors file."""
    with safetensors.safe_open(str(path), "numpy") as f:
        return (f.metadata(), {k: f.get_tensor(k) for k in f.keys()},
                {k: f.get_slice(k).get_dtype() for k in f.keys()})


def file_dtypes(path: Path) -> set[str]:
    """The dtype names of a safetensors file's tensors."""
    with safetensors.safe_open(str(path), "pt") as f:
        return {f.get_slice(k).get_dtype() for k in f.keys()}


def fresh_output(out: Path) -> None:
    """generate's start: deterministic algorithms, one thread, an empty out folder."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def parse_args(doc: str, default_out: Path, check_help: str | None =
               "only re-verify the committed files", flags: dict[str, str] | None = None):
    """The fixture scripts' command line (--out, --check, any further store_true flags:
    name -> help); sets one torch thread."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--check", action="store_true", help=check_help)
    for flag, text in (flags or {}).items():
        ap.add_argument(flag, action="store_true", help=text)
    args = ap.parse_args()
    torch.set_num_threads(1)
    return args


# --------------------------------------------------------------------------- checks

def compare_models(a: Models, b: Models) -> float:
    """Max |difference| over every parameter of unet, vae and text encoder."""
    worst = 0.0
    for name in ("unet", "vae", "text"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        if set(sa) != set(sb):
            raise AssertionError(f"{name}: key sets differ: {set(sa) ^ set(sb)}")
        for k in sa:
            if sa[k].shape != sb[k].shape:
                raise AssertionError(f"{name}.{k}: {sa[k].shape} vs {sb[k].shape}")
            if sa[k].is_floating_point():
                worst = max(worst, float((sa[k].double() - sb[k].double()).abs().max()))
    return worst


def quick_outputs(m: Models) -> dict[str, torch.Tensor]:
    """A few forward passes used to confirm two model sets behave identically."""
    with torch.no_grad():
        ids = torch.tensor([padded_ids(m.tokenizer, "a red fox in the snow")])
        cad = m.unet.config.cross_attention_dim
        x = torch.from_numpy(detrand([2, 4, 16, 16], 77, 2.0))
        ehs = torch.from_numpy(detrand([2, MAX_LENGTH, cad], 78))
        img = vae_test_image()
        return {
            "text": m.text(ids).last_hidden_state,
            "unet": m.unet(x, torch.tensor([500.0, 500.0]), encoder_hidden_states=ehs).sample,
            "vae_mean": m.vae.encode(img).latent_dist.mean,
            "vae_dec": m.vae.decode(x[:1] * 4).sample,
        }


def diffusers_single_file(variant: str, ckpt: Path, folder: Path, tmp: Path):
    """diffusers' own from_single_file with config= the (unpacked) folder; None if it fails."""
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(ckpt), config=str(folder), local_files_only=True, torch_dtype=torch.float32,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return Models(variant, pipe.unet.float(), pipe.vae.float(), pipe.text_encoder.float(),
                  pipe.tokenizer), None


def check(out: Path) -> int:
    expect = Expect()
    # ---- files and sizes
    expect.size(report_sizes(out), SIZE_LIMIT)
    # ---- strict JSON: every .json file, every safetensors header and its JSON metadata values
    expect.strict_json(out, "strict JSON (no NaN/Infinity) in every .json and safetensors header")

    # ---- tokenizer
    print("tokenizer")
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        toks = {}
        for variant in VARIANTS:
            built = build_tokenizer(tmp / f"built_{variant}", VARIANTS[variant]["pad_token"])
            folder = unpacked_copy(out / variant, tmp / variant)
            for name in ("vocab.json", "merges.txt"):
                a = json.loads((folder / "tokenizer" / name).read_text()) if name.endswith(
                    "json") else (folder / "tokenizer" / name).read_text()
                b = json.loads((tmp / f"built_{variant}" / name).read_text()) if name.endswith(
                    "json") else (tmp / f"built_{variant}" / name).read_text()
                expect(a == b, f"{variant}/tokenizer/{name}.gz matches the BPE file's vocabulary")
            loaded = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
            expect(loaded.pad_token == VARIANTS[variant]["pad_token"]
                   and loaded.model_max_length == MAX_LENGTH and loaded.fix_text is None,
                   f"{variant} tokenizer: pad {loaded.pad_token!r}, max length "
                   f"{loaded.model_max_length}, no ftfy")
            toks[variant] = loaded
        doc = json.loads((out / "prompts.json").read_text(encoding="utf-8"))
        fresh = prompts_document(toks["sd1"], toks["sd2"])
        expect(len(doc["prompts"]) >= 200, f"prompts.json has {len(doc['prompts'])} prompts")
        bad = [e["text"] for e, f in zip(doc["prompts"], fresh["prompts"]) if e != f]
        expect(not bad and len(doc["prompts"]) == len(fresh["prompts"]),
               f"prompts.json ids re-tokenize identically ({len(bad)} differ)")

        # ---- models
        for variant in VARIANTS:
            print(variant)
            folder = tmp / variant
            m = load_folder(variant, folder)
            sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
            want = ddim_config(variant)
            expect(sched.get("_class_name") == "DDIMScheduler"
                   and all(sched.get(k) == want[k] for k in want),
                   f"{variant}: scheduler_config.json is DDIM with {want['prediction_type']}")
            m16 = load_folder(variant, folder, fp16_unet=True)
            expect(compare_models(m, m16) == 0.0, f"{variant}: fp16 UNet variant == fp32 UNet")
            dtypes = file_dtypes(out / variant / "text_encoder" / "model.safetensors")
            expect(dtypes == {"F16"}, f"{variant}: text_encoder/model.safetensors is F16 ({dtypes})")
            sf = load_single_file(variant, out / f"{variant}.safetensors", m)
            diff = compare_models(m, sf)
            qa, qb = quick_outputs(m), quick_outputs(sf)
            same = all(torch.equal(qa[k], qb[k]) for k in qa)
            expect(diff == 0.0 and same,
                   f"{variant}: round trip {variant}.safetensors -> ldm_keys.from_ldm: max |weight "
                   f"diff| {diff:g}, text/unet/vae outputs bit-identical: {same}")
            ours = single_file_dict(m if VARIANTS[variant]["text_kind"] == "openai" else
                                    _with_openclip_extras(m, out / f"{variant}.safetensors"))
            with safetensors.safe_open(str(out / f"{variant}.safetensors"), "pt") as f:
                keys = set(f.keys())
                dt = {f.get_slice(k).get_dtype() for k in keys}
            expect(keys == set(ours) and dt == {"F16"},
                   f"{variant}: single-file key set == ldm_keys.to_ldm(folder weights) "
                   f"({len(keys)} keys, dtypes {dt})")
            dm, err = diffusers_single_file(variant, out / f"{variant}.safetensors", folder, tmp)
            if dm is None:
                print(f"  note  {variant}: diffusers from_single_file(config=folder) failed: {err}")
            else:
                diff = compare_models(m, dm)
                qd = quick_outputs(dm)
                same = all(torch.equal(qa[k], qd[k]) for k in qa)
                expect(diff == 0.0 and same,
                       f"{variant}: diffusers from_single_file(config=folder) agrees: max |weight "
                       f"diff| {diff:g}, outputs bit-identical: {same}")

            # ---- dumps
            path = out / f"{variant}_reference.safetensors"
            fresh = compute_dumps(m, with_vae=(variant == "sd1"))
            meta, stored, dtypes = read_safetensors(path)
            entries = json.loads(meta["entries"])
            expect(set(dtypes.values()) == {"F32"}, f"{variant}_reference: all tensors F32")
            expect(set(entries) == set(stored) == set(fresh.tensors),
                   f"{variant}_reference: entries == stored tensors == recomputed "
                   f"({len(stored)} tensors)")
            float64_deviation(m, stored)
            expect.problems += [f"{k}: shape differs from its entry" for k in fresh.tensors
                                if k in stored and list(stored[k].shape) != entries.get(k, {}).get("shape")]
            worst, worst_name = worst_rel_err(stored, fresh.tensors)
            expect(worst <= REL_TOL, f"{variant}_reference: recomputed from the committed files, "
                   f"worst max|diff|/max|ref| {worst:.3g} ({worst_name or 'all identical'})")
    return expect.verdict()


def float64_deviation(m: Models, stored: dict[str, np.ndarray]) -> None:
    """Prints, per group of entries, how far the float32 references are from the same
    computation in float64 (models and inputs widened): the size of PyTorch's own
    float32 rounding error, i.e. the floor under any float32 reimplementation's
    tolerance. Informational only."""
    m64 = Models(m.variant, copy.deepcopy(m.unet).double(), copy.deepcopy(m.vae).double(),
                 copy.deepcopy(m.text).double(), m.tokenizer)
    with default_dtype(torch.float64):
        d64 = compute_dumps(m64, with_vae="vae.image" in stored, dtype=torch.float64)
    names = [k for k in stored if k in d64.tensors and not d64.entries[k].get("detrand")
             and not k.endswith(("input_ids", "timestep"))]
    groups = worst_by_group(stored, d64.tensors, names, ("unet", "text", "ddim"))
    print("  info  float32 reference vs float64 recomputation, max|diff|/max|ref| per group:")
    for g, (e, k) in groups.items():
        print(f"          {g:24s} {e:9.2e}  ({k})")


def _with_openclip_extras(m: Models, ckpt_path: Path) -> Models:
    """For the key-set check: the folder's SD2 text encoder lacks the extra OpenCLIP layer,
    so take that layer (and projection, logit scale) from the file itself."""
    v = VARIANTS[m.variant]
    ckpt = safetensors.torch.load_file(str(ckpt_path))
    deep = ldm_keys.sd2_text_from_ldm({k: t.float() for k, t in ckpt.items()}, v["openclip_layers"])
    p = ldm_keys.SD2_TEXT_PREFIX
    extra = {"text_projection": ckpt[p + "text_projection"].float(),
             "logit_scale": ckpt[p + "logit_scale"].float()}
    return Models(m.variant, m.unet, m.vae, m.text, m.tokenizer, extra, deep)


def report_sizes(out: Path) -> int:
    files = sorted(p for p in out.rglob("*") if p.is_file()) + [BPE_FILE]
    total = 0
    for p in files:
        size = p.stat().st_size
        total += size
        print(f"{size:>10,d}  {p.relative_to(ROOT)}")
    print(f"{total:>10,d}  total ({total / 1e6:.2f} MB, {total / 2**20:.2f} MiB)")
    return total


# --------------------------------------------------------------------------- main

NOTES = {
    "sd1": "VAE entries (vae.*) are here; sd2 has its own VAE weights, checked through "
           "pipeline.image only.",
    "sd2": "No vae.* entries (see sd1_reference); sd2's VAE is exercised by pipeline.image.",
}


def generate(out: Path) -> None:
    fresh_output(out)
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        toks = {v: build_tokenizer(tmp / v, VARIANTS[v]["pad_token"]) for v in VARIANTS}
        write_prompts(out / "prompts.json", prompts_document(toks["sd1"], toks["sd2"]))
        for variant in VARIANTS:
            m = build_models(variant, toks[variant])
            save_folder(m, out / variant)
            save_single_file(m, out / f"{variant}.safetensors")
            d = compute_dumps(m, with_vae=(variant == "sd1"))
            write_dump(d, out / f"{variant}_reference.safetensors", variant, NOTES[variant])
            print(f"wrote {variant}: {len(d.tensors)} reference tensors")


def main() -> int:
    args = parse_args(__doc__, DEFAULT_OUT)
    if not args.check:
        generate(args.out)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
