"""Monte Carlo simulation of SGD on the noisy quadratic (sampled minima), to check Theorem 1.

Conventions: see :mod:`shortbias_lib.nqm.problem`.
"""

from typing import NamedTuple

import numpy as np
import torch

from .problem import DTYPE, check_problem, check_schedule


class MonteCarlo(NamedTuple):
    """Sample statistics of simulated SGD: per step (T+1) and per dimension where shown."""

    loss_mean: torch.Tensor      # (T+1,) mean of 1/2 sum h theta^2
    loss_sem: torch.Tensor       # (T+1,) its standard error
    mean_theta: torch.Tensor     # (T+1, d)
    var_theta: torch.Tensor      # (T+1, d)
    mean_v: torch.Tensor         # (T+1, d)
    var_v: torch.Tensor          # (T+1, d)
    cov: torch.Tensor            # (T+1, d)
    paths: object                # (T+1, n_paths, d) theta trajectories, or None
    n_samples: int


def monte_carlo(h, sigma2, mean0, var0, alphas, mus=None, *, n_samples=1000, seed=0,
                n_paths=0, chunk=None):
    """Simulate Eqs. (1)-(3) with a fresh minimum ``c ~ N(0, sigma2)`` each step.

    One schedule (``alphas``, ``mus`` of shape ``(T,)``), ``n_samples`` independent
    runs with ``theta_0 ~ N(mean0, var0)``, ``v_0 = 0``. Returns sample moments
    (unbiased variances) to compare with Theorem 1, and the first ``n_paths``
    trajectories (for Figure 1).
    """
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
    alphas, mus = check_schedule(alphas, mus)
    if alphas.ndim != 1:
        raise ValueError(f"monte_carlo takes one schedule, alphas of shape (T,); got {tuple(alphas.shape)}")
    if h.ndim != 1:
        raise ValueError("monte_carlo takes one problem: h of shape (d,)")
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2; got {n_samples!r}")
    if not 0 <= n_paths <= n_samples:
        raise ValueError(f"n_paths must be in [0, n_samples]; got {n_paths!r}")
    gen = torch.Generator().manual_seed(int(seed))
    d, T = h.shape[-1], alphas.shape[-1]
    chunk = chunk or max(1, min(n_samples, 2_000_000 // max(d, 1)))
    sums = torch.zeros(5, T + 1, d, dtype=DTYPE)
    sq = torch.zeros(5, T + 1, d, dtype=DTYPE)
    loss_sum = torch.zeros(T + 1, dtype=DTYPE)
    loss_sq = torch.zeros(T + 1, dtype=DTYPE)
    paths = torch.empty(T + 1, n_paths, d, dtype=DTYPE) if n_paths else None
    std = torch.sqrt(sigma2)
    done = 0
    while done < n_samples:
        n = min(chunk, n_samples - done)
        theta = mean0 + torch.sqrt(var0) * torch.randn(n, d, generator=gen, dtype=DTYPE)
        v = torch.zeros(n, d, dtype=DTYPE)

        def record(t, theta, v):
            for j, x in enumerate((theta, v, theta * v)):
                sums[j, t] += x.sum(0)
            sq[0, t] += (theta ** 2).sum(0)
            sq[1, t] += (v ** 2).sum(0)
            loss = 0.5 * (h * theta ** 2).sum(-1)
            loss_sum[t] += loss.sum()
            loss_sq[t] += (loss ** 2).sum()
            if paths is not None and done < n_paths:
                take = min(n, n_paths - done)
                paths[t, done:done + take] = theta[:take]

        record(0, theta, v)
        for t in range(T):
            c = std * torch.randn(n, d, generator=gen, dtype=DTYPE)
            v = mus[t] * v - alphas[t] * h * (theta - c)
            theta = theta + v
            record(t + 1, theta, v)
        done += n
    N = n_samples
    mean_theta, mean_v = sums[0] / N, sums[1] / N
    var_theta = (sq[0] - N * mean_theta ** 2) / (N - 1)
    var_v = (sq[1] - N * mean_v ** 2) / (N - 1)
    cov = (sums[2] - N * mean_theta * mean_v) / (N - 1)
    loss_mean = loss_sum / N
    loss_sem = torch.sqrt(((loss_sq - N * loss_mean ** 2) / (N - 1)).clamp(min=0) / N)
    return MonteCarlo(loss_mean, loss_sem, mean_theta, var_theta, mean_v, var_v, cov, paths, N)

