"""Peels: LoRA add-ons for the Nano-Banana denoiser (and optionally the text encoder)."""
