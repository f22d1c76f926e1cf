"""Bring your own model: diffusers pipeline folders and any nn.Module through the converter's engine.

`diffusers.py` reads and validates a pipeline folder, `scheduler.py` turns its scheduler config into the
stored DDPM schedule, `tokenizer.py` is the `clip-bpe` bundle tokenizer, `rewrites.py` holds every rewrite
and signature wrapper real models need, `convert_diffusers.py` and `module.py` plan the signature jobs,
`runtime.py` generates from a converted pipeline, `fixtures.py` builds random-weight pipelines locally.
"""
