"""How subject names in a prompt bind to the denoiser's subject slots.

Rules (the app follows the same ones):
1. The prompt's words are found as the tokenizer finds them: ASCII letters and digits, lower-cased.
2. Every requested subject must be named by a word of the prompt (else SubjectError: nothing would tell
   the model where it goes); at most `max_subjects` (5) subjects, each once.
3. Slot k holds the subject whose name occurs k-th in the prompt (first occurrence); its mask entry is 1.
   Unused slots are zero with mask 0, which makes them inert (DESIGN §1).
4. Models without a learned reference encoder: the prompt itself is not changed: the name stays in the
   text, where the phrase binds it to a place ("pip top left"); the subject token tells the denoiser what
   that named subject looks like. Their cross-attention keys carry no slot position, so the slot order is
   only a convention (deterministic files and golden tests), not information the model uses.
5. Models with a learned reference encoder (`ModelConfig.subject_encoder`, trained on procedural identities
   as placeholders) know nothing of the user's names: every whole-word occurrence of the subject in slot k
   (rule 1's word rule) is replaced by the placeholder "sbjk" before the prompt is encoded
   (`placeholder_prompt`), and their slot embeddings make slot k the one "sbjk" refers to.
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


def check_encoder(subjects: Sequence[Subject], encoder_model: str | None) -> None:
    """SubjectError unless every subject's token was made for this model's kind of tokens.

    `encoder_model` is the weights sha256 of the running model when it has a learned reference encoder
    (`ModelConfig.subject_encoder`), else None. Such a model binds subjects its own encoder made (and learned
    embeddings); a model without one binds descriptor and embedding subjects only."""
    for s in subjects:
        if s.source == "encoder" and s.model != encoder_model:
            made = f"the learned encoder of model sha256:{(s.model or '?')[:12]}"
            if encoder_model is None:
                raise SubjectError(f"subject {s.name!r} was made by {made}; this model has no learned reference "
                                   "encoder: re-add it from its images without --model")
            raise SubjectError(f"subject {s.name!r} was made by {made}, not this model (sha256:"
                               f"{encoder_model[:12]}): re-add it from its images with `banana subject add "
                               f"{s.name} --image ... --model` and this model's checkpoint")
        if s.source == "references" and encoder_model is not None:
            raise SubjectError(f"subject {s.name!r} holds a colour-silhouette descriptor; this model reads subjects "
                               f"made by its own learned encoder: re-add it from its images with `banana subject "
                               f"add {s.name} --image ... --model` and this model's checkpoint")


def bind(prompt: str, subjects: Sequence[Subject], slots: int, width: int,
         encoder_model: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(subjects (1, slots, width) f32, subject_mask (1, slots) f32, slot names) for `prompt`.

    `encoder_model`: see `check_encoder` (the weights sha256 of a model with a learned reference encoder)."""
    names = [s.name for s in subjects]
    if len(subjects) > slots:
        raise TooManySubjects(f"{len(subjects)} subjects given ({', '.join(names)}); the model has {slots} "
                              "subject slots: drop one")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SubjectError(f"subject {dupes[0]!r} is given twice")
    check_encoder(subjects, encoder_model)
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
                   store: str | Path | SubjectStore | None = None,
                   weights_sha256: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the named subjects from the store and bind them for `config`'s denoiser (for the CLI)."""
    _, tokens, mask = bound_inputs(prompt, names, config, store, weights_sha256)
    return tokens, mask


def bound_inputs(prompt: str, names: Sequence[str], config: ModelConfig | None,
                 store: str | Path | SubjectStore | None = None,
                 weights_sha256: str | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(prompt to encode, tokens, mask): `subject_inputs` plus rule 5's prompt rewrite."""
    if config is None:
        raise SubjectError("subjects need a Banana model or bundle (this one has no subject slots)")
    slots = config.denoiser.max_subjects
    if len(names) > slots:  # refuse before reading any file
        raise TooManySubjects(f"{len(names)} subjects given ({', '.join(names)}); the model has {slots} "
                              "subject slots: drop one")
    store = store if isinstance(store, SubjectStore) else SubjectStore(store)
    tokens, mask, ordered = bind(prompt, [store.get(n) for n in names], slots, config.text.width,
                                 encoder_model(config, weights_sha256))
    return bound_prompt(prompt, ordered, config), tokens, mask


def encoder_model(config: ModelConfig, weights_sha256: str | None) -> str | None:
    """`bind`'s `encoder_model` for a model: its weights sha256 if it has a learned reference encoder."""
    if config.subject_encoder is None:
        return None
    if not weights_sha256:
        raise SubjectError(f"model {config.name!r} reads subjects made by its own learned encoder, but its weights "
                           "have no identity (a random-weight preset): subjects need a trained checkpoint")
    return weights_sha256


def placeholder_prompt(prompt: str, slot_names: Sequence[str]) -> str:
    """`prompt` with each whole-word, case-insensitive occurrence of `slot_names[k - 1]` replaced by the
    placeholder "sbjk" (rule 5); other text, case and punctuation unchanged."""
    from banana_sdk.data.characters import placeholder

    slots = {name: placeholder(k) for k, name in enumerate(slot_names, start=1)}
    return _WORD.sub(lambda m: slots.get(m.group(0).lower(), m.group(0)), prompt)


def bound_prompt(prompt: str, slot_names: Sequence[str], config: ModelConfig) -> str:
    """The prompt a model encodes once `slot_names` are bound: rewritten by rule 5 for a model with a learned
    reference encoder, else unchanged (rule 4)."""
    return placeholder_prompt(prompt, slot_names) if config.subject_encoder is not None else prompt
