"""How subject names in a prompt bind to the denoiser's subject slots.

Rules (the app follows the same ones):
1. The prompt's words are found as the tokenizer finds them: ASCII letters and digits, lower-cased.
2. Every requested subject must be named by a word of the prompt (else SubjectError: nothing would tell
   the model where it goes); at most `max_subjects` (5) subjects, each once.
3. Slot k holds the subject whose name occurs k-th in the prompt (first occurrence); its mask entry is 1.
   Unused slots are zero with mask 0, which makes them inert (DESIGN §1).
4. The prompt itself is not changed: the name stays in the text, where the phrase binds it to a place
   ("pip top left"); the subject token tells the denoiser what that named subject looks like. Cross-
   attention keys carry no slot position, so the slot order is only a convention (deterministic files
   and golden tests), not information the model uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from banana_sdk.config import ModelConfig
from banana_sdk.subjects.encoder import SubjectError
from banana_sdk.subjects.store import Subject, SubjectStore

_WORD = re.compile(r"[A-Za-z0-9]+")


class TooManySubjects(SubjectError):
    """More subjects than the model has slots."""


def prompt_words(prompt: str) -> list[str]:
    """The prompt's ASCII words, lower-cased, in order (the tokenizer's word rule)."""
    return [w.lower() for w in _WORD.findall(prompt)]


def bind(prompt: str, subjects: Sequence[Subject], slots: int, width: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(subjects (1, slots, width) f32, subject_mask (1, slots) f32, slot names) for `prompt`."""
    names = [s.name for s in subjects]
    if len(subjects) > slots:
        raise TooManySubjects(f"{len(subjects)} subjects given ({', '.join(names)}); the model has {slots} "
                              "subject slots: drop one")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SubjectError(f"subject {dupes[0]!r} is given twice")
    words = prompt_words(prompt)
    missing = [n for n in names if n not in words]
    if missing:
        raise SubjectError(f"subject {missing[0]!r} is not named in the prompt {prompt!r}; "
                           f"refer to it by name (e.g. \"{missing[0]} top left\") or leave it out")
    ordered = sorted(subjects, key=lambda s: words.index(s.name))
    tokens = np.zeros((1, slots, width), np.float32)
    mask = np.zeros((1, slots), np.float32)
    for k, subject in enumerate(ordered):
        tokens[0, k] = subject.token_for(width)
        mask[0, k] = 1.0
    return tokens, mask, [s.name for s in ordered]


def subject_inputs(prompt: str, names: Sequence[str], config: ModelConfig | None,
                   store: str | Path | SubjectStore | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the named subjects from the store and bind them for `config`'s denoiser (for the CLI)."""
    if config is None:
        raise SubjectError("subjects need a Banana model or bundle (this one has no subject slots)")
    slots = config.denoiser.max_subjects
    if len(names) > slots:  # refuse before reading any file
        raise TooManySubjects(f"{len(names)} subjects given ({', '.join(names)}); the model has {slots} "
                              "subject slots: drop one")
    store = store if isinstance(store, SubjectStore) else SubjectStore(store)
    tokens, mask, _ = bind(prompt, [store.get(n) for n in names], slots, config.text.width)
    return tokens, mask
