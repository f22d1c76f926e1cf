"""Samplers: teacher (Euler) and multistep latent consistency (LCM)."""
