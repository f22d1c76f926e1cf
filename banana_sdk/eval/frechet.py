"""Fréchet distance between Gaussian fits of two feature sets (the FID formula on evaluator features)."""

from __future__ import annotations

import numpy as np
from scipy import linalg


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) for feature rows a (N, D), b (M, D).

    `eps` is added to both covariance diagonals so the matrix square root exists for rank-deficient
    fits (fewer samples than features, or constant features such as always-empty cells).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N>=2, D) feature sets of equal D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    eye = np.eye(a.shape[1]) * eps
    cov_a = np.cov(a, rowvar=False) + eye
    cov_b = np.cov(b, rowvar=False) + eye
    root = linalg.sqrtm(cov_a @ cov_b)
    root = np.real(root)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))
    return max(value, 0.0)
