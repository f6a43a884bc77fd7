"""Writes Tests/Fixtures/tokenizer/edge_cases.json: prompts that probe the
corners of transformers' slow CLIPTokenizer without ftfy (its BasicTokenizer
path), with the ids it produces for SD1 (padding with <|endoftext|>) and SD2
(padding with "!").

The vocabulary and merges are derived from OpenAI's bpe_simple_vocab_16e6.txt.gz
exactly as OpenAI's simple_tokenizer does, written to a temporary folder as
vocab.json + merges.txt, and loaded by transformers' CLIPTokenizer. Run with
transformers==4.57.6 and WITHOUT ftfy installed (the script refuses otherwise):

    python Tests/Reference/make_tokenizer_edge_cases.py
"""

import gzip
import importlib.util
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BPE = os.path.join(ROOT, "Sources/Diffusion/Resources/bpe_simple_vocab_16e6.txt.gz")
OUT = os.path.join(ROOT, "Tests/Fixtures/tokenizer/edge_cases.json")

PROMPTS = [
    "",
    "   ",
    "a photo of a cat",
    "A Photo Of A CAT",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nand\u000bvertical\u000cfeeds",
    "don't stop, it's what we've I'm you'll he'd they're",
    "DON'T IT'S WE'VE",
    "''s '' 's !'s",
    "rock'n'roll o'clock",
    "numbers 1234567890 and 3.14159 and 1,000,000",
    "\u0661\u0662\u0663 arabic-indic digits, \u00bd fraction, \u2167 roman",
    "punctuation!!! ??? ... --- ((( ))) [[[ ]]] {{{ }}} <<< >>>",
    "masterpiece, best quality, (ultra-detailed:1.2), [bad hands], {cat|dog}",
    "emoji \U0001F600\U0001F431\U0001F3F3\uFE0F\u200D\U0001F308 and flags \U0001F1EF\U0001F1F5",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "cafe\u0301 composed by NFC",
    "x\u0302 combining mark without precomposed form",
    "Stra\u00dfe GROSS \u1e9e",
    "\u0130stanbul \u0131 dotless",
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u03a3 \u03a3\u03a3 A\u03a3 A\u03a3.",
    "\u4e00\u4e2a\u732b\u7684\u7167\u7247 chinese",
    "\u732b\u732bcat\u72d7",
    "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0 \u3072\u3089\u304c\u306a \u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5",
    "\uf900\uf901 compatibility ideographs",
    "\U00020000 extension b",
    "\u3000ideographic space\u3000",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "soft\u00adhyphen",
    "nbsp\u00a0here\u2009thin\u202fnarrow",
    "line\u2028separator\u2029paragraph",
    "control\u0001chars\u0007and\u007fdel\u0085nel",
    "replacement \ufffd char",
    "private use \ue000\uf8ff",
    "<|startoftext|>",
    "<|endoftext|>",
    "a cat <|endoftext|> a dog",
    "a cat<|endoftext|>a dog",
    "!<|endoftext|>!",
    "<|ENDOFTEXT|> uppercase special",
    "<|startoftext|><|endoftext|><|startoftext|>",
    "<|endof text|>",
    "<|\u017ftartoftext|> long s special",
    "<|startoftext|ENDOFTEXT|> overlapping",
    "<|<|endoftext|>|> nested",
    "it'\u017f long s contraction",
    "\uff21\uff22\uff23 fullwidth \uff11\uff12\uff13",
    "\u212a kelvin \u212b angstrom",
    "\ufb01 ligature \ufb00",
    "\u0410\u043b\u0435\u043a\u0441\u0430\u043d\u0434\u0440 \u041f\u0443\u0448\u043a\u0438\u043d",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "a" * 300,
    "word " * 80,
    "an intricately detailed oil painting of a lighthouse on a rocky cliff at dusk, "
    "crashing waves, dramatic clouds, volumetric light, by ivan aivazovsky and "
    "greg rutkowski, trending on artstation, 8k, highly detailed, sharp focus, "
    "cinematic composition, golden hour, moody atmosphere",
    "$100 & 50% off @home #tag ~tilde `backtick` ^caret *star* _under_ |pipe| \\back/ \"quoted\"",
    "https://example.com/path?query=1&x=y",
    "\U0001D400\U0001D401 mathematical bold",
    "\u00b2\u00b3 superscripts \u2082 subscript",
    "\u2160\u2161 roman numerals \u3007 ideographic zero",
    # Assigned after Unicode 14.0: unassigned ("Cn") to Python 3.11's unicodedata, so removed.
    "shaking face \U0001FAE8 (Unicode 15.0) and \U0002EBF0 (CJK extension I, 15.1)",
    "\u0CF3 kannada (15.0) \U00011F00 kawi (15.0)",
    "\u1F88 greek with prosgegrammeni \u1FBC titlecase",
    "\u00C5\u030A a ring plus ring, \u1E0A\u0323 d dot above plus dot below",
    "x\u0345\u03a3 ypogegrammeni before sigma, \u03a3\u0301x",
    # Where Foundation's NFC differs from Python's (see make_unicode_nfc_table.py).
    "a\u0358\u0f75 tibetan vowel after a mark, \u0301\u0f73 \u0315\u0f81",
    "\u1113\u1161 old hangul jamo \u1100\u1176 stay apart, \u1100\u1161\u11a8 compose",
    "\U0001004c\u0301 linear b \U00010041\u0323 with marks",
    "\u0295\u03a3 pharyngeal before sigma, A\u03a3\U0001171e",
    "a\u0345b !\u0345! 1\u03452 '\u0345s \u0345\u0345 ypogegrammeni matches no class under IGNORECASE",
]


def derive_vocab_and_merges(path):
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {v: i for i, v in enumerate(vocab)}, merges


def main():
    if importlib.util.find_spec("ftfy") is not None:
        sys.exit("ftfy is installed: uninstall it, the reference is the BasicTokenizer path")
    import transformers
    from transformers import CLIPTokenizer

    vocab, merges = derive_vocab_and_merges(BPE)
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
        sd1 = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
        sd2 = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), pad_token="!")

    cases = []
    for prompt in PROMPTS:
        cases.append({
            "prompt": prompt,
            "tokens": sd1.tokenize(prompt),
            "content": sd1.encode(prompt, add_special_tokens=False),
            "sd1": sd1(prompt, padding="max_length", max_length=77, truncation=True).input_ids,
            "sd2": sd2(prompt, padding="max_length", max_length=77, truncation=True).input_ids,
        })
    document = {
        "generator": f"transformers {transformers.__version__} CLIPTokenizer (slow, no ftfy), "
                     f"Python {sys.version_info.major}.{sys.version_info.minor}",
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
