"""Bring your own model: diffusers pipeline folders and any nn.Module through the converter's engine.

`diffusers.py` reads and validates a pipeline folder, `families.py` decides its family (which encoders feed
which denoiser, and how), `scheduler.py` turns its scheduler config into the stored schedule and sampler,
`rewrites.py` holds every rewrite and the single-encoder signature wrappers, `conditioning.py` the two-encoder
(SDXL) ones, `convert_diffusers.py` and `module.py` plan the signature jobs, `fixtures.py` builds random-weight
pipelines locally. The bundle tokenizer is `banana_sdk/runtime/clip_tokenizer.py`, the runtime
`banana_sdk/runtime/diffusers.py`.
"""
