#!/usr/bin/env python3
"""PyTorch peer of `pilot-bench models`: the same model cases on the same
diffusers folder, with diffusers and transformers, the same thread count and
timing method (warm-up calls, then the median of N timed calls on
CLOCK_MONOTONIC), one case per process, printed as the same JSON record
(schema "pilot-bench-models/1") so `pilot-bench models report` can merge the two.

Every case mirrors the one of the same name in
Benchmarks/pilot-bench/ModelCases.swift and PILOTCases.swift; keep them in
step. Forward cases run under torch.no_grad (ours has no tape there); the
PILOT gradient passes track only the latent, as ours does, with the model's
parameters frozen. Everything is float32.

The SDXL cases (sdxl_*) need an SDXL folder (Benchmarks/models/make_random_sdxl.py,
float16 files); the peer loads it in float32, as a diffusers CPU user does.

Usage: python3 Benchmarks/peers/models.py CASE [--model DIR] [--threads N] [--reps N] [--json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tensor_ops import library, now  # noqa: E402  (same BLAS description and clock)

SCHEMA = "pilot-bench-models/1"
DEFAULT_MODEL = os.environ.get("PILOT_BENCH_MODEL", "/work/bench-models/sd15-random")


def padded(ids):
    return ids + [49407] * (77 - len(ids))


# "a red fox in the snow" (BOS, six words, EOS), EOS-padded as SD 1.x pads; the
# empty negative prompt. Word positions are those L_sc measures.
PROMPT_IDS = padded([49406, 320, 736, 3240, 530, 518, 2583, 49407])
NEGATIVE_IDS = padded([49406, 49407])
WORD_TOKENS = list(range(1, 7))

# The reference text configuration (PILOT.md) scaled to 20 steps.
RUN = {"steps": 20, "interval": 2, "inner_steps": 10, "gamma": 1.0, "lr": 0.025, "lr_warmup": 0.007,
       "coef": 150.0, "coef_divisor": 1499.0, "momentum": 0.7, "guidance_scale": 7.5}
INNER_TIMESTEP = 451  # step 10 of the 20-step DDIM schedule


class Components:
    """The folder's three models and its scheduler, loaded as a diffusers user
    loads them (from_pretrained, float32), frozen and in eval mode."""

    def __init__(self, folder: str):
        root = Path(folder)
        self.root = root
        self.unet = UNet2DConditionModel.from_pretrained(root / "unet", torch_dtype=torch.float32)
        self.vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=torch.float32)
        self.text = CLIPTextModel.from_pretrained(root / "text_encoder", torch_dtype=torch.float32)
        self.scheduler = DDIMScheduler.from_pretrained(root / "scheduler")
        for m in (self.unet, self.vae, self.text):
            m.eval().requires_grad_(False)


# --------------------------------------------------------------------------- PILOT


def masks(side: int):
    """K [1, 1, side, side] (1 = keep) with a centred square hole of half the side,
    and F_s by query count for the four attention resolutions: 1 - K resized
    bilinearly (align_corners False, no antialias), values below 1 set to 0."""
    k = torch.ones(1, 1, side, side)
    k[:, :, side // 4:3 * side // 4, side // 4:3 * side // 4] = 0
    hole = {}
    h = side
    for _ in range(4):
        f = F.interpolate(1 - k, size=(h, h), mode="bilinear", align_corners=False)
        f = torch.where(f < 1, torch.zeros_like(f), f)
        hole[h * h] = f.reshape(-1)
        h = (h + 1) // 2
    return k, hole


class PilotControl:
    """Shared by the cross-attention processors of one UNet: SBC masks by
    query count, and capture of the loss layers' probabilities (before the
    mask) during gradient passes."""

    def __init__(self, hole: dict[int, torch.Tensor], full: int):
        self.hole, self.full = hole, full
        self.capture = False
        self.captured: list[torch.Tensor] = []
        self.sbc_masks: dict[tuple[int, int], torch.Tensor] = {}

    def sbc_mask(self, n: int, keys: int) -> torch.Tensor:
        """M[p, 0] = 1 (BOS kept), M[p, k >= 1] = F_s(p); no renormalisation."""
        m = self.sbc_masks.get((n, keys))
        if m is None:
            m = self.hole[n][:, None].expand(n, keys).clone()
            m[:, 0] = 1
            self.sbc_masks[(n, keys)] = m
        return m


class PilotCrossAttention:
    """attn2 processor: A = softmax(QK^T/sqrt(d)) per head (diffusers'
    get_attention_scores), captured for L_sc when the layer is below full
    resolution, then out = to_out((A * M) V)."""

    def __init__(self, control: PilotControl):
        self.control = control

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        b, n, _ = hidden_states.shape
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k, None)  # [B*heads, N, L]
        keys = probs.shape[-1]
        c = self.control
        if c.capture and n < c.full:
            c.captured.append(probs.view(b, attn.heads, n, keys))
        probs = probs * c.sbc_mask(n, keys)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


def install(unet: UNet2DConditionModel, control: PilotControl) -> None:
    """PILOT's processor on every cross-attention layer; self-attention keeps
    diffusers' default (scaled_dot_product_attention)."""
    unet.set_attn_processor({name: (PilotCrossAttention(control) if name.endswith("attn2.processor") else proc)
                             for name, proc in unet.attn_processors.items()})


def centralisation_term(p: torch.Tensor, f: torch.Tensor):
    """L_l = out_l - in_l for probabilities p [B, heads, N, L]: attention mass on
    the word tokens over background queries minus that over hole queries, each
    normalised by heads x cells (summed over the B candidates); None when F_s
    is all hole or all background."""
    heads, n = p.shape[1], p.shape[2]
    hole = float(f.sum())
    bg = n - hole
    if hole == 0 or bg == 0:
        return None
    mass = p[:, :, :, WORD_TOKENS].sum(dim=-1)  # [B, heads, N]
    inside = (mass * f).sum() / (heads * hole)
    outside = (mass * (1 - f)).sum() / (heads * bg)
    return outside - inside


def lambda_t(c: float, t: int) -> float:
    return 0.1 * c if t < 300 else 0.1 * c + 0.9 * c * (t - 300) / 699


class Pilot:
    """PILOT on the loaded UNet for one latent size: the pieces both PILOT cases use."""

    def __init__(self, m: Components, side: int):
        self.m = m
        self.k, hole = masks(side)
        self.control = PilotControl(hole, side * side)
        install(m.unet, self.control)
        self.c = RUN["coef"] * float(self.k.sum()) / RUN["coef_divisor"]
        sched = DDIMScheduler.from_config(m.scheduler.config)
        sched.set_timesteps(RUN["steps"])
        self.timesteps = [int(t) for t in sched.timesteps]
        self.alphas = sched.alphas_cumprod
        self.final_alpha = sched.final_alpha_cumprod

    def gradient(self, x, t: int, source, positive, lam: float, added=None):
        """∂(L_bg + λ L_sc)/∂x through the conditional UNet (a row per
        candidate; the candidates' losses summed, so each gradient is its
        own), SBC on; `added`: SDXL's added_cond_kwargs (pooled text, time ids)."""
        a = self.alphas[t]
        b = x.shape[0]
        xg = x.detach().requires_grad_(True)
        self.control.captured, self.control.capture = [], True
        eps = self.m.unet(xg, torch.tensor([float(t)] * b), encoder_hidden_states=positive.expand(b, -1, -1),
                          added_cond_kwargs=added).sample
        self.control.capture = False
        x0 = (xg - (1 - a).sqrt() * eps) / a.sqrt()
        background = (self.k * ((source - x0) * 0.5) ** 2).sum()
        terms = [term for p in self.control.captured
                 if (term := centralisation_term(p, self.control.hole[p.shape[2]])) is not None]
        loss = background + lam * torch.stack(terms).sum() / len(self.control.captured)
        (g,) = torch.autograd.grad(loss, xg)
        return g

    def run(self, x, source, positive, negative):
        """The whole schedule from x (gamma = 1: every step optimises, every
        tau-th): the latent, the gradient passes run, and the milliseconds of
        gradient passes and of guided steps."""
        gradient_ms = guided_ms = 0.0
        passes = 0
        for i, t in enumerate(self.timesteps):
            start = now()
            if i % RUN["interval"] == 0:
                lam = lambda_t(self.c, t)
                eta = RUN["lr_warmup"] if i == 0 else RUN["lr"] * 1.002 ** (1000 - t)
                mom = torch.zeros_like(x)
                for _ in range(RUN["inner_steps"]):
                    g = self.gradient(x, t, source, positive, lam)
                    mom = RUN["momentum"] * mom - eta * g
                    x = x + mom
                    passes += 1
                gradient_ms += (now() - start) * 1e3
                start = now()
            x = self.guided_step(x, i, positive, negative)
            guided_ms += (now() - start) * 1e3
        return x, passes, gradient_ms, guided_ms

    def guided_step(self, x, i: int, positive, negative):
        """CFG 7.5 forward on [negative x B, positive x B] (SBC on both halves), then DDIM (eta 0)."""
        t = self.timesteps[i]
        b = x.shape[0]
        with torch.no_grad():
            eps = self.m.unet(torch.cat([x, x]), torch.tensor([float(t)] * 2 * b),
                              encoder_hidden_states=torch.cat([negative.expand(b, -1, -1),
                                                               positive.expand(b, -1, -1)])).sample
            eps_u, eps_c = eps.chunk(2)
            eps = eps_u + RUN["guidance_scale"] * (eps_c - eps_u)
            a = self.alphas[t]
            prev = t - 1000 // RUN["steps"]
            a_prev = self.alphas[prev] if prev >= 0 else self.final_alpha
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


# --------------------------------------------------------------------------- cases
# Each: name -> (shape text, warm-ups, fixed reps or None, prepare), where
# prepare(components) makes the inputs and returns the call to time; the call
# returns its sub-steps [(name, ms)] or [].


def no_phases(fn):
    def call():
        fn()
        return []
    return call


def case_unet(m):
    x, ctx = torch.randn(2, 4, 64, 64), torch.randn(2, 77, 768)
    t = torch.tensor([500.0, 500.0])
    return no_phases(lambda: m.unet(x, t, encoder_hidden_states=ctx).sample)


def case_controlnet_step(m):
    """The unet case with one ControlNet (scale 1, a 512x512 hint) as
    StableDiffusionControlNetPipeline runs a guided step: ControlNetModel on
    the CFG batch (the hint repeated to it, as the pipeline's prepare_image
    does once per run), then the UNet with down_block_additional_residuals
    and mid_block_additional_residual. The ControlNet is the folder's controlnet/."""
    controlnet = ControlNetModel.from_pretrained(m.root / "controlnet", torch_dtype=torch.float32)
    controlnet.eval().requires_grad_(False)
    x, ctx = torch.randn(2, 4, 64, 64), torch.randn(2, 77, 768)
    hint = torch.rand(1, 3, 512, 512).repeat(2, 1, 1, 1)
    t = torch.tensor([500.0, 500.0])

    def step():
        down, mid = controlnet(x, t, encoder_hidden_states=ctx, controlnet_cond=hint, conditioning_scale=1.0,
                               guess_mode=False, return_dict=False)
        return m.unet(x, t, encoder_hidden_states=ctx, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid).sample
    return no_phases(step)


def case_vae_decode(m):
    z = torch.randn(1, 4, 64, 64)
    return no_phases(lambda: m.vae.decode(z).sample)


def case_vae_encode(m):
    """The posterior's moments (diffusers' latent_dist), no sampling."""
    image = torch.rand(1, 3, 512, 512) * 2 - 1
    return no_phases(lambda: m.vae.encode(image).latent_dist)


def case_text(m):
    ids = torch.tensor([PROMPT_IDS, NEGATIVE_IDS])
    return no_phases(lambda: m.text(ids).last_hidden_state)


# The SD 1.x latent-to-RGB factors ours uses for latent2rgb previews (Nodes/Support/LatentPreview.swift).
SD_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                              [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])


def png_bytes(rgb) -> bytes:
    """[3, H, W] in [0, 1] as PNG bytes (8-bit RGB), as a preview event carries them."""
    from io import BytesIO

    from PIL import Image
    pixels = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def case_preview_latent2rgb(m):
    """A latent2rgb preview: the linear map, then a 64x64 PNG."""
    z = torch.randn(1, 4, 64, 64)
    return no_phases(lambda: png_bytes((torch.einsum("kc,khw->chw", SD_LATENT_RGB, z[0]) + 1) / 2))


def case_preview_taesd(m):
    """A taesd preview: the folder's taesd/ (make_random_taesd.py) decodes
    to 512x512, scaled bilinearly to 256x256, then the PNG."""
    from diffusers import AutoencoderTiny
    taesd = AutoencoderTiny.from_pretrained(m.root / "taesd", torch_dtype=torch.float32).eval()
    z = torch.randn(1, 4, 64, 64)

    def call():
        image = (taesd.decode(z).sample + 1) / 2
        return png_bytes(F.interpolate(image, size=(256, 256), mode="bilinear", align_corners=False)[0])
    return no_phases(call)


def inner_call(m, side: int, ctx, added, layers: int):
    """One PILOT inner iteration on a side x side latent (the inner cases)."""
    pilot = Pilot(m, side)
    x, source = torch.randn(1, 4, side, side), torch.randn(1, 4, side, side)
    t = INNER_TIMESTEP
    assert t in pilot.timesteps
    lam = lambda_t(pilot.c, t)
    eta = RUN["lr"] * 1.002 ** (1000 - t)
    momentum = torch.zeros_like(x)

    def call():
        g = pilot.gradient(x, t, source, ctx, lam, added)
        assert len(pilot.control.captured) == layers, len(pilot.control.captured)
        _ = x + (RUN["momentum"] * momentum - eta * g)
        return []
    return call


def case_pilot_inner(m):
    return inner_call(m, 64, torch.randn(1, 77, 768), None, 11)


def case_pilot_run_256(m):
    pilot = Pilot(m, 32)
    image = torch.rand(1, 3, 256, 256)
    noise = torch.randn(1, 4, 32, 32)
    scale = m.vae.config.scaling_factor

    def call():
        phases, lap = [], [now()]

        def mark(name):
            t = now()
            phases.append((name, (t - lap[0]) * 1e3))
            lap[0] = t

        with torch.no_grad():
            negative, positive = m.text(torch.tensor([NEGATIVE_IDS, PROMPT_IDS])).last_hidden_state.chunk(2)
        mark("text")
        with torch.no_grad():
            source = m.vae.encode(image * 2 - 1).latent_dist.mean * scale
        mark("vae_encode")
        x, passes, gradient_ms, guided_ms = pilot.run(noise.clone(), source, positive, negative)  # init_noise_sigma = 1
        mark("sampler")
        assert passes == 100, passes
        with torch.no_grad():
            _ = (m.vae.decode(x / scale).sample * 0.5 + 0.5).clamp(0, 1)
        mark("vae_decode")
        phases[-1:-1] = [("sampler/gradient_passes", gradient_ms), ("sampler/guided_steps", guided_ms)]
        return phases
    return call


BATCH_RUN = dict(RUN, steps=6, inner_steps=2)
BATCH_CANDIDATES = 3


def case_pilot_batch_256(m):
    """Three candidates at 256x256, 6 steps (tau 2, K 2), as three runs and as
    one batch of 3, in the order of ours for the same round (PILOT_BENCH_ROUND)."""
    global RUN
    RUN = BATCH_RUN  # the Pilot helpers read the settings from RUN
    pilot = Pilot(m, 32)
    n = BATCH_CANDIDATES
    noise = torch.randn(n, 4, 32, 32)
    source = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        negative, positive = m.text(torch.tensor([NEGATIVE_IDS, PROMPT_IDS])).last_hidden_state.chunk(2)
    round_ = int(os.environ.get("PILOT_BENCH_ROUND", "1"))

    def run(x):
        x, passes, _, _ = pilot.run(x, source, positive, negative)
        assert passes == 6, passes
        return x

    def singles():
        start = now()
        for k in range(n):
            run(noise[k:k + 1])
        return (now() - start) * 1e3

    def batch():
        start = now()
        run(noise)
        return (now() - start) * 1e3

    def call():
        if round_ % 2 == 1:
            three = singles()
            together = batch()
        else:
            together = batch()
            three = singles()
        return [("three_runs", three), ("batch_of_3", together)]
    return call


def sdxl_added(batch: int):
    """Pooled text [B, 1280] and the default 1024x1024 size conditioning."""
    return {"text_embeds": torch.randn(batch, 1280),
            "time_ids": torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024]] * batch)}


def check_sdxl(m):
    if m.unet.config.addition_embed_type != "text_time" or m.unet.config.cross_attention_dim != 2048:
        raise SystemExit("the SDXL cases need an SDXL folder (Benchmarks/models/make_random_sdxl.py)")


def case_sdxl_unet(m):
    check_sdxl(m)
    x, ctx = torch.randn(2, 4, 128, 128), torch.randn(2, 77, 2048)
    t = torch.tensor([500.0, 500.0])
    added = sdxl_added(2)
    return no_phases(lambda: m.unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample)


def case_sdxl_pilot_inner(m):
    check_sdxl(m)
    return inner_call(m, 128, torch.randn(1, 77, 2048), sdxl_added(1), 70)


CASES = {
    "unet": ("x[2,4,64,64] t=500 context[2,77,768]", 1, None, case_unet),
    "controlnet_step": ("unet + 1 ControlNet, hint[1,3,512,512] scale 1", 1, None, case_controlnet_step),
    "vae_decode": ("latent[1,4,64,64] -> [1,3,512,512]", 1, None, case_vae_decode),
    "vae_encode": ("[1,3,512,512] -> latent[1,4,64,64]", 1, None, case_vae_encode),
    "text": ("ids[2,77] -> [2,77,768]", 1, None, case_text),
    "pilot_inner": ("x[1,4,64,64] t=451 SBC, 11 loss layers, dL/dx", 1, None, case_pilot_inner),
    "pilot_run_256": ("256x256, 20 steps, tau 2, 10 inner, gamma 1, CFG 7.5", 0, 1, case_pilot_run_256),
    "pilot_batch_256": ("3 candidates, 256x256, 6 steps, tau 2, 2 inner, gamma 1, CFG 7.5", 0, 1, case_pilot_batch_256),
    "preview_latent2rgb": ("latent[1,4,64,64] -> 64x64 PNG", 1, None, case_preview_latent2rgb),
    "preview_taesd": ("latent[1,4,64,64] -> TAESD 512x512 -> 256x256 PNG", 1, None, case_preview_taesd),
    "sdxl_unet": ("x[2,4,128,128] t=500 context[2,77,2048] pooled[2,1280]", 1, None, case_sdxl_unet),
    "sdxl_pilot_inner": ("x[1,4,128,128] t=451 SBC, 70 loss layers, dL/dx", 1, None, case_sdxl_pilot_inner),
}
GRADIENT_CASES = {"pilot_inner", "pilot_run_256", "pilot_batch_256", "sdxl_pilot_inner"}  # manage autograd themselves


# --------------------------------------------------------------------------- memory


def peak_rss() -> int:
    """getrusage ru_maxrss (KiB on Linux), in bytes: since start or the last reset."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User + system time of the whole process (all threads), as ours reads it."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def current_rss() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Peak back to the current resident set (Linux >= 4.0), as ours does."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="time every operator of the timed calls with torch.profiler and print its "
                             "table to stderr (the counterpart of pilot-bench models --profile)")
    args = parser.parse_args()
    shape, warmups, fixed_reps, prepare = CASES[args.case]

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = now()
    m = Components(args.model)
    load_ms = (now() - start) * 1e3
    with torch.set_grad_enabled(args.case in GRADIENT_CASES):
        call = prepare(m)
        loaded, load_peak = current_rss(), peak_rss()
        reset = reset_peak()
        print(f"{args.case}: loaded in {load_ms / 1e3:.1f} s, RSS {(loaded or 0) / 2**30:.2f} GiB "
              f"(loader's peak {load_peak / 2**30:.2f} GiB)", file=sys.stderr)
        for _ in range(warmups):
            call()
        samples, cpu_samples, phases = [], [], []
        profiler = None
        if args.profile:
            from torch.profiler import ProfilerActivity, profile
            profiler = profile(activities=[ProfilerActivity.CPU])
            profiler.__enter__()
        for _ in range(fixed_reps or args.reps):
            t0, c0 = now(), cpu_seconds()
            phases = call()
            samples.append((now() - t0) * 1e3)
            cpu_samples.append((cpu_seconds() - c0) * 1e3)
        if profiler is not None:
            profiler.__exit__(None, None, None)
            print(f"{args.case}: operators over {len(samples)} timed call(s)\n"
                  + profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20), file=sys.stderr)
    run_peak = peak_rss()
    ms = statistics.median(samples)
    print(f"{args.case}: {ms / 1e3:.2f} s (median of {len(samples)}), peak RSS "
          f"{max(load_peak, run_peak) / 2**30:.2f} GiB", file=sys.stderr)

    result = {"case": args.case, "shape": shape, "warmups": warmups, "reps": len(samples), "median_ms": ms,
              "samples_ms": samples, "cpu_median_ms": statistics.median(cpu_samples),
              "cpu_samples_ms": cpu_samples, "load_ms": load_ms, "loaded_rss_bytes": loaded,
              "load_peak_rss_bytes": load_peak, "run_peak_rss_bytes": run_peak, "peak_reset": reset,
              "peak_rss_bytes": max(load_peak, run_peak)}
    if phases:
        result["phases"] = [{"name": n, "ms": v} for n, v in phases]
    record = {"schema": SCHEMA, "implementation": "pytorch", "library": library(),
              "threads": torch.get_num_threads(), "model": args.model, "results": [result]}
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"{args.case:<14} {shape:<48} {ms / 1e3:9.2f} s  peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
