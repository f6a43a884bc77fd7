#!/usr/bin/env python3
"""PyTorch peer for the CUDA backend: a UNet forward and a whole PILOT run on a
GPU, with diffusers and transformers, in float16 or float32, printed as one
JSON record (schema "pilot-bench-gpu/1").

    python3 Benchmarks/peers/gpu.py make-model DIR [--tiny] [--seed N] [--device cuda|cpu]
    python3 Benchmarks/peers/gpu.py unet  --model DIR [--precision fp16|fp32] [--reps N] [--warmup N] [--json]
    python3 Benchmarks/peers/gpu.py pilot --model DIR [--precision fp16|fp32] [--json]
                                    [--steps 100 --interval 10 --inner 10 --gamma 1 --size 512]
    (unet and pilot also take --device cuda|cpu, --size S, --seed N, --tf32 default|on|off)

make-model writes a random-weight SD 1.5-size diffusers folder (unet, vae,
text_encoder, scheduler, model_index.json; no controlnet, no tokenizer) with
the configs and init rule of Benchmarks/models/make_random_sd15.py, built on
the GPU when there is one (seconds instead of minutes) and saved as float32
safetensors. The values differ from make_random_sd15.py's (another random
stream); the shapes, and so the timings, do not. --tiny writes the same
architecture with narrow channels, for smoke tests on a CPU.

unet: UNet2DConditionModel with diffusers' default attention (AttnProcessor2_0,
scaled_dot_product_attention) on x [2,4,S/8,S/8], t = 500, context [2,77,768],
under torch.no_grad; warm-up calls, then N timed calls, each ended by
torch.cuda.synchronize(); the median wall time, the median of CUDA-event
times, and torch.cuda.max_memory_allocated.

pilot: the paper's text configuration (/work/shared/PILOT.md; defaults:
100 DDIM steps, tau 10, K_opt 10, gamma 1, lr_warmup 0.007, lr 0.025, coef 150,
momentum 0.7, CFG 7.5, empty negative prompt) on a random SxS image with a
centred square hole of half the side, the prompt as token ids (models.py's
"a red fox in the snow"; no tokenizer). The algorithm is
Tests/Reference/pilot_reference.py's `pilot()` (L_bg + lambda(t) L_sc on the
11 cross-attention layers below full resolution, heavy-ball SGD on the latent,
SBC in every cross-attention layer and pass, blend stage below
1000(1 - gamma), DDIM eta 0), written here device- and dtype-generic: that file
imports make_sd_fixtures (transformers 4.x only: its slow CLIP tokenizer),
builds CPU tensors and runs float64 with one backward per loss term for its
dumps. Run in float64 on a tiny model, the two agree to 1e-14 (final latent,
losses; gamma 1 and 0.5). z_src is the posterior mean ([ours]). One timed run
(text encoder, VAE encode, the sampler, VAE decode) after a warm-up of each
piece; phases from CUDA events.

On a CPU (--device cpu, a --tiny model, e.g. --size 64 --steps 4 --interval 2
--inner 2) both commands run in seconds, in fp32 or fp16. On a random-weight
model the text barely moves eps, so CFG 7.5 amplifies rounding: compare fp16
and fp32 runs by time, not by image.

Precision. The models run in --precision (weights and activations). The latent
x, the momentum, the DDIM arithmetic and both losses are float32: x is cast to
the model dtype at the UNet's input (the gradient flows back through the cast),
eps and the attention probabilities are widened before the loss. With fp16
weights the authors' pipeline keeps x in fp16 too, but its sum-reduced L_bg
overflows fp16 (> 65504) on a random-weight model (z0_hat ~ x/sqrt(abar_t)
~ 15 at t = 991); the float32 losses keep every value finite for either model.
Self-attention keeps diffusers' default (SDPA); cross-attention goes through
models.py's PILOT processor (explicit softmax, captured for L_sc, SBC mask),
in every pass, as in models.py.

Reuses Benchmarks/peers/models.py (prompt ids, masks, the PILOT attention
processor, lambda(t)) and Benchmarks/models/make_random_sd15.py (configs, the
init rule). Needs torch, diffusers (0.39.0 tested) and transformers (5.x);
scripts/gpu-wheels.sh fetches the wheels a machine with torch and transformers
lacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import safetensors.torch  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "Benchmarks" / "models"))
import make_random_sd15 as sd15  # noqa: E402  (configs, randomise)
import models as peer  # noqa: E402  (prompt ids, masks, PILOT attention processor, lambda_t)
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards"

SCHEMA = "pilot-bench-gpu/1"
DTYPES = {"fp16": torch.float16, "fp32": torch.float32}

# The paper's text configuration (PILOT.md, "Defaults of the reference
# configurations"; PILOTParameters' defaults in Swift).
TEXT_CONFIG = {"steps": 100, "interval": 10, "inner": 10, "gamma": 1.0, "lr_warmup": 0.007, "lr": 0.025,
               "coef": 150.0, "coef_divisor": 1499.0, "momentum": 0.7, "guidance_scale": 7.5, "size": 512}

# --tiny: the SD 1.5 architecture (four levels, 16 cross-attention layers, 11
# of them below full resolution) with narrow channels; 8 groups in each
# GroupNorm, so that a group still has several values at a 1x1 bottom level.
TINY_UNET = {**sd15.UNET_CONFIG, "block_out_channels": [32, 64, 64, 64], "cross_attention_dim": 32,
             "norm_num_groups": 8, "sample_size": 8}
TINY_VAE = {**sd15.VAE_CONFIG, "block_out_channels": [32, 32, 64, 64], "layers_per_block": 1,
            "norm_num_groups": 8, "sample_size": 64}
TINY_TEXT = {**sd15.TEXT_CONFIG, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
             "num_hidden_layers": 2, "projection_dim": 32}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pick_device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Marks on the device's timeline: CUDA events on a GPU (no synchronisation
    until they are read), the wall clock on a CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def seconds(self, a, b) -> float:
        return a.elapsed_time(b) / 1e3 if self.cuda else b - a


# --------------------------------------------------------------------------- make-model


def build(tiny: bool, seed: int, device: torch.device):
    """UNet, VAE and text encoder built on `device` (default init there, then
    make_random_sd15.randomise with a generator on that device)."""
    unet_cfg, vae_cfg, text_cfg = ((TINY_UNET, TINY_VAE, TINY_TEXT) if tiny
                                   else (sd15.UNET_CONFIG, sd15.VAE_CONFIG, sd15.TEXT_CONFIG))
    generator = torch.Generator(device).manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**unet_cfg)
        sd15.randomise(unet, generator)
        vae = AutoencoderKL(**vae_cfg)
        sd15.randomise(vae, generator)
        text = CLIPTextModel(CLIPTextConfig(**text_cfg))
        sd15.randomise(text, generator)
    return unet.eval(), vae.eval(), text.eval()


@torch.no_grad()
def check_finite(unet, vae, text, device: torch.device) -> None:
    """make_random_sd15.check_finite's passes (16x16 latent, 128x128 image, 77
    ids) on the device: finite and not all zero."""
    g = torch.Generator(device).manual_seed(1)
    ids = torch.randint(0, text.config.vocab_size, (1, 77), generator=g, device=device)
    ctx = text(ids).last_hidden_state
    eps = unet(torch.randn(1, 4, 16, 16, generator=g, device=device), torch.tensor([500.0], device=device),
               encoder_hidden_states=ctx).sample
    image = vae.decode(torch.randn(1, 4, 16, 16, generator=g, device=device)).sample
    latent = vae.encode(torch.rand(1, 3, 128, 128, generator=g, device=device) * 2 - 1).latent_dist.mean
    for name, t in [("text", ctx), ("unet", eps), ("vae_decode", image), ("vae_encode", latent)]:
        if not torch.isfinite(t).all() or float(t.abs().max()) == 0:
            raise SystemExit(f"gpu.py make-model: {name} output is not finite or all zero")
        log(f"  {name:<10} {list(t.shape)} std {float(t.std()):.3g} max|x| {float(t.abs().max()):.3g}")


def write_folder(out: Path, seed: int, tiny: bool, unet, vae, text) -> None:
    """The diffusers folder, written beside OUT and renamed into place (make_random_sd15.write),
    readable by everyone like a folder made with mkdir."""
    kind = "tiny (SD 1.5 architecture, narrow channels)" if tiny else "SD 1.5-size"
    sd15.write(out, seed, unet, vae, text, readme=(
        f"Random-weight {kind} components for PILOT-Swift's GPU benchmarks.\n"
        f"Written by Benchmarks/peers/gpu.py make-model (seed {seed}); not a usable model.\n"))
    out.chmod(0o755)


def cmd_make_model(args) -> int:
    out = args.dir.resolve()
    if out == REPO or REPO in out.parents:
        raise SystemExit(f"gpu.py make-model: {out} is inside the repository; write the weights outside it")
    device = pick_device(args.device)
    start = time.perf_counter()
    log(f"building random {'tiny' if args.tiny else 'SD 1.5-size'} components on {device} (seed {args.seed})...")
    unet, vae, text = build(args.tiny, args.seed, device)
    for name, m in [("unet", unet), ("vae", vae), ("text_encoder", text)]:
        log(f"  {name:<12} {sum(p.numel() for p in m.parameters()) / 1e6:8.1f} M parameters")
    check_finite(unet, vae, text, device)
    sync(device)
    built = time.perf_counter()
    log(f"writing {out}...")
    for m in (unet, vae, text):
        m.to("cpu")  # whatever safetensors version saves them
    write_folder(out, args.seed, args.tiny, unet, vae, text)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    end = time.perf_counter()
    log(f"done: {total / 2**30:.2f} GiB in {end - start:.1f} s "
        f"(build {built - start:.1f} s, write {end - built:.1f} s)")
    return 0


# --------------------------------------------------------------------------- shared


def load_weights(model: torch.nn.Module, folder: Path, device: torch.device) -> None:
    """The folder's one .safetensors file, read straight onto the device, strictly."""
    (path,) = folder.glob("*.safetensors")
    model.load_state_dict(safetensors.torch.load_file(path, device=str(device)), strict=True)


class Components:
    """The folder's UNet, VAE, text encoder (frozen, eval, in `dtype` on
    `device`; the UNet alone with unet_only) and DDIM scheduler. Each model is
    built from its config on the device and its safetensors file read there:
    the same modules and weights as from_pretrained, without its CPU init pass
    and copy (no accelerate)."""

    def __init__(self, folder: str, device: torch.device, dtype: torch.dtype, unet_only: bool = False):
        root = Path(folder)
        self.vae = self.text = None
        with torch.device(device):
            self.unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
            if not unet_only:
                self.vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
                self.text = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
        for m, sub in ((self.unet, "unet"), (self.vae, "vae"), (self.text, "text_encoder")):
            if m is not None:
                load_weights(m, root / sub, device)
                m.to(dtype=dtype).eval().requires_grad_(False)
        self.scheduler = DDIMScheduler.from_pretrained(root / "scheduler")


def environment(device: torch.device, precision: str) -> dict:
    import diffusers
    import transformers
    env = {"device": str(device), "precision": precision, "torch": torch.__version__,
           "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    if device.type == "cuda":
        env.update({"device_name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
                    "float32_matmul_precision": torch.get_float32_matmul_precision(), **tf32_state()})
    else:
        env.update({"device_name": "cpu", "threads": torch.get_num_threads()})
    return env


def processors(unet) -> dict:
    """Attention processor class -> count, self- and cross-attention apart."""
    out: dict[str, int] = {}
    for name, proc in unet.attn_processors.items():
        key = ("attn2 " if name.endswith("attn2.processor") else "attn1 ") + type(proc).__name__
        out[key] = out.get(key, 0) + 1
    return out


def memory(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return {"peak_allocated_bytes": torch.cuda.max_memory_allocated(device),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(device)}


def emit(record: dict, as_json: bool, line: str) -> None:
    print(json.dumps(record, indent=2) if as_json else line)


def new_tf32_api() -> bool:
    """torch >= 2.9's fp32_precision flags (mixing them with allow_tf32 raises)."""
    return hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision")


def tf32_state() -> dict:
    if new_tf32_api():
        return {"matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
                "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision}
    return {"matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


def apply_tf32(flag: str) -> None:
    """--tf32 on|off: TF32 for float32 matmuls and cuDNN convolutions, both."""
    if flag == "default":
        return
    if new_tf32_api():
        torch.backends.cuda.matmul.fp32_precision = "tf32" if flag == "on" else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if flag == "on" else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = flag == "on"


# --------------------------------------------------------------------------- unet


@torch.no_grad()
def cmd_unet(args) -> int:
    device, dtype = pick_device(args.device), DTYPES[args.precision]
    apply_tf32(args.tf32)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    m = Components(args.model, device, dtype, unet_only=True)
    sync(device)
    load_s = time.perf_counter() - start
    side = args.size // 8
    cross = m.unet.config.cross_attention_dim
    x = torch.randn(2, 4, side, side, device=device, dtype=dtype)
    ctx = torch.randn(2, 77, cross, device=device, dtype=dtype)
    t = torch.tensor([500.0, 500.0], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clock = Clock(device)
    for _ in range(args.warmup):
        m.unet(x, t, encoder_hidden_states=ctx).sample
    sync(device)
    wall, gpu = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        a = clock.mark()
        out = m.unet(x, t, encoder_hidden_states=ctx).sample
        b = clock.mark()
        sync(device)
        wall.append(time.perf_counter() - t0)
        gpu.append(clock.seconds(a, b))
    finite = bool(torch.isfinite(out).all())
    shape = f"x[2,4,{side},{side}] t=500 context[2,77,{cross}]"
    result = {"case": "unet", "shape": shape, "warmups": args.warmup, "reps": args.reps,
              "median_s": statistics.median(wall), "samples_s": wall,
              "device_median_s": statistics.median(gpu), "device_samples_s": gpu,
              "load_s": load_s, "output_finite": finite, "attention": processors(m.unet),
              "weights_bytes": sum(p.numel() * p.element_size() for p in m.unet.parameters()),
              **memory(device)}
    record = {"schema": SCHEMA, "implementation": "pytorch", "model": args.model,
              **environment(device, args.precision), "results": [result]}
    peak = result.get("peak_allocated_bytes")
    emit(record, args.json, f"unet {shape} {args.precision} on {record['device_name']}: "
         f"{result['median_s'] * 1e3:.2f} ms (median of {args.reps})"
         + (f", peak {peak / 2**30:.2f} GiB" if peak else ""))
    return 0 if finite else 1


# --------------------------------------------------------------------------- pilot


class Pilot:
    """pilot_reference.pilot() for the text configuration on one latent size,
    on any device and model dtype (see the module docstring, "Precision")."""

    def __init__(self, m: Components, side: int, cfg: dict, device: torch.device, dtype: torch.dtype):
        self.m, self.cfg, self.device, self.dtype = m, cfg, device, dtype
        # the latent, the DDIM arithmetic and the losses: float32 (float64 with a float64 model)
        self.ldtype = torch.float64 if dtype == torch.float64 else torch.float32
        k, hole = peer.masks(side)  # K [1,1,side,side] (1 = keep), F_s by query count (1 = hole)
        self.K = k.to(device, self.ldtype)
        self.hole = {n: f.to(device, self.ldtype) for n, f in hole.items()}    # for L_sc
        self.hole_count = {n: float(f.sum()) for n, f in hole.items()}         # read once, not per pass
        self.control = peer.PilotControl({n: f.to(device, dtype) for n, f in hole.items()}, side * side)
        peer.install(m.unet, self.control)  # attn2: PILOT processor (SBC, capture); attn1: SDPA
        self.words = torch.tensor(peer.WORD_TOKENS, device=device)
        self.C = cfg["coef"] * float(k.sum()) / cfg["coef_divisor"]
        sched = DDIMScheduler.from_config(m.scheduler.config)
        sched.set_timesteps(cfg["steps"])
        self.timesteps = [int(t) for t in sched.timesteps]
        self.alphas = [float(a) for a in sched.alphas_cumprod]  # the float32 table, as Python floats
        self.final_alpha = float(sched.final_alpha_cumprod)
        self.stride = sched.config.num_train_timesteps // cfg["steps"]
        self.t1 = {t: torch.tensor([float(t)], device=device) for t in self.timesteps}
        self.t2 = {t: torch.tensor([float(t)] * 2, device=device) for t in self.timesteps}

    def centralisation(self) -> torch.Tensor:
        """L_sc = (sum_l out_l - in_l) / |layers| over the captured layers, in float32;
        a layer whose F_s is all hole or all background adds 0 but counts."""
        captured = self.control.captured
        total = torch.zeros((), device=self.device, dtype=self.ldtype)
        for p in captured:  # [1, heads, N, 77]
            heads, n = p.shape[1], p.shape[2]
            hole = self.hole_count[n]
            if hole == 0 or hole == n:
                continue
            mass = p[0].index_select(-1, self.words).to(self.ldtype).sum(dim=(0, 2))  # [N], over heads and T
            f = self.hole[n]
            inside = (mass * f).sum() / (heads * hole)
            outside = (mass * (1 - f)).sum() / (heads * (n - hole))
            total = total + (outside - inside)
        return total / len(captured)

    def gradient(self, x, t: int, source, positive, lam: float):
        """dL/dx, L = L_bg + lambda L_sc, through the conditional UNet (batch 1), SBC on;
        x float32, the UNet in the model dtype. Returns (grad, [L_bg, L_sc, L])."""
        a = self.alphas[t]
        xg = x.detach().requires_grad_(True)
        self.control.captured, self.control.capture = [], True
        eps = self.m.unet(xg.to(self.dtype), self.t1[t], encoder_hidden_states=positive).sample.to(self.ldtype)
        self.control.capture = False
        assert len(self.control.captured) == 11, len(self.control.captured)
        z0 = (xg - math.sqrt(1 - a) * eps) / math.sqrt(a)
        l_bg = (self.K * ((source - z0) * 0.5) ** 2).sum()  # = sum K ((z_src+1)/2 - (z0+1)/2)^2
        l_sc = self.centralisation()
        loss = l_bg + lam * l_sc
        (g,) = torch.autograd.grad(loss, xg)
        self.control.captured = []
        return g, torch.stack([l_bg.detach(), l_sc.detach(), loss.detach()])

    @torch.no_grad()
    def guided_step(self, x, t: int, embeds):
        """CFG on [x, x] with [negative, positive] (SBC on both halves), then DDIM eta 0, float32."""
        eps = self.m.unet(torch.cat([x, x]).to(self.dtype), self.t2[t],
                          encoder_hidden_states=embeds).sample.to(self.ldtype)
        eps_u, eps_c = eps.chunk(2)
        eps = eps_u + self.cfg["guidance_scale"] * (eps_c - eps_u)
        a = self.alphas[t]
        prev = t - self.stride
        a_prev = self.alphas[prev] if prev >= 0 else self.final_alpha
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps

    def encode_prompt(self):
        ids = torch.tensor([peer.NEGATIVE_IDS, peer.PROMPT_IDS], device=self.device)
        with torch.no_grad():
            return self.m.text(ids).last_hidden_state  # [negative, positive]

    def encode_image(self, image):
        """z_src = scaling_factor * posterior mean ([ours]), float32."""
        with torch.no_grad():
            mean = self.m.vae.encode((image * 2 - 1).to(self.dtype)).latent_dist.mean
        return mean.to(self.ldtype) * self.m.vae.config.scaling_factor

    def decode(self, x):
        with torch.no_grad():
            out = self.m.vae.decode((x / self.m.vae.config.scaling_factor).to(self.dtype)).sample
        return (out.to(self.ldtype) * 0.5 + 0.5).clamp(0, 1)

    def run(self, image, noise, blend_noise: dict, clock: Clock) -> dict:
        """The timed run; returns the phase marks, counts, losses and the image."""
        cfg = self.cfg
        marks = {"start": clock.mark()}
        embeds = self.encode_prompt()
        marks["text"] = clock.mark()
        source = self.encode_image(image)
        marks["vae_encode"] = clock.mark()
        positive = embeds[1:2]
        threshold = 1000 * (1 - cfg["gamma"])
        x = noise.clone()  # init_noise_sigma = 1
        spans = {"gradient_passes": [], "guided_steps": [], "blend": []}
        losses = []
        for i, t in enumerate(self.timesteps):
            if t < threshold:
                a0 = clock.mark()
                a = self.alphas[t]
                x = (1 - self.K) * x + self.K * (math.sqrt(a) * source + math.sqrt(1 - a) * blend_noise[i])
                spans["blend"].append((a0, clock.mark()))
            elif i % cfg["interval"] == 0:
                a0 = clock.mark()
                lam = peer.lambda_t(self.C, t)
                eta = cfg["lr_warmup"] if i == 0 else cfg["lr"] * 1.002 ** (1000 - t)
                mom = torch.zeros_like(x)
                for _ in range(cfg["inner"]):
                    g, values = self.gradient(x, t, source, positive, lam)
                    mom = cfg["momentum"] * mom - eta * g
                    x = x + mom
                    losses.append(values)
                spans["gradient_passes"].append((a0, clock.mark()))
            a0 = clock.mark()
            x = self.guided_step(x, t, embeds)
            spans["guided_steps"].append((a0, clock.mark()))
        marks["sampler"] = clock.mark()
        image_out = self.decode(x)
        marks["vae_decode"] = clock.mark()
        return {"marks": marks, "spans": spans, "losses": losses, "image": image_out, "latent": x}


def cmd_pilot(args) -> int:
    device, dtype = pick_device(args.device), DTYPES[args.precision]
    apply_tf32(args.tf32)
    if args.size % 64:
        raise SystemExit("gpu.py pilot: --size must be a multiple of 64")
    cfg = {**TEXT_CONFIG, "steps": args.steps, "interval": args.interval, "inner": args.inner,
           "gamma": args.gamma, "size": args.size}
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    m = Components(args.model, device, dtype)
    sync(device)
    load_s = time.perf_counter() - start
    weights = sum(p.numel() * p.element_size() for c in (m.unet, m.vae, m.text) for p in c.parameters())
    side = args.size // 8
    pilot = Pilot(m, side, cfg, device, dtype)
    g = torch.Generator().manual_seed(args.seed)
    image = torch.rand(1, 3, args.size, args.size, generator=g).to(device)
    noise = torch.randn(1, 4, side, side, generator=g).to(device)
    blend_noise = {i: torch.randn(1, 4, side, side, generator=g).to(device)
                   for i, t in enumerate(pilot.timesteps) if t < 1000 * (1 - cfg["gamma"])}
    clock = Clock(device)

    # Warm-up: each piece once (kernel selection, cuBLAS/cuDNN handles, allocator).
    start = time.perf_counter()
    embeds = pilot.encode_prompt()
    source = pilot.encode_image(image)
    t0 = pilot.timesteps[0]
    pilot.gradient(noise, t0, source, embeds[1:2], peer.lambda_t(pilot.C, t0))
    pilot.guided_step(noise, t0, embeds)
    pilot.decode(noise)
    sync(device)
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    sync(device)
    start = time.perf_counter()
    out = pilot.run(image, noise, blend_noise, clock)
    sync(device)
    total_s = time.perf_counter() - start

    marks, spans = out["marks"], out["spans"]
    order = ["start", "text", "vae_encode", "sampler", "vae_decode"]
    phases = {name: clock.seconds(marks[prev], marks[name]) for prev, name in zip(order, order[1:])}
    for name, pairs in spans.items():
        phases[f"sampler/{name}"] = sum(clock.seconds(a, b) for a, b in pairs)
    passes = len(out["losses"])
    expected = sum(cfg["inner"] for i, t in enumerate(pilot.timesteps)
                   if t >= 1000 * (1 - cfg["gamma"]) and i % cfg["interval"] == 0)
    assert passes == expected, (passes, expected)
    losses = torch.stack(out["losses"]).cpu().tolist() if passes else []
    finite = bool(torch.isfinite(out["image"]).all()) and bool(torch.isfinite(out["latent"]).all())
    shape = (f"{args.size}x{args.size}, {cfg['steps']} steps, tau {cfg['interval']}, {cfg['inner']} inner, "
             f"gamma {cfg['gamma']:g}, CFG {cfg['guidance_scale']:g}")
    result = {"case": "pilot", "shape": shape, "config": cfg, "total_s": total_s,
              "phases_s": phases, "phases_clock": "cuda events" if clock.cuda else "wall",
              "gradient_passes": passes, "guided_steps": len(pilot.timesteps),
              "gradient_pass_mean_s": phases["sampler/gradient_passes"] / passes if passes else None,
              "guided_step_mean_s": phases["sampler/guided_steps"] / len(pilot.timesteps),
              "load_s": load_s, "warmup_s": warmup_s, "weights_bytes": weights,
              "losses_first": losses[0] if losses else None, "losses_last": losses[-1] if losses else None,
              "losses_fields": ["L_bg", "L_sc", "L"], "output_finite": finite,
              "attention": processors(m.unet), **memory(device)}
    record = {"schema": SCHEMA, "implementation": "pytorch", "model": args.model,
              **environment(device, args.precision), "results": [result]}
    peak = result.get("peak_allocated_bytes")
    emit(record, args.json, f"pilot {shape} {args.precision} on {record['device_name']}: {total_s:.2f} s "
         f"(gradient passes {phases['sampler/gradient_passes']:.2f} s for {passes}, guided steps "
         f"{phases['sampler/guided_steps']:.2f} s)" + (f", peak {peak / 2**30:.2f} GiB" if peak else ""))
    return 0 if finite else 1


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("make-model", help="write a random-weight SD 1.5-size diffusers folder", formatter_class=fmt)
    p.add_argument("dir", type=Path)
    p.add_argument("--tiny", action="store_true", help="narrow channels (smoke tests)")
    p.add_argument("--seed", type=int, default=1515)
    p.add_argument("--device", default=None, help="where to build; None: cuda if available, else cpu")
    p.set_defaults(func=cmd_make_model)

    def common(p):
        p.add_argument("--model", required=True, help="the diffusers folder (make-model DIR)")
        p.add_argument("--precision", choices=sorted(DTYPES), default="fp16", help="model weights and activations")
        p.add_argument("--device", default=None, help="None: cuda if available, else cpu")
        p.add_argument("--size", type=int, default=TEXT_CONFIG["size"], help="image side (latent = size/8)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--tf32", choices=["default", "on", "off"], default="default",
                       help="fp32: TF32 for matmuls and cuDNN convolutions; 'default' keeps PyTorch's "
                            "settings (reported in the record)")
        p.add_argument("--json", action="store_true", help="print the JSON record (else one line)")

    p = sub.add_parser("unet", help="UNet forward, batch 2, no_grad", formatter_class=fmt)
    common(p)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.set_defaults(func=cmd_unet)

    p = sub.add_parser("pilot", help="one whole PILOT text-inpainting run", formatter_class=fmt)
    common(p)
    p.add_argument("--steps", type=int, default=TEXT_CONFIG["steps"], help="DDIM steps")
    p.add_argument("--interval", type=int, default=TEXT_CONFIG["interval"], help="tau")
    p.add_argument("--inner", type=int, default=TEXT_CONFIG["inner"], help="K_opt")
    p.add_argument("--gamma", type=float, default=TEXT_CONFIG["gamma"], help="coherence scale")
    p.set_defaults(func=cmd_pilot)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
