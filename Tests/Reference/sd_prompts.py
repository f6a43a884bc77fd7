"""Prompts for the CLIP tokenizer fixture (Tests/Fixtures/sd/prompts.json).

Hand-written cases first (each group exercises one part of the slow
transformers CLIPTokenizer's text path without ftfy: BasicTokenizer cleanup,
CJK spacing, NFC, whitespace split, lowercasing, the special-token split, the
pre-tokenizer regex and byte-level BPE), then a deterministic block of
ordinary prompts built from word lists. Escapes are written out so the source
stays readable; every string is what is tokenized.
"""

from __future__ import annotations

HAND_WRITTEN: list[str] = [
    # --- plain ASCII prompts
    "a photo of an astronaut riding a horse",
    "a red fox in the snow",
    "A Red Fox In The Snow",
    "A RED FOX IN THE SNOW",
    "portrait of a woman, oil painting, trending on artstation",
    "a cat",
    "cat",
    "a",
    "x",
    "the quick brown fox jumps over the lazy dog",
    "highly detailed digital painting of a castle on a hill at sunset",
    "macro photograph of a dew drop on a spider web, bokeh, 85mm",
    "isometric pixel art of a tiny island with a lighthouse",
    "an armchair in the shape of an avocado",
    "a bowl of ramen, studio ghibli style",
    "cyberpunk city street at night, neon signs, rain, reflections",
    "watercolor painting of a hummingbird",
    "a cozy cabin in the woods, winter, smoke from the chimney",
    "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "zzzz qqqq xxxx jjjj",
    "photorealistic, 8k, uhd, hdr, dslr",
    # --- punctuation
    "Hello, world!",
    "hello...world",
    "what?! no way!!!",
    "(masterpiece:1.2), (best quality), [blurry], {ornate}",
    "((((very emphasised))))",
    "a | b | c",
    "foo-bar_baz.qux",
    "e-mail: someone@example.com",
    "https://example.com/path?query=1&x=2#frag",
    "C:\\Users\\pilot\\image.png",
    "/usr/local/bin/python3",
    "x^2 + y_1 = z*3 / 4 % 5",
    "#hashtag @mention $100 ~tilde `backtick`",
    "\"double quotes\" and 'single quotes'",
    "semi;colon:colon",
    "<tag>not html</tag>",
    "---===+++***",
    "!!!",
    ".",
    "...",
    # --- numbers
    "1",
    "0123456789",
    "3.14159",
    "2,000,000 stars",
    "1920s fashion",
    "24mm f/1.4 1/250s iso100",
    "model 3000 v2.1.0",
    "#1 best seller",
    "12:30pm on 2024-01-31",
    "-42 degrees",
    "1e-9",
    "٣ Arabic-Indic digit, ５ fullwidth digit, ½ vulgar fraction, ² superscript",
    "Ⅻ roman numeral, ① circled one",
    # --- contractions
    "don't stop believing",
    "it's a beautiful day",
    "they're here and we've arrived, I'm sure you'll see he'd agree",
    "DON'T SHOUT IT'S LOUD",
    "rock 'n' roll",
    "o'clock",
    "the dog's bone and the dogs' bones",
    "can't won't shouldn't",
    "it\u2019s curly apostrophe",
    "'s 't 're 've 'm 'll 'd",
    "'''quoted'''",
    # --- accents and Latin-script letters
    "caf\u00e9 au lait",
    "CAF\u00c9 AU LAIT",
    "cafe\u0301 with a combining acute (NFC folds it)",
    "na\u00efve fa\u00e7ade, r\u00e9sum\u00e9, pi\u00f1ata",
    "cr\u00e8me br\u00fbl\u00e9e",
    "\u00c5ngstr\u00f6m and \u212bngstr\u00f6m sign",
    "Stra\u00dfe and STRASSE and \u1e9e capital sharp s",
    "\u0130stanbul and \u0131\u015f\u0131k",
    "\u00e6sir \u00f8re \u00fe\u00f3r",
    "\u0141\u00f3d\u017a \u017b\u00f3\u0142\u0107",
    "\ufb01ne \ufb02ower ligatures",
    "\uff21\uff22\uff23 fullwidth letters \uff41\uff42\uff43",
    # --- Greek, Cyrillic and other scripts
    "\u039f\u0394\u039f\u03a3 final sigma",
    "\u03b1\u03b2\u03b3 \u0394\u03b5\u03bb\u03c4\u03b1",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u10e1\u10d0\u10e5\u10d0\u10e0\u10d7\u10d5\u10d4\u10da\u10dd Georgian",
    "\u0928\u092e\u0938\u094d\u0924\u0947 Devanagari with virama",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 Thai",
    "\u1200\u1208\u121d Ethiopic",
    # --- CJK, kana, hangul
    "\u4e00\u53ea\u732b",
    "\u6771\u4eac\u306e\u591c\u666f",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u30ab\u30bf\u30ab\u30ca \u30c6\u30b9\u30c8",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "a cat\u732bwith\u72acdog",
    "\U00020000 CJK extension B",
    "\u3000ideographic space\u3000",
    "\uff08\u5168\u89d2\u62ec\u5f27\uff09\u3001\u53e5\u70b9\u3002",
    # --- emoji
    "\U0001f98a",
    "a fox \U0001f98a in the snow \u2744\ufe0f",
    "\U0001f600\U0001f603\U0001f604\U0001f601",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 zwj sequence",
    "thumbs \U0001f44d\U0001f3fd skin tone",
    "flags \U0001f1ef\U0001f1f5 \U0001f1fa\U0001f1f8",
    "\u2764\ufe0f\u2764 hearts",
    "\u2615 coffee \U0001f303 night",
    "keycap 1\ufe0f\u20e3",
    # --- right-to-left
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "mixed \u05e2\u05d1\u05e8\u05d9\u05ea and english",
    "\u202eright-to-left override\u202c",
    "\u0627\u0644\u0633\u0651\u064e\u0644\u0627\u0645 with harakat",
    # --- combining marks, zero-width and format characters
    "z\u0351\u0365a\u0334l\u0335g\u0336o\u0337 text",
    "a\u0300\u0301\u0302\u0303 stacked marks",
    "\u0301 leading combining mark",
    "zero\u200bwidth\u200bspace",
    "soft\u00adhyphen",
    "word\u2060joiner",
    "\ufeffbyte order mark",
    "null\u0000char",
    "replacement \ufffd char",
    "bell\u0007 and escape\u001b[0m",
    "vertical\u000btab and form\u000cfeed",
    "line\u2028separator and paragraph\u2029separator",
    "next\u0085line",
    "private use \ue000 area",
    # --- HTML entities (not unescaped without ftfy)
    "fish &amp; chips",
    "&lt;b&gt;bold&lt;/b&gt;",
    "it&#39;s &quot;quoted&quot; &nbsp; &#x27;hex&#x27;",
    "&copy; 2024 &mdash; all rights reserved",
    # --- whitespace
    "  leading and trailing spaces  ",
    "multiple     spaces     between",
    "tabs\tbetween\twords",
    "new\nlines\nhere",
    "windows\r\nline endings",
    "\n\n\nnewlines first",
    "mixed \t\n \r whitespace",
    "non\u00a0breaking\u00a0space",
    "thin\u2009space and em\u2003space",
    "\t",
    # --- empty and near-empty
    "",
    " ",
    "     ",
    "\n",
    "\u200b",
    # --- special tokens written in the text (the slow tokenizer splits them out)
    "<|startoftext|>",
    "<|endoftext|>",
    "a <|endoftext|> b",
    "<|startoftext|>already wrapped<|endoftext|>",
    "<|ENDOFTEXT|> is not special",
    "<|endoftext| almost",
    "</w> end-of-word marker as text",
    # --- long prompts (more than 75 tokens: truncated in the 77-id rows)
    ("a highly detailed matte painting of an ancient city built into the side of a cliff, "
     "waterfalls, lush vegetation, flying birds, golden hour lighting, volumetric fog, "
     "intricate architecture, towers and bridges, tiny people walking on the streets, "
     "market stalls, colourful banners, by a famous concept artist, trending on artstation, "
     "octane render, unreal engine, 8k resolution, masterpiece, best quality, ultra sharp focus"),
    " ".join(["word"] * 100),
    ", ".join(f"tag{i}" for i in range(60)),
    "one two three four five six seven eight nine ten " * 9,
    "\U0001f98a" * 40,
    "\u732b" * 90,
    "a" * 500,
    ("The sky above the port was the color of television, tuned to a dead channel. "
     "It's not like I'm using, Case heard someone say, as he shouldered his way through the "
     "crowd around the door of the Chat. It's like my body's developed this massive drug "
     "deficiency. It was a Sprawl voice and a Sprawl joke. The Chatsubo was a bar for "
     "professional expatriates; you could drink there for a week and never hear two words "
     "in Japanese."),
    "x " * 75 + "y",
    "x " * 76,
    "x " * 74,
]

# Ordinary prompts: a deterministic grid of subject x setting x style.
SUBJECTS = [
    "an old lighthouse keeper", "a robot gardener", "two kittens", "a steam locomotive",
    "a medieval knight", "a glass teapot", "a koi pond", "a snowy owl", "a vintage car",
    "a mountain village", "a jellyfish", "a bonsai tree", "a space station", "a sunflower field",
    "a violin maker's workshop", "a desert caravan",
]
SETTINGS = [
    "at dawn", "under a full moon", "in heavy rain", "on a foggy morning", "during a festival",
    "in autumn", "under water",
]
STYLES = [
    "oil on canvas", "35mm film photo", "ukiyo-e woodblock print", "low poly 3D render",
    "charcoal sketch", "children's book illustration", "art nouveau poster",
]


def generated() -> list[str]:
    out = []
    n = 0
    for i, s in enumerate(SUBJECTS):
        for j in range(4):
            setting = SETTINGS[(i + 2 * j) % len(SETTINGS)]
            style = STYLES[(3 * i + j) % len(STYLES)]
            form = n % 4
            if form == 0:
                out.append(f"{s} {setting}, {style}")
            elif form == 1:
                out.append(f"{style} of {s} {setting}")
            elif form == 2:
                out.append(f"{s.capitalize()} {setting}. {style.title()}!")
            else:
                out.append(f"({s}:1.{n % 10}) {setting}, {style}, highly detailed")
            n += 1
    return out


def all_prompts() -> list[str]:
    prompts = HAND_WRITTEN + generated()
    seen = set()
    for p in prompts:
        if p in seen:
            raise ValueError(f"duplicate prompt {p!r}")
        seen.add(p)
    return prompts
