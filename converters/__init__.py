"""Converters: PyTorch -> LiteRT bundles."""
