"""The word+byte tokenizer and its phrase segments."""

from __future__ import annotations

import numpy as np
import pytest

from banana_sdk.errors import PromptError
from banana_sdk.tokenizer import BOS_ID, BYTE_OFFSET, EOS_ID, PAD_ID, WORD_OFFSET, Tokenizer, vocabulary


def tok() -> Tokenizer:
    return Tokenizer(16, 512)


def test_words_bytes_and_case() -> None:
    words = vocabulary()
    ids = tok().tokens("A Red circle, ñ 🍌 qzx")
    assert ids[:3] == [WORD_OFFSET + words.index("a"), WORD_OFFSET + words.index("red"),
                       WORD_OFFSET + words.index("circle")]
    assert ids[3] == BYTE_OFFSET + ord(",")
    assert ids[4:6] == [BYTE_OFFSET + b for b in "ñ".encode()]
    assert ids[6:10] == [BYTE_OFFSET + b for b in "🍌".encode()]
    assert ids[10:] == [BYTE_OFFSET + b for b in b"qzx"]


def test_encode_layout_and_segments() -> None:
    enc = tok().encode("a red circle and a blue square")
    assert enc.ids[0] == BOS_ID and enc.ids[enc.length - 1] == EOS_ID
    assert (enc.ids[enc.length:] == PAD_ID).all() and (enc.segments[enc.length:] == -1).all()
    assert enc.segments[: enc.length].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert enc.ids.dtype == np.int32 and enc.segments.dtype == np.int32


def test_empty_and_too_long_prompts_are_refused() -> None:
    with pytest.raises(PromptError, match="empty"):
        tok().encode("   \n")
    with pytest.raises(PromptError, match="17 tokens .* holds 16"):
        tok().encode(" ".join(["red"] * 15))
    assert tok().encode(" ".join(["red"] * 14)).length == 16


def test_unconditional() -> None:
    enc = tok().unconditional()
    assert enc.ids[:3].tolist() == [BOS_ID, EOS_ID, PAD_ID] and enc.length == 2
