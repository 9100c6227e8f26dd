"""The exact gradient of the final expected loss by a hand-written adjoint, in NumPy.

:func:`adjoint` runs the second-moment recursion forward (each proposed step shrunk by the
Section 2.3 bound, exact or soft, if asked) and its adjoint backward: the same numbers as
autograd through :func:`shortbias_lib.nqm.dynamics.dynamics` (the tests check), at a fraction
of the cost. :func:`shortbias_lib.nqm.gradient.final_loss_grad` is its checked entry point.

Conventions: see :mod:`shortbias_lib.nqm.problem`.
"""

from typing import NamedTuple

import numpy as np


def adjoint(h, sigma2, mean0, var0, alphas, mus, *, bound=False, sharpness=None):
    """:func:`~shortbias_lib.nqm.gradient.final_loss_grad` on NumPy arrays, unchecked; a diverged
    schedule gives inf or NaN (no warnings), which line searches treat as a rejected step.

    ``sharpness=p`` (with ``bound=True``) replaces the bound's shrink factor
    ``s = min(1, r_1, ..., r_d)`` by the smooth, never larger
    ``s_p = (1 + sum_i r_i^-p)^(-1/p)`` (a soft minimum; ``s_p >= s (d + 1)^(-1/p)``),
    so the applied schedule respects the bound with a margin and the final loss
    is a smooth function of the proposal: no kinks where the binding dimension
    changes, which stall quasi-Newton fits. ``None``: the exact bound.
    """
    with np.errstate(all="ignore"):
        return _adjoint(h, sigma2, mean0, var0, alphas, mus, bound, sharpness)


class _Forward(NamedTuple):
    """The forward pass of :func:`_adjoint`: the problem broadcast to ``shape``, the states
    ``(A, V, C)`` per step ``(T + 1, 3, *shape)``, the proposed and applied schedules and, with
    the bound, each step's shrink factor and what the backward pass needs of it."""

    shape: tuple
    hb: np.ndarray                # h broadcast to ``shape``
    sig: np.ndarray               # sigma2 broadcast to ``shape``
    h2s: np.ndarray               # h^2 sigma^2, the noise per unit alpha^2
    A0: np.ndarray
    states: np.ndarray
    proposed_a: np.ndarray
    proposed_m: np.ndarray
    alphas: np.ndarray            # applied
    mus: np.ndarray
    binding: np.ndarray           # (..., T): the bound shrank the step
    scales: np.ndarray            # (..., T): the shrink factor
    argmins: np.ndarray           # (..., T): the binding dimension (exact bound)
    weights: np.ndarray           # (T, *shape): d log s / d log r_i (soft bound), else None


def _adjoint(h, sigma2, mean0, var0, alphas, mus, bound, sharpness=None):
    """:func:`adjoint`'s work: the forward pass, the losses, the backward pass."""
    fw = _forward(h, sigma2, mean0, var0, alphas, mus, bound, sharpness)
    losses = 0.5 * np.einsum("t...i,...i->...t", fw.states[:, 0], fw.hb)
    g_alpha, g_mu = _backward(fw, bound, bound and sharpness is not None)
    return losses[..., -1], g_alpha, g_mu, fw.alphas, fw.mus, losses


def _forward(h, sigma2, mean0, var0, alphas, mus, bound, sharpness):
    """The second-moment recursion, each proposed step shrunk by the bound (if ``bound``)."""
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
    h2s = hb * hb * sig
    states = np.empty((T + 1, 3) + shape)
    states[0] = A, V, C
    soft = bound and sharpness is not None
    weights = np.empty((T,) + shape) if soft else None
    if soft:
        skip = (1e17 * shape[-1]) ** (1 / sharpness)
    for t in range(T):
        al = alphas[..., t:t + 1]
        mu = mus[..., t:t + 1]
        if bound:
            root = _bound_roots(A, V, C, A0, al, mu, hb, h2s)
            if soft and not (root.min(-1) < skip).any():
                # every r_i^-p below 1e-17 / d: s_p = 1 to rounding, no gradient through it
                scales[..., t] = 1.0
                states[t + 1] = _step(A, V, C, al, mu, hb, h2s)
                A, V, C = states[t + 1]
                continue
            if soft:
                binding[..., t] = root.min(-1) < skip
                s, weights[t] = _soft_min(root, sharpness)
                scales[..., t] = s[..., 0]
            else:
                arg = root.argmin(-1)[..., None]
                r = np.take_along_axis(root, arg, -1)
                binding[..., t] = r[..., 0] < 1
                scales[..., t] = np.minimum(r[..., 0], 1.0)
                argmins[..., t] = arg[..., 0]
                s = scales[..., t:t + 1]
            al = al * s
            mu = mu * s
            alphas[..., t:t + 1] = al
            mus[..., t:t + 1] = mu
        states[t + 1] = _update(A, V, C, al, mu, hb, h2s)
        A, V, C = states[t + 1]
    return _Forward(shape, hb, sig, h2s, A0, states, proposed_a, proposed_m, alphas, mus, binding,
                    scales, argmins, weights)


def _bound_roots(A, V, C, A0, al, mu, hb, h2s):
    """Per dimension, the largest shrink ``r`` of the step ``(al, mu)`` that keeps ``A`` at or
    below ``A0``: the positive root of ``a r^2 + 2 b r = room`` (inf where ``a = 0``)."""
    k = al * hb
    muC = mu * C
    kA = k * A
    b = muC - kA
    a = (mu * mu) * V - 2 * k * muC + k * kA + (al * al) * h2s
    room = np.maximum(A0 - A, 0.0)
    disc = np.maximum(b * b + a * room, 0.0)
    # a = 0 gives root = inf, selected away by np.where
    return np.where(a > 0, (-b + np.sqrt(disc)) / a, np.inf)


def _soft_min(root, sharpness):
    """``s_p = (1 + sum_i r_i^-p)^(-1/p)`` ``(..., 1)`` and its weights ``d log s / d log r_i``."""
    z = -sharpness * np.log(np.maximum(root, 1e-300))    # -inf where root = inf
    zmax = np.maximum(z.max(-1, keepdims=True), 0.0)
    lse = zmax + np.log(np.exp(-zmax) + np.exp(z - zmax).sum(-1, keepdims=True))
    return np.exp(-lse / sharpness), np.exp(z - lse)


def _update(A, V, C, al, mu, hb, h2s):
    """One step of the second-moment recursion, written with shared terms (fewer array operations):
    muC = mu C, u = (1 - k) A + muC, w = k A - muC, P = mu^2 V + alpha^2 h^2 sigma^2,
    A' = (1 - k)(u + muC) + P, C' = A' - u, V' = C' + w; returns ``(A', V', C')``."""
    k = al * hb
    muC = mu * C
    kA = k * A
    u = A - kA + muC
    P = (mu * mu) * V + (al * al) * h2s
    A_new = (1 - k) * (u + muC) + P
    C_new = A_new - u
    return A_new, C_new + (kA - muC), C_new


def _backward(fw, bound, soft):
    """The adjoint of :func:`_forward`: the gradient of the final loss with respect to the
    proposed schedule, ``(g_alpha, g_mu)`` ``(..., T)``."""
    shape = fw.shape
    T = fw.alphas.shape[-1]
    # gA, gV, gC = dL/d(A, V, C) at step t+1
    gA = 0.5 * fw.hb
    gV = np.zeros(shape)
    gC = np.zeros(shape)
    g_alpha = np.empty(shape[:-1] + (T,))
    g_mu = np.empty(shape[:-1] + (T,))
    if bound and not soft:
        at_argmin = _AtArgmin(fw)
    for t in range(T - 1, -1, -1):
        A, V, C = fw.states[t]
        ga, gm, gA, gV, gC = _update_adjoint(A, V, C, fw.alphas[..., t:t + 1], fw.mus[..., t:t + 1],
                                             fw.hb, fw.h2s, gA, gV, gC)
        if bound:
            # applied = s * proposed, s = min(1, r_i*(state, proposed)): chain rule through s
            s_t = fw.scales[..., t]
            pa, pm = fw.proposed_a[..., t], fw.proposed_m[..., t]
            gs = ga * pa + gm * pm
            ga, gm = s_t * ga, s_t * gm
            if soft and fw.binding[..., t].any():
                ga, gm, gA, gV, gC = _soft_bound_adjoint(fw, t, A, V, C, gs, ga, gm, gA, gV, gC)
            elif not soft and fw.binding[..., t].any():
                ga, gm = at_argmin.adjoint(t, A, V, C, gs, ga, gm, gA, gV, gC)
        g_alpha[..., t] = ga
        g_mu[..., t] = gm
    return g_alpha, g_mu


def _update_adjoint(A, V, C, al, mu, hb, h2s, gA, gV, gC):
    """The adjoint of :func:`_update` at the state ``(A, V, C)``: the gradients with respect to
    ``al`` and ``mu`` and, from those at the next state, those at this one."""
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
    return ga, gm, k * gV + (1 - k) * gu, (mu * mu) * gAt, mu * gmuC


def _soft_bound_adjoint(fw, t, A, V, C, gs, ga, gm, gA, gV, gC):
    """The chain rule through the soft bound's ``s`` at step ``t`` (``gs = dL/ds``)."""
    # s = (1 + sum r_i^-p)^(-1/p): ds = s sum_i pi_i dr_i / r_i, pi_i = weights;
    # each root r_i solves a r^2 + 2 b r = room: dr = (droom - r^2 da - 2 r db) / (2 D)
    hb, sig, h2s = fw.hb, fw.sig, fw.h2s
    s_t = fw.scales[..., t]
    pa_, pm_ = fw.proposed_a[..., t, None], fw.proposed_m[..., t, None]
    kk = pa_ * hb
    bi = pm_ * C - kk * A
    ai = (pm_ * pm_) * V - 2 * pm_ * kk * C + kk * kk * A + (pa_ * pa_) * h2s
    room = fw.A0 - A
    D = np.sqrt(np.maximum(bi * bi + ai * np.maximum(room, 0.0), 0.0))
    r = np.where(ai > 0, (-bi + D) / ai, np.inf)
    pi = fw.weights[t]
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
    return ga, gm, gA, gV, gC


class _AtArgmin:
    """The chain rule through the exact bound ``s = min(1, r_i)``, which depends only on the
    binding dimension ``i`` (the argmin) of each problem: its arrays flattened once."""

    def __init__(self, fw):
        self.fw = fw
        self.lead, self.d = fw.shape[:-1], fw.shape[-1]
        self.nb = int(np.prod(self.lead, dtype=np.int64))
        self.rows = np.arange(self.nb)
        self.h, self.sig, self.A0 = (np.ascontiguousarray(np.broadcast_to(x, fw.shape)).reshape(self.nb, self.d)
                                     for x in (fw.hb, fw.sig, fw.A0))

    def pick(self, x, idx):
        """``x`` ``(*lead, d)`` at the dimensions ``idx`` ``(nb,)``: shape ``lead``."""
        return x.reshape(self.nb, self.d)[self.rows, idx].reshape(self.lead)

    def adjoint(self, t, A, V, C, gs, ga, gm, gA, gV, gC):
        """Step ``t``'s gradients ``(ga, gm)`` through ``s``; ``gA, gV, gC`` (fresh full-shape
        arrays) gain their share in place at the argmin."""
        fw, nb, rows = self.fw, self.nb, self.rows
        pa, pm = fw.proposed_a[..., t], fw.proposed_m[..., t]
        idx = fw.argmins[..., t].reshape(nb)
        Ai, Vi, Ci, ri = self.pick(A, idx), self.pick(V, idx), self.pick(C, idx), fw.scales[..., t]
        hi, si, A0i = (x[rows, idx].reshape(self.lead) for x in (self.h, self.sig, self.A0))
        kk = pa * hi
        bi = pm * Ci - kk * Ai
        ai = pm * pm * Vi - 2 * pm * kk * Ci + kk * kk * (Ai + si)
        roomi = np.maximum(A0i - Ai, 0.0)
        den = 2 * np.sqrt(np.maximum(bi * bi + ai * roomi, 0.0))
        live = fw.binding[..., t] & (den > 0)
        w = np.where(live, -gs / np.where(live, den, 1.0), 0.0)
        r2, r1 = ri * ri, 2 * ri
        ga = ga + w * (r2 * (-2 * pm * hi * Ci + 2 * pa * hi * hi * (Ai + si)) + r1 * (-hi * Ai))
        gm = gm + w * (r2 * (2 * pm * Vi - 2 * pa * hi * Ci) + r1 * Ci)
        dA = w * (r2 * kk * kk + r1 * (-kk) + 1.0 * (A0i - Ai > 0))
        dV = w * (r2 * pm * pm)
        dC = w * (r2 * (-2 * pm * kk) + r1 * pm)
        for lam, dz in ((gA, dA), (gV, dV), (gC, dC)):
            lam.reshape(nb, self.d)[rows, idx] += dz.reshape(nb)
        return ga, gm


def _step(A, V, C, al, mu, hb, h2s):
    """:func:`_update` with ``A'`` summed in another order, as the soft bound's unshrunk steps
    have always been computed (their rounding is part of the fits' results)."""
    k = al * hb
    muC = mu * C
    kA = k * A
    u = A - kA + muC
    A_new = (1 - k) * (u + muC) + (mu * mu) * V + (al * al) * h2s
    C_new = A_new - u
    return A_new, C_new + (kA - muC), C_new
