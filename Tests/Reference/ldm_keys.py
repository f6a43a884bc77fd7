"""Key mapping between diffusers / transformers state dicts and the original
LDM ("CompVis" / "Stability") single-file Stable Diffusion checkpoint layout.

Written for the PILOT fixtures from the two layouts themselves (module names
in diffusers' UNet2DConditionModel / AutoencoderKL, transformers'
CLIPTextModel, and the LDM / OpenCLIP module trees); it is not derived from
diffusers' conversion scripts. Only what Stable Diffusion 1.x / 2.x use is
covered: a UNet whose down blocks are (CrossAttn)DownBlock2D, a KL autoencoder,
and either the OpenAI CLIP text model (SD1) or the OpenCLIP text tower (SD2).

    to_ldm(unet_sd, vae_sd, text_sd, unet_config, vae_config, text_kind, extra_text)
        -> one flat dict, keys as in an original checkpoint
    from_ldm(ckpt, unet_keys, vae_keys, unet_config, vae_config, text_kind, text_layers)
        -> (unet_sd, vae_sd, text_sd) in diffusers / transformers naming

text_kind is "openai" (SD1: the transformers CLIPTextModel state dict under
cond_stage_model.transformer.) or "openclip" (SD2: OpenCLIP's text tower under
cond_stage_model.model.).

Tensors are passed through unchanged except where the two layouts store the
same parameter differently:

- VAE mid-block attention: diffusers Linear [C, C]   <->  LDM 1x1 conv [C, C, 1, 1]
- OpenCLIP attention: diffusers q/k/v [C, C] + [C]    <->  in_proj_weight [3C, C],
  in_proj_bias [3C] (rows: q, then k, then v)
"""

from __future__ import annotations

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."

# diffusers ResnetBlock2D (UNet) -> LDM ResBlock
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

# diffusers ResnetBlock2D (VAE, no time embedding) -> LDM ResnetBlock
VAE_RESNET = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "conv_shortcut": "nin_shortcut",
}

# diffusers VAE mid-block Attention -> LDM AttnBlock (1x1 convs)
VAE_ATTN = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}

# OpenCLIP residual block <- transformers CLIPEncoderLayer (besides the fused qkv)
OPENCLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _split(key: str, n: int) -> tuple[list[str], str]:
    parts = key.split(".")
    return parts[:n], ".".join(parts[n:])


# --------------------------------------------------------------------------- UNet

def unet_key_to_ldm(key: str, config: dict) -> str:
    """One diffusers UNet2DConditionModel key -> LDM key (without prefix)."""
    lpb = config["layers_per_block"]
    n_down = len(config["down_block_types"])
    fixed = {
        "conv_in": "input_blocks.0.0",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    for d, l in fixed.items():
        if key.startswith(d + "."):
            return l + key[len(d):]

    parts = key.split(".")
    if parts[0] == "down_blocks":
        i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "downsamplers":  # down_blocks.i.downsamplers.0.conv.* -> input_blocks.N.0.op.*
            assert i < n_down - 1 and rest.startswith("conv."), key
            return f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op.{rest[len('conv.'):]}"
        block = 1 + i * (lpb + 1) + j
        if kind == "resnets":
            return f"input_blocks.{block}.0.{_resnet(rest, UNET_RESNET, key)}"
        if kind == "attentions":
            return f"input_blocks.{block}.1.{rest}"
    elif parts[0] == "mid_block":
        kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "resnets":
            return f"middle_block.{2 * j}.{_resnet(rest, UNET_RESNET, key)}"
        if kind == "attentions":
            assert j == 0, key
            return f"middle_block.1.{rest}"
    elif parts[0] == "up_blocks":
        i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        up_types = config["up_block_types"]
        has_attn = "CrossAttn" in up_types[i]
        if kind == "upsamplers":  # -> output_blocks.N.{1|2}.conv.* on the block's last layer
            assert rest.startswith("conv."), key
            return f"output_blocks.{i * (lpb + 1) + lpb}.{2 if has_attn else 1}.{rest}"
        block = i * (lpb + 1) + j
        if kind == "resnets":
            return f"output_blocks.{block}.0.{_resnet(rest, UNET_RESNET, key)}"
        if kind == "attentions":
            return f"output_blocks.{block}.1.{rest}"
    raise KeyError(f"unmapped UNet key {key}")


def _resnet(rest: str, table: dict, key: str) -> str:
    for d, l in table.items():
        if rest.startswith(d + "."):
            return l + rest[len(d):]
    raise KeyError(f"unmapped resnet key {key}")


# --------------------------------------------------------------------------- VAE

def vae_key_to_ldm(key: str, config: dict) -> str:
    """One diffusers AutoencoderKL key -> LDM key (without prefix)."""
    n_up = len(config["up_block_types"])
    if key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    side, rest = key.split(".", 1)
    assert side in ("encoder", "decoder"), key
    for d, l in (("conv_in", "conv_in"), ("conv_norm_out", "norm_out"), ("conv_out", "conv_out")):
        if rest.startswith(d + "."):
            return f"{side}.{l}{rest[len(d):]}"
    parts = rest.split(".")
    if parts[0] == "mid_block":
        kind, j, tail = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "resnets":
            return f"{side}.mid.block_{j + 1}.{_resnet(tail, VAE_RESNET, key)}"
        if kind == "attentions":
            return f"{side}.mid.attn_1.{_resnet(tail, VAE_ATTN, key)}"
    if parts[0] == "down_blocks" and side == "encoder":
        i, kind, j, tail = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "resnets":
            return f"encoder.down.{i}.block.{j}.{_resnet(tail, VAE_RESNET, key)}"
        if kind == "downsamplers":
            return f"encoder.down.{i}.downsample.{tail}"
    if parts[0] == "up_blocks" and side == "decoder":
        # LDM numbers decoder levels by resolution (up.0 is the full-resolution,
        # last-run level); diffusers numbers them in execution order.
        i, kind, j, tail = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        level = n_up - 1 - i
        if kind == "resnets":
            return f"decoder.up.{level}.block.{j}.{_resnet(tail, VAE_RESNET, key)}"
        if kind == "upsamplers":
            return f"decoder.up.{level}.upsample.{tail}"
    raise KeyError(f"unmapped VAE key {key}")


def _is_vae_attn_matrix(key: str) -> bool:
    return ".mid_block.attentions." in key and key.endswith(".weight") and \
        any(f".{n}.weight" in key for n in ("to_q", "to_k", "to_v", "to_out.0"))


# --------------------------------------------------------------------------- text

def sd1_text_to_ldm(text_sd: dict) -> dict:
    return {SD1_TEXT_PREFIX + k: v for k, v in text_sd.items()}


def sd2_text_to_ldm(text_sd: dict, extra: dict) -> dict:
    """transformers CLIPTextModel state dict -> OpenCLIP text tower keys.

    Every layer of `text_sd` is written: pass the full-depth tower (for SD2 one
    more layer than diffusers' text encoder keeps, the layer SD2 skips by
    conditioning on the penultimate one). `extra` holds the two tensors the text
    tower has and CLIPTextModel does not: "text_projection" [width, embed_dim]
    (used as x @ text_projection) and "logit_scale" (scalar).
    """
    out = {}
    p = SD2_TEXT_PREFIX
    layers = sorted({int(k.split(".")[3]) for k in text_sd if k.startswith("text_model.encoder.layers.")})
    out[p + "token_embedding.weight"] = text_sd["text_model.embeddings.token_embedding.weight"]
    out[p + "positional_embedding"] = text_sd["text_model.embeddings.position_embedding.weight"]
    for n in layers:
        src = f"text_model.encoder.layers.{n}."
        dst = f"{p}transformer.resblocks.{n}."
        a = src + "self_attn."
        out[dst + "attn.in_proj_weight"] = torch.cat(
            [text_sd[a + "q_proj.weight"], text_sd[a + "k_proj.weight"], text_sd[a + "v_proj.weight"]], 0)
        out[dst + "attn.in_proj_bias"] = torch.cat(
            [text_sd[a + "q_proj.bias"], text_sd[a + "k_proj.bias"], text_sd[a + "v_proj.bias"]], 0)
        for d, l in OPENCLIP_LAYER.items():
            for suffix in ("weight", "bias"):
                out[f"{dst}{l}.{suffix}"] = text_sd[f"{src}{d}.{suffix}"]
    out[p + "ln_final.weight"] = text_sd["text_model.final_layer_norm.weight"]
    out[p + "ln_final.bias"] = text_sd["text_model.final_layer_norm.bias"]
    out[p + "text_projection"] = extra["text_projection"]
    out[p + "logit_scale"] = extra["logit_scale"]
    consumed = 2 + 2 + 16 * len(layers)
    if consumed != len(text_sd):
        raise KeyError(f"text encoder has {len(text_sd)} tensors, mapped {consumed}")
    return out


def sd2_text_from_ldm(ckpt: dict, text_layers: int) -> dict:
    """OpenCLIP text tower -> transformers CLIPTextModel with `text_layers` layers."""
    p = SD2_TEXT_PREFIX
    sd = {
        "text_model.embeddings.token_embedding.weight": ckpt[p + "token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": ckpt[p + "positional_embedding"],
        "text_model.final_layer_norm.weight": ckpt[p + "ln_final.weight"],
        "text_model.final_layer_norm.bias": ckpt[p + "ln_final.bias"],
    }
    for n in range(text_layers):
        src = f"{p}transformer.resblocks.{n}."
        dst = f"text_model.encoder.layers.{n}."
        w = ckpt[src + "attn.in_proj_weight"]
        b = ckpt[src + "attn.in_proj_bias"]
        c = w.shape[1]
        for idx, name in enumerate(("q_proj", "k_proj", "v_proj")):
            sd[f"{dst}self_attn.{name}.weight"] = w[idx * c:(idx + 1) * c]
            sd[f"{dst}self_attn.{name}.bias"] = b[idx * c:(idx + 1) * c]
        for d, l in OPENCLIP_LAYER.items():
            for suffix in ("weight", "bias"):
                sd[f"{dst}{d}.{suffix}"] = ckpt[f"{src}{l}.{suffix}"]
    return sd


# --------------------------------------------------------------------------- whole checkpoint

def to_ldm(unet_sd: dict, vae_sd: dict, text_sd: dict, unet_config: dict, vae_config: dict,
           text_kind: str, extra_text: dict | None = None) -> dict:
    out: dict[str, torch.Tensor] = {}

    def put(k, v):
        if k in out:
            raise KeyError(f"duplicate LDM key {k}")
        out[k] = v

    for k, v in unet_sd.items():
        put(UNET_PREFIX + unet_key_to_ldm(k, unet_config), v)
    for k, v in vae_sd.items():
        if _is_vae_attn_matrix(k):
            v = v.reshape(*v.shape, 1, 1)
        put(VAE_PREFIX + vae_key_to_ldm(k, vae_config), v)
    if text_kind == "openai":
        text = sd1_text_to_ldm(text_sd)
    elif text_kind == "openclip":
        text = sd2_text_to_ldm(text_sd, extra_text or {})
    else:
        raise ValueError(text_kind)
    for k, v in text.items():
        put(k, v)
    return out


def from_ldm(ckpt: dict, unet_keys, vae_keys, unet_config: dict, vae_config: dict,
             text_kind: str, text_layers: int) -> tuple[dict, dict, dict]:
    """Inverse of to_ldm. `unet_keys` / `vae_keys` are the diffusers key lists
    of freshly built models (the forward map is a bijection on them, so the
    inverse is found by mapping each diffusers key forward and reading it)."""
    unet = {k: ckpt[UNET_PREFIX + unet_key_to_ldm(k, unet_config)] for k in unet_keys}
    vae = {}
    for k in vae_keys:
        v = ckpt[VAE_PREFIX + vae_key_to_ldm(k, vae_config)]
        if _is_vae_attn_matrix(k):
            assert v.shape[2:] == (1, 1), (k, v.shape)
            v = v[:, :, 0, 0]
        vae[k] = v
    if text_kind == "openai":
        n = len(SD1_TEXT_PREFIX)
        text = {k[n:]: v for k, v in ckpt.items() if k.startswith(SD1_TEXT_PREFIX)}
    else:
        text = sd2_text_from_ldm(ckpt, text_layers)
    return unet, vae, text
