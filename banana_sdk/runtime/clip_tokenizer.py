"""The `clip-bpe` bundle tokenizer: CLIP's byte-level BPE, from `vocab.json` + `merges.txt` in the bundle.

Reference implementation of docs/DESIGN.md "BYOM bundles" (the Kotlin SDK mirrors it); it reproduces
`transformers.CLIPTokenizer` ids for prompts that fit. Algorithm, for a prompt:

1. Special-token strings (`bos`, `eos` text, e.g. `<|endoftext|>`) in the prompt are their ids; the text
   between them is processed as follows.
2. Normalize: Unicode NFC, every run of whitespace -> one space, full Unicode lower-case.
3. Pre-tokenize: the matches of `PATTERN` (contractions, letter runs, single digits, runs of other
   non-space characters); everything else (spaces) is dropped.
4. Each piece -> its UTF-8 bytes -> one printable character per byte (`byte_to_unicode`, GPT-2's table).
5. BPE: symbols are those characters with `</w>` appended to the last one; repeatedly merge the adjacent
   pair of lowest rank in `merges.txt` (line order) until no listed pair remains; each symbol -> its id in
   `vocab.json` (a symbol not in it -> the unknown id).
6. ids = [bos] + ids + [eos], padded with `pad` up to the context length. Longer prompts are refused.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import regex

from banana_sdk.errors import BundleError, PromptError
from banana_sdk.tokenizer import require_prompt

TOKENIZER_KIND = "clip-bpe"
TOKENIZER_VERSION = 1
END_OF_WORD = "</w>"
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
_WORDS = regex.compile(PATTERN)
_SPACES = regex.compile(r"\s+")


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: printable Latin-1 bytes map to themselves, the other
    bytes (in increasing order) to U+0100, U+0101, ..."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@dataclass(frozen=True)
class ClipEncoded:
    ids: np.ndarray  # (context_length,) int32 token ids, padded
    length: int  # tokens before padding, incl. BOS and EOS


class ClipBPETokenizer:
    """Encodes prompts exactly like CLIP's tokenizer (no truncation: too-long prompts are refused)."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], context_length: int,
                 bos: str, eos: str, pad: str, unk: str) -> None:
        for token in (bos, eos, pad, unk):
            if token not in vocab:
                raise BundleError(f"tokenizer vocabulary lacks the special token {token!r}")
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.context_length = context_length
        self.specials = {bos: vocab[bos], eos: vocab[eos]}
        self.bos_id, self.eos_id, self.pad_id, self.unk_id = vocab[bos], vocab[eos], vocab[pad], vocab[unk]
        self._tokens = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
        self._split = regex.compile("(" + "|".join(regex.escape(t) for t in self.specials) + ")")
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_spec(cls, directory: Path, spec: dict[str, Any]) -> ClipBPETokenizer:
        """Load from a bundle dir and its manifest `tokenizer` spec."""
        vocab, merges = read_vocab_merges(directory / spec["vocab_file"], directory / spec["merges_file"])
        return cls(vocab, merges, int(spec["context_length"]), spec["bos_token"], spec["eos_token"],
                   spec["pad_token"], spec["unk_token"])

    def spec(self) -> dict[str, Any]:
        """What a bundle manifest records so another runtime can reproduce `encode`."""
        return {"kind": TOKENIZER_KIND, "version": TOKENIZER_VERSION, "context_length": self.context_length,
                "vocab_size": len(self.vocab), "bos_token": self._tokens["bos"], "eos_token": self._tokens["eos"],
                "pad_token": self._tokens["pad"], "unk_token": self._tokens["unk"], "bos_id": self.bos_id,
                "eos_id": self.eos_id, "pad_id": self.pad_id, "unk_id": self.unk_id,
                "end_of_word_suffix": END_OF_WORD, "pattern": PATTERN, "normalize": ["nfc", "collapse_whitespace",
                                                                                     "lowercase"],
                "too_long": "refuse", "vocab_file": VOCAB_FILE, "merges_file": MERGES_FILE}

    def _bpe(self, piece: str) -> list[int]:
        if piece in self._cache:
            return self._cache[piece]
        table = byte_to_unicode()
        chars = [table[b] for b in piece.encode("utf-8")]
        symbols = chars[:-1] + [chars[-1] + END_OF_WORD]
        while len(symbols) > 1:
            ranked = [(self.ranks.get(pair, len(self.ranks)), i)
                      for i, pair in enumerate(zip(symbols, symbols[1:], strict=False))]
            rank, i = min(ranked)
            if rank == len(self.ranks):
                break
            first, second = symbols[i], symbols[i + 1]
            merged, j = [], 0
            while j < len(symbols):  # merge every occurrence of the pair, left to right
                if j + 1 < len(symbols) and symbols[j] == first and symbols[j + 1] == second:
                    merged.append(first + second)
                    j += 2
                else:
                    merged.append(symbols[j])
                    j += 1
            symbols = merged
        ids = [self.vocab.get(s, self.unk_id) for s in symbols]
        self._cache[piece] = ids
        return ids

    def tokens(self, prompt: str) -> list[int]:
        """Token ids of `prompt` without BOS/EOS/padding."""
        out: list[int] = []
        for part in self._split.split(prompt):
            if part in self.specials:
                out.append(self.specials[part])
                continue
            text = _SPACES.sub(" ", unicodedata.normalize("NFC", part)).lower()
            for piece in _WORDS.findall(text):
                out.extend(self._bpe(piece))
        return out

    def encode(self, prompt: str) -> ClipEncoded:
        """Fixed-length ids; PromptError if the prompt is empty or too long."""
        require_prompt(prompt)
        return self._encode(prompt)

    def unconditional(self) -> ClipEncoded:
        """The empty prompt `[bos][eos]`: the unconditional input of classifier-free guidance."""
        return self._encode("")

    def _encode(self, prompt: str) -> ClipEncoded:
        return fixed_length([self.bos_id, *self.tokens(prompt), self.eos_id], self.context_length, self.pad_id,
                            "start/end tokens")


def fixed_length(ids: list[int], context_length: int, pad_id: int, framing: str) -> ClipEncoded:
    """`ids` (the prompt's tokens with their framing tokens) padded with `pad_id` to `context_length`; PromptError
    naming the framing (e.g. "start/end tokens") if they do not fit: prompts are refused, never truncated."""
    if len(ids) > context_length:
        raise PromptError(f"prompt is {len(ids)} tokens but the model's context holds {context_length} "
                          f"(incl. {framing}); shorten it")
    out = np.full(context_length, pad_id, dtype=np.int32)
    out[:len(ids)] = ids
    return ClipEncoded(ids=out, length=len(ids))


def read_vocab_merges(vocab_path: Path, merges_path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """vocab.json (token -> id) and merges.txt (one `a b` pair per line, an optional `#version` header)."""
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise BundleError(f"tokenizer file {exc.filename} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"tokenizer file {vocab_path} is corrupt: {exc}") from None
    merges = []
    for n, line in enumerate(lines):
        if not line or (n == 0 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise BundleError(f"{merges_path}:{n + 1}: expected two symbols, got {line!r}")
        merges.append((parts[0], parts[1]))
    if not isinstance(vocab, dict):
        raise BundleError(f"{vocab_path} must hold a JSON object token -> id")
    return vocab, merges


def merges_text(merges: list[tuple[str, str]]) -> str:
    """merges.txt content for a list of pairs (with the usual header line)."""
    return "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
