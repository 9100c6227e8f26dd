"""The sampled schedules of the offline experiment: uniform or quasi-random (shifted Halton)
designs over the authors' ranges, and the second-stage boxes around each horizon's optimum."""

import numpy as np

from ...engine.batches import derived_seed

SAMPLINGS = ("uniform", "halton")


def halton(n, seed, dims=2):
    """``n`` points of the Halton sequence (bases 2, 3, 5, ...) in ``[0, 1)^dims``, shifted
    modulo 1 by a uniform vector drawn from ``seed`` (Cranley-Patterson rotation), so that
    every seed gives a different, equally even design. Shape ``(n, dims)``."""
    if n < 1:
        raise ValueError(f"samples must be >= 1; got {n}")
    primes = (2, 3, 5, 7, 11, 13)[:dims]
    points = np.zeros((n, dims))
    for d, base in enumerate(primes):
        index = np.arange(1, n + 1)
        scale = 1.0
        while np.any(index > 0):
            scale /= base
            index, digit = np.divmod(index, base)
            points[:, d] += digit * scale
    shift = np.random.default_rng(derived_seed(seed, 5)).uniform(size=dims)
    return (points + shift) % 1.0


def sample_hyperparameters(n, seed, log10_alpha0_range=(-3.0, -0.3), log10_beta_range=(-2.0, 2.3),
                           sampling="uniform"):
    """``n`` samples of ``(log10 alpha_0, log10 beta)`` in the authors' ranges:
    independent uniform draws, or a shifted Halton design (``sampling="halton"``)."""
    if n < 1:
        raise ValueError(f"samples must be >= 1; got {n}")
    if sampling == "uniform":
        rng = np.random.default_rng(derived_seed(seed, 3))
        return (rng.uniform(*log10_alpha0_range, size=n), rng.uniform(*log10_beta_range, size=n))
    if sampling != "halton":
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {sampling!r}")
    low = np.array([log10_alpha0_range[0], log10_beta_range[0]], dtype=np.float64)
    width = np.array([log10_alpha0_range[1], log10_beta_range[1]], dtype=np.float64) - low
    points = low + width * halton(n, seed)
    return points[:, 0], points[:, 1]


def refinement_samples(n, seed, horizon_index, center, halfwidth, log10_alpha0_range, log10_beta_range):
    """``n`` Halton points in a box around ``center = (log10 alpha_0, log10 beta)``: ``+-halfwidth``
    times each range, moved (not cut) to stay inside the ranges."""
    ranges = np.array([log10_alpha0_range, log10_beta_range], dtype=np.float64)
    half = halfwidth * (ranges[:, 1] - ranges[:, 0])
    center = np.clip(np.asarray(center, dtype=np.float64), ranges[:, 0] + half, ranges[:, 1] - half)
    points = center - half + 2 * half * halton(n, derived_seed(seed, 6, horizon_index))
    return points[:, 0], points[:, 1]

