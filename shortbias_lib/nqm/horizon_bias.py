"""The bias across horizons on the noisy quadratic, and its remedies.

Everything here runs on the exact expected dynamics of the noisy quadratic
(Theorem 1, :mod:`shortbias_lib.nqm.dynamics`), so every curve is exact up
to the search over schedules.

* :func:`noisy_problem`, :func:`precondition`: the problems (Chebyshev curvatures,
  gradient noise ``noise / h``, a diagonal preconditioner ``h**gamma``).
* :func:`horizon_bias`, :func:`decay_horizon_bias`: the schedule that is best for
  a horizon ``T`` and what it costs at a longer final horizon.
* :func:`greedy_ratio_map`: greedy / optimized final loss over condition number and
  noise scale, with and without preconditioning.
* :func:`explore`: the compute function behind the teaching explorer
  (:mod:`shortbias_lib.plots.explorer`).
"""

import math
import time

import numpy as np
import torch

from .dynamics import dynamics, greedy_schedule
from .gradient import fit_schedule
from .problem import DEFAULT_C0, DTYPE, chebyshev_spectrum
from ..engine.schedules import InverseTime



def spectrum(n, kappa):
    """Chebyshev extreme-point curvatures on ``[1/kappa, 1]``; all ones when ``kappa == 1``."""
    if not kappa >= 1:
        raise ValueError(f"kappa (condition number) must be >= 1; got {kappa!r}")
    if kappa == 1:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1; got {n!r}")
        return torch.ones(n, dtype=DTYPE)
    return chebyshev_spectrum(n, kappa)


def precondition(h, sigma2, a0, gamma):
    """The problem seen by SGD preconditioned with ``P = diag(h**gamma)``.

    With ``u = P^(1/2) theta`` the update ``theta <- theta - alpha P^-1 g`` is plain
    SGD on ``u`` with curvature ``h / p``, noise variance ``p sigma2`` and initial
    second moment ``p A0``; the excess loss is unchanged. ``gamma = 0``: none,
    ``gamma = 1/2``: square-root (Adam-like when ``sigma2 = 1/h``), ``gamma = 1``:
    exact (Newton / natural gradient), which makes the problem spherical.
    Returns ``(h', sigma2', a0')``.
    """
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma (preconditioner exponent) must be in [0, 1]; got {gamma!r}")
    h = torch.as_tensor(h, dtype=DTYPE)
    p = h ** gamma
    return h / p, torch.as_tensor(sigma2, dtype=DTYPE) * p, torch.as_tensor(a0, dtype=DTYPE) * p


def noisy_problem(n, kappa, noise=1.0, c0=DEFAULT_C0, gamma=0.0):
    """``(h, sigma2, mean0, var0)`` with ``sigma2 = noise / h`` (noise 1 is Section 2.3's,
    ``1/B`` for batch size ``B``), ``E[theta_0] = c0``, preconditioned with ``h**gamma``."""
    if not noise >= 0:
        raise ValueError(f"noise (gradient-noise scale) must be >= 0; got {noise!r}")
    h = spectrum(n, kappa)
    hp, s2, a0 = precondition(h, noise / h, torch.full_like(h, float(c0) ** 2), gamma)
    return hp, s2, torch.sqrt(a0), torch.zeros_like(a0)


DIVERGED = 1e6


def mark_diverged(x, ref=None):
    """Diverged entries become +inf: never plotted, never chosen.

    An entry is diverged if it is not finite, or, given the initial losses
    ``ref`` and losses over steps on the last axis, once the loss has exceeded
    ``DIVERGED`` times the initial loss (it then stays diverged).
    """
    bad = ~torch.isfinite(x)
    if ref is not None:
        bad = bad | (x > DIVERGED * ref[..., None])
        bad = torch.cummax(bad.to(torch.int8), -1).values.bool()
    return torch.where(bad, torch.full_like(x, math.inf), x)


# --------------------------------------------------------------------------
# The bias across horizons
# --------------------------------------------------------------------------

def _check_horizons(horizons, final_horizon):
    horizons = np.asarray(horizons, dtype=int)
    if horizons.ndim != 1 or horizons.size == 0 or (horizons < 1).any():
        raise ValueError("horizons must be a non-empty list of integers >= 1")
    if not isinstance(final_horizon, (int, np.integer)) or final_horizon < horizons.max():
        raise ValueError(f"final_horizon must be an integer >= max(horizons) = {horizons.max()}; "
                         f"got {final_horizon!r}")
    return horizons


def _best_per_horizon(losses, horizons, final_horizon):
    """``losses``: ``(G, final_horizon+1)`` for G candidate schedules that do not depend on T."""
    losses = mark_diverged(losses, losses[..., 0])
    idx = losses[:, horizons].argmin(0)  # best candidate for each horizon
    at_t = losses[idx, horizons]
    at_final = losses[idx, final_horizon]
    return idx, at_t, at_final


def horizon_bias(arrays, horizons, final_horizon, alphas, mus):
    """Best constant ``(alpha, mu)`` for each horizon, and its loss at ``final_horizon``.

    One run of ``final_horizon`` steps per candidate passes through every horizon
    with the same constant schedule, so all horizons cost one batched run.
    Candidates are the grid ``alphas x mus``. Returns a dict of numpy arrays.
    """
    horizons = _check_horizons(horizons, final_horizon)
    alphas = torch.as_tensor(alphas, dtype=DTYPE)
    mus = torch.as_tensor(mus, dtype=DTYPE)
    if (alphas <= 0).any() or ((mus < 0) | (mus >= 1)).any():
        raise ValueError("alphas must be > 0 and mus in [0, 1)")
    ga, gm = torch.meshgrid(alphas, mus, indexing="ij")
    ga, gm = ga.reshape(-1), gm.reshape(-1)
    with torch.no_grad():
        losses = dynamics(*arrays, ga[:, None].expand(-1, final_horizon),
                          gm[:, None].expand(-1, final_horizon))
    idx, at_t, at_final = _best_per_horizon(losses, horizons, final_horizon)
    best_final = mark_diverged(losses, losses[..., 0])[:, final_horizon].min()
    return dict(horizons=horizons, alpha=ga[idx].numpy(), mu=gm[idx].numpy(),
                loss_at_horizon=at_t.numpy(), loss_at_final=at_final.numpy(),
                best_final=best_final.numpy(), final_horizon=np.array(final_horizon))


def decay_schedule(alpha0, beta, steps, K):
    """``alpha_t = alpha0 / (1 + t/K)**beta``, t = 0..steps-1 (the offline MNIST family).

    Batched over the grids ``alpha0`` and ``beta``: :class:`~shortbias_lib.engine.schedules.InverseTime`
    read at every step, shape ``(..., steps)``.
    """
    if not K > 0:
        raise ValueError(f"K (decay time scale) must be > 0; got {K!r}")
    t = torch.arange(steps, dtype=DTYPE)
    alpha0 = torch.as_tensor(alpha0, dtype=DTYPE)[..., None]
    beta = torch.as_tensor(beta, dtype=DTYPE)[..., None]
    return InverseTime(alpha0, beta, K).lr(t)


def decay_horizon_bias(arrays, horizons, final_horizon, alpha0s, betas, mu=0.9, K=None):
    """Best ``(alpha_0, beta)`` of :func:`decay_schedule` (momentum ``mu``) for each horizon.

    The schedule does not depend on the horizon, so one run of ``final_horizon``
    steps again serves every horizon (as one 20k-step MNIST run passes through
    all four of the paper's horizons). ``K`` defaults to ``final_horizon / 4``
    (the paper's 5000 / 20000).
    """
    horizons = _check_horizons(horizons, final_horizon)
    K = final_horizon / 4 if K is None else K
    a0, b = torch.meshgrid(torch.as_tensor(alpha0s, dtype=DTYPE),
                           torch.as_tensor(betas, dtype=DTYPE), indexing="ij")
    a0, b = a0.reshape(-1), b.reshape(-1)
    alphas = decay_schedule(a0, b, final_horizon, K)
    with torch.no_grad():
        losses = dynamics(*arrays, alphas, torch.full_like(alphas, mu))
    idx, at_t, at_final = _best_per_horizon(losses, horizons, final_horizon)
    return dict(horizons=horizons, alpha0=a0[idx].numpy(), beta=b[idx].numpy(),
                loss_at_horizon=at_t.numpy(), loss_at_final=at_final.numpy(),
                best_final=mark_diverged(losses, losses[..., 0])[:, final_horizon].min().numpy(),
                K=np.array(K), mu=np.array(mu))


# --------------------------------------------------------------------------
# Remedies: greedy / optimized over (condition number, noise), preconditioned
# --------------------------------------------------------------------------

def greedy_ratio_map(kappas, noises, gammas=(0.0,), *, n=100, horizon=250, c0=DEFAULT_C0,
                  fit_steps=100, fit_lr=0.1, floor=1e-10):
    """Final loss of the greedy schedule (Theorem 2) over the best fitted schedule.

    For every (gamma, kappa, noise) cell: greedy with momentum, then a per-step
    schedule fitted with Adam on (log alpha, logit mu), warm-started at greedy,
    without the Section 2.3 bound. "Optimized" is the lowest final loss the fit
    visited, so ``ratio >= 1`` by construction and is a lower bound on the true
    ratio; where greedy is optimal (noise 0, or a spherical problem) no fit can
    get below it and the ratio is 1. Losses below ``floor`` times the initial loss
    are rounding (a deterministic problem converges to 0), so the ratio is
    ``(greedy + floor L0) / (optimized + floor L0)``. Returns numpy arrays of shape
    ``(len(gammas), len(kappas), len(noises))``.
    """
    kappas, noises, gammas = (list(map(float, x)) for x in (kappas, noises, gammas))
    cells = [(g, k, s) for g in gammas for k in kappas for s in noises]
    probs = [noisy_problem(n, k, s, c0, g) for g, k, s in cells]
    h, s2, m0, v0 = (torch.stack([p[i] for p in probs]) for i in range(4))
    start = time.perf_counter()
    greedy = greedy_schedule(h, s2, m0, v0, horizon)
    mus0 = greedy.mus.nan_to_num(0.5).clamp(1e-4, 1 - 1e-4)
    alphas0 = greedy.alphas.nan_to_num(1e-12).clamp(min=1e-12)
    fit = fit_schedule(h, s2, m0, v0, alphas0, mus0, steps=fit_steps,
                       lr=fit_lr, parameterization="log", bound=False)
    # Greedy never increases the loss (alpha = mu = 0 is allowed), so its final loss is
    # the minimum over its trajectory; this also covers problems solved exactly, after
    # which Theorem 2's formula is 0/0.
    g_final = mark_diverged(greedy.losses.nan_to_num(math.inf)).min(-1).values.clamp(min=0)
    best = torch.minimum(mark_diverged(fit.history).min(-1).values, g_final).clamp(min=0)
    floor = floor * greedy.losses[..., 0]
    shape = (len(gammas), len(kappas), len(noises))
    return dict(kappas=np.array(kappas), noises=np.array(noises), gammas=np.array(gammas),
                greedy=g_final.reshape(shape).numpy(), optimized=best.reshape(shape).numpy(),
                ratio=((g_final + floor) / (best + floor)).reshape(shape).numpy(),
                floor=floor.reshape(shape).numpy(),
                seconds=np.array(time.perf_counter() - start))


# --------------------------------------------------------------------------
# The explorer's compute function
# --------------------------------------------------------------------------

EXPLORER_DEFAULTS = dict(kappa=1000.0, noise=1.0, horizon=250, lr=0.05, mu=0.9)


def explore(kappa=1000.0, noise=1.0, horizon=250, lr=0.05, mu=0.9, *, n=50, c0=DEFAULT_C0,
         grid=10):
    """Greedy, "optimized" and fixed schedules of one problem, for the explorer.

    * greedy: Theorem 2 (exact);
    * fixed: the slider's ``(lr, mu)`` for every step (exact);
    * optimized: a cheap stand-in for the per-step fit, the best
      :func:`decay_schedule` (momentum ``mu``, ``K = horizon/4``) over a
      ``grid x grid`` grid of ``(alpha_0, beta)``, one batched forward run
      (no gradient steps).
    The problem is :func:`noisy_problem` with ``n`` dimensions. Returns a dict of
    numpy arrays: ``alphas``, ``mus`` and ``losses`` per schedule.
    """
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")
    if not lr > 0:
        raise ValueError(f"lr (learning rate) must be > 0; got {lr!r}")
    if not 0 <= mu < 1:
        raise ValueError(f"mu (momentum) must be in [0, 1); got {mu!r}")
    arrays = noisy_problem(n, kappa, noise, c0)
    with torch.no_grad():
        greedy = greedy_schedule(*arrays, horizon)
        fa = torch.full((horizon,), float(lr), dtype=DTYPE)
        fm = torch.full((horizon,), float(mu), dtype=DTYPE)
        a0 = torch.logspace(-2.5, 0.5, grid, dtype=DTYPE)
        betas = torch.cat([torch.zeros(1, dtype=DTYPE), torch.logspace(-1.5, 1, grid - 1, dtype=DTYPE)])
        ga, gb = (x.reshape(-1) for x in torch.meshgrid(a0, betas, indexing="ij"))
        # one batched run: row 0 is the fixed schedule, the rest the decay grid
        alphas = torch.cat([fa[None], decay_schedule(ga, gb, horizon, horizon / 4)])
        losses = dynamics(*arrays, alphas, torch.full_like(alphas, mu), check=False)
        losses = mark_diverged(losses, losses[..., 0])
        fixed, alphas, losses = losses[0], alphas[1:], losses[1:]
        best = losses[:, -1].argmin()
    return dict(
        steps=np.arange(horizon + 1),
        greedy_alphas=greedy.alphas.numpy(), greedy_mus=greedy.mus.numpy(),
        greedy_losses=greedy.losses.numpy(),
        optimized_alphas=alphas[best].numpy(), optimized_mus=np.full(horizon, float(mu)),
        optimized_losses=losses[best].numpy(),
        optimized_alpha0=ga[best].numpy(), optimized_beta=gb[best].numpy(),
        fixed_alphas=fa.numpy(), fixed_mus=fm.numpy(), fixed_losses=fixed.numpy(),
    )
