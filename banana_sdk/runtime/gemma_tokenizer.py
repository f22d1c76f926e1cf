"""The `sentencepiece-bpe` bundle tokenizer: Gemma's SentencePiece BPE model, from `tokenizer.model` in the bundle.

Reference implementation of docs/DESIGN.md §8 "Gemma tokenizers" (the Kotlin SDK mirrors it); it reproduces the ids
of `transformers.GemmaTokenizer` (a `tokenizers` BPE with byte fallback built from the same model) and the framing of
Sana's `_get_gemma_prompt_embeds`. Pieces, their types and the merge order all come from the one file (read by the
pure-Python protobuf reader of `sentencepiece_tokenizer.py`). For a prompt:

0. Pipeline preprocessing named in the spec (`preprocess`: Sana lower-cases then strips the prompt), then the
   `prefix` text in front of it (Sana's complex human instruction; the unconditional empty prompt gets none).
1. Added tokens: the texts of the pieces of type UNKNOWN, CONTROL or USER_DEFINED (`<unk>`, `<bos>`, `<eos>`,
   `<pad>`, `<mask>`, "\\n", ...) are matched on the raw text, leftmost then longest, and are their ids; the text
   between them is processed as follows.
2. Every " " becomes "▁" (U+2581); nothing else is normalized and the text is not split into words.
3. Initial symbols, one per code point: its piece id if the code point is a piece, else the `<0xXX>` byte pieces of
   its UTF-8 bytes (byte fallback), else `<unk>` (consecutive unknowns fused into one).
4. Merges: the pair (a, b) of adjacent symbols merges into the piece a + b when that string is a piece; its rank is
   (id of a + b, code points of a), lowest first (transformers' `generate_merges` order). A min-heap of
   (rank, left symbol index) drives the merges; a popped entry whose pair no longer makes the same piece is skipped
   (the `tokenizers` BPE loop, stale entries included).
5. ids = [bos if add_bos] + ids + [eos if add_eos], right-padded with `pad` up to the context length (mask 1 for
   the `length` ids). Longer prompts are refused (not truncated).
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import regex

from banana_sdk.errors import BundleError
from banana_sdk.runtime.clip_tokenizer import ClipEncoded, fixed_length
from banana_sdk.runtime.sentencepiece_tokenizer import PREPROCESS, SPACE, PieceType, SentencePieceModel, read_model
from banana_sdk.tokenizer import require_prompt

TOKENIZER_KIND = "sentencepiece-bpe"
TOKENIZER_VERSION = 1
MODEL_FILE = "tokenizer.model"  # Gemma checkpoints' name for the SentencePiece model
BPE_MODEL_TYPE = 2  # trainer_spec.model_type of a BPE model
ADDED_TYPES = (PieceType.UNKNOWN, PieceType.CONTROL, PieceType.USER_DEFINED)  # matched on the raw text


class SentencePieceBPETokenizer:
    """Encodes prompts like transformers' GemmaTokenizer (no truncation: too-long prompts are refused)."""

    def __init__(self, model: SentencePieceModel, context_length: int, bos: str = "<bos>", eos: str = "<eos>",
                 pad: str = "<pad>", unk: str = "<unk>", add_bos: bool = True, add_eos: bool = False,
                 preprocess: tuple[str, ...] = (), prefix: str = "") -> None:
        if model.model_type != BPE_MODEL_TYPE:
            raise BundleError(f"SentencePiece model type {model.model_type} is not a BPE model (type 2)")
        unknown = [p for p in preprocess if p not in PREPROCESS]
        if unknown:
            raise BundleError(f"unknown tokenizer preprocess step(s) {unknown}; choose from {list(PREPROCESS)}")
        self.model = model
        self.vocab = {piece: i for i, (piece, _, _) in enumerate(model.pieces)}
        for token in (bos, eos, pad, unk):
            if token not in self.vocab:
                raise BundleError(f"SentencePiece model lacks the special piece {token!r}")
        self.context_length = context_length
        self.vocab_size = len(model.pieces)
        self.bos_id, self.eos_id, self.pad_id, self.unk_id = (self.vocab[t] for t in (bos, eos, pad, unk))
        self._tokens = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
        self.add_bos, self.add_eos = add_bos, add_eos
        self.preprocess = tuple(preprocess)
        self.prefix = prefix
        self.added = {piece: i for i, (piece, _, kind) in enumerate(model.pieces) if kind in ADDED_TYPES and piece}
        alternatives = sorted(self.added, key=lambda t: (-len(t), t))  # at one position the longest wins
        self._split = regex.compile("(" + "|".join(regex.escape(t) for t in alternatives) + ")")
        self._merges: dict[tuple[int, int], tuple[tuple[int, int], int]] | None = None  # built on first use

    @classmethod
    def from_spec(cls, directory: Path, spec: dict[str, Any]) -> SentencePieceBPETokenizer:
        """Load from a bundle dir and its manifest `tokenizer` spec."""
        return cls(read_model(Path(directory) / spec["model_file"]), int(spec["context_length"]), spec["bos_token"],
                   spec["eos_token"], spec["pad_token"], spec["unk_token"], bool(spec["add_bos"]),
                   bool(spec["add_eos"]), tuple(spec.get("preprocess", ())), str(spec.get("prefix", "")))

    def spec(self) -> dict[str, Any]:
        """What a bundle manifest records so another runtime can reproduce `encode`."""
        return {"kind": TOKENIZER_KIND, "version": TOKENIZER_VERSION, "context_length": self.context_length,
                "vocab_size": self.vocab_size, **{f"{k}_token": v for k, v in self._tokens.items()},
                "bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id, "unk_id": self.unk_id,
                "add_bos": self.add_bos, "add_eos": self.add_eos, "preprocess": list(self.preprocess),
                "prefix": self.prefix, "added_tokens": "unknown+control+user_defined",
                "normalize": ["space_to_metaspace"], "byte_fallback": True, "fuse_unk": True,
                "merge_rank": ["piece_id", "left_length"], "padding_side": "right", "too_long": "refuse",
                "model_file": MODEL_FILE, "vocab_file": MODEL_FILE}

    @property
    def merges(self) -> dict[tuple[int, int], tuple[tuple[int, int], int]]:
        """(left id, right id) -> ((rank: merged id, left code points), merged id), for every piece that splits into
        two pieces."""
        if self._merges is None:
            merges = {}
            for piece, merged in self.vocab.items():
                for cut in range(1, len(piece)):
                    left, right = self.vocab.get(piece[:cut]), self.vocab.get(piece[cut:])
                    if left is not None and right is not None:
                        merges[(left, right)] = ((merged, cut), merged)
            self._merges = merges
        return self._merges

    def _symbols(self, text: str) -> list[int]:
        """Initial symbols of one segment: a piece per code point, else its byte pieces, else (fused) <unk>."""
        out: list[int] = []
        for char in text:
            if char in self.vocab:
                out.append(self.vocab[char])
                continue
            codes = [self.vocab.get(f"<0x{b:02X}>") for b in char.encode("utf-8")]
            if all(c is not None for c in codes):
                out.extend(codes)
            elif not out or out[-1] != self.unk_id:  # fuse_unk
                out.append(self.unk_id)
        return out

    def _bpe(self, text: str) -> list[int]:
        """BPE over one segment (the `tokenizers` merge loop: a heap of (rank, position), stale entries skipped)."""
        ids = self._symbols(text)
        size = len(ids)
        nxt, prv = list(range(1, size + 1)), list(range(-1, size - 1))
        alive = [True] * size
        merges = self.merges
        heap = [(merges[pair][0], pos, merges[pair][1]) for pos, pair in enumerate(zip(ids, ids[1:], strict=False))
                if pair in merges]
        heapq.heapify(heap)
        while heap:
            _, pos, merged = heapq.heappop(heap)
            right = nxt[pos]
            if not alive[pos] or right >= size or merges.get((ids[pos], ids[right]), (None, None))[1] != merged:
                continue
            ids[pos], alive[right] = merged, False  # 1. merge the right symbol into this one
            nxt[pos] = nxt[right]
            if nxt[pos] < size:
                prv[nxt[pos]] = pos
            if prv[pos] >= 0 and (ids[prv[pos]], merged) in merges:  # 2. the new pairs with both neighbours
                rank, new = merges[(ids[prv[pos]], merged)]
                heapq.heappush(heap, (rank, prv[pos], new))
            if nxt[pos] < size and (merged, ids[nxt[pos]]) in merges:
                rank, new = merges[(merged, ids[nxt[pos]])]
                heapq.heappush(heap, (rank, pos, new))
        return [i for i, keep in zip(ids, alive, strict=True) if keep]

    def tokens(self, text: str) -> list[int]:
        """Token ids of `text` as given (no preprocessing, prefix or framing)."""
        out: list[int] = []
        for part in self._split.split(text) if self.added else [text]:
            if part in self.added:
                out.append(self.added[part])
            elif part:
                out.extend(self._bpe(part.replace(" ", SPACE)))
        return out

    def frame(self, text: str) -> list[int]:
        """`text`'s ids with BOS/EOS as the model adds them (transformers' `input_ids` of `text`)."""
        return [self.bos_id] * self.add_bos + self.tokens(text) + [self.eos_id] * self.add_eos

    def text(self, prompt: str) -> str:
        """What the pipeline tokenizes for `prompt`: the prefix, then the preprocessed prompt."""
        for step in self.preprocess:
            prompt = prompt.lower() if step == "lowercase" else prompt.strip()
        return self.prefix + prompt

    def encode(self, prompt: str) -> ClipEncoded:
        """Fixed-length ids of the prefixed prompt; PromptError if the prompt is empty or too long."""
        require_prompt(prompt)
        return fixed_length(self.frame(self.text(prompt)), self.context_length, self.pad_id,
                            "the instruction prefix and start token" if self.prefix else "the start token")

    def unconditional(self) -> ClipEncoded:
        """The empty prompt without the prefix (`[bos]`): the unconditional input of classifier-free guidance."""
        return fixed_length(self.frame(""), self.context_length, self.pad_id, "the start token")
