"""Key mapping between diffusers / transformers state dicts and the original
LDM ("CompVis" / "Stability") single-file Stable Diffusion checkpoint layout,
and the Stability "SGM" layout of SDXL base checkpoints (the one A1111 and
ComfyUI read and write).

Written for the PILOT fixtures from the two layouts themselves (module names
in diffusers' UNet2DConditionModel / AutoencoderKL, transformers'
CLIPTextModel / CLIPTextModelWithProjection, and the LDM / SGM / OpenCLIP
module trees); it is not derived from diffusers' conversion scripts. Covered:
a UNet whose down blocks are (CrossAttn)DownBlock2D (with or without
attention on any level, as SDXL's plain first level), optionally with SDXL's
"text_time" added embedding, a KL autoencoder, and the text encoders of
Stable Diffusion 1.x (OpenAI CLIP), 2.x (OpenCLIP ViT-H text tower) and
SDXL base (both).

    to_ldm(unet_sd, vae_sd, text_sd, unet_config, vae_config, text_kind, extra_text)
        -> one flat dict, keys as in an original SD 1.x / 2.x checkpoint
    from_ldm(ckpt, unet_keys, vae_keys, unet_config, vae_config, text_kind, text_layers)
        -> (unet_sd, vae_sd, text_sd) in diffusers / transformers naming
    to_sgm(unet_sd, vae_sd, te1_sd, te2_sd, unet_config, vae_config, logit_scale)
        -> one flat dict, keys as in an SDXL base checkpoint
    from_sgm(ckpt, unet_keys, vae_keys, unet_config, vae_config, te2_layers)
        -> (unet_sd, vae_sd, te1_sd, te2_sd)
    sgm_recipe(unet_keys, vae_keys, te1_keys, te2_keys, unet_config, vae_config)
        -> to_sgm as data: for every single-file key, the op and source tensors

Prefixes: UNet model.diffusion_model., VAE first_stage_model. (all three);
text SD1 cond_stage_model.transformer. (the transformers CLIPTextModel state
dict, keys text_model.*), SD2 cond_stage_model.model. (OpenCLIP's text tower),
SDXL conditioner.embedders.0.transformer. (text_encoder, as SD1) and
conditioner.embedders.1.model. (text_encoder_2, OpenCLIP bigG text tower).
text_kind is "openai" (SD1) or "openclip" (SD2). SD2's file has one OpenCLIP
layer more than diffusers' text encoder (SD2 conditions on the penultimate
layer and diffusers drops the last); SDXL's keeps every layer of both towers
(it reads hidden_states[-2] itself).

Tensors are passed through unchanged except where the two layouts store the
same parameter differently:

- VAE mid-block attention: diffusers Linear [C, C]   <->  LDM 1x1 conv [C, C, 1, 1]
- OpenCLIP attention: diffusers q/k/v [C, C] + [C]    <->  in_proj_weight [3C, C],
  in_proj_bias [3C] (rows: q, then k, then v)
- OpenCLIP projection (SDXL): transformers text_projection.weight [proj, width]
  (nn.Linear, y = x W^T)  <->  text_projection [width, proj] (used as x @ P),
  the transpose

OpenCLIP's logit_scale (a scalar of the contrastive head) has no diffusers
counterpart: written from the caller's value, ignored when reading. SDXL's
add_embedding.linear_1 / linear_2 are LDM's label_emb.0.0 / label_emb.0.2.
"""

from __future__ import annotations

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
SDXL_TEXT1_PREFIX = "conditioner.embedders.0.transformer."
SDXL_TEXT2_PREFIX = "conditioner.embedders.1.model."

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
        "add_embedding.linear_1": "label_emb.0.0",   # SDXL text_time: label_emb is
        "add_embedding.linear_2": "label_emb.0.2",   # Sequential(Sequential(lin, SiLU, lin))
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

def sd1_text_to_ldm(text_sd: dict, prefix: str = SD1_TEXT_PREFIX) -> dict:
    """OpenAI CLIP (SD1, SDXL text_encoder): the transformers state dict under `prefix`."""
    return {prefix + k: v for k, v in text_sd.items()}


def openai_text_from_ldm(ckpt: dict, prefix: str) -> dict:
    """Every key under `prefix` with the prefix removed, except the position-id buffer
    (text_model.embeddings.position_ids, int64 [1, 77]) that files written with older
    transformers carry and current CLIPTextModel no longer has in its state dict."""
    n = len(prefix)
    return {k[n:]: v for k, v in ckpt.items()
            if k.startswith(prefix) and k[n:] != "text_model.embeddings.position_ids"}


def openclip_text_to_ldm(text_sd: dict, extra: dict, prefix: str) -> dict:
    """transformers CLIPTextModel(WithProjection) state dict -> OpenCLIP text tower keys.

    Every layer of `text_sd` is written. The projection is taken from
    `text_sd["text_projection.weight"]` (CLIPTextModelWithProjection, [proj, width];
    written transposed) when present, else from `extra["text_projection"]`
    ([width, proj], as stored). `extra["logit_scale"]` (scalar) is the one tensor
    the tower has and neither transformers model does.
    """
    out = {}
    p = prefix
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
    consumed = 2 + 2 + 16 * len(layers)
    if "text_projection.weight" in text_sd:
        w = text_sd["text_projection.weight"]
        assert w.dim() == 2, w.shape
        out[p + "text_projection"] = w.t().contiguous()
        consumed += 1
    else:
        out[p + "text_projection"] = extra["text_projection"]
    out[p + "logit_scale"] = extra["logit_scale"]
    if consumed != len(text_sd):
        raise KeyError(f"text encoder has {len(text_sd)} tensors, mapped {consumed}")
    return out


def sd2_text_to_ldm(text_sd: dict, extra: dict) -> dict:
    """SD2: the OpenCLIP tower under cond_stage_model.model.

    Pass the full-depth tower (one more layer than diffusers' text encoder
    keeps, the layer SD2 skips by conditioning on the penultimate one). `extra`
    holds "text_projection" [width, embed_dim] (used as x @ text_projection)
    and "logit_scale" (scalar).
    """
    return openclip_text_to_ldm(text_sd, extra, SD2_TEXT_PREFIX)


def openclip_text_from_ldm(ckpt: dict, text_layers: int, prefix: str,
                           with_projection: bool = False) -> dict:
    """OpenCLIP text tower -> transformers CLIPTextModel with `text_layers` layers
    (CLIPTextModelWithProjection with `with_projection`: text_projection.weight is the
    transpose of the stored [width, proj] matrix). logit_scale is not read."""
    p = prefix
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
        assert w.shape[0] == 3 * c and b.shape[0] == 3 * c, (src, w.shape, b.shape)
        for idx, name in enumerate(("q_proj", "k_proj", "v_proj")):
            sd[f"{dst}self_attn.{name}.weight"] = w[idx * c:(idx + 1) * c]
            sd[f"{dst}self_attn.{name}.bias"] = b[idx * c:(idx + 1) * c]
        for d, l in OPENCLIP_LAYER.items():
            for suffix in ("weight", "bias"):
                sd[f"{dst}{d}.{suffix}"] = ckpt[f"{src}{l}.{suffix}"]
    if with_projection:
        sd["text_projection.weight"] = ckpt[p + "text_projection"].t().contiguous()
    return sd


def sd2_text_from_ldm(ckpt: dict, text_layers: int) -> dict:
    """SD2's OpenCLIP text tower -> transformers CLIPTextModel with `text_layers` layers."""
    return openclip_text_from_ldm(ckpt, text_layers, SD2_TEXT_PREFIX)


# --------------------------------------------------------------------------- whole checkpoint

def _unet_vae_to_ldm(unet_sd: dict, vae_sd: dict, unet_config: dict, vae_config: dict) -> dict:
    out: dict[str, torch.Tensor] = {}
    for k, v in unet_sd.items():
        _put(out, UNET_PREFIX + unet_key_to_ldm(k, unet_config), v)
    for k, v in vae_sd.items():
        if _is_vae_attn_matrix(k):
            v = v.reshape(*v.shape, 1, 1)
        _put(out, VAE_PREFIX + vae_key_to_ldm(k, vae_config), v)
    return out


def _put(out: dict, k: str, v) -> None:
    if k in out:
        raise KeyError(f"duplicate LDM key {k}")
    out[k] = v


def _unet_vae_from_ldm(ckpt: dict, unet_keys, vae_keys, unet_config: dict,
                       vae_config: dict) -> tuple[dict, dict]:
    unet = {k: ckpt[UNET_PREFIX + unet_key_to_ldm(k, unet_config)] for k in unet_keys}
    vae = {}
    for k in vae_keys:
        v = ckpt[VAE_PREFIX + vae_key_to_ldm(k, vae_config)]
        if _is_vae_attn_matrix(k):
            assert v.shape[2:] == (1, 1), (k, v.shape)
            v = v[:, :, 0, 0]
        vae[k] = v
    return unet, vae


def to_ldm(unet_sd: dict, vae_sd: dict, text_sd: dict, unet_config: dict, vae_config: dict,
           text_kind: str, extra_text: dict | None = None) -> dict:
    """SD 1.x ("openai") / 2.x ("openclip") single-file dict."""
    out = _unet_vae_to_ldm(unet_sd, vae_sd, unet_config, vae_config)
    if text_kind == "openai":
        text = sd1_text_to_ldm(text_sd)
    elif text_kind == "openclip":
        text = sd2_text_to_ldm(text_sd, extra_text or {})
    else:
        raise ValueError(text_kind)
    for k, v in text.items():
        _put(out, k, v)
    return out


def from_ldm(ckpt: dict, unet_keys, vae_keys, unet_config: dict, vae_config: dict,
             text_kind: str, text_layers: int) -> tuple[dict, dict, dict]:
    """Inverse of to_ldm. `unet_keys` / `vae_keys` are the diffusers key lists
    of freshly built models (the forward map is a bijection on them, so the
    inverse is found by mapping each diffusers key forward and reading it)."""
    unet, vae = _unet_vae_from_ldm(ckpt, unet_keys, vae_keys, unet_config, vae_config)
    if text_kind == "openai":
        text = openai_text_from_ldm(ckpt, SD1_TEXT_PREFIX)
    else:
        text = sd2_text_from_ldm(ckpt, text_layers)
    return unet, vae, text


def to_sgm(unet_sd: dict, vae_sd: dict, te1_sd: dict, te2_sd: dict, unet_config: dict,
           vae_config: dict, logit_scale: torch.Tensor) -> dict:
    """SDXL base single-file dict (SGM layout). `te1_sd` is the CLIPTextModel state
    dict (text_encoder), `te2_sd` the CLIPTextModelWithProjection one (text_encoder_2,
    every layer, with text_projection.weight); `logit_scale` is written as is."""
    out = _unet_vae_to_ldm(unet_sd, vae_sd, unet_config, vae_config)
    for k, v in sd1_text_to_ldm(te1_sd, SDXL_TEXT1_PREFIX).items():
        _put(out, k, v)
    if "text_projection.weight" not in te2_sd:
        raise KeyError("text_encoder_2 state dict has no text_projection.weight")
    for k, v in openclip_text_to_ldm(te2_sd, {"logit_scale": logit_scale}, SDXL_TEXT2_PREFIX).items():
        _put(out, k, v)
    return out


def from_sgm(ckpt: dict, unet_keys, vae_keys, unet_config: dict, vae_config: dict,
             te2_layers: int) -> tuple[dict, dict, dict, dict]:
    """Inverse of to_sgm (keys of freshly built UNet / VAE as for from_ldm): text_encoder
    is every key under conditioner.embedders.0.transformer. but position_ids; text_encoder_2 reads
    `te2_layers` OpenCLIP blocks and the projection (transposed), not logit_scale."""
    unet, vae = _unet_vae_from_ldm(ckpt, unet_keys, vae_keys, unet_config, vae_config)
    te1 = openai_text_from_ldm(ckpt, SDXL_TEXT1_PREFIX)
    te2 = openclip_text_from_ldm(ckpt, te2_layers, SDXL_TEXT2_PREFIX, with_projection=True)
    return unet, vae, te1, te2


# --------------------------------------------------------------------------- recipes

def _entry(key: str, op: str, component: str, *names: str) -> dict:
    return {"key": key, "op": op, "sources": [{"component": component, "name": n} for n in names]}


def sgm_recipe(unet_keys, vae_keys, te1_keys, te2_keys, unet_config: dict,
               vae_config: dict) -> list[dict]:
    """to_sgm as data, for a loader test that assembles the single file from a
    diffusers folder's tensors: one entry per single-file tensor (logit_scale
    excepted), sorted by key,

        {"key": <single-file key>, "op": "copy" | "rows" | "transpose" | "conv1x1",
         "sources": [{"component": "unet" | "vae" | "text_encoder" | "text_encoder_2",
                      "name": <diffusers / transformers key>}, ...]}

    copy: the one source as is; rows: the sources concatenated along dim 0 (q, k, v);
    transpose: the one 2-D source transposed; conv1x1: the one source with two
    trailing size-1 dims appended. Written independently of to_sgm (key maps shared,
    ops not), so assembling by the recipe and calling to_sgm can be compared.
    """
    out = []
    for k in unet_keys:
        out.append(_entry(UNET_PREFIX + unet_key_to_ldm(k, unet_config), "copy", "unet", k))
    for k in vae_keys:
        op = "conv1x1" if _is_vae_attn_matrix(k) else "copy"
        out.append(_entry(VAE_PREFIX + vae_key_to_ldm(k, vae_config), op, "vae", k))
    for k in te1_keys:
        out.append(_entry(SDXL_TEXT1_PREFIX + k, "copy", "text_encoder", k))
    te2 = set(te2_keys)
    used = set()
    p, c = SDXL_TEXT2_PREFIX, "text_encoder_2"

    def one(key, op, *names):
        missing = [n for n in names if n not in te2]
        if missing:
            raise KeyError(f"text_encoder_2 lacks {missing}")
        used.update(names)
        out.append(_entry(p + key, op, c, *names))

    one("token_embedding.weight", "copy", "text_model.embeddings.token_embedding.weight")
    one("positional_embedding", "copy", "text_model.embeddings.position_embedding.weight")
    layers = sorted({int(k.split(".")[3]) for k in te2 if k.startswith("text_model.encoder.layers.")})
    for n in layers:
        src, dst = f"text_model.encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for suffix, tail in (("weight", "in_proj_weight"), ("bias", "in_proj_bias")):
            one(dst + "attn." + tail, "rows",
                *(f"{src}self_attn.{q}_proj.{suffix}" for q in ("q", "k", "v")))
        for d, l in OPENCLIP_LAYER.items():
            for suffix in ("weight", "bias"):
                one(f"{dst}{l}.{suffix}", "copy", f"{src}{d}.{suffix}")
    one("ln_final.weight", "copy", "text_model.final_layer_norm.weight")
    one("ln_final.bias", "copy", "text_model.final_layer_norm.bias")
    one("text_projection", "transpose", "text_projection.weight")
    if used != te2:
        raise KeyError(f"unmapped text_encoder_2 keys {sorted(te2 - used)}")
    out.sort(key=lambda e: e["key"])
    keys = [e["key"] for e in out]
    if len(set(keys)) != len(keys):
        raise KeyError("duplicate single-file key in recipe")
    return out
