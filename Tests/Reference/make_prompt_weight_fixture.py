#!/usr/bin/env python3
"""Writes the long/weighted prompt reference: prompts encoded by AUTOMATIC1111's
rule (emphasis, 75-token chunks, comma backtrack, BREAK, textual inversion),
implemented here from its documented behaviour, on the tiny SD 1.x and SDXL
text encoders of Tests/Fixtures.

- Tests/Fixtures/sd/embeddings/tiny.safetensors: emb_params [3, 6] (SD 1.x,
  the tiny encoder's width) and Tests/Fixtures/sdxl/embeddings/tiny.safetensors:
  clip_l [2, 4], clip_g [2, 4]; random, torch.manual_seed(31).
- Tests/Fixtures/sd/prompt_weights.safetensors and
  Tests/Fixtures/sdxl/prompt_weights.safetensors: for case i, `case.i.embedding`
  [1, 77k, D] (SDXL: both encoders' penultimate states, side by side) and
  `case.i.words` (int64 positions of the prompt's own tokens over all chunks);
  SDXL adds `case.i.pooled` (text_encoder_2's projection of the first chunk).
  The prompts are in the metadata (`case.i.prompt`).

The rule (A1111 web UI, default settings):
1. Emphasis: `(x)` ×1.1, `[x]` ÷1.1, `(x:w)` ×w, `\\(` etc. literal, unclosed
   brackets apply to the end, adjacent runs of equal weight merged; BREAK
   (a word) ends a chunk.
2. Each run is tokenized on its own (no BOS/EOS). Tokens fill chunks of 75;
   when a chunk is full and a comma stood among its last 20 tokens, the
   tokens after the comma move to the next chunk. An embedding's k vectors
   are never split across chunks. A chunk is BOS + 75 (EOS-padded) + EOS,
   then everything after the first EOS is the pad token.
3. Each chunk is encoded on its own; its states are multiplied by their
   weights and rescaled so the chunk's mean equals its unweighted mean; the
   chunks are concatenated along the sequence. SDXL's pooled output comes
   from the first chunk.

    ~/venvs/pilot-sd-reference/bin/python Tests/Reference/make_prompt_weight_fixture.py

Pinned environment: requirements-sd.txt (torch 2.13.0+cpu, transformers 4.57.6).
"""
from __future__ import annotations

import gzip
import re
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "Fixtures"
CHUNK = 75
BACKTRACK = 20

LONG = ("a detailed painting of a red fox sitting in deep fresh snow beside a frozen river, "
        "tall pine trees behind it, soft morning light, mist over the water, "
        "small birds on the branches, a wooden cabin far away with smoke rising from its chimney, "
        "mountains in the distance under a pale blue sky, footprints leading toward the viewer, "
        "highly detailed fur, sharp focus, warm colours against the cold blue shadows, "
        "award winning wildlife photograph, golden hour, shallow depth of field, bokeh")
CASES = [
    "a red fox in the snow",
    "a (red:1.3) fox in the [snow], ((very)) detailed \\(literal\\) (fox:0.5) [[dim]]",
    LONG,
    "(" + LONG + ":1.2), and a cat",
    "a red fox BREAK in the snow",
    "(unclosed bracket, [still open",
    "a photo of embedding:tiny in the snow, (embedding:tiny:1.4)",
    "x " * 70 + "embedding:tiny at the chunk edge",
]

# --------------------------------------------------------------------------- rule

TOKEN = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def emphasis(text: str) -> list[list]:
    out: list[list] = []
    opened_round, opened_square = [], []

    def scale(start, factor):
        for item in out[start:]:
            item[1] *= factor

    for m in TOKEN.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            out.append([piece[1:], 1.0])
        elif piece == "(":
            opened_round.append(len(out))
        elif piece == "[":
            opened_square.append(len(out))
        elif weight is not None and opened_round:
            scale(opened_round.pop(), float(weight))
        elif piece == ")" and opened_round:
            scale(opened_round.pop(), 1.1)
        elif piece == "]" and opened_square:
            scale(opened_square.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(BREAK.split(piece)):
                if i > 0:
                    out.append(["BREAK", -1])
                out.append([part, 1.0])
    for start in opened_round:
        scale(start, 1.1)
    for start in opened_square:
        scale(start, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    i = 0
    while i + 1 < len(out):
        if out[i][1] == out[i + 1][1]:
            out[i][0] += out[i + 1][0]
            out.pop(i + 1)
        else:
            i += 1
    return out


EMBEDDING = re.compile(r"(?<![A-Za-z0-9_.\-])embedding:([A-Za-z0-9_.\-]+)")


def pieces(text: str, tok: CLIPTokenizer, embeddings: dict):
    """Token ids and ("emb", name) entries of one run of text."""
    out, last = [], 0
    for m in EMBEDDING.finditer(text):
        name = m.group(1).rstrip(".")
        if text[last:m.start()]:
            out += tok(text[last:m.start()], add_special_tokens=False).input_ids
        out.append(("emb", name, embeddings[name].shape[0]))
        last = m.start() + len("embedding:") + len(name)
    if text[last:] or not out:
        out += tok(text[last:], add_special_tokens=False).input_ids
    return out


def chunks(prompt: str, tok: CLIPTokenizer, pad_id: int, embeddings: dict):
    comma = tok.convert_tokens_to_ids(",</w>")
    done, cur = [], []  # entries: (token or ("emb", name, row), weight)
    last_comma = -1

    def close():
        nonlocal cur, last_comma
        done.append(cur)
        cur, last_comma = [], -1

    for text, weight in emphasis(prompt):
        if text == "BREAK" and weight == -1:
            close()
            continue
        for p in pieces(text, tok, embeddings):
            if isinstance(p, tuple):
                _, name, k = p
                if len(cur) == CHUNK:
                    close()
                if len(cur) + k > CHUNK:
                    close()
                cur += [(("emb", name, r), weight) for r in range(k)]
                continue
            if p == comma:
                last_comma = len(cur)
            elif len(cur) == CHUNK and last_comma != -1 and len(cur) - last_comma <= BACKTRACK:
                moved = cur[last_comma + 1:]
                cur = cur[:last_comma + 1]
                close()
                cur = moved
            if len(cur) == CHUNK:
                close()
            cur.append((p, weight))
    if cur or not done:
        close()
    rows = []
    for entries in done:
        ids = [tok.bos_token_id]
        mult = [1.0]
        inject, content = {}, []
        for t, w in entries:
            if isinstance(t, tuple):
                inject[len(ids)] = (t[1], t[2])
                ids.append(0)
            else:
                ids.append(t)
            content.append(len(ids) - 1)
            mult.append(w)
        first_end = len(ids)
        ids += [tok.eos_token_id] * (CHUNK + 2 - len(ids))
        mult += [1.0] * (CHUNK + 2 - len(mult))
        for i in range(first_end + 1, len(ids)):
            ids[i] = pad_id
        rows.append((ids, mult, inject, content))
    return rows


def encode_chunk(model, ids, inject, role_vectors, penultimate: bool, pooled: bool):
    """One chunk through a text encoder, embedding rows replaced at `inject`."""
    def hook(_module, _inputs, output):
        output = output.clone()
        for position, (name, row) in inject.items():
            output[0, position] = role_vectors[name][row]
        return output

    handle = model.text_model.embeddings.token_embedding.register_forward_hook(hook)
    try:
        out = model(torch.tensor([ids]), output_hidden_states=True)
    finally:
        handle.remove()
    z = out.hidden_states[-2] if penultimate else out.last_hidden_state
    return z, (out.text_embeds if pooled else None)


def weighted(z, mult):
    before = z.mean()
    z = z * torch.tensor(mult).reshape(1, -1, 1)
    return z * (before / z.mean())


def encode(prompt, roles, embeddings_by_role):
    """roles: (model, tokenizer, pad id, penultimate, pooled). Returns (states, words, pooled)."""
    per_role = [chunks(prompt, tok, pad, embeddings_by_role[0]) for (_, tok, pad, _, _) in roles]
    assert len({len(r) for r in per_role}) == 1, "the fixture's prompts chunk alike for every encoder"
    states, pooled = [], None
    for r, (model, _tok, _pad, penultimate, want_pooled) in enumerate(roles):
        zs = []
        for c, (ids, mult, inject, _) in enumerate(per_role[r]):
            z, p = encode_chunk(model, ids, inject, embeddings_by_role[r], penultimate, want_pooled and c == 0)
            zs.append(weighted(z, mult) if any(m != 1 for m in mult) else z)
            if p is not None:
                pooled = p
        states.append(torch.cat(zs, dim=1))
    words = [c * (CHUNK + 2) + j for c, (_, _, _, content) in enumerate(per_role[0]) for j in content]
    return torch.cat(states, dim=2), words, pooled


def tokenizer(pad_token: str) -> CLIPTokenizer:
    folder = FIXTURES / "sd" / "sd1" / "tokenizer"
    work = Path(tempfile.mkdtemp(prefix="pilot-tok-"))
    for name in ("vocab.json", "merges.txt"):
        (work / name).write_bytes(gzip.decompress((folder / (name + ".gz")).read_bytes()))
    tok = CLIPTokenizer(str(work / "vocab.json"), str(work / "merges.txt"), pad_token=pad_token, model_max_length=77)
    assert tok.fix_text is None, "ftfy is installed: the fixtures assume it is not"
    return tok


def write(out: Path, roles, embeddings_by_role) -> None:
    tensors, meta = {}, {"rule": "AUTOMATIC1111 emphasis and chunking, comma backtrack 20"}
    for i, prompt in enumerate(CASES):
        z, words, pooled = encode(prompt, roles, embeddings_by_role)
        tensors[f"case.{i}.embedding"] = z.detach().contiguous()
        tensors[f"case.{i}.words"] = torch.tensor(words, dtype=torch.int64)
        if pooled is not None:
            tensors[f"case.{i}.pooled"] = pooled.detach().contiguous()
        meta[f"case.{i}.prompt"] = prompt
        print(f"{out.name} case {i}: {list(z.shape)}, {len(words)} word tokens")
    save_file(tensors, str(out), metadata=meta)


def main() -> None:
    torch.manual_seed(31)
    tok1, tok2 = tokenizer("<|endoftext|>"), tokenizer("!")
    with torch.no_grad():
        sd1 = CLIPTextModel.from_pretrained(FIXTURES / "sd" / "sd1" / "text_encoder", dtype=torch.float32).eval()
        emb1 = {"tiny": torch.randn(3, sd1.config.hidden_size)}
        (FIXTURES / "sd" / "embeddings").mkdir(exist_ok=True)
        save_file({"emb_params": emb1["tiny"].contiguous()}, str(FIXTURES / "sd" / "embeddings" / "tiny.safetensors"))
        write(FIXTURES / "sd" / "prompt_weights.safetensors",
              [(sd1, tok1, tok1.eos_token_id, False, False)], [emb1])

        root = FIXTURES / "sdxl" / "sdxl"
        te1 = CLIPTextModel.from_pretrained(root / "text_encoder", dtype=torch.float32, variant="fp16").eval()
        te2 = CLIPTextModelWithProjection.from_pretrained(root / "text_encoder_2", dtype=torch.float32,
                                                          variant="fp16").eval()
        l_vectors, g_vectors = torch.randn(2, te1.config.hidden_size), torch.randn(2, te2.config.hidden_size)
        (FIXTURES / "sdxl" / "embeddings").mkdir(exist_ok=True)
        save_file({"clip_l": l_vectors.contiguous(), "clip_g": g_vectors.contiguous()},
                  str(FIXTURES / "sdxl" / "embeddings" / "tiny.safetensors"))
        write(FIXTURES / "sdxl" / "prompt_weights.safetensors",
              [(te1, tok1, tok1.eos_token_id, True, False), (te2, tok2, tok2.convert_tokens_to_ids("!"), True, True)],
              [{"tiny": l_vectors}, {"tiny": g_vectors}])


if __name__ == "__main__":
    main()
