"""Runtimes that run bundles on this host: LiteRT pipelines (ours and converted diffusers ones) and tile runners."""
