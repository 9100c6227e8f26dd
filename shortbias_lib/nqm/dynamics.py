"""Exact dynamics of the noisy quadratic (Theorem 1) and greedy schedules (Theorems 2-3).

Conventions: see :mod:`shortbias_lib.nqm.problem`.
"""

import math
from typing import NamedTuple

import torch

from .problem import DTYPE, broadcast_shape, check_problem, check_schedule


# --------------------------------------------------------------------------
# Exact dynamics (Theorem 1)
# --------------------------------------------------------------------------

class Moments(NamedTuple):
    """Theorem 1's sufficient statistics per dimension: E[theta], E[v], V[theta], V[v], Cov."""

    mean_theta: torch.Tensor
    mean_v: torch.Tensor
    var_theta: torch.Tensor
    var_v: torch.Tensor
    cov: torch.Tensor

    def second(self):
        """``(A(theta), A(v), E[theta v])``, the quantities of Theorem 2 and Eq. (15)."""
        return (self.mean_theta ** 2 + self.var_theta, self.mean_v ** 2 + self.var_v,
                self.mean_theta * self.mean_v + self.cov)


def initial_moments(mean0, var0):
    """Appendix A.1's start: E[v0] = V[v0] = Cov = 0."""
    mean0, var0 = torch.broadcast_tensors(torch.as_tensor(mean0, dtype=DTYPE),
                                          torch.as_tensor(var0, dtype=DTYPE))
    zero = torch.zeros_like(mean0)
    return Moments(mean0, zero, var0, zero, zero)


def theorem1_step(m, h, sigma2, alpha, mu):
    """One step of Theorem 1 (Eqs. 10-14); ``alpha``, ``mu`` broadcast against ``(..., d)``."""
    ah = alpha * h
    mean_v = mu * m.mean_v - ah * m.mean_theta
    mean_theta = m.mean_theta + mean_v
    var_v = mu ** 2 * m.var_v + ah ** 2 * m.var_theta - 2 * mu * ah * m.cov + ah ** 2 * sigma2
    var_theta = (1 - 2 * ah) * m.var_theta + var_v + 2 * mu * m.cov
    cov = mu * m.cov - ah * m.var_theta + var_v
    return Moments(mean_theta, mean_v, var_theta, var_v, cov)


def theorem1_trajectory(h, sigma2, mean0, var0, alphas, mus=None):
    """All of Theorem 1's statistics for steps 0..T: a ``Moments`` of tensors ``(..., T+1, d)``."""
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
    alphas, mus = check_schedule(alphas, mus, momentum_below_one=False)
    shape = broadcast_shape((h, sigma2, mean0, var0), alphas, mus)
    m = initial_moments(mean0.expand(shape), var0.expand(shape))
    out = [m]
    for t in range(alphas.shape[-1]):
        m = theorem1_step(m, h, sigma2, alphas[..., t, None], mus[..., t, None])
        out.append(m)
    return Moments(*(torch.stack([getattr(s, k) for s in out], dim=-2) for k in Moments._fields))


def second_moment_step(a_theta, a_v, c, h, sigma2, alpha, mu):
    """Theorem 1 rewritten for ``A(theta) = E[theta^2]``, ``A(v)``, ``E[theta v]`` (3 numbers).

    The loss only needs ``A(theta)``, and these three evolve linearly by themselves:
    the fast path used for fitting schedules.
    """
    ah = alpha * h
    one = 1 - ah
    noise = ah ** 2 * sigma2
    mu2av = mu ** 2 * a_v
    a_theta_new = one ** 2 * a_theta + mu2av + 2 * one * mu * c + noise
    a_v_new = ah ** 2 * a_theta + mu2av - 2 * ah * mu * c + noise
    c_new = -one * ah * a_theta + mu2av + mu * (1 - 2 * ah) * c + noise
    return a_theta_new, a_v_new, c_new


def _excess(h, a_theta):
    return 0.5 * (h * a_theta)


def dynamics(h, sigma2, mean0, var0, alphas, mus=None, *, per_dim=False, bound=False,
             check=True):
    """Expected excess loss at steps 0..T, shape ``(..., T+1)`` (or ``(..., T+1, d)``).

    Runs Theorem 1's means and centred (co)variances (:func:`theorem1_step`), the
    state :func:`greedy_schedule` uses, so a greedy schedule replays to its own losses:
    on a deterministic problem the variances stay zero and ``A(theta) = E[theta]^2``
    is never lost to rounding, even with momenta >= 1 (greedy's, like conjugate
    gradient's heavy-ball form, can exceed 1). ``bound=True`` applies the Section 2.3
    upper bound (see :func:`bounded_scale`) and then returns ``(losses, alphas_used, mus_used)``.
    """
    if check:
        h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
        alphas, mus = check_schedule(alphas, mus, momentum_below_one=False)
    shape = broadcast_shape((h, sigma2, mean0, var0), alphas, mus)
    m = initial_moments(mean0.expand(shape), var0.expand(shape))
    a0 = m.second()[0]
    reduce = (lambda x: x) if per_dim else (lambda x: x.sum(-1))
    losses = [reduce(_excess(h, a0))]
    used_a, used_m = [], []
    for t in range(alphas.shape[-1]):
        alpha, mu = alphas[..., t, None], mus[..., t, None]
        if bound:
            scale = bounded_scale(*m.second(), a0, h, sigma2, alpha, mu)
            alpha, mu = alpha * scale, mu * scale
            used_a.append(alpha[..., 0])
            used_m.append(mu[..., 0])
        m = theorem1_step(m, h, sigma2, alpha, mu)
        losses.append(reduce(_excess(h, m.second()[0])))
    losses = torch.stack(losses, dim=-2 if per_dim else -1)
    if bound:
        return losses, torch.stack(used_a, -1), torch.stack(used_m, -1)
    return losses


def bounded_scale(a_theta, a_v, c, a0, h, sigma2, alpha, mu):
    """Largest ``s <= 1`` with every dimension's next loss <= its initial loss.

    The step ``(alpha, mu)`` is shrunk along the ray to ``(0, 0)`` (no update,
    which keeps every loss where it is): ``E[theta'^2] = A + 2 s b + s^2 a`` is a
    convex quadratic in ``s``, so the bound is its largest root, exact and
    differentiable. Bounding the ray rather than ``alpha`` alone also stops
    momentum-driven growth. Returns ``s`` with shape ``(..., 1)``.
    """
    ah = alpha * h
    b = mu * c - ah * a_theta
    a = mu ** 2 * a_v - 2 * mu * ah * c + ah ** 2 * (a_theta + sigma2)
    room = (a0 - a_theta).clamp(min=0)
    disc = (b ** 2 + a * room).clamp(min=0)
    safe_a = torch.where(a > 0, a, torch.ones_like(a))
    root = torch.where(a > 0, (-b + torch.sqrt(disc)) / safe_a, torch.full_like(a, math.inf))
    return root.amin(-1, keepdim=True).clamp(max=1.0)


# --------------------------------------------------------------------------
# Greedy-optimal schedules (Theorems 2 and 3)
# --------------------------------------------------------------------------

# relative size of Theorem 2's denominator below which v adds no new direction
DEGENERATE = 1e-10


def greedy_coefficients(a_theta, a_v, c, h, sigma2, momentum=True):
    """Learning rate and momentum that minimise the next step's expected loss.

    Theorem 2 (with momentum): with ``P = sum h A(v)``, ``B1 = sum h E[theta v]``,
    ``B2 = sum h^2 E[theta v]``:
    ``alpha* = (sum h^2 A(theta) P - B1 B2) / (sum h^3 (A(theta) + sigma2) P - B2^2)`` and
    ``mu* = -(B1 - alpha* B2) / P``. Theorem 3 / Schaul et al. (2013)
    (``momentum=False``): ``alpha* = sum h^2 A(theta) / sum h^3 (A(theta) + sigma2)``.

    Degenerate states get a minimiser too, never 0/0: when the denominator is
    below :data:`DEGENERATE` times ``sum h^3 (A + sigma2) P`` (``P = 0`` at the
    first step, or a velocity that adds no direction to the gradient's, as
    when conjugate gradient has exhausted its Krylov space), momentum cannot
    lower the loss further and Theorem 3's rate with ``mu = 0`` is returned; a
    solved problem (``sum h^2 A = 0``) stays solved with ``mu = 0`` and any
    rate, and gets ``1 / max h``. Sums run over the last axis; results have shape ``(...)``.
    """
    s_a = (h ** 2 * a_theta).sum(-1)
    s_d = (h ** 3 * (a_theta + sigma2)).sum(-1)
    solved = s_a <= 0
    plain = torch.where(solved, 1 / h.amax(-1).expand_as(s_a), s_a / torch.where(solved, 1.0, s_d))
    if not momentum:
        return plain, torch.zeros_like(plain)
    p = (h * a_v).sum(-1)
    b1 = (h * c).sum(-1)
    b2 = (h ** 2 * c).sum(-1)
    den = s_d * p - b2 ** 2
    ok = ~solved & (den > DEGENERATE * s_d * p) & (p > 0)
    one = torch.ones_like(p)
    alpha_mom = (s_a * p - b1 * b2) / torch.where(ok, den, one)
    alpha = torch.where(ok, alpha_mom, plain)
    mu = torch.where(ok, -(b1 - alpha * b2) / torch.where(ok, p, one), torch.zeros_like(p))
    return alpha, mu


def one_step_loss(a_theta, a_v, c, h, sigma2, alpha, mu):
    """Eq. (15): expected excess loss after one step from ``(A(theta), A(v), E[theta v])``."""
    return _excess(h, second_moment_step(a_theta, a_v, c, h, sigma2, alpha, mu)[0]).sum(-1)


def brute_force_greedy(a_theta, a_v, c, h, sigma2, *, momentum=True, center=(1.0, 0.0),
                       width=(3.0, 1.5), n=41, rounds=12):
    """Minimise the one-step loss Eq. (15) by zooming grids, without any formula.

    An independent check of :func:`greedy_coefficients` (Theorem 2): a grid of
    ``n x n`` points around ``center`` with half-widths ``width``, re-centred on
    its best point and shrunk ``n/4``-fold, ``rounds`` times. One state (``(d,)``
    arrays). Returns ``(alpha, mu, loss)`` as floats.
    """
    ca, cm = float(center[0]), float(center[1]) if momentum else 0.0
    wa, wm = float(width[0]), float(width[1]) if momentum else 0.0
    best = math.inf
    for _ in range(rounds):
        ga = torch.linspace(ca - wa, ca + wa, n, dtype=DTYPE)
        gm = (torch.linspace(cm - wm, cm + wm, n, dtype=DTYPE) if wm > 0
              else torch.tensor([cm], dtype=DTYPE))
        A, M = torch.meshgrid(ga, gm, indexing="ij")
        vals = one_step_loss(a_theta, a_v, c, h, sigma2, A.reshape(-1, 1), M.reshape(-1, 1))
        i = int(vals.argmin())
        ca, cm, best = A.reshape(-1)[i].item(), M.reshape(-1)[i].item(), vals[i].item()
        wa, wm = wa * 4 / n, wm * 4 / n
    return ca, cm, best


class Schedule(NamedTuple):
    """A schedule and its expected excess losses (steps 0..T)."""

    alphas: torch.Tensor
    mus: torch.Tensor
    losses: torch.Tensor


def greedy_schedule(h, sigma2, mean0, var0, horizon, momentum=True):
    """The greedy-optimal schedule (Theorem 2, or Theorem 3 if ``momentum=False``).

    The state is Theorem 1's means and centred (co)variances, not the second
    moments: on a deterministic problem the variances stay exactly zero and
    ``A(theta) = E[theta]^2`` keeps its rank-one structure, which the
    second-moment recursion loses to rounding (its greedy schedule then blows
    up where conjugate gradient converges).
    """
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0, horizon)
    shape = torch.broadcast_shapes(h.shape, sigma2.shape, mean0.shape, var0.shape)
    m = initial_moments(mean0.expand(shape), var0.expand(shape))
    alphas, mus, losses = [], [], [_excess(h, m.second()[0]).sum(-1)]
    for _ in range(horizon):
        alpha, mu = greedy_coefficients(*m.second(), h, sigma2, momentum)
        m = theorem1_step(m, h, sigma2, alpha[..., None], mu[..., None])
        alphas.append(alpha)
        mus.append(mu)
        losses.append(_excess(h, m.second()[0]).sum(-1))
    return Schedule(torch.stack(alphas, -1), torch.stack(mus, -1), torch.stack(losses, -1))
