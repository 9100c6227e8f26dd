"""Gradients of the final expected loss (a NumPy adjoint) and the Adam fit of Section 2.3.

Conventions: see :mod:`shortbias_lib.nqm_problem`.
"""

import time
from typing import NamedTuple

import numpy as np
import torch

from .errors import DivergenceError
from .nqm_problem import DTYPE, broadcast_shape, check_problem, check_schedule


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def final_loss_grad(h, sigma2, mean0, var0, alphas, mus=None, *, bound=False):
    """Final expected excess loss and its exact gradient by a hand-written adjoint.

    The fast path for fitting: the recursion of :func:`second_moment_step` run
    forward in NumPy, then its adjoint backward (the same numbers as autograd
    through :func:`dynamics`, which the tests check, at a fraction of the cost).
    With ``bound=True`` each proposed step is shrunk by :func:`bounded_scale`
    and the gradient (with respect to the proposed schedule) includes the
    dependence of the shrink factor on the state and the proposal. Returns NumPy arrays
    ``(final (...), grad_alpha (..., T), grad_mu (..., T), alphas_used, mus_used,
    losses (..., T+1))``. A schedule whose loss overflows raises
    :class:`~shortbias_lib.errors.DivergenceError` naming the first step where it did.
    """
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
    alphas, mus = check_schedule(alphas, mus)
    broadcast_shape((h, sigma2, mean0, var0), alphas, mus)
    out = adjoint(*(_np(x) for x in (h, sigma2, mean0, var0, alphas, mus)), bound=bound)
    losses = out[5]
    bad = ~np.isfinite(losses).reshape(-1, losses.shape[-1])
    if bad.any():
        step = int(bad.any(0).argmax())
        row = int(bad[:, step].argmax())
        alpha = out[3].reshape(-1, out[3].shape[-1])[row, step - 1]
        raise DivergenceError(step, losses.reshape(-1, losses.shape[-1])[row, step],
                              what=f"the expected excess loss (learning rate {alpha:g} before it)")
    return out


def adjoint(h, sigma2, mean0, var0, alphas, mus, *, bound=False, sharpness=None):
    """:func:`final_loss_grad` on NumPy arrays, unchecked; a diverged schedule gives inf or NaN
    (no warnings), which line searches treat as a rejected step.

    ``sharpness=p`` (with ``bound=True``) replaces the bound's shrink factor
    ``s = min(1, r_1, ..., r_d)`` by the smooth, never larger
    ``s_p = (1 + sum_i r_i^-p)^(-1/p)`` (a soft minimum; ``s_p >= s (d + 1)^(-1/p)``),
    so the applied schedule respects the bound with a margin and the final loss
    is a smooth function of the proposal: no kinks where the binding dimension
    changes, which stall quasi-Newton fits. ``None``: the exact bound.
    """
    with np.errstate(all="ignore"):
        return _adjoint(h, sigma2, mean0, var0, alphas, mus, bound, sharpness)


def _adjoint(h, sigma2, mean0, var0, alphas, mus, bound, sharpness=None):
    T = alphas.shape[-1]
    shape = np.broadcast_shapes(h.shape, sigma2.shape, mean0.shape, var0.shape,
                                alphas.shape[:-1] + (1,), mus.shape[:-1] + (1,))
    A = np.broadcast_to(mean0 ** 2 + var0, shape).copy()
    A0 = A.copy()
    V = np.zeros(shape)
    C = np.zeros(shape)
    proposed_a = np.broadcast_to(alphas, shape[:-1] + (T,))
    proposed_m = np.broadcast_to(mus, shape[:-1] + (T,))
    alphas, mus = proposed_a.copy(), proposed_m.copy()
    binding = np.zeros(shape[:-1] + (T,), dtype=bool)
    scales = np.ones(shape[:-1] + (T,))
    argmins = np.zeros(shape[:-1] + (T,), dtype=np.int64)
    sig = np.broadcast_to(sigma2, shape)
    hb = np.broadcast_to(h, shape)
    h2s = hb * hb * sig                       # h^2 sigma^2, the noise per unit alpha^2
    states = np.empty((T + 1, 3) + shape)
    states[0] = A, V, C
    soft = bound and sharpness is not None
    if soft:
        weights = np.empty((T,) + shape)
        skip = (1e17 * shape[-1]) ** (1 / sharpness)
    # a = 0 gives root = inf below, selected away by np.where
    # forward, written with shared terms (fewer array operations):
    # muC = mu C, u = (1 - k) A + muC, w = k A - muC, P = mu^2 V + alpha^2 h^2 sigma^2,
    # A' = (1 - k)(u + muC) + P, C' = A' - u, V' = C' + w.
    for t in range(T):
        al = alphas[..., t:t + 1]
        mu = mus[..., t:t + 1]
        k = al * hb
        muC = mu * C
        kA = k * A
        if bound:
            b = muC - kA
            a = (mu * mu) * V - 2 * k * muC + k * kA + (al * al) * h2s
            room = np.maximum(A0 - A, 0.0)
            disc = np.maximum(b * b + a * room, 0.0)
            root = np.where(a > 0, (-b + np.sqrt(disc)) / a, np.inf)
            if soft and not (root.min(-1) < skip).any():
                # every r_i^-p below 1e-17 / d: s_p = 1 to rounding, no gradient through it
                scales[..., t] = 1.0
                states[t + 1] = _step(A, V, C, al, mu, hb, h2s)
                A, V, C = states[t + 1]
                continue
            if soft:
                binding[..., t] = root.min(-1) < skip
                z = -sharpness * np.log(np.maximum(root, 1e-300))    # -inf where root = inf
                zmax = np.maximum(z.max(-1, keepdims=True), 0.0)
                lse = zmax + np.log(np.exp(-zmax) + np.exp(z - zmax).sum(-1, keepdims=True))
                s_soft = np.exp(-lse / sharpness)
                weights[t] = np.exp(z - lse)                         # d log s / d log r_i
                scales[..., t] = s_soft[..., 0]
                al = al * s_soft
                mu = mu * s_soft
                k = al * hb
                muC = mu * C
                kA = k * A
                alphas[..., t:t + 1] = al
                mus[..., t:t + 1] = mu
                u = A - kA + muC
                P = (mu * mu) * V + (al * al) * h2s
                A_new = (1 - k) * (u + muC) + P
                C = A_new - u
                V = C + (kA - muC)
                A = A_new
                states[t + 1] = A, V, C
                continue
            arg = root.argmin(-1)[..., None]
            r = np.take_along_axis(root, arg, -1)
            binding[..., t] = r[..., 0] < 1
            scales[..., t] = np.minimum(r[..., 0], 1.0)
            argmins[..., t] = arg[..., 0]
            al = al * scales[..., t:t + 1]
            mu = mu * scales[..., t:t + 1]
            k = al * hb
            muC = mu * C
            kA = k * A
            alphas[..., t:t + 1] = al
            mus[..., t:t + 1] = mu
        u = A - kA + muC
        P = (mu * mu) * V + (al * al) * h2s
        A_new = (1 - k) * (u + muC) + P
        C = A_new - u
        V = C + (kA - muC)
        A = A_new
        states[t + 1] = A, V, C
    losses = 0.5 * np.einsum("t...i,...i->...t", states[:, 0], hb)
    final = losses[..., -1]
    # adjoint of the forward graph above; gA, gV, gC = dL/d(A, V, C) at step t+1
    gA = 0.5 * hb
    gV = np.zeros(shape)
    gC = np.zeros(shape)
    g_alpha = np.empty(shape[:-1] + (T,))
    g_mu = np.empty(shape[:-1] + (T,))
    lead, d = shape[:-1], shape[-1]
    nb = int(np.prod(lead, dtype=np.int64))
    rows = np.arange(nb)
    if bound:
        def _flat(x):
            flat = np.ascontiguousarray(np.broadcast_to(x, shape)).reshape(nb, d)
            return lambda idx: flat[rows, idx].reshape(lead)
        h_full_i, s_full_i, a0_full_i = _flat(hb), _flat(sig), _flat(A0)
    for t in range(T - 1, -1, -1):
        A, V, C = states[t]
        al = alphas[..., t:t + 1]
        mu = mus[..., t:t + 1]
        k = al * hb
        muC = mu * C
        u = A - k * A + muC
        gCt = gC + gV                      # V' = C' + w
        gAt = gA + gCt                     # C' = A' - u
        gu = (1 - k) * gAt - gCt           # A' = (1-k)(u + muC) + P
        gmuC = (1 - k) * gAt - gV + gu     # from A', w = kA - muC, u
        gk = A * gV - (u + muC) * gAt - A * gu
        gm = 2 * mu[..., 0] * np.einsum("...i,...i->...", V, gAt) + np.einsum("...i,...i->...", C, gmuC)
        ga = np.einsum("...i,...i->...", hb, gk) + 2 * al[..., 0] * np.einsum("...i,...i->...", h2s, gAt)
        gA, gV, gC = k * gV + (1 - k) * gu, (mu * mu) * gAt, mu * gmuC
        if bound:
            # applied = s * proposed, s = min(1, r_i*(state, proposed)): chain rule through s
            s_t = scales[..., t]
            pa, pm = proposed_a[..., t], proposed_m[..., t]
            gs = ga * pa + gm * pm
            ga, gm = s_t * ga, s_t * gm
            if soft and binding[..., t].any():
                # s = (1 + sum r_i^-p)^(-1/p): ds = s sum_i pi_i dr_i / r_i, pi_i = weights;
                # each root r_i solves a r^2 + 2 b r = room: dr = (droom - r^2 da - 2 r db) / (2 D)
                pa_, pm_ = pa[..., None], pm[..., None]
                kk = pa_ * hb
                bi = pm_ * C - kk * A
                ai = (pm_ * pm_) * V - 2 * pm_ * kk * C + kk * kk * A + (pa_ * pa_) * h2s
                room = A0 - A
                D = np.sqrt(np.maximum(bi * bi + ai * np.maximum(room, 0.0), 0.0))
                r = np.where(ai > 0, (-bi + D) / ai, np.inf)
                pi = weights[t]
                live = (pi > 0) & (D > 0) & np.isfinite(r)
                r = np.where(live, r, 0.0)
                # s / r_i from logs, with r_i floored as in the forward (finite where r_i = 0)
                s_over_r = np.exp(np.log(s_t)[..., None] - np.log(np.maximum(r, 1e-300)))
                w = np.where(live, -gs[..., None] * pi * s_over_r / np.where(live, D * 2, 1.0), 0.0)
                wr2, wr1 = w * r * r, 2 * w * r
                ga = ga + np.einsum("...i,...i->...", wr2, -2 * pm_ * hb * C + 2 * pa_ * hb * (hb * A + hb * sig)) \
                    + np.einsum("...i,...i->...", wr1, -hb * A)
                gm = gm + np.einsum("...i,...i->...", wr2, 2 * pm_ * V - 2 * kk * C) \
                    + np.einsum("...i,...i->...", wr1, C)
                gA = gA + wr2 * kk * kk - wr1 * kk + w * (room > 0)
                gV = gV + wr2 * (pm_ * pm_)
                gC = gC - wr2 * (2 * pm_ * kk) + wr1 * pm_
            elif not soft and binding[..., t].any():
                idx = argmins[..., t].reshape(nb)
                pick = lambda x: x.reshape(nb, d)[rows, idx].reshape(lead)  # noqa: E731
                Ai, Vi, Ci, hi, si, ri = pick(A), pick(V), pick(C), h_full_i(idx), s_full_i(idx), s_t
                A0i = a0_full_i(idx)
                kk = pa * hi
                bi = pm * Ci - kk * Ai
                ai = pm * pm * Vi - 2 * pm * kk * Ci + kk * kk * (Ai + si)
                roomi = np.maximum(A0i - Ai, 0.0)
                den = 2 * np.sqrt(np.maximum(bi * bi + ai * roomi, 0.0))
                live = binding[..., t] & (den > 0)
                w = np.where(live, -gs / np.where(live, den, 1.0), 0.0)
                r2, r1 = ri * ri, 2 * ri
                ga = ga + w * (r2 * (-2 * pm * hi * Ci + 2 * pa * hi * hi * (Ai + si)) + r1 * (-hi * Ai))
                gm = gm + w * (r2 * (2 * pm * Vi - 2 * pa * hi * Ci) + r1 * Ci)
                dA = w * (r2 * kk * kk + r1 * (-kk) + 1.0 * (A0i - Ai > 0))
                dV = w * (r2 * pm * pm)
                dC = w * (r2 * (-2 * pm * kk) + r1 * pm)
                # gA, gV, gC are fresh full-shape arrays here: add in place at the argmin
                for lam, dz in ((gA, dA), (gV, dV), (gC, dC)):
                    lam.reshape(nb, d)[rows, idx] += dz.reshape(nb)
        g_alpha[..., t] = ga
        g_mu[..., t] = gm
    return final, g_alpha, g_mu, alphas, mus, losses


def _step(A, V, C, al, mu, hb, h2s):
    """One step of the second-moment recursion (as in :func:`_adjoint`'s forward)."""
    k = al * hb
    muC = mu * C
    kA = k * A
    u = A - kA + muC
    A_new = (1 - k) * (u + muC) + (mu * mu) * V + (al * al) * h2s
    C_new = A_new - u
    return A_new, C_new + (kA - muC), C_new


def _to_raw(alphas, mus, parameterization):
    if parameterization == "raw":
        return alphas.copy(), mus.copy()
    if parameterization == "log":
        mus = np.clip(mus, 1e-6, 1 - 1e-6)
        return np.log(np.maximum(alphas, 1e-12)), np.log(mus / (1 - mus))
    if parameterization == "effective":
        mus = np.clip(mus, 1e-6, 1 - 1e-6)
        return np.log(np.maximum(alphas, 1e-12) / (1 - mus)), np.log(mus / (1 - mus))
    raise ValueError("parameterization must be 'raw', 'log' or 'effective'; "
                     f"got {parameterization!r}")


def _from_raw(ra, rm, parameterization):
    if parameterization == "raw":
        return ra, rm
    mu = 1 / (1 + np.exp(-rm))
    if parameterization == "effective":
        return np.exp(ra) * (1 - mu), mu
    return np.exp(ra), mu


def _raw_gradients(ga, gm, a, m, parameterization):
    """Chain rule from (alpha, mu) to the fitted parameters."""
    if parameterization == "raw":
        return ga, gm
    if parameterization == "log":
        return ga * a, gm * m * (1 - m)
    return ga * a, gm * m * (1 - m) - ga * a * m  # effective: alpha = exp(ra) (1 - mu)


class Fit(NamedTuple):
    """A fitted schedule: the schedule applied (after the bound), its losses, the fit's history."""

    alphas: torch.Tensor
    mus: torch.Tensor
    losses: torch.Tensor
    history: torch.Tensor
    seconds: float


def fit_schedule(h, sigma2, mean0, var0, alphas0, mus0=None, *, horizon=None, steps=500,
                 lr=0.003, parameterization="raw", bound=True, momentum=True):
    """Minimise the expected loss at step T with Adam (Section 2.3).

    ``alphas0``, ``mus0`` have shape ``(..., T)``: one learning rate and momentum
    per step. With ``horizon`` given they have shape ``(..., 1)``: a fixed
    schedule (two numbers) used for ``horizon`` steps, whose gradient is the sum
    of the per-step gradients. Batched schedules are fitted independently in one
    pass (Adam is elementwise). ``parameterization="raw"`` fits alpha and mu,
    ``"log"`` fits log alpha and logit mu, ``"effective"`` fits the log effective
    learning rate log(alpha / (1 - mu)) and logit mu. ``bound=True`` enforces the Section 2.3
    bound as part of the parameterisation: the applied step is the proposed one
    shrunk by :func:`bounded_scale`, differentiated through.
    ``momentum=False`` keeps mu = 0 (Theorem 3's setting). ``lr`` is Adam's
    learning rate, a number or one per schedule (an array of the schedules'
    leading shape, e.g. ``(0.1, 0.01)`` for a batch of two). Returns the applied
    schedule, its losses (steps 0..T) and the final loss before each Adam step.
    """
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
    alphas0, mus0 = check_schedule(alphas0, mus0)
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0; got {steps!r}")
    lr_arr = np.asarray(lr, dtype=np.float64)
    if not np.all(np.isfinite(lr_arr)) or not np.all(lr_arr > 0):
        raise ValueError(f"lr must be > 0; got {lr!r}")
    lr = lr_arr[..., None] if lr_arr.ndim else float(lr_arr)  # one per schedule: (..., 1)
    if horizon is not None:
        if not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")
        if alphas0.shape[-1] != 1:
            raise ValueError("a fixed schedule (horizon given) needs alphas0 with last dimension 1")
    if not momentum:
        mus0 = torch.zeros_like(mus0) + 0.5 if parameterization == "log" else torch.zeros_like(mus0)
    ra, rm = _to_raw(_np(alphas0), _np(mus0), parameterization)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    state = [[np.zeros_like(ra), np.zeros_like(ra)], [np.zeros_like(rm), np.zeros_like(rm)]]
    history = []
    start = time.perf_counter()

    arrays = [_np(x) for x in (h, sigma2, mean0, var0)]

    def evaluate(ra, rm, it):
        a, m = _from_raw(ra, rm, parameterization)
        if not momentum:
            m = np.zeros_like(a)
        if horizon is not None:
            a = np.broadcast_to(a, a.shape[:-1] + (horizon,))
            m = np.broadcast_to(m, m.shape[:-1] + (horizon,))
        out = adjoint(*arrays, a, m, bound=bound)
        bad = ~np.isfinite(out[0])
        if bad.any():
            raise DivergenceError(it, out[0][bad].reshape(-1)[0],
                                  what="the final expected loss of the Adam fit (Adam step number given)")
        return out

    for it in range(1, steps + 1):
        final, ga, gm, a_used, m_used, _ = evaluate(ra, rm, it - 1)
        history.append(final)
        a, m = _from_raw(ra, rm, parameterization)
        if horizon is not None:
            ga, gm = ga.sum(-1, keepdims=True), gm.sum(-1, keepdims=True)
        ga, gm = _raw_gradients(ga, gm, a, m, parameterization)
        grads = [ga, gm] if momentum else [ga]
        for i, (param, grad) in enumerate(zip((ra, rm), grads)):
            m1, m2 = state[i]
            m1 *= beta1
            m1 += (1 - beta1) * grad
            m2 *= beta2
            m2 += (1 - beta2) * grad * grad
            step = lr * (m1 / (1 - beta1 ** it)) / (np.sqrt(m2 / (1 - beta2 ** it)) + eps)
            param -= step
    final, _, _, a_used, m_used, losses = evaluate(ra, rm, steps)
    history.append(final)
    if not momentum:
        m_used = np.zeros_like(a_used)
    tt = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=DTYPE)  # noqa: E731
    return Fit(tt(a_used), tt(m_used), tt(losses), tt(np.stack(history, -1)),
               time.perf_counter() - start)
