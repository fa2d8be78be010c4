"""Generate a CLIP-style byte-level BPE vocabulary (vocab.json + merges.txt) locally.

The real openai/shap-e tokenizer is CLIP ViT-L/14's (49408 tokens); it cannot be
downloaded here, and a random-weight test model does not need its exact merges, only a
tokenizer that CLIPTokenizer loads and that behaves like CLIP's: lower-cased words,
byte-level fallback (every text encodes), "</w>" marking word ends, <|startoftext|> and
<|endoftext|> around every prompt, 77 positions.

Layout, as in CLIP's files: the 256 byte symbols, the same with "</w>", one token per
merge in merge order, then the two special tokens. Merges are learned by plain BPE on
a small built-in word list, then (for large vocabularies) filled with letter-pair and
letter-triple merges until the requested size. Deterministic: same size, same bytes.
"""

import json
from collections import Counter
from itertools import product
from pathlib import Path
from string import ascii_lowercase

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END = "</w>"
CLIP_VOCAB_SIZE = 49408  # openai/clip-vit-large-patch14, the text encoder of openai/shap-e
MODEL_MAX_LENGTH = 77

# Words common in text-to-3D prompts: the learned merges make them a few tokens each.
WORDS = (
    "a an the of with and on in shaped like that looks made wooden metal red green blue "
    "yellow white black small large tall round chair table car house tree lamp cup mug "
    "bowl vase boot shoe hat dog cat bird penguin shark fish horse dragon robot rocket "
    "plane ship boat train cake cupcake donut burger pizza apple banana avocado fruit "
    "flower plant pot bottle teapot sword shield helmet crown guitar piano book box "
    "ball sphere cube cone cylinder pyramid ring star heart castle tower bridge rock "
    "mountain campfire firetruck sunglasses dress shorts pair birthday icing pink"
).split()


def byte_symbols() -> list[str]:
    """One printable character per byte value, the byte-level BPE convention (GPT-2,
    CLIP): printable Latin-1 bytes stand for themselves, the others are moved to
    code points from 256 on, so that no symbol is whitespace or a control character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + shifted)
            shifted += 1
    return [symbols[b] for b in range(256)]


def _word_symbols(word: str, table: list[str]) -> tuple[str, ...]:
    chars = [table[b] for b in word.encode("utf-8")]
    return (*chars[:-1], chars[-1] + END)


def _learn_merges(words, count: int, known: set[str]) -> list[tuple[str, str]]:
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties: smallest)."""
    table = byte_symbols()
    corpus = Counter(_word_symbols(w, table) for w in words)
    merges = []
    while len(merges) < count:
        pairs = Counter()
        for word, freq in corpus.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += freq
        pairs = {p: f for p, f in pairs.items() if "".join(p) not in known}
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        known.add("".join(best))
        merged = Counter()
        for word, freq in corpus.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += freq
        corpus = merged
    return merges


def _filler_merges(known: set[str]):
    """Letter pairs, then triples, inside and at the end of words: always valid merges
    (both halves already tokens), in a fixed order."""
    for length in (2, 3, 4):
        for letters in product(ascii_lowercase, repeat=length):
            head, last = "".join(letters[:-1]), letters[-1]
            for tail in (last, last + END):
                if head + tail not in known:
                    known.add(head + tail)
                    yield head, tail


def make_vocab(size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A vocabulary of exactly `size` tokens and the merges that build it."""
    base = byte_symbols()
    tokens = base + [s + END for s in base]
    n_merges = size - len(tokens) - 2
    if n_merges < 0:
        raise ValueError(f"a byte-level vocabulary needs at least {len(tokens) + 2} tokens, not {size}")
    known = set(tokens)
    merges = _learn_merges(WORDS, n_merges, known)
    filler = _filler_merges(known)
    while len(merges) < n_merges:
        merges.append(next(filler))
    tokens += ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer(folder: Path, size: int) -> Path:
    """vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = make_vocab(size)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
        **specials,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    return folder
