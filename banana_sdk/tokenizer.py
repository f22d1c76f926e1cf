"""The prompt tokenizer: shipped word vocabulary with UTF-8 byte fallback, plus phrase segments.

Needs no download and is mirrored exactly by the Kotlin SDK (golden vectors keep them together).
Algorithm, for a prompt string:

1. Lower-case ASCII A-Z only (no locale rules).
2. Walk the Unicode code points. ASCII letters and digits accumulate into a word; ASCII whitespace
   ends a word; any other code point ends a word and is emitted as the byte ids of its UTF-8 encoding.
3. A finished word is its vocabulary id when `vocab.txt` has it, else the byte ids of its letters.
4. Phrase segments: every token carries the index of its phrase; the word "and" and the byte ","
   belong to the phrase they end, and the next token starts a new phrase.
5. ids = [BOS] + tokens + [EOS] (BOS in phrase 0, EOS in the last phrase), padded with PAD up to the
   context length; padding has segment -1. A prompt that does not fit is refused (PromptError).

Id layout: 0 PAD, 1 BOS, 2 EOS, 3 reserved, 4..259 bytes 0..255, 260.. vocabulary words in file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from banana_sdk.errors import PromptError

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
BYTE_OFFSET = 4
WORD_OFFSET = BYTE_OFFSET + 256
TOKENIZER_KIND = "banana-words-bytes"
TOKENIZER_VERSION = 1
_SEPARATOR_WORDS = ("and",)
_SEPARATOR_BYTES = (ord(","),)
_WHITESPACE = frozenset(" \t\n\r\f\v")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The shipped word list (file order defines ids)."""
    text = resources.files("banana_sdk.assets").joinpath("vocab.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())



def require_prompt(prompt: object) -> None:
    """PromptError unless `prompt` is a string with something besides whitespace (every tokenizer's first check)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError("prompt is empty; describe the image to generate")

@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray  # (context_length,) int32 token ids, PAD-padded
    segments: np.ndarray  # (context_length,) int32 phrase index per token, -1 on padding
    length: int  # tokens before padding, incl. BOS and EOS


class Tokenizer:
    """Encodes prompts to fixed-length id and segment arrays for the text encoder."""

    def __init__(self, context_length: int, vocab_size: int) -> None:
        words = vocabulary()
        if WORD_OFFSET + len(words) > vocab_size:
            raise ValueError(f"vocab_size {vocab_size} < {WORD_OFFSET + len(words)} ids needed")
        self.context_length = context_length
        self.vocab_size = vocab_size
        self._word_ids = {w: WORD_OFFSET + i for i, w in enumerate(words)}
        self._sep_ids = {self._word_ids[w] for w in _SEPARATOR_WORDS} | {
            BYTE_OFFSET + b for b in _SEPARATOR_BYTES
        }

    def tokens(self, prompt: str) -> list[int]:
        """Token ids of `prompt` without BOS/EOS/padding."""
        out: list[int] = []
        word: list[str] = []

        def flush() -> None:
            if word:
                text = "".join(word)
                wid = self._word_ids.get(text)
                out.extend([wid] if wid is not None else [BYTE_OFFSET + b for b in text.encode()])
                word.clear()

        for ch in prompt:
            if "A" <= ch <= "Z":
                ch = chr(ord(ch) + 32)
            if ("a" <= ch <= "z") or ("0" <= ch <= "9"):
                word.append(ch)
                continue
            flush()
            if ch not in _WHITESPACE:
                out.extend(BYTE_OFFSET + b for b in ch.encode("utf-8", "surrogatepass"))
        flush()
        return out

    def encode(self, prompt: str) -> Encoded:
        """Fixed-length ids and segments; raises PromptError if empty or too long."""
        require_prompt(prompt)
        body = self.tokens(prompt)
        length = len(body) + 2
        if length > self.context_length:
            raise PromptError(
                f"prompt is {length} tokens but the model's context holds {self.context_length} "
                "(incl. BOS/EOS); shorten it"
            )
        ids = np.full(self.context_length, PAD_ID, dtype=np.int32)
        segments = np.full(self.context_length, -1, dtype=np.int32)
        ids[0], segments[0] = BOS_ID, 0
        seg = 0
        for i, tok in enumerate(body, start=1):
            ids[i], segments[i] = tok, seg
            if tok in self._sep_ids:
                seg += 1
        ids[length - 1], segments[length - 1] = EOS_ID, seg
        return Encoded(ids=ids, segments=segments, length=length)

    def unconditional(self) -> Encoded:
        """The empty prompt [BOS][EOS]: the unconditional input for classifier-free guidance."""
        ids = np.full(self.context_length, PAD_ID, dtype=np.int32)
        segments = np.full(self.context_length, -1, dtype=np.int32)
        ids[:2], segments[:2] = (BOS_ID, EOS_ID), 0
        return Encoded(ids=ids, segments=segments, length=2)

    def spec(self) -> dict[str, object]:
        """What a bundle manifest records so another runtime can reproduce `encode`."""
        return {
            "kind": TOKENIZER_KIND,
            "version": TOKENIZER_VERSION,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "pad_id": PAD_ID,
            "bos_id": BOS_ID,
            "eos_id": EOS_ID,
            "byte_offset": BYTE_OFFSET,
            "word_offset": WORD_OFFSET,
            "separator_words": list(_SEPARATOR_WORDS),
            "separator_bytes": list(_SEPARATOR_BYTES),
            "vocab_file": "vocab.txt",
        }
