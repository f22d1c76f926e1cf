"""The `sentencepiece-unigram` bundle tokenizer: T5's SentencePiece unigram model, from `spiece.model` in the bundle.

Reference implementation of docs/DESIGN.md "BYOM bundles" (the Kotlin SDK mirrors it); it reproduces the ids of
`transformers.T5TokenizerFast` (the `tokenizers` Unigram model built from the same `spiece.model`). Everything
comes from the one file: pieces and scores, piece types, and the normalization table. For a prompt:

0. Pipeline preprocessing named in the spec (`preprocess`: PixArt lower-cases then strips the prompt).
1. Special-token texts (`</s>`, `<pad>`, `<unk>`, `<extra_id_0>` .. `<extra_id_{n-1}>`, matched on the raw text,
   longest first) are their ids; the text between them is processed as follows.
2. Normalize with the model's precompiled character map (`normalizer_spec.precompiled_charsmap`, SentencePiece's
   `nmt_nfkc` by default): per extended grapheme cluster, if it is shorter than 6 UTF-8 bytes and some prefix of it
   is a key of the map, the whole cluster becomes the value of the *shortest* such key; otherwise each code point
   becomes its value if it is a key, or stays. (This is `tokenizers`' Precompiled normalizer, quirks included.)
3. Split on Unicode White_Space; prepend `▁` (U+2581) to each word unless it starts with one; split each word
   before every further `▁`.
4. Each piece -> Viterbi over UTF-8 byte positions: an edge for every vocabulary piece that matches there (score
   = its log-probability), plus an `<unk>` edge of score `min(score) - 10` over one code point where no piece of
   exactly that code point exists; ties keep the earlier start. Consecutive `<unk>` edges fuse into one `<unk>`.
5. ids = ids + [eos], padded with `pad` up to the context length (attention mask: 1 for the `length` ids).
   Longer prompts are refused (not truncated).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import regex

from banana_sdk.errors import BundleError
from banana_sdk.runtime.clip_tokenizer import ClipEncoded, fixed_length
from banana_sdk.tokenizer import require_prompt

TOKENIZER_KIND = "sentencepiece-unigram"
TOKENIZER_VERSION = 1
MODEL_FILE = "spiece.model"
SPACE = "\u2581"  # "▁": SentencePiece's word-start marker
UNK_PENALTY = 10.0  # an unknown code point scores min(piece score) - UNK_PENALTY
PREPROCESS = ("lowercase", "strip")  # pipeline prompt preprocessing steps a spec may name, applied in its order
_GRAPHEMES = regex.compile(r"\X")
_WHITESPACE = regex.compile(r"\p{White_Space}+")
_WORD_PARTS = regex.compile(f"(?={SPACE})")


class PieceType:
    """SentencePiece `ModelProto.SentencePiece.Type` values."""

    NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class SentencePieceModel:
    pieces: tuple[tuple[str, float, int], ...]  # (piece, log-probability score, PieceType) by id
    charsmap: bytes  # normalizer_spec.precompiled_charsmap (empty: no normalization)
    model_type: int  # trainer_spec.model_type: 1 unigram, 2 BPE, 3 word, 4 char


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A protobuf base-128 varint at `pos`: (value, position after it)."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """Protocol-buffer wire format -> [(field number, int | bytes)] (varint, fixed32/64, length-delimited)."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = read_varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated protobuf message")
        out.append((number, value))
    return out


def read_model(path: Path) -> SentencePieceModel:
    """Parse `spiece.model` (a SentencePiece `ModelProto`); BundleError if missing or not one."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"tokenizer file {path} is missing") from None
    try:
        pieces, charsmap, model_type = [], b"", 1
        for number, value in _fields(data):
            if number == 1:  # SentencePiece {piece = 1, score = 2, type = 3}
                fields = dict(_fields(value))
                score = struct.unpack("<f", fields[2])[0] if 2 in fields else 0.0
                pieces.append((fields.get(1, b"").decode("utf-8"), float(score), int(fields.get(3, PieceType.NORMAL))))
            elif number == 2:  # TrainerSpec {model_type = 3}
                model_type = int(dict(_fields(value)).get(3, 1))
            elif number == 3:  # NormalizerSpec {precompiled_charsmap = 2}
                charsmap = bytes(dict(_fields(value)).get(2, b""))
    except (ValueError, KeyError, IndexError, UnicodeDecodeError, struct.error) as exc:
        raise BundleError(f"{path} is not a SentencePiece model ({exc})") from None
    if not pieces:
        raise BundleError(f"{path} is not a SentencePiece model (no pieces)")
    return SentencePieceModel(tuple(pieces), charsmap, model_type)


class CharsMap:
    """SentencePiece's precompiled normalization map: a Darts double-array trie over UTF-8 keys whose values are
    offsets of NUL-terminated replacements (blob = trie size u32 LE, trie units u32 LE, replacements)."""

    def __init__(self, blob: bytes) -> None:
        if not blob:
            self.units, self.replacements = np.zeros(0, np.uint32), b""
            return
        size = struct.unpack("<I", blob[:4])[0]
        self.units = np.frombuffer(blob[4:4 + size], dtype="<u4").astype(np.int64)
        self.replacements = blob[4 + size:]

    def _first_value(self, key: bytes) -> int | None:
        """Value of the shortest key that is a prefix of `key` (None: no key is)."""
        units = self.units
        if not len(units):
            return None
        unit = int(units[0])
        pos = (unit >> 10) << ((unit & (1 << 9)) >> 6)
        for c in key:
            if c == 0:
                break
            pos ^= c
            if pos >= len(units):
                return None
            unit = int(units[pos])
            if unit & ((1 << 31) | 0xFF) != c:  # label
                return None
            pos ^= (unit >> 10) << ((unit & (1 << 9)) >> 6)  # offset
            if (unit >> 8) & 1:  # has a leaf: a key ends here
                return int(units[pos]) & ((1 << 31) - 1)
        return None

    def transform(self, chunk: str) -> str | None:
        value = self._first_value(chunk.encode("utf-8"))
        if value is None:
            return None
        end = self.replacements.index(b"\0", value)
        return self.replacements[value:end].decode("utf-8")

    def normalize(self, text: str) -> str:
        out = []
        for grapheme in _GRAPHEMES.findall(text):
            if len(grapheme.encode("utf-8")) < 6:
                whole = self.transform(grapheme)
                if whole is not None:
                    out.append(whole)
                    continue
            for char in grapheme:
                one = self.transform(char)
                out.append(char if one is None else one)
        return "".join(out)


class SentencePieceUnigramTokenizer:
    """Encodes prompts like T5's tokenizer (no truncation: too-long prompts are refused)."""

    def __init__(self, model: SentencePieceModel, context_length: int, eos: str = "</s>", pad: str = "<pad>",
                 unk: str = "<unk>", extra_ids: int = 100, preprocess: tuple[str, ...] = ()) -> None:
        if model.model_type != 1:
            raise BundleError(f"SentencePiece model type {model.model_type} is not a unigram model (type 1)")
        kinds = {t for _, _, t in model.pieces}
        if kinds & {PieceType.USER_DEFINED, PieceType.BYTE}:
            raise BundleError("SentencePiece models with user-defined or byte-fallback pieces are not supported yet")
        unknown = [p for p in preprocess if p not in PREPROCESS]
        if unknown:
            raise BundleError(f"unknown tokenizer preprocess step(s) {unknown}; choose from {list(PREPROCESS)}")
        self.model = model
        self.context_length = context_length
        self.extra_ids = extra_ids
        self.preprocess = tuple(preprocess)
        self.pieces = {piece.encode("utf-8"): (i, score) for i, (piece, score, _) in enumerate(model.pieces)}
        self.longest = max(len(p) for p in self.pieces)
        ids = {piece: i for i, (piece, _, _) in enumerate(model.pieces)}
        count = len(model.pieces)
        extra = {f"<extra_id_{i}>": count + extra_ids - 1 - i for i in range(extra_ids)}  # T5: reversed, after pieces
        for token in (eos, pad, unk):
            if token not in ids:
                raise BundleError(f"SentencePiece model lacks the special piece {token!r}")
        self.vocab_size = count + extra_ids
        self.eos_id, self.pad_id, self.unk_id = ids[eos], ids[pad], ids[unk]
        self._tokens = {"eos": eos, "pad": pad, "unk": unk}
        self.specials = {eos: self.eos_id, pad: self.pad_id, unk: self.unk_id, **extra}
        alternatives = sorted(self.specials, key=lambda t: (-len(t), t))
        self._split = regex.compile("(" + "|".join(regex.escape(t) for t in alternatives) + ")")
        self.unk_score = min(score for _, score, _ in model.pieces) - UNK_PENALTY
        self.charsmap = CharsMap(model.charsmap)

    @classmethod
    def from_spec(cls, directory: Path, spec: dict[str, Any]) -> SentencePieceUnigramTokenizer:
        """Load from a bundle dir and its manifest `tokenizer` spec."""
        return cls(read_model(Path(directory) / spec["model_file"]), int(spec["context_length"]), spec["eos_token"],
                   spec["pad_token"], spec["unk_token"], int(spec.get("extra_ids", 0)),
                   tuple(spec.get("preprocess", ())))

    def spec(self) -> dict[str, Any]:
        """What a bundle manifest records so another runtime can reproduce `encode`."""
        return {"kind": TOKENIZER_KIND, "version": TOKENIZER_VERSION, "context_length": self.context_length,
                "vocab_size": self.vocab_size, "eos_token": self._tokens["eos"], "pad_token": self._tokens["pad"],
                "unk_token": self._tokens["unk"], "eos_id": self.eos_id, "pad_id": self.pad_id, "unk_id": self.unk_id,
                "extra_ids": self.extra_ids, "preprocess": list(self.preprocess),
                "normalize": ["precompiled_charsmap"], "pre_tokenize": ["whitespace_split", "metaspace"],
                "unk_penalty": UNK_PENALTY, "fuse_unk": True, "too_long": "refuse", "model_file": MODEL_FILE,
                "vocab_file": MODEL_FILE}

    def _viterbi(self, word: str) -> list[int]:
        """Best segmentation of one pre-tokenized word (UTF-8 byte lattice) -> ids, unknowns fused."""
        data = word.encode("utf-8")
        size = len(data)
        best: list[tuple[float, int, int] | None] = [None] * (size + 1)  # (score, start, id) of the best path to here
        best[0] = (0.0, -1, -1)
        start = 0
        while start < size:
            here = best[start][0] if best[start] is not None else 0.0
            char_len = len(word_char(data, start))
            single = False
            for end in range(start + 1, min(size, start + self.longest) + 1):
                hit = self.pieces.get(data[start:end])
                if hit is None:
                    continue
                score = here + hit[1]
                if best[end] is None or score > best[end][0]:
                    best[end] = (score, start, hit[0])
                single = single or end - start == char_len
            if not single:
                end = start + char_len
                score = here + self.unk_score
                if best[end] is None or score > best[end][0]:
                    best[end] = (score, start, self.unk_id)
            start += char_len
        path: list[int] = []
        end = size
        while end > 0:  # backtrack, then fuse each run of unknowns into one <unk>
            _, end, piece = best[end]
            path.append(piece)
        path.reverse()
        return [p for k, p in enumerate(path) if not (p == self.unk_id and k and path[k - 1] == self.unk_id)]

    def tokens(self, prompt: str) -> list[int]:
        """Token ids of `prompt` without EOS/padding."""
        for step in self.preprocess:
            prompt = prompt.lower() if step == "lowercase" else prompt.strip()
        out: list[int] = []
        for part in self._split.split(prompt):
            if part in self.specials:
                out.append(self.specials[part])
                continue
            for word in _WHITESPACE.split(self.charsmap.normalize(part)):
                if not word:
                    continue
                word = word if word.startswith(SPACE) else SPACE + word
                for piece in _WORD_PARTS.split(word):
                    if piece:
                        out.extend(self._viterbi(piece))
        return out

    def encode(self, prompt: str) -> ClipEncoded:
        """Fixed-length ids; PromptError if the prompt is empty or too long."""
        require_prompt(prompt)
        return self._encode(prompt)

    def unconditional(self) -> ClipEncoded:
        """The empty prompt `[eos]`: the unconditional input of classifier-free guidance."""
        return self._encode("")

    def _encode(self, prompt: str) -> ClipEncoded:
        return fixed_length([*self.tokens(prompt), self.eos_id], self.context_length, self.pad_id, "the end token")


def word_char(data: bytes, pos: int) -> bytes:
    """The UTF-8 encoded code point starting at byte `pos`."""
    lead = data[pos]
    size = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return data[pos:pos + size]

