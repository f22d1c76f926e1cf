"""Subjects: named characters that keep their identity across images, up to five per prompt.

A subject is a small file holding one token for the denoiser's subject slots, made from reference images
(`encoder.py`) or a learned embedding (`store.py`); names in the prompt bind to slots (`binding.py`); the
denoiser's subject pathway is fine-tuned to read the tokens (`train.py`).
"""

from banana_sdk.subjects.binding import TooManySubjects, bind, prompt_words, subject_inputs
from banana_sdk.subjects.encoder import REFERENCE_SIZE, SubjectError, encode_references
from banana_sdk.subjects.store import (
    Subject,
    SubjectStore,
    UnknownSubject,
    read_subject,
    subject_from_embedding,
    subject_from_references,
)

__all__ = [
    "REFERENCE_SIZE", "Subject", "SubjectError", "SubjectStore", "TooManySubjects", "UnknownSubject", "bind",
    "encode_references", "prompt_words", "read_subject", "subject_from_embedding", "subject_from_references",
    "subject_inputs",
]
