#!/usr/bin/env python3
"""PILOT reference: inpainting by latent optimisation, in PyTorch float64.

    python pilot_reference.py            # rewrite Tests/Fixtures/pilot/, then run the checks
    python pilot_reference.py --check    # recompute everything and compare with the committed files
    python pilot_reference.py --rewrite  # also rewrite files equivalent to the recomputation
                                         # (otherwise kept: see generate)

Written from the paper and /work/shared/PILOT.md (the project's formula-level
spec; points where the project deliberately differs from the authors' code are
marked [ours] there), with the authors' public implementation (Lingzhi-Pan/PILOT,
pipeline/pipeline_pilot.py, models/attn_processor.py) read only to settle
details. It runs on the tiny random-weight SD1-style fixture model
(Tests/Fixtures/sd/sd1/, latent 16x16 <-> image 128x128), entirely in float64
(UNet, VAE, text encoder, inputs, timestep embedding), and stores float32 dumps
that the Swift port is tested against. See README.md ("PILOT reference").

The configuration `adapters` adds the adapter fixtures (Tests/Fixtures/adapters/):
a kohya LoRA merged into the UNet and text encoder, a ControlNet (gradients flow
through it in the gradient pass) and an IP-Adapter (decoupled attention, to_out
once, scale honoured; SBC and the loss on the text attention only), with gamma 0.8.

Two more runs use other fixture models: `vpred_sd2` (the tiny v-prediction SD 2 model,
Tests/Fixtures/sd/sd2) and `sdxl` (the tiny SDXL model, Tests/Fixtures/sdxl/sdxl: two
text encoders, pooled embeddings and time ids as added conditioning in every UNet call),
both gamma 0.5 with their own inputs stored as input.*.
"""

from __future__ import annotations

import copy
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
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_sd_fixtures as sdfx  # noqa: E402  (pinned-environment setup, tokenizer, helpers)
import PIL  # noqa: E402
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor  # noqa: E402
from transformers import (CLIPImageProcessor, CLIPTextModel, CLIPTextModelWithProjection,  # noqa: E402
                          CLIPTokenizer, CLIPVisionModelWithProjection)

ROOT = HERE.parents[1]
MODEL_FOLDER = ROOT / "Tests" / "Fixtures" / "sd" / "sd1"
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "pilot"
SIZE_LIMIT = 1_700_000  # bytes, the whole Tests/Fixtures/pilot/ folder (vpred_sd2 adds 253 kB, sdxl 266 kB)
CHECK_TOL = 1e-6        # --check: max|stored - recomputed| / max|stored| per tensor

BOS, EOS = 49406, 49407
PROMPT = "a red fox in the snow"
NEGATIVE = ""
SCALING_FACTOR = 0.18215
IMAGE_SIZE = 128
LATENT_SIZE = 16

# Parameters of the fixtures: the reference's text configuration (100 steps, tau 10,
# 10 SGD steps) scaled down to 20 steps.
PARAMS = {
    "steps": 20,
    "interval": 5,            # tau
    "inner_steps": 3,         # K_opt
    "lr": 0.025,
    "lr_warmup": 0.007,
    "coef": 150.0,
    "coef_divisor": 1499.0,   # the reference's `std`
    "momentum": 0.7,
    "guidance_scale": 7.5,
    "eta": 0.0,
    "lr_schedule": "exp: lr * 1.002**(1000 - t); lr_warmup at the first timestep",
    "lambda_schedule": "0.1*C for t < 300, else 0.1*C + 0.9*C*(t - 300)/699; "
                       "C = coef * (#keep latent cells) / 1499",
}

CONFIGS = {
    "gamma1": {"gamma": 1.0, "sbc": True, "lambda_zero": False,
               "desc": "gamma 1: optimise at every tau-th step, never blend; SBC on"},
    "gamma05": {"gamma": 0.5, "sbc": True, "lambda_zero": False,
                "desc": "gamma 0.5: optimise while t >= 500, blend (stored noise) while t < 500; SBC on"},
    "sbc_off": {"gamma": 1.0, "sbc": False, "lambda_zero": False,
                "desc": "gamma 1, SBC off everywhere (CFG and gradient passes); the semantic "
                        "centralisation loss still uses the (unmasked) probabilities and F_s"},
    "lambda0": {"gamma": 1.0, "sbc": True, "lambda_zero": True,
                "desc": "gamma 1, lambda(t) = 0: L = L_bg only (L_sc still computed and dumped)"},
}
# The configuration with adapters (Tests/Fixtures/adapters/): gamma 0.8 so that the last
# four steps (t = 151 ... 1 < 200) blend with the stored blend noises; the optimisation
# steps are gamma1's (t = 201 >= 200 still optimises). Everything else as gamma1.
ADAPTER_FOLDER = ROOT / "Tests" / "Fixtures" / "adapters"
ADAPTER_CONFIG = {"gamma": 0.8, "sbc": True, "lambda_zero": False,
                  "desc": "gamma 0.8 with LoRA (kohya, merged), ControlNet and IP-Adapter: "
                          "optimise at i = 0, 5, 10, 15 (t >= 200), blend (stored noise) at "
                          "i = 16-19 (t < 200); SBC on (text attention only)"}
ADAPTERS = {
    "lora": {"file": "lora_kohya.safetensors", "scale": 1.0},
    "controlnet": {"folder": "controlnet", "scale": 1.0, "image": "cond_image[0:1]",
                   "guidance_start": 0.0, "guidance_end": 1.0},
    "ip_adapter": {"file": "ip_adapter.safetensors", "image_encoder": "image_encoder",
                   "feature_extractor": "feature_extractor", "scale": 0.6,
                   "image": "ip_source_image"},
}
ADAPTER_SIZE_LIMIT = 300_000  # bytes, adapters.safetensors

RECORD_OPT_STEPS = 2  # per-iteration losses are dumped for the first two optimisation steps

X_T_SEED = 4242
BLEND_NOISE_SEED = 4300  # + step index

VERSIONS = sdfx.VERSIONS

# --------------------------------------------------------------------------- models


class Float64Timesteps(torch.nn.Module):
    """diffusers' `Timesteps` (sinusoidal embedding) with the angles formed in float64.

    diffusers builds the frequencies and t * f in float32 whatever the model dtype,
    which would leave ~6e-5 absolute error in a float64 "truth"; the Swift port forms
    the angles in Double too. The output is cast to `out_dtype`."""

    def __init__(self, tp: torch.nn.Module, out_dtype: torch.dtype):
        super().__init__()
        self.num_channels = tp.num_channels
        self.flip_sin_to_cos = tp.flip_sin_to_cos
        self.shift = tp.downscale_freq_shift
        self.scale = getattr(tp, "scale", 1)
        self.out_dtype = out_dtype

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float64) / (half - self.shift)
        emb = self.scale * timesteps.to(torch.float64)[:, None] * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
        if self.flip_sin_to_cos:
            emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
        if self.num_channels % 2 == 1:
            emb = F.pad(emb, (0, 1))
        return emb.to(self.out_dtype)


class Models:
    def __init__(self, unet, vae, text, tokenizer, dtype):
        self.unet, self.vae, self.text, self.tokenizer, self.dtype = unet, vae, text, tokenizer, dtype


def load_models(tmp: Path, dtype: torch.dtype, source: Path = MODEL_FOLDER) -> Models:
    folder = sdfx.unpacked_copy(source, tmp / f"{source.name}_{str(dtype).split('.')[-1]}")
    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), torch_dtype=torch.float32,
                                                local_files_only=True)
    vae = AutoencoderKL.from_pretrained(str(folder / "vae"), torch_dtype=torch.float32,
                                        local_files_only=True)
    text = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), torch_dtype=torch.float32,
                                         local_files_only=True)
    tok = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
    assert tok.fix_text is None, "ftfy is installed: the fixtures assume it is not"
    unet, vae, text = unet.to(dtype).eval(), vae.to(dtype).eval(), text.to(dtype).eval()
    for p in list(unet.parameters()) + list(vae.parameters()) + list(text.parameters()):
        p.requires_grad_(False)
    # Angles in float64 in both runs (the float32 run rounds the embedding to float32,
    # as the Swift port does).
    unet.time_proj = Float64Timesteps(unet.time_proj, dtype)
    return Models(unet, vae, text, tok, dtype)


def ddim_table(source: Path = MODEL_FOLDER) -> tuple[torch.Tensor, list[int]]:
    """diffusers' float32 alphas_cumprod (the Swift scheduler builds the same float32
    table) and the DDIM timesteps for PARAMS['steps']."""
    cfg = json.loads((source / "scheduler" / "scheduler_config.json").read_text())
    sched = DDIMScheduler.from_config(cfg)
    sched.set_timesteps(PARAMS["steps"])
    return sched.alphas_cumprod.clone(), [int(t) for t in sched.timesteps]


# --------------------------------------------------------------------------- attention control


class PilotControl:
    """State shared by the cross-attention processors of one UNet.

    masks: query count N -> F_s flattened row-major ([N], 1 = hole); sbc: apply the
    post-softmax multiplicative mask; capture: keep each layer's probabilities
    (taken before the mask) for the semantic centralisation loss."""

    def __init__(self):
        self.masks: dict[int, torch.Tensor] = {}
        self.sbc = False
        self.capture = False
        self.captured: dict[str, torch.Tensor] = {}
        self.queries: dict[str, int] = {}
        self.order: list[str] = []
        self.ip_tokens: torch.Tensor | None = None  # IP-Adapter image tokens of this pass
        self.ip_scale = 0.0

    def sbc_mask(self, n: int, keys: int, dtype) -> torch.Tensor | None:
        if not self.sbc:
            return None
        f = self.masks[n].to(dtype)
        m = f[:, None].expand(n, keys).clone()
        m[:, 0] = 1  # BOS column always kept
        return m


class PilotCrossAttnProcessor:
    """Cross-attention (attn2) with probabilities exposed and SBC:
    A = softmax(Q K^T / sqrt(d)) per head; out = to_out((A * M) V), no renormalisation."""

    def __init__(self, name: str, control: PilotControl):
        self.name, self.control = name, control

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):
        _, out = self.text_branch(attn, hidden_states, encoder_hidden_states, attention_mask)
        return attn.to_out[1](attn.to_out[0](out))

    def text_branch(self, attn, hidden_states, encoder_hidden_states, attention_mask):
        """(Q split into heads, (A * M) V merged back) — everything but to_out."""
        assert encoder_hidden_states is not None and attention_mask is None
        assert hidden_states.ndim == 3 and attn.spatial_norm is None and attn.group_norm is None
        assert not attn.norm_cross and not attn.residual_connection
        assert attn.rescale_output_factor == 1.0
        b, n, _ = hidden_states.shape
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))          # [B*heads, N, d]
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))  # [B*heads, L, d]
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = (torch.bmm(q, k.transpose(1, 2)) * attn.scale).softmax(dim=-1)
        keys = probs.shape[-1]
        c = self.control
        c.queries[self.name] = n
        if self.name not in c.order:
            c.order.append(self.name)
        if c.capture:
            c.captured[self.name] = probs.view(b, attn.heads, n, keys)
        m = c.sbc_mask(n, keys, probs.dtype)
        if m is not None:
            probs = probs * m
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return q, out


class PilotIPCrossAttnProcessor(PilotCrossAttnProcessor):
    """Cross-attention with an IP-Adapter image branch (decoupled attention):
    out = to_out((A_text * M) V_text + s * softmax(Q K_ip^T / sqrt(d)) V_ip), to_out applied
    ONCE and the scale s honoured ([ours]; the authors apply to_out twice and ignore s).
    SBC masks only the text probabilities; the captured probabilities (for L_sc) are the
    text ones, before SBC. Image tokens and scale come from the control
    (control.ip_tokens [B, tokens, cross_dim], batch as the hidden states; None: text only)."""

    def __init__(self, name: str, control: PilotControl, k_ip: torch.Tensor, v_ip: torch.Tensor):
        super().__init__(name, control)
        self.k_ip, self.v_ip = k_ip, v_ip

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):
        q, out = self.text_branch(attn, hidden_states, encoder_hidden_states, attention_mask)
        tokens = self.control.ip_tokens
        if tokens is not None:
            assert tokens.shape[0] == hidden_states.shape[0]
            k = attn.head_to_batch_dim(F.linear(tokens, self.k_ip))  # [B*heads, tokens, d]
            v = attn.head_to_batch_dim(F.linear(tokens, self.v_ip))
            probs = (torch.bmm(q, k.transpose(1, 2)) * attn.scale).softmax(dim=-1)  # no SBC
            out = out + self.control.ip_scale * attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


def install_control(unet: UNet2DConditionModel,
                    ip_weights: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
                    ) -> PilotControl:
    """Our processors on every attention layer. ip_weights: cross-attention module path ->
    (to_k_ip, to_v_ip) weights; those layers get the IP-Adapter processor."""
    control = PilotControl()
    procs = {}
    for name in unet.attn_processors:  # "<module path>.processor"
        path = name[: -len(".processor")]
        if path.endswith("attn2") and ip_weights is not None:
            procs[name] = PilotIPCrossAttnProcessor(path, control, *ip_weights[path])
        elif path.endswith("attn2"):
            procs[name] = PilotCrossAttnProcessor(path, control)
        else:
            procs[name] = AttnProcessor()  # self-attention: plain, never masked
    unet.set_attn_processor(procs)
    return control


# --------------------------------------------------------------------------- inputs


def procedural_image() -> torch.Tensor:
    """Smooth gradients plus a soft-edged disc, RGB in [-0.95, 0.95], [1, 3, 128, 128],
    rounded to float32 (the stored values are exactly the ones used)."""
    n = IMAGE_SIZE
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    y, x = torch.meshgrid(c, c, indexing="ij")
    r = 0.9 * (2 * x - 1) * (1 - 0.3 * y)
    g = 0.8 * torch.cos(math.pi * (x + 1.5 * y))
    b = 0.7 * (1 - 2 * y) + 0.2 * torch.sin(6 * math.pi * x)
    d = torch.sqrt((x - 0.62) ** 2 + (y - 0.35) ** 2)
    disc = torch.sigmoid((0.18 - d) * 60)  # soft edge, radius 0.18
    img = torch.stack([r, g, b]) * (1 - disc) + torch.tensor([0.9, -0.6, 0.1],
                                                            dtype=torch.float64)[:, None, None] * disc
    return (img.clamp(-1, 1) * 0.95)[None].float().double()


def procedural_mask() -> torch.Tensor:
    """User-convention pixel mask (1 = white = inpaint), [1, 1, 128, 128]: an irregular
    blob plus a thin horizontal bar that touches the right border."""
    n = IMAGE_SIZE
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    y, x = torch.meshgrid(c, c, indexing="ij")
    dy, dx = y - 0.42, x - 0.40
    theta = torch.atan2(dy, dx)
    radius = 0.27 + 0.06 * torch.sin(3 * theta) + 0.04 * torch.cos(5 * theta + 0.7)
    blob = torch.sqrt(dy ** 2 + dx ** 2) < radius
    bar = torch.zeros(n, n, dtype=torch.bool)
    bar[100:112, 88:] = True  # 12 pixels tall, touching the right border
    return (blob | bar).double()[None, None]


def latent_keep_mask(pixel_mask: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """K (1 = keep) by nearest: latent cell (i, j) takes pixel (8i, 8j) of 1 - mask."""
    return (1 - pixel_mask[:, :, ::factor, ::factor]).contiguous()


def attention_masks(K: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """F_s for the latent size and its /2, /4, ... (levels of them): bilinear resize of
    1 - K (align_corners False, no antialias), then every value below 1 set to 0."""
    h, w = K.shape[-2:]
    out = []
    for lvl in range(levels):
        size = (h >> lvl, w >> lvl)
        f = F.interpolate((1 - K).to(torch.float64), size=size, mode="bilinear",
                          align_corners=False)
        f = torch.where(f < 1, torch.zeros_like(f), f)
        out.append(f)
    return out


def word_token_indices(ids: list[int]) -> list[int]:
    return [i for i, t in enumerate(ids) if t not in (BOS, EOS)]


def gaussian(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float32).double()


class Inputs:
    # SDXL's added conditioning (make_sdxl_inputs); None for the SD 1/2 models
    pooled_embeds: torch.Tensor | None = None           # [1, P] positive pooled text embeds
    negative_pooled_embeds: torch.Tensor | None = None  # [1, P] (zeros: empty negative prompt)
    time_ids: torch.Tensor | None = None                # [1, 6], both CFG halves
    gradient_pooled_embeds: torch.Tensor | None = None  # override for the gradient pass (probe only)


def added_conditioning(inp: Inputs, dt: torch.dtype, cfg: bool) -> dict:
    """The UNet's extra keyword arguments for SDXL's added conditioning: {} for models
    without it; the CFG pass (cfg, batch 2 [uncond, cond]) gets [negative pooled, pooled],
    the gradient pass (batch 1, conditional) the positive pooled; time ids on every row."""
    if inp.pooled_embeds is None:
        return {}
    if cfg:
        text = torch.cat([inp.negative_pooled_embeds, inp.pooled_embeds])
    else:
        text = (inp.pooled_embeds if inp.gradient_pooled_embeds is None
                else inp.gradient_pooled_embeds)
    ids = inp.time_ids.repeat(text.shape[0], 1)
    return {"added_cond_kwargs": {"text_embeds": text.to(dt), "time_ids": ids.to(dt)}}


def make_inputs(m: Models, timesteps: list[int], scaling_factor: float = SCALING_FACTOR,
                text: bool = True) -> Inputs:
    """Everything the configurations share, in the models' dtype (float64 values that
    are float32-exact where the input is stored: image, masks, noises). text False:
    leave the prompt embeddings to the caller (SDXL: make_sdxl_inputs)."""
    dt = m.dtype
    inp = Inputs()
    inp.image = procedural_image()
    inp.pixel_mask = procedural_mask()
    inp.K = latent_keep_mask(inp.pixel_mask)
    inp.F = attention_masks(inp.K, 3)  # 16, 8, 4
    inp.prompt_ids = sdfx.padded_ids(m.tokenizer, PROMPT)
    inp.negative_ids = sdfx.padded_ids(m.tokenizer, NEGATIVE)
    inp.tokens = word_token_indices(inp.prompt_ids)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dt)  # transformers builds CLIP's causal mask in it
    try:
        with torch.no_grad():
            if text:
                inp.prompt_embeds = m.text(torch.tensor([inp.prompt_ids])).last_hidden_state
                inp.negative_embeds = m.text(torch.tensor([inp.negative_ids])).last_hidden_state
            dist = m.vae.encode(inp.image.to(dt)).latent_dist
            inp.posterior_mean = dist.mean
    finally:
        torch.set_default_dtype(prev)
    # [ours] posterior MEAN (the reference samples the posterior)
    inp.z_src = scaling_factor * inp.posterior_mean
    inp.x_T = gaussian([1, 4, LATENT_SIZE, LATENT_SIZE], X_T_SEED)
    # one stored noise per step that blends under gamma = 0.5 (t < 500)
    inp.blend_noise = {i: gaussian([1, 4, LATENT_SIZE, LATENT_SIZE], BLEND_NOISE_SEED + i)
                       for i, t in enumerate(timesteps) if t < 1000 * (1 - 0.5)}
    return inp


# --------------------------------------------------------------------------- the algorithm


def lambda_t(C: float, t: int) -> float:
    return 0.1 * C if t < 300 else 0.1 * C + 0.9 * C * (t - 300) / 699


def eta_t(i: int, t: int) -> float:
    return PARAMS["lr_warmup"] if i == 0 else PARAMS["lr"] * 1.002 ** (1000 - t)


def layer_terms(A: torch.Tensor, f: torch.Tensor, tokens: list[int]):
    """(L_l, out_l, in_l) for probabilities A [1, heads, N, L] (before SBC) and F_s [N]:
    out = sum_{heads, p in bg, k in T} A / (heads * #bg), in likewise over the hole,
    L_l = out - in. A layer whose F_s is all 0 or all 1 contributes 0 (out = in = 0)."""
    if bool((f == 0).all()) or bool((f == 1).all()):
        z = torch.zeros((), dtype=A.dtype)
        return z, z, z
    heads = A.shape[1]
    at = A[0][:, :, tokens].sum(dim=-1)  # [heads, N]
    f = f.to(A.dtype)
    out = (at * (1 - f)).sum() / (heads * (1 - f).sum())
    inn = (at * f).sum() / (heads * f.sum())
    return out - inn, out, inn


class Run:
    """One PILOT run; `dumps` collects the float tensors, `log` the schedule."""

    def __init__(self):
        self.dumps: dict[str, torch.Tensor] = {}
        self.entries: dict[str, dict] = {}
        self.opt_steps: list[dict] = []
        self.probe: dict[int, dict[str, torch.Tensor]] = {}

    def put(self, name: str, t, desc: str, **info) -> None:
        assert name not in self.dumps, name
        t = torch.as_tensor(t).detach().to(torch.float64)
        if t.ndim == 0:
            t = t.reshape(1)
        self.dumps[name] = t.clone()
        self.entries[name] = {"shape": list(t.shape), "desc": desc, **info}


def pilot(m: Models, control: PilotControl, inp: Inputs, alphas: torch.Tensor,
          timesteps: list[int], loss_layers: list[str], gamma: float, sbc: bool,
          lambda_zero: bool, K: torch.Tensor | None = None, record: bool = True,
          adapters: "AdapterSetup | None" = None, prediction: str = "epsilon") -> Run:
    """The whole sampling loop. K (default inp.K) may be replaced to exercise degenerate
    masks; F_s is then recomputed from it. adapters: the `adapters` configuration (its
    UNet must be m.unet and its control `control`): prompt embeddings from its (LoRA) text
    encoder, ControlNet residuals and IP-Adapter tokens in the gradient and CFG passes.
    prediction: what the UNet predicts, "epsilon" or "v_prediction" (v = sqrt(a) eps -
    sqrt(1-a) x0); both x0 in L_bg and the DDIM step convert the output accordingly."""
    assert prediction in ("epsilon", "v_prediction"), prediction
    dt = m.dtype
    unet = m.unet
    K = (inp.K if K is None else K).to(dt)
    Fs = attention_masks(K, 3)
    control.masks = {f.shape[-2] * f.shape[-1]: f.reshape(-1) for f in Fs}
    all_keep, all_hole = bool((K == 1).all()), bool((K == 0).all())
    # Degenerate masks, as the authors' pipeline: all-hole (nothing to keep) ->
    # no SBC and no optimisation; all-keep (nothing to inpaint) -> no SBC, L_sc = 0,
    # the optimisation still runs on L_bg.
    sbc_on = sbc and not (all_keep or all_hole)
    inner = 0 if all_hole else PARAMS["inner_steps"]
    z_src = inp.z_src.to(dt)
    emb_c, emb_u = inp.prompt_embeds.to(dt), inp.negative_embeds.to(dt)
    if adapters is not None:
        assert adapters.models.unet is unet and adapters.control is control
        emb_c, emb_u = adapters.prompt_embeds.to(dt), adapters.negative_embeds.to(dt)
    emb_cfg = torch.cat([emb_u, emb_c])
    added_c, added_cfg = added_conditioning(inp, dt, False), added_conditioning(inp, dt, True)
    assert adapters is None or not added_c, "adapters with SDXL conditioning: not implemented"
    C = PARAMS["coef"] * float(K.sum()) / PARAMS["coef_divisor"]
    ac = alphas.to(dt)
    stride = 1000 // PARAMS["steps"]
    mu, g_scale = PARAMS["momentum"], PARAMS["guidance_scale"]
    run = Run()
    run.C = C
    x = inp.x_T.to(dt)
    k_opt = 0

    def losses(xg, tt, sa, sb, detach_control=False):
        """Conditional UNet pass (batch 1) on xg -> (L_bg, L_sc, L_l stacked, (L_l, out_l,
        in_l) per loss layer)."""
        control.sbc, control.capture, control.captured = sbc_on, True, {}
        extra = ({} if adapters is None
                 else adapters.gradient_pass(xg, tt, emb_c, detach_control=detach_control))
        out_c = unet(xg, tt, encoder_hidden_states=emb_c, **extra, **added_c).sample
        control.capture = False
        z0 = (xg - sb * out_c) / sa if prediction == "epsilon" else sa * xg - sb * out_c
        l_bg = (K * ((z_src + 1) / 2 - (z0 + 1) / 2) ** 2).sum()
        terms = [layer_terms(control.captured[n], control.masks[control.queries[n]],
                             inp.tokens) for n in loss_layers]
        layers = torch.stack([tr[0] for tr in terms])
        l_sc = layers.sum() / len(loss_layers)
        return l_bg, l_sc, layers, terms

    def gradients(xg, l_bg, l_sc):
        # dL/dx = dL_bg/dx + lambda dL_sc/dx (two backward passes, so that the
        # semantic-centralisation gradient can be dumped on its own)
        (g_bg,) = torch.autograd.grad(l_bg, xg, retain_graph=True)
        g_sc = (torch.autograd.grad(l_sc, xg)[0] if l_sc.requires_grad
                else torch.zeros_like(xg))
        return g_bg, g_sc

    for i, t in enumerate(timesteps):
        a = ac[t]
        sa, sb = a.sqrt(), (1 - a).sqrt()
        tt = torch.tensor([float(t)], dtype=dt)
        blend = t < 1000 * (1 - gamma)
        optimise = (i % PARAMS["interval"] == 0) and not blend
        if blend:
            eps_b = inp.blend_noise[i].to(dt)
            x = (1 - K) * x + K * (sa * z_src + sb * eps_b)
        if optimise:
            lam = 0.0 if lambda_zero else lambda_t(C, t)
            eta = eta_t(i, t)
            mom = torch.zeros_like(x)
            step_log = {"k": k_opt, "i": i, "t": t, "eta": eta, "lambda": lam, "iters": []}
            for j in range(inner):
                xg = x.detach().requires_grad_(True)
                l_bg, l_sc, layers, terms = losses(xg, tt, sa, sb)
                residuals = None if adapters is None else adapters.residuals
                total = l_bg + lam * l_sc
                g_bg, g_sc = gradients(xg, l_bg, l_sc)
                g = g_bg + lam * g_sc
                if (adapters is not None and adapters.probe_detached and j == 0
                        and k_opt < RECORD_OPT_STEPS):
                    # the same gradient with the ControlNet residuals treated as constants
                    # (not part of the run: shows that dL/dx goes through the ControlNet)
                    xd = x.detach().requires_grad_(True)
                    d_bg, d_sc, _, _ = losses(xd, tt, sa, sb, detach_control=True)
                    dg_bg, dg_sc = gradients(xd, d_bg, d_sc)
                    run.probe[k_opt] = {"grad": dg_bg + lam * dg_sc, "grad_sc": dg_sc}
                mom = mu * mom - eta * g
                x = x.detach() + mom
                step_log["iters"].append({"loss_bg": float(l_bg), "loss_sc": float(l_sc),
                                          "total": float(total)})
                if record and k_opt < RECORD_OPT_STEPS:
                    p = f"opt.{k_opt}.iter.{j}"
                    run.put(f"{p}.loss_bg", l_bg, "L_bg")
                    run.put(f"{p}.loss_sc", l_sc, "L_sc = sum(loss_sc_layers) / |layers|")
                    run.put(f"{p}.loss_sc_layers", layers, "L_l = out_l - in_l per loss layer")
                    run.put(f"{p}.loss_sc_out", torch.stack([tr[1] for tr in terms]), "out_l per loss layer")
                    run.put(f"{p}.loss_sc_in", torch.stack([tr[2] for tr in terms]), "in_l per loss layer")
                    run.put(f"{p}.lambda", lam, "lambda(t) (0 in lambda0)")
                    run.put(f"{p}.eta", eta, "eta(t)")
                    run.put(f"{p}.total", total, "L = L_bg + lambda L_sc")
                    if j == 0:
                        run.put(f"{p}.grad", g, "dL/dx")
                        run.put(f"{p}.grad_sc", g_sc, "dL_sc/dx (unweighted)")
                    if j == 0 and k_opt == 0 and residuals is not None:
                        down, mid = residuals
                        for r, res in enumerate(down):
                            run.put(f"{p}.controlnet.down.{r}", res, f"ControlNet down residual "
                                    f"{r} of this gradient pass (x conditioning_scale)")
                        run.put(f"{p}.controlnet.mid", mid, "ControlNet mid residual of this "
                                "gradient pass (x conditioning_scale)")
            run.put(f"opt.{k_opt}.x_after", x, "latent after the inner loop", step=i, timestep=t)
            run.opt_steps.append(step_log)
            k_opt += 1
        with torch.no_grad():
            control.sbc = sbc_on
            x2 = torch.cat([x, x])
            extra = {} if adapters is None else adapters.cfg_pass(x2, tt.expand(2), emb_cfg)
            eps = unet(x2, tt.expand(2), encoder_hidden_states=emb_cfg, **extra, **added_cfg).sample
            eps_u, eps_cc = eps.chunk(2)
            eps = eps_u + g_scale * (eps_cc - eps_u)
            prev_t = t - stride
            a_prev = ac[prev_t] if prev_t >= 0 else ac[0]  # set_alpha_to_one false
            if prediction == "epsilon":
                x0 = (x - sb * eps) / sa
            else:  # eps holds the guided v
                x0, eps = sa * x - sb * eps, sa * eps + sb * x
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        if record:
            run.put(f"step.{i}.latent", x, "latent after the DDIM step", step=i, timestep=t)
    run.final = x.detach()
    if record:
        run.put("final_latent", x, "latent after the last step (= step.19.latent)")
    return run


# --------------------------------------------------------------------------- adapters


def adapter_inputs() -> dict[str, torch.Tensor]:
    """The adapter fixtures' shared images (Tests/Fixtures/adapters/inputs.safetensors)."""
    with safetensors.safe_open(str(ADAPTER_FOLDER / "inputs.safetensors"), "pt") as f:
        return {"cond_image": f.get_tensor("cond_image"),
                "ip_source_image": f.get_tensor("ip_source_image")}


def read_kohya_lora(path: Path, unet, text) -> list[dict]:
    """kohya/webui LoRA -> one record per layer: lora_unet_<path with . -> _> /
    lora_te_<path> resolved against the models' Linear and Conv2d modules (the
    underscores are ambiguous, so the name is looked up, not split)."""
    sd = safetensors.torch.load_file(str(path))
    modules: dict[str, tuple[str, str]] = {}
    for comp, model, prefix in (("unet", unet, "lora_unet_"), ("text_encoder", text, "lora_te_")):
        for name, mod in model.named_modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
                key = prefix + name.replace(".", "_")
                assert key not in modules, f"ambiguous kohya name {key}"
                modules[key] = (comp, name)
    records = []
    stems = sorted({k.split(".", 1)[0] for k in sd})
    for stem in stems:
        comp, name = modules[stem]  # KeyError: names no module
        down = sd[f"{stem}.lora_down.weight"].double()
        up = sd[f"{stem}.lora_up.weight"].double()
        rank = down.shape[0]
        alpha = float(sd[f"{stem}.alpha"]) if f"{stem}.alpha" in sd else float(rank)
        records.append({"component": comp, "module": name, "down": down, "up": up,
                        "rank": rank, "alpha": alpha})
    assert sum(2 + (f"{r}.alpha" in sd) for r in stems) == len(sd), "unused LoRA keys"
    return records


def merge_lora(unet, text, records: list[dict], scale: float) -> dict[str, torch.Tensor]:
    """'<component>.<module>.weight' -> W + scale (alpha / rank) up . down, in float64
    (up [out, rank(, 1, 1)] times down [rank, in(, kh, kw)] flattened, reshaped to W)."""
    merged = {}
    for r in records:
        model = unet if r["component"] == "unet" else text
        w = model.get_submodule(r["module"]).weight.detach().double()
        rank = r["rank"]
        delta = (r["up"].reshape(r["up"].shape[0], rank) @ r["down"].reshape(rank, -1)).reshape(w.shape)
        key = f"{r['component']}.{r['module']}.weight"
        assert key not in merged
        merged[key] = w + scale * (r["alpha"] / rank) * delta
    return merged


def ip_layer_weights(unet, sd: dict[str, torch.Tensor], dtype
                     ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, int]]:
    """ip_adapter.<i>.to_k_ip / to_v_ip -> cross-attention layer: i is the layer's position
    in diffusers' unet.attn_processors (registration order: down, up, then mid blocks;
    self-attention counted too, so 1, 3, 5, ...)."""
    weights, index = {}, {}
    for i, name in enumerate(unet.attn_processors):
        path = name[: -len(".processor")]
        if path.endswith("attn2"):
            weights[path] = (sd[f"ip_adapter.{i}.to_k_ip.weight"].to(dtype),
                             sd[f"ip_adapter.{i}.to_v_ip.weight"].to(dtype))
            index[path] = i
    used = {f"ip_adapter.{i}.{w}.weight" for i in index.values() for w in ("to_k_ip", "to_v_ip")}
    assert used == {k for k in sd if k.startswith("ip_adapter.")}, "unused IP-Adapter weights"
    return weights, index


def ip_image_tokens(sd: dict[str, torch.Tensor], embeds: torch.Tensor) -> torch.Tensor:
    """Image projection of the SD 1.x IP-Adapter: Linear -> reshape [B, tokens, cross_dim]
    -> LayerNorm (eps 1e-5)."""
    dt = embeds.dtype
    w, b = sd["image_proj.proj.weight"].to(dt), sd["image_proj.proj.bias"].to(dt)
    nw, nb = sd["image_proj.norm.weight"].to(dt), sd["image_proj.norm.bias"].to(dt)
    cross = nw.shape[0]
    h = F.linear(embeds, w, b).reshape(embeds.shape[0], -1, cross)
    return F.layer_norm(h, (cross,), nw, nb, eps=1e-5)


class AdapterSetup:
    """The `adapters` configuration for one dtype; any adapter may be left out (the
    sensitivity runs). Owns a copy of the UNet and text encoder (LoRA merged), its own
    PilotControl (IP processors when the IP-Adapter is on), the prompt embeddings, the
    ControlNet and control image, and the IP image tokens.

    gradient_pass / cfg_pass return the UNet's extra keyword arguments (ControlNet
    residuals) and set the IP tokens for the pass; `residuals` keeps the last ones."""

    def __init__(self, m: Models, inp: Inputs, lora: bool = True, controlnet: bool = True,
                 ip: bool = True):
        dt = m.dtype
        self.dtype, self.flags = dt, {"lora": lora, "controlnet": controlnet, "ip_adapter": ip}
        # copies; the original's PilotControl (whose captured tensors belong to autograd
        # graphs) is shared, not copied: install_control below replaces it
        memo = {id(p.control): p.control for p in m.unet.attn_processors.values()
                if isinstance(p, PilotCrossAttnProcessor)}
        unet, text = copy.deepcopy(m.unet, memo), copy.deepcopy(m.text)
        self.merged: dict[str, torch.Tensor] = {}
        self.lora_records: list[dict] = []
        if lora:
            self.lora_records = read_kohya_lora(ADAPTER_FOLDER / ADAPTERS["lora"]["file"], unet, text)
            self.merged = merge_lora(unet, text, self.lora_records, ADAPTERS["lora"]["scale"])
            with torch.no_grad():
                for key, w in self.merged.items():
                    comp, rest = key.split(".", 1)
                    (unet if comp == "unet" else text).get_parameter(rest).copy_(w.to(dt))
        images = adapter_inputs()
        self.ip_embeds = self.ip_tokens = None
        ip_weights = None
        if ip:
            cfg = ADAPTERS["ip_adapter"]
            sd = safetensors.torch.load_file(str(ADAPTER_FOLDER / cfg["file"]))
            ip_weights, self.ip_index = ip_layer_weights(unet, sd, dt)
            processor = CLIPImageProcessor.from_pretrained(str(ADAPTER_FOLDER / cfg["feature_extractor"]))
            src = images["ip_source_image"].numpy().astype(np.uint8)
            self.pixel_values = processor(src, return_tensors="pt").pixel_values
            enc = CLIPVisionModelWithProjection.from_pretrained(
                str(ADAPTER_FOLDER / cfg["image_encoder"]), torch_dtype=torch.float32,
                local_files_only=True).to(dt).eval()
            with torch.no_grad():
                self.ip_embeds = enc(self.pixel_values.to(dt)).image_embeds  # [1, 8]
                # CFG rows [uncond, cond]: the zero embedding through the projection (as
                # diffusers' prepare_ip_adapter_image_embeds), then the image's
                self.ip_tokens = ip_image_tokens(
                    sd, torch.cat([torch.zeros_like(self.ip_embeds), self.ip_embeds]))
        self.control = install_control(unet, ip_weights)
        self.control.ip_scale = ADAPTERS["ip_adapter"]["scale"] if ip else 0.0
        for p in list(unet.parameters()) + list(text.parameters()):
            p.requires_grad_(False)
        self.models = Models(unet, m.vae, text, m.tokenizer, dt)
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dt)  # transformers builds CLIP's causal mask in it
        try:
            with torch.no_grad():
                self.prompt_embeds = text(torch.tensor([inp.prompt_ids])).last_hidden_state
                self.negative_embeds = text(torch.tensor([inp.negative_ids])).last_hidden_state
        finally:
            torch.set_default_dtype(prev)
        self.cn = None
        if controlnet:
            cfg = ADAPTERS["controlnet"]
            cn = ControlNetModel.from_pretrained(str(ADAPTER_FOLDER / cfg["folder"]),
                                                 torch_dtype=torch.float32, local_files_only=True)
            cn = cn.to(dt).eval()
            for p in cn.parameters():
                p.requires_grad_(False)
            cn.time_proj = Float64Timesteps(cn.time_proj, dt)  # as the UNet's
            cn.set_attn_processor(AttnProcessor())  # plain attention, no SBC, no IP
            self.cn, self.cn_scale = cn, cfg["scale"]
            self.control_image = images["cond_image"][0:1].to(dt)
        self.residuals = None
        self.probe_detached = False   # also compute dL/dx with the residuals detached
        self.always_detached = False  # the run's own gradient without the ControlNet path

    def _controlnet(self, x, tt, emb, image, detach: bool) -> dict:
        if self.cn is None:
            self.residuals = None
            return {}
        down, mid = self.cn(x, tt, encoder_hidden_states=emb, controlnet_cond=image,
                            conditioning_scale=self.cn_scale, return_dict=False)
        if detach:
            down, mid = [r.detach() for r in down], mid.detach()
        self.residuals = (list(down), mid)
        return {"down_block_additional_residuals": list(down),
                "mid_block_additional_residual": mid}

    def gradient_pass(self, x, tt, emb_c, detach_control: bool = False) -> dict:
        """Batch 1, conditional: ControlNet on the traced x (gradients flow through it
        unless detached) with the conditional embeddings; the conditional IP tokens."""
        self.control.ip_tokens = None if self.ip_tokens is None else self.ip_tokens[1:2]
        return self._controlnet(x, tt, emb_c, self.control_image if self.cn else None,
                                detach_control or self.always_detached)

    def cfg_pass(self, x2, tt2, emb_cfg) -> dict:
        """Batch 2 [uncond, cond]: ControlNet on [x, x] with [negative, prompt] and the
        control image repeated; IP tokens [zero-embedding tokens, image tokens]."""
        self.control.ip_tokens = self.ip_tokens
        image = self.control_image.expand(2, -1, -1, -1) if self.cn else None
        return self._controlnet(x2, tt2, emb_cfg, image, False)


def run_adapters(m: Models, inp: Inputs, alphas, timesteps, loss_layers, record=True,
                 **kw) -> tuple[Run, AdapterSetup]:
    """The `adapters` configuration; keyword flags as AdapterSetup, plus probe_detached /
    always_detached."""
    probe, always = kw.pop("probe_detached", False), kw.pop("always_detached", False)
    ad = AdapterSetup(m, inp, **kw)
    ad.probe_detached, ad.always_detached = probe, always
    cfg = ADAPTER_CONFIG
    run = pilot(ad.models, ad.control, inp, alphas, timesteps, loss_layers, cfg["gamma"],
                cfg["sbc"], cfg["lambda_zero"], record=record, adapters=ad)
    return run, ad


# --------------------------------------------------------------------------- probing


def probe_layers(m: Models, control: PilotControl, inp: Inputs) -> tuple[list[dict], list[str]]:
    """Cross-attention layers in forward order with their query grids; the loss layers
    are those whose query resolution is below the full latent resolution."""
    control.sbc, control.capture = False, False
    with torch.no_grad():
        m.unet(inp.x_T.to(m.dtype), torch.tensor([500.0], dtype=m.dtype),
               encoder_hidden_states=inp.prompt_embeds.to(m.dtype),
               **added_conditioning(inp, m.dtype, False))
    full = LATENT_SIZE * LATENT_SIZE
    layers = []
    for name in control.order:
        n = control.queries[name]
        s = int(round(math.sqrt(n)))
        layers.append({"name": name, "queries": n, "grid": [s, s], "in_loss": n < full})
    return layers, [l["name"] for l in layers if l["in_loss"]]


# --------------------------------------------------------------------------- edge-case masks

EDGE_CASES = {
    # name: (image [H, W], hole rectangles [y0, y1, x0, x1) in pixels, 1 = inpaint, description)
    "empty": ((128, 128), [], "no hole (all-black mask): K all 1"),
    "full": ((128, 128), [[0, 128, 0, 128]], "everything is hole (all-white mask): K all 0"),
    "one_pixel": ((128, 128), [[40, 41, 72, 73]],
                  "one hole pixel ON the nearest-sampling grid (pixel (40, 72) = latent cell (5, 9))"),
    "one_pixel_off_grid": ((128, 128), [[43, 44, 75, 76]],
                           "one hole pixel OFF the grid (pixel (43, 75)): no latent cell samples "
                           "it, so K is all 1 (same as empty)"),
    "border": ((128, 128), [[80, 128, 96, 128], [0, 20, 0, 128]],
               "holes touching the borders: a bottom-right corner block and a top strip"),
    "nonsquare": ((128, 192), [[24, 88, 40, 152], [100, 128, 0, 16]],
                  "non-square 128x192 image (latent 16x24): a wide block and a block in the "
                  "bottom-left corner"),
}


def edge_mask(size, rects) -> torch.Tensor:
    h, w = size
    msk = torch.zeros(1, 1, h, w, dtype=torch.float64)
    for y0, y1, x0, x1 in rects:
        msk[..., y0:y1, x0:x1] = 1
    return msk


def edge_cases() -> tuple[dict[str, torch.Tensor], dict]:
    tensors, info = {}, {}
    for name, (size, rects, desc) in EDGE_CASES.items():
        K = latent_keep_mask(edge_mask(size, rects))
        Fs = attention_masks(K, 4)
        keep = int(K.sum())
        C = PARAMS["coef"] * keep / PARAMS["coef_divisor"]
        tensors[f"{name}.K"] = K
        levels = []
        for f in Fs:
            s = f.shape[-2]
            tensors[f"{name}.F.{s}"] = f
            levels.append({"key": f"{name}.F.{s}", "grid": list(f.shape[-2:]),
                           "holes": int(f.sum()), "all_zero": bool((f == 0).all()),
                           "all_one": bool((f == 1).all())})
        tensors[f"{name}.C"] = torch.tensor([C], dtype=torch.float64)
        all_keep, all_hole = bool((K == 1).all()), bool((K == 0).all())
        if all_hole:
            behaviour = ("all hole: #keep = 0 so C = 0 and L_bg = 0; F_s all 1, so every layer "
                         "contributes 0 to L_sc. The authors' pipeline sets attention_mask = None "
                         "and num_gradient_ops = 0: no optimisation at all and no SBC (SBC with F "
                         "all 1 would be the identity anyway). Blend steps are no-ops "
                         "(K = 0). Result = plain text-to-image DDIM with CFG.")
        elif all_keep:
            behaviour = ("all keep (nothing to inpaint): F_s all 0 at every level, so every "
                         "layer contributes 0 and L_sc = 0. The authors' pipeline sets "
                         "attention_mask = None: NO SBC (with F all 0, SBC would mask every "
                         "token column but BOS), but the optimisation steps still run on L_bg "
                         "alone (num_gradient_ops unchanged). Blend steps replace the whole "
                         "latent by the noised source.")
        else:
            degenerate = [l["key"] for l in levels if l["all_zero"] or l["all_one"]]
            behaviour = ("ordinary: SBC and optimisation as usual"
                         + (f"; degenerate levels {degenerate}: layers at those resolutions "
                            "contribute 0 to L_sc (still counted in the divisor), and SBC there "
                            "multiplies every token column but BOS by F = 0 (all 0) or 1 (all 1)"
                            if degenerate else ""))
        info[name] = {"desc": desc, "image_size": list(size), "hole_rects": rects,
                      "latent_size": list(K.shape[-2:]), "keep_cells": keep, "C": C,
                      "all_keep": all_keep, "all_hole": all_hole,
                      "sbc_applied": not (all_keep or all_hole),
                      "optimisation_runs": not all_hole, "levels": levels,
                      "behaviour": behaviour}
    return tensors, info


# --------------------------------------------------------------------------- files

META_ORDER = ("kind", "config", "params", "layers", "schedule", "entries", "degenerate_masks",
              "cases", "tolerances", "versions", "notes")


def canonical_safetensors(path: Path) -> None:
    """Header re-emitted with metadata in META_ORDER and tensors in data order (see
    make_sd_fixtures.canonical_safetensors)."""
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


def write_file(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, object]) -> None:
    arrays = {k: np.ascontiguousarray(v.detach().to(torch.float64).numpy().astype(np.float32))
              for k, v in tensors.items()}
    smeta = {k: (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, allow_nan=False))
             for k, v in meta.items()}
    path.write_bytes(safetensors.numpy.save(arrays, metadata=smeta))
    canonical_safetensors(path)


DEGENERATE_NOTE = (
    "Degenerate masks (what the authors' pipeline does, and this reference too): "
    "(1) K all 0 (everything inpainted, nothing kept): `if torch.all(mask == 0): "
    "attention_mask = None; num_gradient_ops = 0` -> no optimisation and no SBC; C = 0 and "
    "L_bg = 0 anyway, and every F_s is all 1 (each layer would contribute 0, SBC would be the "
    "identity), so this equals running the optimisation with a zero gradient. "
    "(2) K all 1 (nothing inpainted): `if torch.all(mask == 1): attention_mask = None` -> NO SBC "
    "(note: SBC by the formula with F all 0 would zero every token column but BOS, which the "
    "reference avoids) and L_sc = 0 (the reference takes attn_loss = 0 when attention_mask is "
    "None; by the per-layer rule every layer contributes 0 anyway), but the optimisation steps "
    "still run, on L_bg alone. A hole too small to survive at a lower resolution (all-zero "
    "F_s there) is NOT special-cased: those layers contribute 0 to L_sc (still counted in the "
    "divisor) and SBC there keeps only the BOS column.")


def inputs_tensors(inp: Inputs, timesteps: list[int], alphas: torch.Tensor) -> tuple[dict, dict]:
    t, e = {}, {}

    def put(name, v, desc, **kw):
        v = torch.as_tensor(v).to(torch.float64)
        t[name] = v
        e[name] = {"shape": list(v.shape), "desc": desc, **kw}

    put("image", inp.image, "procedural RGB image in [-1, 1], NCHW (float32-exact: the values used)")
    put("pixel_mask", inp.pixel_mask, "user-convention pixel mask, 1 = white = inpaint, "
        "0 = keep: an irregular blob plus a thin bar (rows 100-111, cols 88-127) touching the right border")
    put("K", inp.K, "latent keep mask (1 = keep): K[i, j] = 1 - pixel_mask[8i, 8j]")
    for f in inp.F:
        s = f.shape[-1]
        put(f"F.{s}", f, f"attention mask at {s}x{s} (1 = hole): bilinear(1 - K, {s}x{s}, "
            "align_corners False), values < 1 set to 0")
    put("posterior_mean", inp.posterior_mean, "VAE.encode(image).latent_dist.mean (unscaled)")
    put("z_src", inp.z_src, "0.18215 * posterior_mean (the posterior MEAN, not a sample)")
    put("x_T", inp.x_T, f"initial noise (torch.randn, Generator seed {X_T_SEED}, float32)")
    for i, n in sorted(inp.blend_noise.items()):
        put(f"blend_noise.{i}", n, f"blend noise for step {i} (t={timesteps[i]}) under gamma 0.5 "
            f"(torch.randn, seed {BLEND_NOISE_SEED + i})", step=i, timestep=timesteps[i])
    put("prompt_ids", torch.tensor([inp.prompt_ids]), "token ids of the prompt, 77, SD1 "
        "end-token padding (exact integers as float32)", prompt=PROMPT)
    put("negative_ids", torch.tensor([inp.negative_ids]), "token ids of the negative prompt ''",
        prompt=NEGATIVE)
    word = torch.zeros(1, 77)
    word[0, inp.tokens] = 1
    put("word_tokens", word, "1 at the positions in T (id not 49406/49407), 0 elsewhere")
    put("prompt_embeds", inp.prompt_embeds, "text encoder last_hidden_state of the prompt")
    put("negative_prompt_embeds", inp.negative_embeds, "text encoder last_hidden_state of ''")
    put("timesteps", torch.tensor(timesteps), "DDIM timesteps, 20 steps, leading, offset 1")
    put("alphas_cumprod", alphas, "diffusers' float32 alphas_cumprod table (used as is, "
        "widened to float64)")
    return t, e


# --------------------------------------------------------------------------- main flow


def compute_all(tmp: Path, dtype: torch.dtype) -> dict:
    """Every run for one dtype: inputs, the four configurations, the probe."""
    torch.manual_seed(0)
    m = load_models(tmp, dtype)
    control = install_control(m.unet)
    alphas, timesteps = ddim_table()
    inp = make_inputs(m, timesteps)
    layers, loss_layers = probe_layers(m, control, inp)
    runs = {}
    for name, cfg in CONFIGS.items():
        runs[name] = pilot(m, control, inp, alphas, timesteps, loss_layers, cfg["gamma"],
                           cfg["sbc"], cfg["lambda_zero"])
    run, ad = run_adapters(m, inp, alphas, timesteps, loss_layers)
    add_adapter_tensors(run, ad)
    runs["adapters"] = run
    return {"models": m, "control": control, "alphas": alphas, "timesteps": timesteps,
            "inputs": inp, "layers": layers, "loss_layers": loss_layers, "runs": runs,
            "adapter_setup": ad}


# The v-prediction run: the tiny SD 2 fixture model, whose scheduler says v_prediction.
VPRED_FOLDER = ROOT / "Tests" / "Fixtures" / "sd" / "sd2"
VPRED_RUN = "vpred_sd2"
VPRED_CONFIG = {"gamma": 0.5, "sbc": True, "lambda_zero": False,
                "desc": "v-prediction on the tiny SD 2 model (Tests/Fixtures/sd/sd2): gamma 0.5, "
                        "SBC on; x0 = sqrt(a_t) x - sqrt(1-a_t) v in L_bg and in the DDIM step, "
                        "eps = sqrt(a_t) v + sqrt(1-a_t) x"}
VPRED_INPUTS = ("x_T", "z_src", "pixel_mask", "K", "prompt_embeds", "negative_prompt_embeds",
                "word_tokens", "timesteps")


def prompt_word_indices(ids: list[int]) -> list[int]:
    """Positions after BOS up to the first EOS: the prompt's words whatever the padding
    token (SD 2 pads with '!', id 0, which word_token_indices would count)."""
    return list(range(1, ids.index(EOS)))


def compute_vpred(tmp: Path, dtype: torch.dtype) -> dict:
    m = load_models(tmp, dtype, VPRED_FOLDER)
    cfg = json.loads((VPRED_FOLDER / "scheduler" / "scheduler_config.json").read_text())
    assert cfg["prediction_type"] == "v_prediction", cfg["prediction_type"]
    control = install_control(m.unet)
    alphas, timesteps = ddim_table(VPRED_FOLDER)
    inp = make_inputs(m, timesteps)
    inp.tokens = prompt_word_indices(inp.prompt_ids)
    layers, loss_layers = probe_layers(m, control, inp)
    args = (m, control, inp, alphas, timesteps, loss_layers, VPRED_CONFIG["gamma"],
            VPRED_CONFIG["sbc"], VPRED_CONFIG["lambda_zero"])
    run = pilot(*args, prediction="v_prediction")
    misread = pilot(*args, prediction="epsilon", record=False)  # the output taken for eps
    return {"models": m, "inputs": inp, "alphas": alphas, "timesteps": timesteps,
            "layers": layers, "loss_layers": loss_layers, "run": run,
            "misread_final": misread.final}


def run_params(run: Run, cfg: dict, inp: Inputs, prediction: str | None = None) -> dict:
    """The start of a run file's `params` metadata (prediction_type only where given)."""
    head = {**PARAMS, "gamma": cfg["gamma"], "sbc": cfg["sbc"], "lambda_zero": cfg["lambda_zero"]}
    if prediction is not None:
        head["prediction_type"] = prediction
    return {**head, "C": run.C, "keep_cells": int(inp.K.sum()), "word_tokens": inp.tokens}


def with_own_inputs(run: Run, t: dict, e: dict, names, blend_noise: dict,
                    word_tokens_desc: str) -> tuple[dict, dict]:
    """The run's dumps and entries plus its own inputs (inputs_tensors' t, e) as
    input.<name>: names, then every blend_noise.<i>; input.word_tokens described anew."""
    tensors, entries = dict(run.dumps), dict(run.entries)
    for k in [*names, *(f"blend_noise.{i}" for i in sorted(blend_noise))]:
        tensors[f"input.{k}"], entries[f"input.{k}"] = t[k], e[k]
    entries["input.word_tokens"] = {**e["word_tokens"], "desc": word_tokens_desc}
    return tensors, entries


def vpred_file(v64: dict, v32: dict) -> tuple[dict, dict]:
    """vpred_sd2.safetensors: the run's dumps plus its own inputs (input.<name>)."""
    inp, run = v64["inputs"], v64["run"]
    t, e = inputs_tensors(inp, v64["timesteps"], v64["alphas"])
    tensors, entries = with_own_inputs(run, t, e, VPRED_INPUTS, inp.blend_noise, "1 at the "
                                       "prompt's word positions (after BOS, before the first "
                                       "EOS), 0 elsewhere")
    misread = sdfx.rel_err(v64["misread_final"], run.final)
    return tensors, {
        "kind": "pilot-run",
        "config": {"name": VPRED_RUN, **VPRED_CONFIG},
        "params": {**run_params(run, VPRED_CONFIG, inp, "v_prediction"),
                   "prompt": PROMPT, "negative_prompt": NEGATIVE,
                   "model": "Tests/Fixtures/sd/sd2 (diffusers folder)"},
        "layers": {"all_cross_attention": v64["layers"], "loss_layers": v64["loss_layers"]},
        "entries": entries,
        "tolerances": {"suggested": SUGGESTED,
                       "measured_float32_vs_float64": run_precision(run.dumps, v32["run"].dumps),
                       "epsilon_misreading_final_latent_rel": misread,
                       "reasoning": "As the other runs. epsilon_misreading_final_latent_rel is the "
                                    "final latent of the same run with the v output read as eps "
                                    "(max|d|/max|ref|): what the final-latent tolerance must see."},
        "versions": VERSIONS,
        "notes": VPRED_CONFIG["desc"] + ". Inputs as inputs.safetensors, made with this model's "
                 "text encoder and VAE (input.*). " + ALGORITHM_NOTE,
    }


# The SDXL run: the tiny SDXL model (Tests/Fixtures/sdxl/sdxl, fp16 weights, no tokenizer
# folders: built as make_sdxl_fixtures does), epsilon-prediction, with SDXL's two text
# encoders and added conditioning (pooled text embeds, size/crop time ids).
SDXL_FOLDER = ROOT / "Tests" / "Fixtures" / "sdxl" / "sdxl"
SDXL_REFERENCE = ROOT / "Tests" / "Fixtures" / "sdxl" / "sdxl_reference.safetensors"
SDXL_RUN = "sdxl"
SDXL_SIZE_LIMIT = 300_000  # bytes, sdxl.safetensors
SDXL_TIME_IDS = [128.0, 128.0, 0.0, 0.0, 128.0, 128.0]  # original h, w, crop top, left, target h, w
SDXL_CONFIG = {"gamma": 0.5, "sbc": True, "lambda_zero": False,
               "desc": "SDXL on the tiny SDXL model (Tests/Fixtures/sdxl/sdxl): gamma 0.5, SBC on "
                       "in every cross-attention layer, L_sc over every cross-attention layer "
                       "(none is at full latent resolution); prompt embeddings as "
                       "StableDiffusionXLPipeline.encode_prompt (both encoders' hidden_states[-2] "
                       "concatenated, pooled = text_encoder_2 text_embeds, empty negative prompt "
                       "-> zeros), added conditioning {text_embeds, time_ids} in every UNet call"}
SDXL_INPUTS = ("x_T", "z_src", "pixel_mask", "K", "prompt_ids", "prompt_ids_2", "prompt_embeds",
               "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds",
               "time_ids", "word_tokens", "timesteps")


def load_sdxl_models(tmp: Path, dtype: torch.dtype) -> Models:
    """The SDXL folder's fp16 weights widened to `dtype` (exact), plus the two tokenizers
    (tokenizer pads with <|endoftext|>, tokenizer_2 with '!'). Models.text is text_encoder;
    text_2 / tokenizer_2 are added. Timestep and time-id angles in float64."""
    kw = {"torch_dtype": torch.float32, "local_files_only": True, "variant": "fp16"}
    unet = UNet2DConditionModel.from_pretrained(str(SDXL_FOLDER / "unet"), **kw)
    vae = AutoencoderKL.from_pretrained(str(SDXL_FOLDER / "vae"), **kw)
    text = CLIPTextModel.from_pretrained(str(SDXL_FOLDER / "text_encoder"), **kw)
    text_2 = CLIPTextModelWithProjection.from_pretrained(str(SDXL_FOLDER / "text_encoder_2"), **kw)
    tok = sdfx.build_tokenizer(tmp / "sdxl_tokenizer", "<|endoftext|>")
    tok_2 = sdfx.build_tokenizer(tmp / "sdxl_tokenizer_2", "!")
    unet, vae = unet.to(dtype).eval(), vae.to(dtype).eval()
    text, text_2 = text.to(dtype).eval(), text_2.to(dtype).eval()
    for mod in (unet, vae, text, text_2):
        for p in mod.parameters():
            p.requires_grad_(False)
    unet.time_proj = Float64Timesteps(unet.time_proj, dtype)
    # diffusers forms the time-id angles in float32 too (add_time_proj is a Timesteps)
    unet.add_time_proj = Float64Timesteps(unet.add_time_proj, dtype)
    m = Models(unet, vae, text, tok, dtype)
    m.text_2, m.tokenizer_2 = text_2, tok_2
    return m


def sdxl_encode(m: Models, text: str) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """(prompt_embeds [1, 77, 8], pooled [1, 4], ids, ids_2) as encode_prompt (clip_skip
    None): [text_encoder hidden_states[-2], text_encoder_2 hidden_states[-2]] on features;
    pooled = text_encoder_2's text_embeds."""
    ids, ids_2 = sdfx.padded_ids(m.tokenizer, text), sdfx.padded_ids(m.tokenizer_2, text)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(m.dtype)  # transformers builds CLIP's causal mask in it
    try:
        with torch.no_grad():
            o1 = m.text(torch.tensor([ids]), output_hidden_states=True)
            o2 = m.text_2(torch.tensor([ids_2]), output_hidden_states=True)
    finally:
        torch.set_default_dtype(prev)
    return (torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], dim=-1), o2.text_embeds,
            ids, ids_2)


def make_sdxl_inputs(m: Models, timesteps: list[int]) -> Inputs:
    """The shared image, mask, noises (make_inputs; z_src with SDXL's 0.13025) and the SDXL
    conditioning. The negative prompt is empty, so (force_zeros_for_empty_prompt) its
    embeddings and pooled embeddings are zeros. Word tokens from the first tokenizer."""
    inp = make_inputs(m, timesteps, scaling_factor=m.vae.config.scaling_factor, text=False)
    inp.prompt_embeds, inp.pooled_embeds, inp.prompt_ids, inp.prompt_ids_2 = sdxl_encode(m, PROMPT)
    assert NEGATIVE == ""
    inp.negative_embeds = torch.zeros_like(inp.prompt_embeds)
    inp.negative_pooled_embeds = torch.zeros_like(inp.pooled_embeds)
    inp.time_ids = torch.tensor([SDXL_TIME_IDS], dtype=m.dtype)
    inp.tokens = prompt_word_indices(inp.prompt_ids)
    return inp


def sdxl_run(s: dict, inp: Inputs, record: bool = True) -> Run:
    return pilot(s["models"], s["control"], inp, s["alphas"], s["timesteps"], s["loss_layers"],
                 SDXL_CONFIG["gamma"], SDXL_CONFIG["sbc"], SDXL_CONFIG["lambda_zero"],
                 record=record)


def compute_sdxl(tmp: Path, dtype: torch.dtype) -> dict:
    m = load_sdxl_models(tmp, dtype)
    cfg = json.loads((SDXL_FOLDER / "scheduler" / "scheduler_config.json").read_text())
    assert cfg["prediction_type"] == "epsilon", cfg["prediction_type"]
    control = install_control(m.unet)
    alphas, timesteps = ddim_table(SDXL_FOLDER)
    inp = make_sdxl_inputs(m, timesteps)
    layers, loss_layers = probe_layers(m, control, inp)
    s = {"models": m, "control": control, "inputs": inp, "alphas": alphas,
         "timesteps": timesteps, "layers": layers, "loss_layers": loss_layers}
    s["run"] = sdxl_run(s, inp)
    return s


def sdxl_sensitivity(s: dict) -> dict:
    """How far plausible wiring mistakes in the added conditioning move the run (float64):
    what the Swift test's tolerances can see."""
    m, inp, ref = s["models"], s["inputs"], s["run"].dumps
    empty_embeds, empty_pooled, _, _ = sdxl_encode(m, "")
    variants = {
        "time_ids_1024": {"time_ids": torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]],
                                                   dtype=m.dtype)},
        "negative_encoded_not_zeroed": {"negative_embeds": empty_embeds,
                                        "negative_pooled_embeds": empty_pooled},
        "cfg_uncond_positive_pooled": {"negative_pooled_embeds": inp.pooled_embeds},
        "gradient_pass_zero_pooled": {"gradient_pooled_embeds": inp.negative_pooled_embeds},
    }
    out = {}
    for label, changes in variants.items():
        v = copy.copy(inp)
        for k, val in changes.items():
            setattr(v, k, val)
        d = sdxl_run(s, v).dumps
        out[label] = {"grad_opt0_rel": sdfx.rel_err(d["opt.0.iter.0.grad"], ref["opt.0.iter.0.grad"]),
                      "x_after_rel": [sdfx.rel_err(d[k], ref[k]) for k in sorted(ref)
                                      if k.endswith(".x_after")],
                      "final_latent_rel": sdfx.rel_err(d["final_latent"], ref["final_latent"])}
    return out


def sdxl_file(s64: dict, s32: dict) -> tuple[dict, dict]:
    """sdxl.safetensors: the run's dumps plus its own inputs (input.<name>)."""
    inp, run = s64["inputs"], s64["run"]
    t, e = inputs_tensors(inp, s64["timesteps"], s64["alphas"])
    sf = float(s64["models"].vae.config.scaling_factor)

    def put(name, v, desc, **kw):
        v = torch.as_tensor(v).to(torch.float64)
        t[name], e[name] = v, {"shape": list(v.shape), "desc": desc, **kw}

    put("z_src", inp.z_src, f"{sf} (SDXL VAE scaling_factor) * VAE.encode(image).latent_dist.mean "
        "(the posterior MEAN, not a sample)")
    put("prompt_ids", torch.tensor([inp.prompt_ids]), "tokenizer (pads with <|endoftext|> 49407) "
        "ids of the prompt, 77 (exact integers as float32)", prompt=PROMPT)
    put("prompt_ids_2", torch.tensor([inp.prompt_ids_2]), "tokenizer_2 (pads with '!', id 0) ids "
        "of the prompt, 77", prompt=PROMPT)
    put("prompt_embeds", inp.prompt_embeds, "encode_prompt: [text_encoder hidden_states[-2] (4), "
        "text_encoder_2 hidden_states[-2] (4)] concatenated on features", prompt=PROMPT)
    put("negative_prompt_embeds", inp.negative_embeds, "zeros: empty negative prompt with "
        "force_zeros_for_empty_prompt (model_index.json)", prompt=NEGATIVE)
    put("pooled_prompt_embeds", inp.pooled_embeds, "text_encoder_2 text_embeds (pooled "
        "projection) of the prompt: added_cond_kwargs text_embeds of the gradient pass and of "
        "the CFG conditional half", prompt=PROMPT)
    put("negative_pooled_prompt_embeds", inp.negative_pooled_embeds, "zeros: text_embeds of the "
        "CFG unconditional half", prompt=NEGATIVE)
    put("time_ids", inp.time_ids, "added_cond_kwargs time_ids (original h, w, crop top, left, "
        "target h, w), the same row for every UNet call (both CFG halves, gradient pass)")
    tensors, entries = with_own_inputs(run, t, e, SDXL_INPUTS, inp.blend_noise, "1 at the "
                                       "prompt's word positions in tokenizer's ids (after BOS, "
                                       "before the first EOS), 0 elsewhere")
    return tensors, {
        "kind": "pilot-run",
        "config": {"name": SDXL_RUN, **SDXL_CONFIG},
        "params": {**run_params(run, SDXL_CONFIG, inp, "epsilon"),
                   "ddim_stride": 1000 // PARAMS["steps"],
                   "prompt": PROMPT, "negative_prompt": NEGATIVE,
                   "negative_conditioning": "zeros (force_zeros_for_empty_prompt)",
                   "time_ids": SDXL_TIME_IDS, "scaling_factor": sf,
                   "x_T_seed": X_T_SEED, "blend_noise_seed": f"{BLEND_NOISE_SEED} + step index",
                   "added_conditioning": "added_cond_kwargs {text_embeds, time_ids} in every UNet "
                                         "call: CFG pass [negative_pooled, pooled] and [time_ids, "
                                         "time_ids]; gradient pass (batch 1) pooled and time_ids",
                   "model": "Tests/Fixtures/sdxl/sdxl (diffusers folder, fp16 weights widened)"},
        "layers": {"all_cross_attention": s64["layers"], "loss_layers": s64["loss_layers"],
                   "sbc_layers": "every cross-attention layer (all_cross_attention)",
                   "rule": "semantic centralisation loss over every cross-attention (attn2) layer "
                           "whose query resolution is below the full latent resolution (16x16); "
                           "the tiny SDXL has no attention at level 0, so all "
                           f"{len(s64['loss_layers'])} cross-attention layers qualify; divisor = "
                           "|loss_layers|. SBC in every cross-attention layer; self-attention "
                           "(attn1) never masked."},
        "schedule": run_schedule(run, SDXL_CONFIG, s64["timesteps"]),
        "entries": entries,
        "tolerances": {"suggested": SUGGESTED,
                       "measured_float32_vs_float64": run_precision(run.dumps, s32["run"].dumps),
                       "added_conditioning_sensitivity_float64": s64["sensitivity"],
                       "reasoning": "As the other runs. added_conditioning_sensitivity_float64: "
                                    "the same run (float64) with one wiring mistake each - time ids "
                                    "(1024, 1024, 0, 0, 1024, 1024); the negative prompt '' encoded "
                                    "instead of zeroed; the positive pooled embeds in the CFG "
                                    "unconditional half; zero pooled embeds in the gradient pass - "
                                    "as max|d|/max|ref| of opt.0.iter.0.grad, the latents after "
                                    "each optimisation step and the final latent."},
        "versions": VERSIONS,
        "notes": SDXL_CONFIG["desc"] + ". Inputs as inputs.safetensors (same image, mask, seeds), "
                 "made with this model's text encoders and VAE (input.*). " + ALGORITHM_NOTE,
    }


def sdxl_sanity_checks(s64: dict, expect) -> None:
    """The SDXL pieces against diffusers (float64 here) and the SDXL fixtures' reference
    (Tests/Fixtures/sdxl/sdxl_reference.safetensors, diffusers float32)."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.models.embeddings import get_timestep_embedding
    m, inp, control = s64["models"], s64["inputs"], s64["control"]
    dt = m.dtype
    with safetensors.safe_open(str(SDXL_REFERENCE), "pt") as f:
        ref = {k: f.get_tensor(k).double() for k in f.keys()}
    expect(inp.prompt_ids == [int(v) for v in ref["ids.prompt"][0]] and
           inp.prompt_ids_2 == [int(v) for v in ref["ids.prompt_2"][0]],
           "tokenizer / tokenizer_2 ids == sdxl_reference ids.prompt / ids.prompt_2")
    expect(inp.tokens == [1, 2, 3, 4, 5, 6], f"word tokens T = {inp.tokens}")
    # encode_prompt and time ids: diffusers' pipeline on our (float64) models
    pipe = StableDiffusionXLPipeline(vae=m.vae, text_encoder=m.text, text_encoder_2=m.text_2,
                                     tokenizer=m.tokenizer, tokenizer_2=m.tokenizer_2, unet=m.unet,
                                     scheduler=DDIMScheduler.from_pretrained(str(SDXL_FOLDER / "scheduler")),
                                     force_zeros_for_empty_prompt=True)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dt)
    try:
        with torch.no_grad():
            pe, ne, pp, npool = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                   do_classifier_free_guidance=True,
                                                   negative_prompt=None)
    finally:
        torch.set_default_dtype(prev)
    e = max(sdfx.rel_err(pe, inp.prompt_embeds), sdfx.rel_err(pp, inp.pooled_embeds))
    zeros = torch.equal(ne, inp.negative_embeds) and torch.equal(npool, inp.negative_pooled_embeds)
    expect(e < 1e-12 and zeros and pe.dtype == dt,
           f"prompt / pooled embeds == diffusers encode_prompt on the same models ({e:.2e}); "
           "negative ones are its zeros")
    e = max(sdfx.rel_err(inp.prompt_embeds, ref["prompt_embeds"]),
            sdfx.rel_err(inp.pooled_embeds, ref["pooled_prompt_embeds"]))
    expect(e < 1e-5, f"prompt / pooled embeds == sdxl_reference (diffusers float32): {e:.2e}")
    ids = pipe._get_add_time_ids((128, 128), (0, 0), (128, 128), dtype=dt,
                                 text_encoder_projection_dim=m.text_2.config.projection_dim)
    expect(torch.equal(ids, inp.time_ids), f"time ids == pipeline._get_add_time_ids: {ids.tolist()}")
    # the UNet with our processors (SBC off) == diffusers' processors, and == sdxl_reference
    x, ctx = ref["unet.sample"].to(dt), ref["unet.context"].to(dt)
    tt = ref["unet.timestep"].to(dt).expand(2)
    added = {"added_cond_kwargs": {"text_embeds": ref["unet.text_embeds"].to(dt),
                                   "time_ids": ref["unet.time_ids"].to(dt)}}
    with torch.no_grad():
        control.sbc, control.capture = False, False
        ours = m.unet(x, tt, encoder_hidden_states=ctx, **added).sample
        procs = m.unet.attn_processors
        m.unet.set_attn_processor(AttnProcessor())
        theirs = m.unet(x, tt, encoder_hidden_states=ctx, **added).sample
        m.unet.set_attn_processor(procs)
        control.sbc = True
        masked = m.unet(x, tt, encoder_hidden_states=ctx, **added).sample
        control.sbc = False
    e = sdfx.rel_err(ours, theirs)
    expect(e < 1e-12, f"SDXL UNet: cross-attention processor without SBC == AttnProcessor ({e:.2e})")
    e = sdfx.rel_err(ours, ref["unet.out"])
    expect(e < 1e-5, f"SDXL UNet (float64 timestep / time-id angles) == sdxl_reference unet.out "
           f"(diffusers float32): {e:.2e}")
    e = sdfx.rel_err(masked, ours)
    expect(e > 1e-3, f"SBC with the fixture mask changes the SDXL UNet output (rel {e:.3g})")
    tp = m.unet.add_time_proj
    t_ids = torch.tensor(SDXL_TIME_IDS + [1024.0, 96.0])
    want = get_timestep_embedding(t_ids, tp.num_channels, tp.flip_sin_to_cos, tp.shift)
    diff = float((tp(t_ids).double() - want.double()).abs().max())
    expect(diff < 1e-4, f"float64 time-id embedding == diffusers' float32 one (max |d| {diff:.2e})")
    # schedule and layers
    a1, t1 = ddim_table()
    expect(torch.equal(a1, s64["alphas"]) and t1 == s64["timesteps"],
           "SDXL scheduler: the same alphas_cumprod and DDIM timesteps as sd1")
    names = [l["name"] for l in s64["layers"]]
    n_attn2 = sum(1 for k in m.unet.attn_processors if k.endswith("attn2.processor"))
    expect(len(names) == n_attn2 and s64["loss_layers"] == names
           and all(l["queries"] < LATENT_SIZE ** 2 for l in s64["layers"]),
           f"every one of the {n_attn2} cross-attention layers is below 16x16 and in the loss")
    run = s64["run"]
    expect(len(run.opt_steps) == 2 and run.opt_steps[0]["i"] == 0 and run.opt_steps[1]["i"] == 5,
           "SDXL run optimises at i = 0, 5 (t >= 500) and blends at i = 10-19")


def add_adapter_tensors(run: Run, ad: AdapterSetup) -> None:
    """The adapters' own values, stored with the run."""
    run.put("prompt_embeds", ad.prompt_embeds, "prompt embeddings from the LoRA-merged text "
            "encoder (last_hidden_state)", prompt=PROMPT)
    run.put("negative_prompt_embeds", ad.negative_embeds, "negative ('') embeddings from the "
            "LoRA-merged text encoder", prompt=NEGATIVE)
    run.put("ip_image_embeds", ad.ip_embeds, "image_encoder(CLIPImageProcessor(ip_source_image))"
            ".image_embeds")
    run.put("ip_image_tokens", ad.ip_tokens, "IP-Adapter image tokens: image_proj of [zeros, "
            "image_embeds] (Linear, reshape [4, 6], LayerNorm); row 0 = CFG uncond (from the zero "
            "embedding), row 1 = cond (the CFG cond row and the gradient pass)")
    for key in sorted(ad.merged):
        run.put(f"lora.merged.{key}", ad.merged[key], "W + 1.0 (alpha / rank) up . down (kohya "
                "file, this layer's own alpha), float64 then rounded")


ADAPTER_RUN = "adapters"
RUN_NAMES = [*CONFIGS, ADAPTER_RUN]


def compare_precisions(r64: dict, r32: dict) -> dict:
    """float32 run vs the float64 truth, per configuration: scalar losses (relative),
    latents after each optimisation step and after the last step (max|d| / max|ref|)."""
    out = {}
    inp64, inp32 = r64["inputs"], r32["inputs"]
    out["inputs"] = {
        "z_src": sdfx.rel_err(inp32.z_src, inp64.z_src),
        "prompt_embeds": sdfx.rel_err(inp32.prompt_embeds, inp64.prompt_embeds),
    }
    for name in RUN_NAMES:
        a, b = r64["runs"][name].dumps, r32["runs"][name].dumps
        out[name] = run_precision(a, b)
        if name == ADAPTER_RUN:
            out[name].update({
                "prompt_embeds_rel": max(sdfx.rel_err(b[k], a[k]) for k in
                                         ("prompt_embeds", "negative_prompt_embeds")),
                "ip_image_embeds_rel": sdfx.rel_err(b["ip_image_embeds"], a["ip_image_embeds"]),
                "ip_image_tokens_rel": sdfx.rel_err(b["ip_image_tokens"], a["ip_image_tokens"]),
                "controlnet_residuals_rel": max(sdfx.rel_err(b[k], a[k]) for k in a
                                                if ".controlnet." in k),
                "lora_merged_rel": max(sdfx.rel_err(b[k], a[k]) for k in a
                                       if k.startswith("lora.merged."))})
    return out


def run_precision(a: dict, b: dict) -> dict:
    """One run's float32 dumps b against its float64 dumps a (see compare_precisions)."""
    rel_scalar = lambda k: abs(float(b[k][0]) - float(a[k][0])) / abs(float(a[k][0]))  # noqa: E731
    bg = max(rel_scalar(k) for k in a if k.endswith((".loss_bg", ".total")))
    terms = max(max(sdfx.rel_err(b[k], a[k]) for k in a if k.endswith((".loss_sc_out", ".loss_sc_in"))),
                0.0)
    sc = 0.0  # L_sc and L_l are differences: measured against the size of their terms
    for k in a:
        if k.endswith(".loss_sc_layers") or k.endswith(".loss_sc"):
            p = k.rsplit(".", 1)[0] if k.endswith(".loss_sc") else k[: -len(".loss_sc_layers")]
            scale = float(np.maximum(np.abs(a[p + ".loss_sc_out"]), np.abs(a[p + ".loss_sc_in"])).max())
            sc = max(sc, float(np.abs(b[k] - a[k]).max()) / scale)
    xs = [sdfx.rel_err(b[k], a[k]) for k in sorted(a) if k.endswith(".x_after")]
    steps = [sdfx.rel_err(b[f"step.{i}.latent"], a[f"step.{i}.latent"])
             for i in range(PARAMS["steps"])]
    return {
        "loss_bg_total_rel": bg, "loss_sc_out_in_rel": terms, "loss_sc_vs_terms": sc,
        "losses_rel": max(bg, terms, sc),
        "grad_rel": max(sdfx.rel_err(b[k], a[k]) for k in a if k.endswith(".grad")),
        "grad_sc_rel": max(sdfx.rel_err(b[k], a[k]) for k in a if k.endswith(".grad_sc")),
        "x_after_rel": xs, "step_latent_rel_max": max(steps),
        "final_latent_rel": sdfx.rel_err(b["final_latent"], a["final_latent"])}


def separation(r64: dict) -> dict:
    """How far the configurations are from gamma1 (float64): what a tolerance can see.
    lambda0 vs gamma1 is the whole effect of the semantic-centralisation gradient."""
    ref = r64["runs"]["gamma1"].dumps
    out = {}
    for name in ("lambda0", "sbc_off", "gamma05"):
        d = r64["runs"][name].dumps
        out[f"{name}_vs_gamma1"] = {
            "x_after_rel": [sdfx.rel_err(d[k], ref[k]) for k in sorted(d) if k.endswith(".x_after")],
            "grad_rel": [sdfx.rel_err(d[k], ref[k]) for k in sorted(d) if k.endswith(".grad")],
            "final_latent_rel": sdfx.rel_err(d["final_latent"], ref["final_latent"])}
    return out


def run_schedule(run: Run, cfg: dict, timesteps: list[int]) -> dict:
    """The `schedule` metadata: per step blend / optimise (with eta, lambda), every
    iteration's losses."""
    schedule = []
    opt_by_i = {s["i"]: s for s in run.opt_steps}
    for i, tstep in enumerate(timesteps):
        blend = tstep < 1000 * (1 - cfg["gamma"])
        row = {"i": i, "t": tstep, "blend": blend, "optimise": i in opt_by_i}
        if i in opt_by_i:
            s = opt_by_i[i]
            row.update({"opt_index": s["k"], "eta": s["eta"], "lambda": s["lambda"]})
        schedule.append(row)
    return {"timesteps": timesteps, "steps": schedule,
            "optimise_steps": [s["i"] for s in run.opt_steps],
            "blend_steps": [r["i"] for r in schedule if r["blend"]],
            "losses": [{"k": s["k"], "t": s["t"], "iters": s["iters"]}
                       for s in run.opt_steps]}


def build_files(r64: dict, precision: dict) -> dict[str, tuple[dict, dict]]:
    inp, timesteps = r64["inputs"], r64["timesteps"]
    files = {}
    t, e = inputs_tensors(inp, timesteps, r64["alphas"])
    layer_meta = {"all_cross_attention": r64["layers"], "loss_layers": r64["loss_layers"],
                  "rule": "semantic centralisation loss over every cross-attention (attn2) layer "
                          "whose query resolution is below the full latent resolution "
                          "(SD1.5 gives the reference's 11 layers by the same rule); divisor = "
                          f"|loss_layers| = {len(r64['loss_layers'])}. SBC applies to ALL "
                          "cross-attention layers (full resolution included); self-attention "
                          "(attn1) is never masked."}
    files["inputs"] = (t, {
        "kind": "pilot-inputs",
        "params": {**PARAMS, "prompt": PROMPT, "negative_prompt": NEGATIVE,
                   "scaling_factor": SCALING_FACTOR, "x_T_seed": X_T_SEED,
                   "blend_noise_seed": f"{BLEND_NOISE_SEED} + step index",
                   "model": "Tests/Fixtures/sd/sd1 (diffusers folder)"},
        "layers": layer_meta,
        "entries": e,
        "versions": VERSIONS,
        "notes": "Shared inputs of the PILOT reference (Tests/Reference/pilot_reference.py). "
                 "Computed in float64, stored as F32. z_src is 0.18215 * the VAE posterior MEAN "
                 "([ours]: the authors sample the posterior). Word tokens T: positions whose id "
                 "is neither 49406 (BOS) nor 49407 (EOS/padding).",
    })
    def params(run: Run, cfg: dict) -> dict:
        return {**run_params(run, cfg, inp), "ddim_stride": 1000 // PARAMS["steps"]}

    for name, cfg in CONFIGS.items():
        run = r64["runs"][name]
        files[name] = (run.dumps, {
            "kind": "pilot-run",
            "config": {"name": name, **cfg},
            "params": params(run, cfg),
            "layers": layer_meta,
            "schedule": run_schedule(run, cfg, timesteps),
            "entries": run.entries,
            "degenerate_masks": DEGENERATE_NOTE,
            "tolerances": {"suggested": SUGGESTED,
                           "measured_float32_vs_float64": precision[name],
                           "config_separation_float64": separation(r64),
                           "reasoning": TOLERANCE_NOTE},
            "versions": VERSIONS,
            "notes": cfg["desc"] + ". " + ALGORITHM_NOTE,
        })
    run, ad = r64["runs"][ADAPTER_RUN], r64["adapter_setup"]
    files[ADAPTER_RUN] = (run.dumps, {
        "kind": "pilot-run",
        "config": {"name": ADAPTER_RUN, **ADAPTER_CONFIG},
        "params": {**params(run, ADAPTER_CONFIG), "adapters": adapter_params(ad)},
        "layers": {**layer_meta, "ip_adapter_index": ad.ip_index},
        "schedule": run_schedule(run, ADAPTER_CONFIG, timesteps),
        "entries": run.entries,
        "degenerate_masks": DEGENERATE_NOTE,
        "tolerances": {"suggested": SUGGESTED,
                       "measured_float32_vs_float64": precision[ADAPTER_RUN],
                       "adapter_sensitivity_float64": r64["adapter_sensitivity"],
                       "reasoning": TOLERANCE_NOTE_ADAPTERS},
        "versions": ADAPTER_VERSIONS,
        "notes": ADAPTER_CONFIG["desc"] + ". " + ALGORITHM_NOTE + " " + ADAPTER_NOTE,
    })
    et, info = edge_cases()
    files["masks_edge_cases"] = (et, {
        "kind": "pilot-masks",
        "params": {"coef": PARAMS["coef"], "coef_divisor": PARAMS["coef_divisor"],
                   "levels": "F at latent/1, /2, /4, /8",
                   "K_rule": "K[i, j] = 1 - pixel_mask[8i, 8j] (nearest)",
                   "F_rule": "bilinear(1 - K, size, align_corners False, no antialias), values < 1 "
                             "set to 0. For a power-of-two ratio r every output cell is the mean "
                             "of the 2x2 latent cells at rows r*i + r/2 - 1, r*i + r/2 (and the "
                             "same columns), so a cell is hole only if those four are."},
        "cases": info,
        "degenerate_masks": DEGENERATE_NOTE,
        "versions": VERSIONS,
        "notes": "Edge-case masks: pixel masks (1 = inpaint) are the union of hole_rects "
                 "[y0, y1, x0, x1) over an image_size [H, W] zero mask; <case>.K [1,1,h,w], "
                 "<case>.F.<rows> for the 4 levels, <case>.C = coef * keep_cells / 1499.",
    })
    return files


SUGGESTED = {"losses_rel": 1e-4, "grad_rel": 1e-4, "grad_sc_rel": 1e-3, "x_after_rel": 1e-3,
             "final_latent_rel": 2e-3}

ALGORITHM_NOTE = (
    "Per step i (t): blend if t < 1000(1-gamma): x <- (1-K)x + K(sqrt(a_t) z_src + "
    "sqrt(1-a_t) blend_noise.i); optimise if i % 5 == 0 and t >= 1000(1-gamma): m = 0, then 3x "
    "{conditional UNet pass (batch 1, SBC as configured) capturing attn2 probabilities before "
    "SBC; z0 = (x - sqrt(1-a_t) eps_c)/sqrt(a_t); L = L_bg + lambda(t) L_sc; g = dL/dx; "
    "m <- 0.7 m - eta g; x <- x + m}; then CFG pass on [x, x] with [negative, prompt] "
    "(SBC on both halves when on), eps = eps_u + 7.5 (eps_c - eps_u), DDIM eta 0 step to "
    "t - 50 (a_prev = a_0 past the end). a_t = diffusers' float32 alphas_cumprod[t] in "
    "float64 arithmetic; timestep embedding angles in float64.")

TOLERANCE_NOTE = (
    "The stored values are a float64 computation rounded to float32. "
    "measured_float32_vs_float64 is this same script run in float32 (models and inputs "
    "float32, sqrt(a_t) in float32, timestep-embedding angles in float64 then rounded, as the "
    "Swift port does) against the float64 truth: loss_bg / total |d|/|ref|; loss_sc_out / "
    "loss_sc_in max|d|/max|ref|; loss_sc and loss_sc_layers (differences out - in, which can "
    "be near 0) |d| / max(|out_l|, |in_l|) of that iteration; tensors max|d|/max|ref|. "
    "Suggested checks for a float32 port: losses 1e-4 (measured this way), grad 1e-4, "
    "grad_sc 1e-3, x_after 1e-3, final latent 2e-3. config_separation_float64 shows what "
    "those tolerances can see: with coef 150, lambda * dL_sc/dx is only ~3e-4 - 6e-4 of dL/dx "
    "and moves the trajectory by ~5e-4 relative (lambda0 vs gamma1), under the latent "
    "tolerances, so the L_sc path is checked through loss_sc*, grad_sc and grad (1e-4), not "
    "through the latents; SBC on/off moves everything by ~30%.")


ADAPTER_VERSIONS = {**VERSIONS, "pillow": PIL.__version__}

ADAPTER_NOTE = (
    "Adapters (Tests/Fixtures/adapters/), all active at every step: LoRA lora_kohya.safetensors "
    "x 1.0 merged into the UNet and text encoder before anything (W + scale (alpha/rank) "
    "up.down, each layer its own alpha; prompt and negative embeddings re-encoded with the "
    "merged text encoder and stored; the ControlNet is not touched). ControlNet controlnet/ "
    "with control image cond_image[0:1] of the adapter fixtures' inputs.safetensors (128x128 "
    "in [0, 1]), conditioning_scale 1.0: gradient pass ControlNet(x traced, t, prompt embeds, "
    "image) -> residuals added to the UNet's skip connections / mid block, gradients flow "
    "through the ControlNet; CFG pass ControlNet([x, x], t, [negative, prompt], [image, "
    "image]). The ControlNet's own attention is plain (no SBC, no IP tokens); its timestep "
    "angles are float64 like the UNet's. IP-Adapter ip_adapter.safetensors with "
    "image_encoder/, image ip_source_image (uint8) through CLIPImageProcessor "
    "(feature_extractor/), scale 0.6: in every UNet cross-attention layer "
    "out = to_out((A_text * M) V_text + 0.6 softmax(Q K_ip^T / sqrt(d)) V_ip) with to_out "
    "applied once ([ours]), K_ip/V_ip = to_k_ip/to_v_ip(image tokens), no SBC on the image "
    "branch; L_sc uses the text probabilities A_text (before SBC). Tokens: ip_image_tokens "
    "row 1 (cond) in the gradient pass; [row 0, row 1] in the CFG pass (row 0 = the zero "
    "image embedding through the projection, as diffusers).")

TOLERANCE_NOTE_ADAPTERS = (
    TOLERANCE_NOTE.split(" config_separation_float64")[0] + " adapter_sensitivity_float64 "
    "(float64) shows that each adapter matters: final_latent_rel_without.<adapter> is "
    "max|d|/max|ref| of the final latent when that adapter is left out (all: no adapters, "
    "which equals the plain gamma 0.8 run exactly); controlnet_gradient_path compares dL/dx "
    "(and dL_sc/dx) at the SAME latent with the ControlNet residuals detached (constants), "
    "and the final latent of a run whose gradient ignores the ControlNet path.")


def adapter_params(ad: AdapterSetup) -> dict:
    lora = ADAPTERS["lora"]
    cn = ADAPTERS["controlnet"]
    ip = ADAPTERS["ip_adapter"]
    return {
        "folder": "Tests/Fixtures/adapters",
        "lora": {
            "file": lora["file"], "format": "kohya/webui", "scale": lora["scale"],
            "merge": "W <- W + scale * (alpha / rank) * up.reshape(out, rank) @ "
                     "down.reshape(rank, -1), reshaped to W (per-layer alpha); biases untouched; "
                     "UNet and text encoder, before anything",
            "layers": [{"component": r["component"], "module": r["module"], "rank": r["rank"],
                        "alpha": r["alpha"], "weight_shape": list(ad.merged[
                            f"{r['component']}.{r['module']}.weight"].shape)}
                       for r in ad.lora_records],
            "stored": "lora.merged.<component>.<module>.weight; prompt_embeds, "
                      "negative_prompt_embeds from the merged text encoder"},
        "controlnet": {
            "folder": cn["folder"], "conditioning_scale": cn["scale"],
            "image": f"{cn['image']} of Tests/Fixtures/adapters/inputs.safetensors (NCHW, [0, 1])",
            "control_guidance_start": cn["guidance_start"],
            "control_guidance_end": cn["guidance_end"],
            "gradient_pass": "ControlNet(x, t, prompt_embeds, image) on the traced latent "
                             "(batch 1); residuals added to the UNet's 9 skip connections and "
                             "the mid-block output; dL/dx includes the ControlNet path",
            "cfg_pass": "ControlNet([x, x], t, [negative, prompt], [image, image])",
            "own_attention": "plain (no SBC, no IP-Adapter tokens)",
            "stored": "opt.0.iter.0.controlnet.down.0-8 / .mid: residuals of the first gradient "
                      "pass (x = x_T, t = 951)"},
        "ip_adapter": {
            "file": ip["file"], "image_encoder": ip["image_encoder"],
            "feature_extractor": ip["feature_extractor"], "scale": ip["scale"],
            "image": f"{ip['image']} of Tests/Fixtures/adapters/inputs.safetensors (uint8 values "
                     "as F32, HWC) as a uint8 array through CLIPImageProcessor",
            "tokens": int(ad.ip_tokens.shape[1]),
            "attention": "to_out((A_text * M) V_text + scale * softmax(Q K_ip^T / sqrt(d)) V_ip), "
                         "to_out once, scale honoured ([ours]); no SBC on the image branch; "
                         "L_sc from A_text before SBC",
            "gradient_pass": "ip_image_tokens[1:2] (conditional)",
            "cfg_pass": "ip_image_tokens (row 0 from the zero embedding, row 1 the image)",
            "index_rule": "ip_adapter.<i> -> the cross-attention layer at position i of "
                          "unet.attn_processors (layers.ip_adapter_index)"},
    }


def adapter_sensitivity(r64: dict) -> dict:
    """How much each adapter and the ControlNet gradient path move the adapters run (float64)."""
    args = (r64["models"], r64["inputs"], r64["alphas"], r64["timesteps"], r64["loss_layers"])
    ref = r64["runs"][ADAPTER_RUN].dumps
    rel = sdfx.rel_err
    out: dict = {"final_latent_rel_without": {}, "x_after_rel_without": {},
                 "grad_opt0_rel_without": {}}
    variants = {"lora": {"lora": False}, "controlnet": {"controlnet": False},
                "ip_adapter": {"ip": False},
                "all": {"lora": False, "controlnet": False, "ip": False}}
    runs = {}
    for label, flags in variants.items():
        run, _ = run_adapters(*args, **flags)
        d = runs[label] = run.dumps
        out["final_latent_rel_without"][label] = rel(d["final_latent"], ref["final_latent"])
        out["x_after_rel_without"][label] = [rel(d[k], ref[k]) for k in sorted(ref)
                                             if k.endswith(".x_after")]
        out["grad_opt0_rel_without"][label] = rel(d["opt.0.iter.0.grad"], ref["opt.0.iter.0.grad"])
    plain = pilot(r64["models"], r64["control"], r64["inputs"], r64["alphas"], r64["timesteps"],
                  r64["loss_layers"], ADAPTER_CONFIG["gamma"], ADAPTER_CONFIG["sbc"],
                  ADAPTER_CONFIG["lambda_zero"])
    out["without_all_equals_plain_run"] = all(torch.equal(v, runs["all"][k])
                                              for k, v in plain.dumps.items())
    probe, _ = run_adapters(*args, probe_detached=True)
    detached, _ = run_adapters(*args, always_detached=True)
    out["controlnet_gradient_path"] = {
        "grad_rel_detached_same_x": [rel(probe.probe[k]["grad"], ref[f"opt.{k}.iter.0.grad"])
                                     for k in sorted(probe.probe)],
        "grad_sc_rel_detached_same_x": [rel(probe.probe[k]["grad_sc"],
                                            ref[f"opt.{k}.iter.0.grad_sc"])
                                        for k in sorted(probe.probe)],
        "x_after_rel_detached_run": [rel(detached.dumps[k], ref[k]) for k in sorted(ref)
                                     if k.endswith(".x_after")],
        "final_latent_rel_detached_run": rel(detached.final, ref["final_latent"]),
        "probe_leaves_run_unchanged": all(torch.equal(v, ref[k]) for k, v in probe.dumps.items())}
    out["lora_prompt_embeds_rel"] = rel(ref["prompt_embeds"], r64["inputs"].prompt_embeds)
    return out


def compute_sdxl_pair(tmp: Path) -> tuple[dict, dict]:
    """The SDXL run in float64 (with its added-conditioning sensitivity runs) and in float32."""
    s64 = compute_sdxl(tmp, torch.float64)
    s64["sensitivity"] = sdxl_sensitivity(s64)
    return s64, compute_sdxl(tmp, torch.float32)


def generate(out: Path, rewrite: bool = False) -> None:
    """Recompute every file and write it, except (unless rewrite) a file already there whose
    content is equivalent to the recomputation (equivalent_file): float64 sums and the float32
    rerun differ in their last digits between machines (CPU / MKL code paths), which would
    otherwise rewrite the metadata of every file on every machine."""
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        r64 = compute_all(tmp, torch.float64)
        r64["adapter_sensitivity"] = adapter_sensitivity(r64)
        r32 = compute_all(tmp, torch.float32)
        precision = compare_precisions(r64, r32)
        files = build_files(r64, precision)
        files[VPRED_RUN] = vpred_file(compute_vpred(tmp, torch.float64), compute_vpred(tmp, torch.float32))
        files[SDXL_RUN] = sdxl_file(*compute_sdxl_pair(tmp))
    out.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.safetensors" for name in files}
    for p in sorted(out.iterdir()):
        if p.name not in wanted:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    kept, written = [], []
    for name, (tensors, meta) in files.items():
        path = out / f"{name}.safetensors"
        if not rewrite and path.exists() and equivalent_file(path, tensors, meta):
            kept.append(name)
            continue
        write_file(path, tensors, meta)
        written.append(name)
    print_summary(r64, precision)
    print("written:", ", ".join(written) or "none")
    print("kept (equivalent to the recomputation):", ", ".join(kept) or "none")


def equivalent_json(a, b, loose: bool = False) -> bool:
    """same_json, for the `tolerances` metadata (loose): float64-derived numbers to 1e-9
    relative, and measured_float32_vs_float64 (measurements of float32 rounding, which move
    by tens of percent with the summation order) within a factor of 10."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(
            equivalent_json(a[k], b[k], loose if k != "measured_float32_vs_float64" else "f32")
            for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equivalent_json(x, y, loose) for x, y in zip(a, b))
    if (isinstance(a, float) or isinstance(b, float)) and loose:
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return False
        if loose == "f32":
            return abs(a - b) <= 0.9 * max(abs(a), abs(b))
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)
    return same_json(a, b)


def equivalent_file(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> bool:
    """The stored file says what the recomputation says: same tensors (names, shapes, values
    within one float32 ulp), same metadata keys, every metadata value but `tolerances` as
    --check compares it (same_json), `tolerances` by equivalent_json."""
    try:
        with safetensors.safe_open(str(path), "numpy") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}
            smeta = f.metadata() or {}
    except Exception:  # noqa: BLE001  (unreadable: rewrite it)
        return False
    if set(stored) != set(tensors) or set(smeta) != set(meta):
        return False
    for k, v in tensors.items():
        new = v.detach().to(torch.float64).numpy().astype(np.float32)
        old = stored[k]
        if old.dtype != np.float32 or old.shape != new.shape:
            return False
        if not np.all(np.abs(old - new) <= np.spacing(np.maximum(np.abs(old), np.abs(new)))):
            return False
    for k, v in meta.items():
        if isinstance(v, str):
            if smeta[k] != v:
                return False
        elif not equivalent_json(json.loads(smeta[k]), json.loads(json.dumps(v)),
                                 loose=(k == "tolerances")):
            return False
    return True


def print_summary(r64: dict, precision: dict) -> None:
    print("loss layers:", ", ".join(r64["loss_layers"]))
    for name in RUN_NAMES:
        run = r64["runs"][name]
        print(f"{name}: C = {run.C:.6f}")
        for s in run.opt_steps:
            for j, it in enumerate(s["iters"]):
                print(f"  opt {s['k']} (i={s['i']:2d}, t={s['t']:3d}) iter {j}: "
                      f"L_bg {it['loss_bg']:.9g}  L_sc {it['loss_sc']:+.9g}  lambda "
                      f"{s['lambda']:.6g}  eta {s['eta']:.6g}  L {it['total']:.9g}")
    print("float32 vs float64:")
    print(json.dumps(precision, indent=1))
    print("configuration separation (float64):")
    print(json.dumps(separation(r64), indent=1))
    print("adapter sensitivity (float64):")
    print(json.dumps(r64["adapter_sensitivity"], indent=1))


def report_sizes(out: Path) -> int:
    total = 0
    for p in sorted(out.glob("*")):
        total += p.stat().st_size
        print(f"{p.stat().st_size:>10,d}  {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"{total:>10,d}  total")
    return total


def sanity_checks(r64: dict, expect) -> None:
    """Independent checks of the building blocks against diffusers."""
    m, control, inp = r64["models"], r64["control"], r64["inputs"]
    alphas, timesteps = r64["alphas"], r64["timesteps"]
    dt = m.dtype
    x = inp.x_T.to(dt)
    emb = torch.cat([inp.negative_embeds, inp.prompt_embeds]).to(dt)
    tt = torch.tensor([701.0, 701.0], dtype=dt)
    # 1. our processor without SBC == diffusers' own attention processors
    with torch.no_grad():
        control.sbc = False
        ours = m.unet(torch.cat([x, x]), tt, encoder_hidden_states=emb).sample
        procs = m.unet.attn_processors
        m.unet.set_attn_processor(AttnProcessor())
        theirs = m.unet(torch.cat([x, x]), tt, encoder_hidden_states=emb).sample
        m.unet.set_attn_processor(procs)
    e = sdfx.rel_err(ours, theirs)
    expect(e < 1e-12, f"cross-attention processor without SBC == diffusers AttnProcessor "
           f"(float64, rel {e:.2e})")
    # 2. SBC with a mask of ones is the identity; with the real mask it changes the output
    with torch.no_grad():
        saved = control.masks
        control.masks = {n: torch.ones_like(f) for n, f in saved.items()}
        control.sbc = True
        ones = m.unet(torch.cat([x, x]), tt, encoder_hidden_states=emb).sample
        control.masks = saved
        masked = m.unet(torch.cat([x, x]), tt, encoder_hidden_states=emb).sample
        control.sbc = False
    expect(torch.equal(ones, ours), "SBC with F = 1 everywhere leaves the UNet output unchanged")
    expect(sdfx.rel_err(masked, ours) > 1e-3,
           f"SBC with the fixture mask changes the UNet output (rel {sdfx.rel_err(masked, ours):.3g})")
    # 3. DDIM step and one-step reconstruction == diffusers' DDIMScheduler
    sched = DDIMScheduler.from_config(
        json.loads((MODEL_FOLDER / "scheduler" / "scheduler_config.json").read_text()))
    sched.set_timesteps(PARAMS["steps"])
    expect([int(t) for t in sched.timesteps] == list(range(951, 0, -50)),
           f"DDIM timesteps 951, 901, ..., 1 ({len(timesteps)})")
    eps = torch.from_numpy(sdfx.detrand([1, 4, 16, 16], 9001)).double()
    worst = 0.0
    for t in (951, 451, 1):
        o = sched.step(eps.float(), t, x.float())
        a = alphas[t].double()
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        ap = alphas[t - 50].double() if t - 50 >= 0 else alphas[0].double()
        prev = ap.sqrt() * x0 + (1 - ap).sqrt() * eps
        worst = max(worst, sdfx.rel_err(prev, o.prev_sample), sdfx.rel_err(x0, o.pred_original_sample))
    expect(worst < 1e-5, f"DDIM step / z0_hat agree with DDIMScheduler.step (float32 there, rel {worst:.2e})")
    # 4. masks: F_16 = 1 - K; F_s binary; T = the 6 word tokens
    F16, F8, F4 = inp.F
    expect(torch.equal(F16, 1 - inp.K), "F.16 == 1 - K")
    expect(all(bool(((f == 0) | (f == 1)).all()) for f in inp.F), "every F_s is binary")
    expect(all(not bool((f == 0).all()) and not bool((f == 1).all()) for f in inp.F),
           "the fixture mask is non-degenerate at 16, 8 and 4 (every loss layer contributes)")
    expect(inp.tokens == [1, 2, 3, 4, 5, 6], f"word tokens T = {inp.tokens}")
    # 5. the time embedding in float64 == diffusers' within its float32 rounding
    from diffusers.models.embeddings import get_timestep_embedding
    tp = m.unet.time_proj
    ref = get_timestep_embedding(torch.tensor([951.0, 1.0]), tp.num_channels, tp.flip_sin_to_cos,
                                 tp.shift)
    diff = float((tp(torch.tensor([951.0, 1.0])).double() - ref.double()).abs().max())
    expect(diff < 1e-4, f"float64 timestep embedding == diffusers' float32 one (max |d| {diff:.2e})")
    # 6. the layer rule
    names = [l["name"] for l in r64["layers"]]
    want = [f"down_blocks.1.attentions.{j}.transformer_blocks.0.attn2" for j in range(2)] + \
           ["mid_block.attentions.0.transformer_blocks.0.attn2"] + \
           [f"up_blocks.1.attentions.{j}.transformer_blocks.0.attn2" for j in range(3)]
    expect(len(names) == 11 and r64["loss_layers"] == want,
           f"11 cross-attention layers, loss layers = the 6 below 16x16: {r64['loss_layers']}")
    # 7. degenerate masks behave as documented (short runs, no recording)
    for label, K in (("all keep", torch.ones_like(inp.K)), ("all hole", torch.zeros_like(inp.K))):
        run = pilot(m, control, inp, alphas, timesteps, r64["loss_layers"], 1.0, True, False,
                    K=K, record=False)
        its = [it for s in run.opt_steps for it in s["iters"]]
        if label == "all keep":
            ok = len(its) == 4 * PARAMS["inner_steps"] and all(it["loss_sc"] == 0 for it in its)
            expect(ok and math.isfinite(float(run.final.abs().max())),
                   f"{label}: optimisation runs on L_bg alone (L_sc = 0 in all {len(its)} iterations)")
        else:
            plain_run = pilot(m, control, inp, alphas, timesteps, r64["loss_layers"], 1.0, False,
                              False, K=K, record=False)
            expect(not its and torch.equal(run.final, plain_run.final),
                   f"{label}: no optimisation iterations, no SBC (C = {run.C})")


def adapter_sanity_checks(r64: dict, expect) -> None:
    """The adapter pieces against the adapter fixtures (Tests/Fixtures/adapters/, PyTorch
    float32 results of diffusers / transformers) and the fixtures' own LoRA merge."""
    import make_adapter_fixtures as adfx  # diffusers pipelines, peft: only for the checks
    m, inp, ad = r64["models"], r64["inputs"], r64["adapter_setup"]
    dt = m.dtype
    ref = {}
    for f in ("inputs", "controlnet_reference", "ip_adapter_reference"):
        with safetensors.safe_open(str(ADAPTER_FOLDER / f"{f}.safetensors"), "pt") as h:
            ref.update({k: h.get_tensor(k) for k in h.keys()})
            if f == "ip_adapter_reference":
                ip_layers = json.loads(h.metadata()["layers"])["cross_attention_layers"]
    # LoRA: own kohya reader + merge == the adapter fixtures' (kohya only, scale 1)
    base = type("Base", (), {"unet": m.unet, "text": m.text})()
    theirs = adfx.lora_merge(base, adfx.read_kohya(ADAPTER_FOLDER / ADAPTERS["lora"]["file"], base),
                             {"kohya": 1.0})
    same = set(theirs) == set(ad.merged) and all(torch.equal(theirs[k], ad.merged[k])
                                                  for k in theirs)
    expect(same and len(ad.merged) == 10,
           f"LoRA merge == make_adapter_fixtures.lora_merge (kohya x 1.0, {len(ad.merged)} layers)")
    untouched = True
    for comp, mine, orig in (("unet", ad.models.unet, m.unet), ("text_encoder", ad.models.text, m.text)):
        o = orig.state_dict()
        for k, v in mine.state_dict().items():
            if f"{comp}.{k}" in ad.merged:
                untouched &= torch.equal(v, ad.merged[f"{comp}.{k}"].to(dt))
            else:
                untouched &= torch.equal(v, o[k])
    expect(untouched, "merged weights in place, every other UNet / text-encoder weight unchanged")
    # IP-Adapter: index rule, preprocessing, encoder, projection
    expect(ad.ip_index == {l["module"]: l["ip_index"] for l in ip_layers},
           f"ip_adapter.<i> -> layer as in ip_adapter_reference `layers`: {sorted(ad.ip_index.values())}")
    expect(torch.equal(ad.pixel_values, ref["ip.pixel_values"]),
           "CLIPImageProcessor(ip_source_image) == ip.pixel_values (exact)")
    e1 = sdfx.rel_err(ad.ip_embeds, ref["ip.image_embeds"])
    e2 = sdfx.rel_err(ad.ip_tokens, ref["ip.image_tokens"])
    expect(e1 < 1e-5 and e2 < 1e-5, f"image embeds / tokens == ip.image_embeds / ip.image_tokens "
           f"(diffusers, float32): {e1:.2g}, {e2:.2g}")
    # IP processor (no LoRA, no SBC) == diffusers' UNet with the IP-Adapter (ip.unet_out)
    ip_only = AdapterSetup(m, inp, lora=False, controlnet=False, ip=True)
    x, ctx = ref["latents"].to(dt), ref["context"].to(dt)
    tt = ref["timestep"].to(dt)
    with torch.no_grad():
        ip_only.control.sbc, ip_only.control.ip_tokens = False, ip_only.ip_tokens
        out = ip_only.models.unet(x, tt, encoder_hidden_states=ctx).sample
    e = sdfx.rel_err(out, ref["ip.unet_out"])
    expect(e < 1e-5, f"IP processor (to_out once, scale 0.6) == diffusers ip.unet_out: {e:.2g}")
    # ControlNet call (timestep angles in float64) == diffusers controlnet.unet_out (scale 0.8)
    cn_only = AdapterSetup(m, inp, lora=False, controlnet=True, ip=False)
    with torch.no_grad():
        cn_only.control.sbc = False
        down, mid = cn_only.cn(x, tt, encoder_hidden_states=ctx,
                               controlnet_cond=ref["cond_image"].to(dt), conditioning_scale=0.8,
                               return_dict=False)
        out = cn_only.models.unet(x, tt, encoder_hidden_states=ctx,
                                  down_block_additional_residuals=list(down),
                                  mid_block_additional_residual=mid).sample
    e = sdfx.rel_err(out, ref["controlnet.unet_out"])
    e_res = max(sdfx.rel_err(r, ref[f"controlnet.down_residual.{j}"]) for j, r in enumerate(down))
    expect(e < 1e-5 and e_res < 1e-5, f"ControlNet residuals / UNet with them == diffusers "
           f"controlnet.* (scale 0.8): {e_res:.2g}, {e:.2g}")
    # the stored residuals are the ControlNet at x_T, t 951, prompt embeds, the control image
    with torch.no_grad():
        down, mid = ad.cn(inp.x_T.to(dt), torch.tensor([951.0], dtype=dt),
                          encoder_hidden_states=ad.prompt_embeds, controlnet_cond=ad.control_image,
                          conditioning_scale=1.0, return_dict=False)
    d = r64["runs"][ADAPTER_RUN].dumps
    ok = all(torch.equal(r, d[f"opt.0.iter.0.controlnet.down.{j}"]) for j, r in enumerate(down))
    expect(ok and torch.equal(mid, d["opt.0.iter.0.controlnet.mid"]),
           "opt.0.iter.0.controlnet.* == ControlNet(x_T, 951, LoRA prompt embeds, cond_image[0:1])")


def same_json(a, b) -> bool:
    """Equal JSON values, floats within 1e-12 relative."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


def check(out: Path) -> int:
    expect = sdfx.Expect()
    expect.size(report_sizes(out), SIZE_LIMIT, "folder")
    for file, limit in ((ADAPTER_RUN, ADAPTER_SIZE_LIMIT), (SDXL_RUN, SDXL_SIZE_LIMIT)):
        expect.size((out / f"{file}.safetensors").stat().st_size, limit, f"{file}.safetensors")
    names = ["inputs", *RUN_NAMES, "masks_edge_cases", VPRED_RUN, SDXL_RUN]
    expect(sorted(p.stem for p in out.glob("*.safetensors")) == sorted(names),
           f"files: {', '.join(names)}")
    stored, metas = {}, {}
    for n in names:
        path = out / f"{n}.safetensors"
        sdfx.strict_safetensors_header(path.read_bytes())
        metas[n], stored[n], dtypes = sdfx.read_safetensors(path)
        expect(set(dtypes.values()) == {"F32"}, f"{n}: all tensors F32, strict JSON metadata")
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        r64 = compute_all(tmp, torch.float64)
        print("sanity")
        sanity_checks(r64, expect)
        print("adapters")
        adapter_sanity_checks(r64, expect)
        r64["adapter_sensitivity"] = sens = adapter_sensitivity(r64)
        without = sens["final_latent_rel_without"]
        expect(min(without.values()) > 0.05,
               "leaving out any adapter moves the final latent by > 5%: " +
               ", ".join(f"{k} {v:.3g}" for k, v in without.items()))
        expect(sens["without_all_equals_plain_run"],
               "adapters run with every adapter left out == the plain gamma 0.8 run (bitwise)")
        cgp = sens["controlnet_gradient_path"]
        expect(min(cgp["grad_rel_detached_same_x"]) > 1e-2 and cgp["probe_leaves_run_unchanged"],
               "dL/dx goes through the ControlNet: detaching its residuals changes grad at the "
               "same x by " + ", ".join(f"{v:.3g}" for v in cgp["grad_rel_detached_same_x"]) +
               f"; final latent of a run without that path moves by "
               f"{cgp['final_latent_rel_detached_run']:.3g}")
        r32 = compute_all(tmp, torch.float32)
        precision = compare_precisions(r64, r32)
        files = build_files(r64, precision)
        v64 = compute_vpred(tmp, torch.float64)
        files[VPRED_RUN] = vpred_file(v64, compute_vpred(tmp, torch.float32))
        print("v-prediction")
        vmeta = files[VPRED_RUN][1]
        misread = vmeta["tolerances"]["epsilon_misreading_final_latent_rel"]
        expect(misread > 10 * SUGGESTED["final_latent_rel"],
               f"reading the v output as eps moves the final latent by {misread:.3g} "
               f"(> 10x the {SUGGESTED['final_latent_rel']} tolerance)")
        expect(len(v64["run"].opt_steps) == 2 and len(v64["loss_layers"]) > 0,
               f"v-prediction run optimises twice (t >= 500) with {len(v64['loss_layers'])} loss layers")
        precision[VPRED_RUN] = vmeta["tolerances"]["measured_float32_vs_float64"]
        print("SDXL")
        s64, s32 = compute_sdxl_pair(tmp)
        sdxl_sanity_checks(s64, expect)
        files[SDXL_RUN] = sdxl_file(s64, s32)
        sens = s64["sensitivity"]
        expect(min(v["final_latent_rel"] for v in sens.values()) > 10 * SUGGESTED["final_latent_rel"],
               "each added-conditioning mistake moves the final latent by > 10x its tolerance: "
               + ", ".join(f"{k} {v['final_latent_rel']:.3g}" for k, v in sens.items()))
        g = [sens[k]["grad_opt0_rel"] for k in ("time_ids_1024", "gradient_pass_zero_pooled")]
        expect(min(g) > 100 * SUGGESTED["grad_rel"],
               "time ids / pooled embeds of the gradient pass move opt.0.iter.0.grad by "
               + ", ".join(f"{v:.3g}" for v in g) + " (> 100x its tolerance)")
        precision[SDXL_RUN] = files[SDXL_RUN][1]["tolerances"]["measured_float32_vs_float64"]
    print("recomputed vs committed")
    for n in names:
        tensors, meta = files[n]
        entries_ok = True
        if "entries" in meta:
            entries_ok = set(json.loads(metas[n]["entries"])) == set(stored[n])
        expect(set(tensors) == set(stored[n]) and entries_ok,
               f"{n}: same {len(stored[n])} tensors (and entries)")
        worst, wname = sdfx.worst_rel_err(stored[n], {
            k: v.to(torch.float64).numpy().astype(np.float32) for k, v in tensors.items()})
        expect(worst <= CHECK_TOL, f"{n}: max rel diff {worst:.3g} {wname}")
        same_meta = all(k in metas[n] and same_json(json.loads(metas[n][k]) if not isinstance(v, str) else metas[n][k],
                                                    v) for k, v in meta.items() if k != "tolerances")
        expect(same_meta, f"{n}: metadata identical (tolerances excepted; floats to 1e-12 relative, "
               "as float64 sums differ in the last digit between machines)")
    for name in [*RUN_NAMES, VPRED_RUN, SDXL_RUN]:
        p = precision[name]
        tol = json.loads(metas[name]["tolerances"])["suggested"]
        ok = (p["losses_rel"] <= tol["losses_rel"] and max(p["x_after_rel"]) <= tol["x_after_rel"]
              and p["final_latent_rel"] <= tol["final_latent_rel"]
              and p["grad_rel"] <= tol["grad_rel"] and p["grad_sc_rel"] <= tol["grad_sc_rel"])
        expect(ok, f"{name}: float32 run within the suggested tolerances: losses "
               f"{p['losses_rel']:.2e}, grad {p['grad_rel']:.2e}, grad_sc {p['grad_sc_rel']:.2e}, "
               f"x_after {max(p['x_after_rel']):.2e}, final {p['final_latent_rel']:.2e}")
    print_summary(r64, precision)
    return expect.verdict()


def main() -> int:
    args = sdfx.parse_args(__doc__, DEFAULT_OUT, "recompute and compare only", {
        "--rewrite": "write every file, even one equivalent to the recomputation"})
    torch.use_deterministic_algorithms(True)
    if not args.check:
        generate(args.out, rewrite=args.rewrite)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
