#!/usr/bin/env python3
"""Writes the transformers 5 CLIP fixtures (Tests/Fixtures/transformers5/).

    python make_transformers5_fixtures.py            # rebuild everything, then run the checks
    python make_transformers5_fixtures.py --check    # recompute from the committed files and compare

Three tiny random-weight CLIP models saved by transformers 5 itself
(`save_pretrained(..., safe_serialization=True)`, fp16): config.json and model.safetensors
exactly as transformers writes them (only the safetensors header is re-emitted in a fixed
order). They show the key layouts a loader meets in files written by a current
transformers: a CLIPTextModel built from a config (not loaded) saves its weights WITHOUT
the `text_model.` prefix (`embeddings.token_embedding.weight`, ...), because transformers
5's CLIPTextModel has no `text_model` submodule; CLIPTextModelWithProjection and
CLIPVisionModelWithProjection keep `text_model.` / `vision_model.`. (A CLIPTextModel that
was *loaded* from a prefixed file re-saves prefixed: transformers 5 records the prefix it
removed on load and adds it back on save. --check verifies both.)

  text_encoder/    CLIPTextModel, quick_gelu, 2 layers, width 8 (as SD 1.x / SDXL's first encoder)
  text_encoder_2/  CLIPTextModelWithProjection, gelu, 3 layers, width 8, projection 8
                   (as SDXL's OpenCLIP-bigG encoder)
  image_encoder/   CLIPVisionModelWithProjection, gelu, 2 layers, width 8, 32x32 images,
                   8x8 patches, projection 8 (as an IP-Adapter image encoder)
  reference.safetensors   inputs and float32 outputs of the three models loaded back from
                   the written folders with from_pretrained (see README.md)

The vocabulary is 1,000 ids (49,408 would make each token table 0.8 MB); bos 998 and eos
999 are the last two ids, as 49406 / 49407 are in CLIP's, so the pooled output's "first
eos position" and the legacy "position of the largest id" (what transformers does when
a config says eos_token_id 2, as old SD configs do) pick the same token. The ids pad
with eos, so "first" vs "last" eos does matter.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
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
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import transformers  # noqa: E402

PINNED_MAJOR = 5
if int(transformers.__version__.split(".")[0]) != PINNED_MAJOR:
    sys.exit(f"make_transformers5_fixtures.py needs transformers {PINNED_MAJOR}.x "
             f"(requirements-transformers5.txt), found {transformers.__version__}")

from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,  # noqa: E402
                          CLIPVisionConfig, CLIPVisionModelWithProjection)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "transformers5"
PINS = HERE / "requirements-transformers5.txt"
SIZE_LIMIT = 150_000    # bytes, the whole Tests/Fixtures/transformers5/ folder
CHECK_TOL = 1e-6        # --check: max|stored - recomputed| / max|stored|
SEED = 5000
QK_GAIN = 3.0           # query / key projections scaled up: peaked attention, as trained models
SAVE_DTYPE = torch.float16

VERSIONS = {
    "torch": torch.__version__,
    "numpy": np.__version__,
    "safetensors": safetensors.__version__,
    "transformers": transformers.__version__,
}

# --------------------------------------------------------------------------- configs

VOCAB = 1000
BOS, EOS = VOCAB - 2, VOCAB - 1
TEXT1 = {"vocab_size": VOCAB, "hidden_size": 8, "intermediate_size": 16,
         "num_attention_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 77,
         "hidden_act": "quick_gelu", "projection_dim": 8, "layer_norm_eps": 1e-5,
         "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": EOS}
TEXT2 = {**TEXT1, "num_hidden_layers": 3, "hidden_act": "gelu", "projection_dim": 8}
VISION = {"image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 8,
          "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
          "hidden_act": "gelu", "projection_dim": 8, "layer_norm_eps": 1e-5}

# (folder, class, config class, config, expected key prefix of every tensor in the file)
MODELS = (
    ("text_encoder", CLIPTextModel, CLIPTextConfig, TEXT1, ""),
    ("text_encoder_2", CLIPTextModelWithProjection, CLIPTextConfig, TEXT2, "text_model."),
    ("image_encoder", CLIPVisionModelWithProjection, CLIPVisionConfig, VISION, "vision_model."),
)
# tensors outside the prefix (the projections sit beside text_model / vision_model)
UNPREFIXED = {"text_encoder_2": {"text_projection.weight"},
              "image_encoder": {"visual_projection.weight"}}

# bos, seven ordinary ids (0 and 997, the ends of the ordinary range, included), eos at
# position 8, then eos padding to 77 (as the SD 1.x tokenizer pads)
PROMPT_IDS = [BOS, 320, 7, 615, 0, 997, 123, 49, EOS]
IDS = PROMPT_IDS + [EOS] * (77 - len(PROMPT_IDS))
EOS_POSITION = IDS.index(EOS)

# --------------------------------------------------------------------------- helpers

META_ORDER = ("variant", "entries", "configs", "versions", "notes")


def canonical_safetensors(path: Path) -> None:
    """Re-emits a safetensors header with sorted metadata and tensors in data order, padded
    to its original length (a local equivalent of make_sd_fixtures.canonical_safetensors,
    which cannot be imported here: that module needs diffusers). The tensor data, and so
    the offsets, are untouched; only the header's JSON order is fixed."""
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {}
    if meta is not None:
        order = lambda k: (META_ORDER.index(k) if k in META_ORDER else len(META_ORDER), k)  # noqa: E731
        out["__metadata__"] = {k: meta[k] for k in sorted(meta, key=order)}
    for name in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        out[name] = header[name]
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:
        raise AssertionError("canonical header is longer than the original")
    path.write_bytes(blob[:8] + text + b" " * (n - len(text)) + blob[8 + n:])


def rel_err(a, b) -> float:
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    if a.shape != b.shape:
        return math.inf
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


class Expect:
    """expect(cond, msg) prints `ok` / `FAIL`; verdict() gives the exit status."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, cond: bool, msg: str) -> None:
        print(("  ok    " if cond else "  FAIL  ") + msg)
        if not cond:
            self.problems.append(msg)

    def verdict(self) -> int:
        print(f"FAILED: {len(self.problems)} problem(s)" if self.problems else "all checks passed")
        return 1 if self.problems else 0


def pinned_transformers() -> str | None:
    for line in PINS.read_text().splitlines():
        if line.lower().startswith("transformers=="):
            return line.split("==", 1)[1].strip()
    return None


def file_keys(path: Path) -> tuple[list[str], set[str], dict[str, str]]:
    """(keys in the file's header order, dtypes, metadata) of a safetensors file."""
    with safetensors.safe_open(str(path), "pt") as f:
        return list(f.keys()), {f.get_slice(k).get_dtype() for k in f.keys()}, f.metadata()


# --------------------------------------------------------------------------- models

def randomize(model: torch.nn.Module, seed: int) -> None:
    """Deterministic weights of useful size, rounded to float16 precision (the files are
    fp16, so nothing is lost). Default CLIP init has embeddings of std 0.02 and unit norms /
    zero biases, under which a tiny model barely depends on its input and a loader that
    swapped weight and bias would go unnoticed; here every parameter is random:
    norm weights 1 + 0.25 N, biases 0.25 N, token / position / class embeddings N(0, 0.5^2),
    matrices and the patch convolution N(0, 1 / fan_in), q / k projections x QK_GAIN."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                v = 1 + 0.25 * r if name.endswith("weight") else 0.25 * r
            elif name.endswith("bias"):
                v = 0.25 * r
            elif name.endswith(("token_embedding.weight", "position_embedding.weight",
                                "class_embedding")):
                v = 0.5 * r
            else:
                v = r / math.sqrt(p[0].numel())
                if name.endswith(("q_proj.weight", "k_proj.weight")):
                    v = v * QK_GAIN
            p.copy_(v.half().float())


def build_models() -> dict[str, torch.nn.Module]:
    out = {}
    for i, (folder, cls, cfg_cls, cfg, _) in enumerate(MODELS):
        torch.manual_seed(SEED + 10 * i)
        m = cls(cfg_cls(**cfg))
        randomize(m, SEED + 10 * i + 1)
        out[folder] = m.eval()
    return out


def save_folders(models: dict[str, torch.nn.Module], out: Path) -> None:
    for folder, m in models.items():
        m.to(SAVE_DTYPE).save_pretrained(str(out / folder), safe_serialization=True)
        m.to(torch.float32)
        canonical_safetensors(out / folder / "model.safetensors")


def load_folders(out: Path) -> dict[str, torch.nn.Module]:
    return {folder: cls.from_pretrained(str(out / folder), dtype=torch.float32,
                                        local_files_only=True).eval()
            for folder, cls, *_ in MODELS}


def pixel_values() -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED + 100)
    return torch.randn([1, 3, VISION["image_size"], VISION["image_size"]], generator=g)


# --------------------------------------------------------------------------- reference

def reference(models: dict[str, torch.nn.Module]) -> tuple[dict, dict]:
    t, e = {}, {}

    def put(name, v, desc):
        v = torch.as_tensor(v).detach().to(torch.float32).contiguous()
        t[name] = v.numpy()
        e[name] = {"shape": list(v.shape), "desc": desc}

    ids = torch.tensor([IDS], dtype=torch.long)
    pix = pixel_values()
    put("ids", ids, f"input ids (exact integers as float32): bos {BOS}, seven ids, eos {EOS} at "
        f"position {EOS_POSITION}, eos padding to 77; fed to both text encoders")
    with torch.no_grad():
        o1 = models["text_encoder"](ids, output_hidden_states=True)
        o2 = models["text_encoder_2"](ids, output_hidden_states=True)
        o3 = models["image_encoder"](pix, output_hidden_states=True)
    put("text_encoder.last_hidden_state", o1.last_hidden_state,
        "text_encoder last_hidden_state (final_layer_norm of the last layer's output)")
    put("text_encoder.penultimate", o1.hidden_states[-2],
        "text_encoder hidden_states[-2]: the output of layer 0 of 2, no final norm")
    put("text_encoder.pooler_output", o1.pooler_output,
        f"text_encoder pooler_output: last_hidden_state at the first eos (position {EOS_POSITION})")
    put("text_encoder_2.last_hidden_state", o2.last_hidden_state,
        "text_encoder_2 last_hidden_state (final_layer_norm of the last layer's output)")
    put("text_encoder_2.penultimate", o2.hidden_states[-2],
        "text_encoder_2 hidden_states[-2]: the output of layer 1 of 3, no final norm")
    put("text_encoder_2.text_embeds", o2.text_embeds,
        f"text_encoder_2 text_embeds: text_projection(last_hidden_state[first eos = {EOS_POSITION}])")
    put("image_encoder.pixel_values", pix,
        "image_encoder input, already preprocessed (torch.randn, NCHW)")
    put("image_encoder.image_embeds", o3.image_embeds,
        "image_encoder image_embeds: visual_projection(post_layernorm(last_hidden_state[:, 0]))")
    put("image_encoder.penultimate", o3.hidden_states[-2],
        "image_encoder hidden_states[-2]: the output of layer 0 of 2 (class token first, then "
        "the 16 patches row-major), no post_layernorm; what IP-Adapter Plus reads")
    # consistency of the pooling rule with the hand-computed one
    assert torch.equal(o1.pooler_output, o1.last_hidden_state[:, EOS_POSITION])
    return t, e


def write_reference(path: Path, tensors: dict, entries: dict) -> None:
    meta = {"variant": "transformers5",
            "entries": json.dumps(entries, ensure_ascii=False, allow_nan=False),
            "configs": json.dumps({"text_encoder": TEXT1, "text_encoder_2": TEXT2,
                                   "image_encoder": VISION, "save_dtype": str(SAVE_DTYPE),
                                   "seed": SEED}),
            "versions": json.dumps(VERSIONS),
            "notes": " ".join(__doc__.split("\n\n")[2].split())}
    path.write_bytes(safetensors.numpy.save(tensors, metadata=meta))
    canonical_safetensors(path)


def generate(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_folders(build_models(), out)
    tensors, entries = reference(load_folders(out))
    write_reference(out / "reference.safetensors", tensors, entries)


# --------------------------------------------------------------------------- checks

def report_sizes(out: Path) -> int:
    total = 0
    for p in sorted(q for q in out.rglob("*") if q.is_file()):
        total += p.stat().st_size
        print(f"{p.stat().st_size:>10,d}  {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"{total:>10,d}  total")
    return total


def check_layouts(out: Path, expect: Expect) -> None:
    for folder, cls, _, cfg, prefix in MODELS:
        path = out / folder / "model.safetensors"
        keys, dtypes, meta = file_keys(path)
        extra = UNPREFIXED.get(folder, set())
        inner = [k for k in keys if k not in extra]
        if prefix:
            ok = all(k.startswith(prefix) for k in inner) and set(keys) - set(inner) == extra
        else:
            ok = not any(k.startswith(("text_model.", "vision_model.")) for k in keys)
        shown = f"'{prefix}*'" if prefix else "no text_model. prefix"
        expect(ok, f"{folder}/model.safetensors: {len(keys)} tensors, {shown}"
               f"{' + ' + ', '.join(sorted(extra)) if extra else ''} (first: {sorted(keys)[0]})")
        expect(dtypes == {"F16"} and meta == {"format": "pt"},
               f"{folder}: all F16, metadata {meta}")
        expect(not any("position_ids" in k for k in keys), f"{folder}: no position_ids buffer saved")
        conf = json.loads((out / folder / "config.json").read_text())
        same = all(conf[k] == v for k, v in cfg.items()) and conf["architectures"] == [cls.__name__]
        expect(same, f"{folder}/config.json: architectures [{cls.__name__}], the script's config "
               f"values, dtype {conf.get('dtype')}, transformers_version {conf.get('transformers_version')}")


def check_prefix_roundtrip(out: Path, tmp: Path, models: dict, expect: Expect) -> None:
    """transformers 5 loads a text_model.-prefixed CLIPTextModel file (what transformers 4
    wrote) and re-saves it prefixed; the committed unprefixed file re-saves unprefixed."""
    src = out / "text_encoder"
    keys, _, _ = file_keys(src / "model.safetensors")
    pre = tmp / "prefixed"
    pre.mkdir()
    shutil.copy(src / "config.json", pre / "config.json")
    with safetensors.safe_open(str(src / "model.safetensors"), "pt") as f:
        sd = {"text_model." + k: f.get_tensor(k) for k in keys}
    safetensors.torch.save_file(sd, str(pre / "model.safetensors"), metadata={"format": "pt"})
    m, info = CLIPTextModel.from_pretrained(str(pre), dtype=torch.float32, local_files_only=True,
                                            output_loading_info=True)
    ref = models["text_encoder"].state_dict()
    same = all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    problems = {k: v for k, v in info.items() if v}
    expect(same and not problems, f"a text_model.-prefixed copy loads into CLIPTextModel "
           f"(same weights, loading info {problems or 'clean'})")
    committed = CLIPTextModel.from_pretrained(str(src), dtype=torch.float32, local_files_only=True)
    for name, model, want in (("prefixed", m, "text_model."), ("committed", committed, "")):
        dest = tmp / f"resaved_{name}"
        model.save_pretrained(str(dest), safe_serialization=True)
        rk, _, _ = file_keys(dest / "model.safetensors")
        ok = all(k.startswith("text_model.") for k in rk) if want else \
            not any(k.startswith("text_model.") for k in rk)
        expect(ok, f"CLIPTextModel loaded from the {name} file re-saves "
               f"{'with' if want else 'without'} the text_model. prefix (first: {sorted(rk)[0]})")


def check(out: Path) -> int:
    expect = Expect()
    pinned = pinned_transformers()
    exact = pinned == transformers.__version__
    if not exact:
        print(f"  note  transformers {transformers.__version__}, pinned {pinned}: "
              "config.json bytes will differ (transformers_version)")
    total = report_sizes(out)
    expect(total <= SIZE_LIMIT, f"folder {total:,d} bytes <= {SIZE_LIMIT:,d}")
    check_layouts(out, expect)
    built = build_models()
    loaded = load_folders(out)
    for folder, _, _, _, _ in MODELS:
        a, b = built[folder].state_dict(), loaded[folder].state_dict()
        same = set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
        expect(same, f"{folder}: committed weights == rebuilt from seed {SEED} ({len(a)} tensors, "
               "bit for bit)")
    tensors, entries = reference(loaded)
    with safetensors.safe_open(str(out / "reference.safetensors"), "numpy") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
        dts = {f.get_slice(k).get_dtype() for k in f.keys()}
    expect(set(stored) == set(tensors) and dts == {"F32"},
           f"reference.safetensors: the same {len(tensors)} tensors, all F32")
    expect(all(list(stored[k].shape) == entries[k]["shape"] for k in stored if k in entries)
           and json.loads(meta["entries"]) == entries,
           "reference shapes and metadata entries as recomputed")
    worst, name = max(((rel_err(stored[k], tensors[k]), k) for k in tensors if k in stored),
                      default=(0.0, ""))
    expect(worst <= CHECK_TOL, f"recomputed reference within {CHECK_TOL}: {worst:.3g}"
           f"{f' ({name})' if worst > 0 else ''}")
    expect(float(np.abs(stored["text_encoder_2.text_embeds"]).max()) > 0.1
           and float(np.abs(stored["image_encoder.image_embeds"]).max()) > 0.1,
           "pooled outputs are not trivially small")
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        check_prefix_roundtrip(out, tmp, built, expect)
        again = tmp / "again"
        generate(again)
        files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
        files2 = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
        differ = [str(p) for p in files if p in files2 and not filecmp.cmp(out / p, again / p, shallow=False)]
        ok = files == files2 and not differ
        if exact:
            expect(ok, f"regenerating gives the same {len(files)} files byte for byte {differ or ''}")
        else:
            print(f"  note  regenerated bytes {'identical' if ok else f'differ: {differ}'} "
                  "(not checked: transformers is not the pinned version)")
    for p in sorted(q for q in out.rglob("*") if q.is_file()):
        print(f"  sha256 {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}  {p.relative_to(out)}")
    return expect.verdict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="recompute from the committed files and compare (no rewrite)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if not args.check:
        generate(args.out)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
