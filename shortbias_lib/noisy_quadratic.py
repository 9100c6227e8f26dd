"""The noisy quadratic model of Section 2: exact dynamics, schedules, Monte Carlo.

SGD with momentum (Eqs. 1-2), ``v <- mu v - alpha g``, ``theta <- theta + v``,
on the diagonal noisy quadratic ``L(theta) = 1/2 sum_i h_i (theta_i - c_i)^2``
with ``c_i ~ N(0, sigma2_i)`` drawn afresh every step (Eq. 3).

Conventions used everywhere in this module:

* tensors are float64 torch; ``h``, ``sigma2``, ``mean0``, ``var0`` have shape
  ``(..., d)`` and schedules ``alphas``, ``mus`` shape ``(..., T)``; leading
  dimensions broadcast, so many schedules (or problems) run at once;
* the initial velocity is zero and ``theta_0`` has mean ``mean0`` and
  variance ``var0`` per dimension (Appendix A.1);
* "loss" is the expected *excess* loss ``1/2 sum_i h_i A(theta_i)`` with
  ``A(x) = E[x]^2 + V[x]``: Eq. (6) minus its constant ``1/2 sum_i h_i sigma2_i``
  (the paper's reported numbers exclude that constant, see the book).

Everything is differentiable with respect to the schedules.
"""

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

DTYPE = torch.float64

# The Section 2.3 setup chosen in the book (nqm_experiments): Chebyshev
# extreme-point spectrum on [1/kappa, 1], E[theta_0] = c0 in every dimension,
# V[theta_0] = 0. kappa and c0 are the two numbers the paper leaves open.
PAPER_DIM = 1000
PAPER_HORIZON = 250
DEFAULT_KAPPA = 2000.0
DEFAULT_C0 = 10.86
PAPER_FINAL_LOSSES = {"optimized": 4.25, "greedy": 63.86, "fixed": 42.19}
SCHEDULES = ("optimized", "greedy", "fixed")
CHAPTER = "nqm_experiments"


# --------------------------------------------------------------------------
# Problem definition
# --------------------------------------------------------------------------

def _as64(x):
    if not isinstance(x, torch.Tensor):
        x = np.array(x, dtype=np.float64)  # a copy: read-only views are fine
    return torch.as_tensor(x, dtype=DTYPE)


def _tensor(x, name):
    t = _as64(x)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite; got non-finite values")
    return t


def check_problem(h, sigma2, mean0, var0, horizon=None):
    """Validate and convert a problem's arrays; raise ``ValueError`` naming the bad one."""
    h = _tensor(h, "h")
    sigma2 = _tensor(sigma2, "sigma2")
    mean0 = _tensor(mean0, "mean0")
    var0 = _tensor(var0, "var0")
    if h.ndim == 0 or h.shape[-1] < 1:
        raise ValueError(f"h must have at least one dimension (..., d) with d >= 1; got shape {tuple(h.shape)}")
    if (h <= 0).any():
        raise ValueError("h (curvatures) must be > 0 in every dimension; got a value "
                         f"{h.min().item():g}")
    if (sigma2 < 0).any():
        raise ValueError(f"sigma2 (noise variances) must be >= 0; got {sigma2.min().item():g}")
    if (var0 < 0).any():
        raise ValueError(f"var0 (initial variances) must be >= 0; got {var0.min().item():g}")
    d = h.shape[-1]
    for name, t in (("sigma2", sigma2), ("mean0", mean0), ("var0", var0)):
        if t.ndim == 0 or t.shape[-1] != d:
            raise ValueError(f"{name} must have last dimension d = {d} like h; "
                             f"got shape {tuple(t.shape)}")
        try:
            torch.broadcast_shapes(h.shape, t.shape)
        except RuntimeError:
            raise ValueError(f"{name} shape {tuple(t.shape)} does not broadcast with "
                             f"h shape {tuple(h.shape)}") from None
    if horizon is not None and (not isinstance(horizon, (int, np.integer)) or horizon < 1):
        raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")
    return h, sigma2, mean0, var0


def check_schedule(alphas, mus=None):
    """Convert a schedule to float64 tensors with matching shapes ``(..., T)``, T >= 1."""
    alphas = _as64(alphas)
    if alphas.ndim == 0:
        alphas = alphas.reshape(1)
    if alphas.shape[-1] < 1:
        raise ValueError("alphas must have at least one step (horizon >= 1)")
    mus = torch.zeros_like(alphas) if mus is None else _as64(mus)
    if mus.ndim == 0:
        mus = mus.reshape(1)
    if mus.shape[-1] != alphas.shape[-1]:
        raise ValueError(f"mus must have as many steps as alphas ({alphas.shape[-1]}); "
                         f"got {mus.shape[-1]}")
    return alphas, mus


def chebyshev_spectrum(n=PAPER_DIM, kappa=DEFAULT_KAPPA, h_max=1.0, kind="extreme"):
    """Curvatures on ``[h_max/kappa, h_max]`` at the translated Chebyshev points, descending.

    ``kind="extreme"``: ``h_j = (b+a)/2 + (b-a)/2 cos(j pi/(n-1))``, j = 0..n-1, the
    spectrum on which CG attains its worst-case bound (Li, 2005).
    ``kind="zeros"``: ``cos((2j+1) pi/(2n))`` instead. ``kind="geometric"``: log-uniform.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    if not kappa > 1:
        raise ValueError(f"kappa (condition number) must be > 1; got {kappa!r}")
    if not h_max > 0:
        raise ValueError(f"h_max must be > 0; got {h_max!r}")
    b, a = float(h_max), float(h_max) / float(kappa)
    j = torch.arange(n, dtype=DTYPE)
    if kind == "extreme":
        x = torch.cos(j * math.pi / (n - 1))
    elif kind == "zeros":
        x = torch.cos((2 * j + 1) * math.pi / (2 * n))
    elif kind == "geometric":
        return torch.logspace(math.log10(b), math.log10(a), n, dtype=DTYPE)
    else:
        raise ValueError(f"kind must be 'extreme', 'zeros' or 'geometric'; got {kind!r}")
    return ((b + a) / 2 + (b - a) / 2 * x).clamp(min=a, max=b)


@dataclass(frozen=True)
class Problem:
    """A diagonal noisy quadratic: curvatures, noise variances, initial state, horizon."""

    h: torch.Tensor
    sigma2: torch.Tensor
    mean0: torch.Tensor
    var0: torch.Tensor
    horizon: int
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        h, s, m, v = check_problem(self.h, self.sigma2, self.mean0, self.var0, self.horizon)
        for name, value in (("h", h), ("sigma2", s), ("mean0", m), ("var0", v)):
            object.__setattr__(self, name, value)

    @property
    def arrays(self):
        """``(h, sigma2, mean0, var0)``, the first four arguments of the functions below."""
        return self.h, self.sigma2, self.mean0, self.var0

    def deterministic(self):
        """The same problem with ``sigma2 = 0`` (Figure 3b)."""
        return Problem(self.h, torch.zeros_like(self.sigma2), self.mean0, self.var0,
                       self.horizon, {**self.info, "noisy": False})


def make_problem(n=PAPER_DIM, kappa=DEFAULT_KAPPA, c0=DEFAULT_C0, horizon=PAPER_HORIZON,
                 noisy=True, spectrum="extreme", var0=0.0, h_max=1.0):
    """Section 2.3's problem: ``sigma2_i = 1/h_i`` (h = Fisher = gradient covariance).

    ``E[theta_0] = c0`` and ``V[theta_0] = var0`` in every dimension; only
    ``A_0 = c0^2 + var0`` matters for the expected loss.
    """
    if not c0 >= 0 or not math.isfinite(c0):
        raise ValueError(f"c0 (initial mean) must be a finite number >= 0; got {c0!r}")
    h = chebyshev_spectrum(n, kappa, h_max, spectrum)
    sigma2 = 1.0 / h if noisy else torch.zeros_like(h)
    info = dict(n=n, kappa=float(kappa), c0=float(c0), var0=float(var0), spectrum=spectrum,
                noisy=bool(noisy), h_max=float(h_max))
    return Problem(h, sigma2, torch.full_like(h, float(c0)), torch.full_like(h, float(var0)),
                   horizon, info)


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
    alphas, mus = check_schedule(alphas, mus)
    m = initial_moments(mean0, var0)
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

    ``bound=True`` applies the Section 2.3 upper bound (see :func:`bounded_step`)
    and then returns ``(losses, alphas_used, mus_used)``.
    """
    if check:
        h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
        alphas, mus = check_schedule(alphas, mus)
    shape = torch.broadcast_shapes(h.shape, sigma2.shape, mean0.shape, var0.shape,
                                   alphas.shape[:-1] + (1,), mus.shape[:-1] + (1,))
    a_theta = (mean0 ** 2 + var0).expand(shape)
    a0 = a_theta
    a_v = torch.zeros_like(a_theta)
    c = torch.zeros_like(a_theta)
    reduce = (lambda x: x) if per_dim else (lambda x: x.sum(-1))
    losses = [reduce(_excess(h, a_theta))]
    used_a, used_m = [], []
    for t in range(alphas.shape[-1]):
        alpha, mu = alphas[..., t, None], mus[..., t, None]
        if bound:
            scale = bounded_scale(a_theta, a_v, c, a0, h, sigma2, alpha, mu)
            alpha, mu = alpha * scale, mu * scale
            used_a.append(alpha[..., 0])
            used_m.append(mu[..., 0])
        a_theta, a_v, c = second_moment_step(a_theta, a_v, c, h, sigma2, alpha, mu)
        losses.append(reduce(_excess(h, a_theta)))
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


def final_loss(problem, alphas, mus=None, bound=False):
    """Expected excess loss at step T of ``problem`` under a schedule (a tensor ``(...)``)."""
    out = dynamics(*problem.arrays, alphas, mus, bound=bound)
    return (out[0] if bound else out)[..., -1]


# --------------------------------------------------------------------------
# Greedy-optimal schedules (Theorems 2 and 3)
# --------------------------------------------------------------------------

def greedy_coefficients(a_theta, a_v, c, h, sigma2, momentum=True):
    """Learning rate and momentum that minimise the next step's expected loss.

    Theorem 2 (with momentum): with ``P = sum h A(v)``, ``B1 = sum h E[theta v]``,
    ``B2 = sum h^2 E[theta v]``:
    ``alpha* = (sum h^2 A(theta) P - B1 B2) / (sum h^3 (A(theta) + sigma2) P - B2^2)`` and
    ``mu* = -(B1 - alpha* B2) / P``. When ``P = 0`` (v = 0, the first step) the
    momentum has no effect and is set to 0. Theorem 3 / Schaul et al. (2013)
    (``momentum=False``): ``alpha* = sum h^2 A(theta) / sum h^3 (A(theta) + sigma2)``.
    Sums run over the last axis; results have shape ``(...)``.
    """
    s_a = (h ** 2 * a_theta).sum(-1)
    s_d = (h ** 3 * (a_theta + sigma2)).sum(-1)
    if not momentum:
        return s_a / s_d, torch.zeros_like(s_a)
    p = (h * a_v).sum(-1)
    b1 = (h * c).sum(-1)
    b2 = (h ** 2 * c).sum(-1)
    tiny = torch.finfo(DTYPE).tiny
    scale = (h * a_theta).sum(-1)
    has_v = p > 1e-30 * scale + tiny
    p_safe = torch.where(has_v, p, torch.ones_like(p))
    alpha_mom = (s_a * p - b1 * b2) / (s_d * p - b2 ** 2)
    alpha = torch.where(has_v, alpha_mom, s_a / s_d)
    mu = torch.where(has_v, -(b1 - alpha * b2) / p_safe, torch.zeros_like(p))
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
    """The greedy-optimal schedule (Theorem 2, or Theorem 3 if ``momentum=False``)."""
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0, horizon)
    a_theta = (mean0 ** 2 + var0).expand(torch.broadcast_shapes(h.shape, sigma2.shape, mean0.shape))
    a_v = torch.zeros_like(a_theta)
    c = torch.zeros_like(a_theta)
    alphas, mus, losses = [], [], [_excess(h, a_theta).sum(-1)]
    for _ in range(horizon):
        alpha, mu = greedy_coefficients(a_theta, a_v, c, h, sigma2, momentum)
        a_theta, a_v, c = second_moment_step(a_theta, a_v, c, h, sigma2, alpha[..., None], mu[..., None])
        alphas.append(alpha)
        mus.append(mu)
        losses.append(_excess(h, a_theta).sum(-1))
    return Schedule(torch.stack(alphas, -1), torch.stack(mus, -1), torch.stack(losses, -1))


# --------------------------------------------------------------------------
# Fitted schedules (Section 2.3)
# --------------------------------------------------------------------------

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
    losses (..., T+1))``.
    """
    h, sigma2, mean0, var0 = (_np(x) for x in check_problem(h, sigma2, mean0, var0))
    alphas, mus = (_np(x) for x in check_schedule(alphas, mus))
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
    # a = 0 gives root = inf below, selected away by np.where
    with np.errstate(divide="ignore", invalid="ignore"):
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
            if binding[..., t].any():
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

    def evaluate(ra, rm):
        a, m = _from_raw(ra, rm, parameterization)
        if not momentum:
            m = np.zeros_like(a)
        if horizon is not None:
            a = np.broadcast_to(a, a.shape[:-1] + (horizon,))
            m = np.broadcast_to(m, m.shape[:-1] + (horizon,))
        return final_loss_grad(h, sigma2, mean0, var0, a, m, bound=bound)

    for it in range(1, steps + 1):
        final, ga, gm, a_used, m_used, _ = evaluate(ra, rm)
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
    final, _, _, a_used, m_used, losses = evaluate(ra, rm)
    history.append(final)
    if not momentum:
        m_used = np.zeros_like(a_used)
    tt = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=DTYPE)  # noqa: E731
    return Fit(tt(a_used), tt(m_used), tt(losses), tt(np.stack(history, -1)),
               time.perf_counter() - start)


# --------------------------------------------------------------------------
# Schedule helpers
# --------------------------------------------------------------------------

def constant_schedule(alpha, horizon, mu=0.0):
    """``(alphas, mus)`` of shape ``(..., horizon)`` holding ``alpha`` and ``mu`` at every step."""
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")
    alpha, mu = torch.broadcast_tensors(_as64(alpha), _as64(mu))
    return (alpha[..., None].expand(*alpha.shape, horizon).clone(),
            mu[..., None].expand(*mu.shape, horizon).clone())


def decayed_schedule(alpha, k, decay_steps=50, final_ratio=0.01, mu=0.0):
    """``k`` steps at ``alpha``, then ``decay_steps`` of exponential decay (Figure 2, dashed).

    The learning rate is multiplied by ``final_ratio ** (1/decay_steps)`` each
    decay step, so it ends at ``final_ratio * alpha``.
    """
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an integer >= 0; got {k!r}")
    if not isinstance(decay_steps, (int, np.integer)) or decay_steps < 0 or k + decay_steps < 1:
        raise ValueError(f"decay_steps must be an integer >= 0 with k + decay_steps >= 1; got {decay_steps!r}")
    if not 0 < final_ratio <= 1:
        raise ValueError(f"final_ratio must be in (0, 1]; got {final_ratio!r}")
    alpha = _as64(alpha)
    gamma = final_ratio ** (1.0 / max(decay_steps, 1))
    factors = torch.cat([torch.ones(k, dtype=DTYPE),
                         gamma ** torch.arange(1, decay_steps + 1, dtype=DTYPE)])
    alphas = alpha[..., None] * factors
    return alphas, torch.full_like(alphas, float(mu))


def curvature_group_losses(per_dim_losses, h, n=50):
    """Sums of per-dimension losses over the ``n`` highest and ``n`` lowest curvatures (Figure 3)."""
    h = _as64(h)
    if not 1 <= n <= h.shape[-1]:
        raise ValueError(f"n must be in [1, {h.shape[-1]}]; got {n!r}")
    order = torch.argsort(h, descending=True)
    return per_dim_losses[..., order[:n]].sum(-1), per_dim_losses[..., order[-n:]].sum(-1)


# --------------------------------------------------------------------------
# Monte Carlo (sampled minima)
# --------------------------------------------------------------------------

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
    mean_theta, mean_v, mean_tv = sums[0] / N, sums[1] / N, sums[2] / N
    var_theta = (sq[0] - N * mean_theta ** 2) / (N - 1)
    var_v = (sq[1] - N * mean_v ** 2) / (N - 1)
    cov = (sums[2] - N * mean_theta * mean_v) / (N - 1)
    del mean_tv
    loss_mean = loss_sum / N
    loss_sem = torch.sqrt(((loss_sq - N * loss_mean ** 2) / (N - 1)).clamp(min=0) / N)
    return MonteCarlo(loss_mean, loss_sem, mean_theta, var_theta, mean_v, var_v, cov, paths, N)


# --------------------------------------------------------------------------
# Section 2.3: Figure 3 (greedy, fixed and optimized schedules)
# --------------------------------------------------------------------------

FIXED_GRID = dict(log10_alpha_eff=(-2.0, 1.5, 15), mu=(0.0, 0.98, 8))


def fit_fixed(h, sigma2, mean0, var0, horizon, *, steps=300, lr=0.02, momentum=True,
              grid=FIXED_GRID):
    """Best fixed (alpha, mu): a coarse grid, then Adam from its best point.

    Grid and fit use the effective learning rate ``alpha / (1 - mu)`` and logit
    mu: the loss's valley runs along constant effective learning rate, which
    these coordinates straighten.

    Batched over leading dimensions of the problem arrays (e.g. noisy and
    deterministic at once). Returns a :class:`Fit` whose schedule has ``horizon`` steps.
    """
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0, horizon)
    la = torch.linspace(*grid["log10_alpha_eff"], dtype=DTYPE)
    mg = torch.linspace(*grid["mu"], dtype=DTYPE) if momentum else torch.zeros(1, dtype=DTYPE)
    aa, mm = torch.meshgrid(10 ** la, mg, indexing="ij")
    aa, mm = (aa * (1 - mm)).reshape(-1), mm.reshape(-1)
    lead = torch.broadcast_shapes(h.shape, sigma2.shape, mean0.shape, var0.shape)[:-1]
    extra = (1,) * len(lead)
    with torch.no_grad():
        losses = _final_only(h[..., None, :], sigma2[..., None, :], mean0[..., None, :],
                             var0[..., None, :], aa.reshape(-1, 1), mm.reshape(-1, 1), horizon)
    losses = torch.nan_to_num(losses, nan=math.inf, posinf=math.inf)
    best = losses.argmin(-1)
    a0 = aa[best].reshape(*lead, 1) if lead else aa[best].reshape(1)
    m0 = mm[best].reshape(*lead, 1) if lead else mm[best].reshape(1)
    del extra
    if momentum:
        m0 = m0.clamp(0.01, 0.99)
    return fit_schedule(h, sigma2, mean0, var0, a0, m0, horizon=horizon, steps=steps, lr=lr,
                        parameterization="effective" if momentum else "log", bound=False,
                        momentum=momentum)


def _final_only(h, sigma2, mean0, var0, alphas, mus, horizon):
    """Final excess loss of constant schedules, forward only (for grids)."""
    shape = torch.broadcast_shapes(h.shape, sigma2.shape, mean0.shape, alphas.shape, mus.shape)
    A = (mean0 ** 2 + var0).expand(shape).numpy().copy()
    V = np.zeros(shape)
    C = np.zeros(shape)
    k = np.broadcast_to((alphas * h).numpy(), shape)
    mu = np.broadcast_to(mus.numpy(), shape)
    noise = k * k * np.broadcast_to(sigma2.numpy(), shape)
    o = 1 - k
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(horizon):
            m2v = mu * mu * V
            A, V, C = (o * o * A + m2v + 2 * o * mu * C + noise,
                       k * k * A + m2v - 2 * k * mu * C + noise,
                       -o * k * A + m2v + mu * (1 - 2 * k) * C + noise)
        out = 0.5 * (np.broadcast_to(h.numpy(), shape) * A).sum(-1)
    return torch.as_tensor(out)


def greedy_final_loss(problem, momentum=True):
    """Final expected excess loss of the greedy schedule (a float)."""
    return float(greedy_schedule(*problem.arrays, problem.horizon, momentum=momentum).losses[..., -1])


def calibrate_c0(target=PAPER_FINAL_LOSSES["greedy"], *, momentum=True, lo=0.1, hi=1000.0,
                 iters=60, **problem_kwargs):
    """The initial mean c0 at which the greedy schedule's final loss equals ``target``.

    The greedy final loss increases with c0, so bisection (in log c0) finds it.
    ``problem_kwargs`` go to :func:`make_problem` (n, kappa, spectrum, horizon, ...).
    """
    def f(c0):
        return greedy_final_loss(make_problem(c0=c0, **problem_kwargs), momentum) - target
    if f(lo) > 0 or f(hi) < 0:
        raise ValueError(f"target {target} is not reached for c0 in [{lo}, {hi}]")
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return math.sqrt(lo * hi)


FIGURE3_SETUP = dict(n=PAPER_DIM, kappa=DEFAULT_KAPPA, c0=DEFAULT_C0, spectrum="extreme",
                     horizon=PAPER_HORIZON)
# Adam's learning rate per case (noisy, deterministic); see the experiments chapter
FIGURE3_FIT = dict(steps=500, lr=(0.1, 0.01), parameterization="log", bound=True, init="fixed",
                   fixed_steps=100, fixed_lr=0.05)


def figure3(setup=None, fit=None):
    """Greedy (Theorem 2), fixed and optimized schedules, noisy and deterministic (Figure 3).

    ``setup`` overrides :data:`FIGURE3_SETUP` (the problem), ``fit`` overrides
    :data:`FIGURE3_FIT` (the optimized fit: Adam steps, lr, parameterisation,
    bound, ``init`` in {"fixed", "greedy"}). Noisy and deterministic cases are
    fitted together as a batch of two problems. Returns a dict of NumPy arrays;
    index 0 of the ``case`` axis is noisy, 1 deterministic; the ``schedule`` axis
    follows :data:`SCHEDULES`.
    """
    setup = {**FIGURE3_SETUP, **(setup or {})}
    fit = {**FIGURE3_FIT, **(fit or {})}
    if fit["init"] not in ("fixed", "greedy"):
        raise ValueError(f"init must be 'fixed' or 'greedy'; got {fit['init']!r}")
    noisy = make_problem(**setup)
    T = noisy.horizon
    h = noisy.h
    sigma2 = torch.stack([noisy.sigma2, torch.zeros_like(noisy.sigma2)])
    mean0, var0 = noisy.mean0, noisy.var0
    timings = {}
    t0 = time.perf_counter()
    greedy = greedy_schedule(h, sigma2, mean0, var0, T)
    timings["greedy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fixed = fit_fixed(h, sigma2, mean0, var0, T, steps=fit["fixed_steps"], lr=fit["fixed_lr"])
    timings["fixed"] = time.perf_counter() - t0
    start = (fixed.alphas, fixed.mus) if fit["init"] == "fixed" else (greedy.alphas, greedy.mus)
    t0 = time.perf_counter()
    opt = fit_schedule(h, sigma2, mean0, var0, *start, steps=fit["steps"], lr=fit["lr"],
                       parameterization=fit["parameterization"], bound=fit["bound"])
    timings["optimized"] = time.perf_counter() - t0
    alphas = torch.stack([opt.alphas, greedy.alphas, fixed.alphas], 1)   # (case, schedule, T)
    mus = torch.stack([opt.mus, greedy.mus, fixed.mus], 1)
    per_dim = dynamics(h, sigma2[:, None], mean0, var0, alphas, mus, per_dim=True)
    with torch.no_grad():
        high, low = curvature_group_losses(per_dim, h, min(50, h.shape[-1]))
    losses = per_dim.sum(-1)
    initial = per_dim[..., :1, :]
    return {
        "schedules": np.array(SCHEDULES),
        "cases": np.array(["noisy", "deterministic"]),
        "alphas": alphas.numpy(), "mus": mus.numpy(), "losses": losses.numpy(),
        "loss_high50": high.numpy(), "loss_low50": low.numpy(),
        "final_losses": losses[0, :, -1].numpy(),
        "final_losses_deterministic": losses[1, :, -1].numpy(),
        "paper_final_losses": np.array([PAPER_FINAL_LOSSES[s] for s in SCHEDULES]),
        "max_excess_over_initial": (per_dim - initial).amax((-1, -2)).numpy(),
        "optimized_history": opt.history.numpy(),
        "h": h.numpy(),
        "timings": np.array([timings[s] for s in SCHEDULES]),
    }


SMOKE_STEPS = 150  # the smoke profile only checks that the chapter runs: fewer Adam steps


def run_figure3(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                resume=True):
    """Experiment ``figure3``: compute and save ``results_dir/figure3_<profile>_seed<seed>.npz``.

    The noisy quadratic is cheap, so every profile uses the paper's scale
    (1000 dimensions, T = 250); ``quick`` and ``paper`` take the paper's 500 Adam
    steps for the optimized schedule, ``smoke`` :data:`SMOKE_STEPS`. ``device``, ``seed`` and
    ``data_root`` are accepted for the common interface (the computation is
    exact, CPU NumPy, and uses no data or randomness; the seed only names the file).
    """
    from .profiles import pick
    from .runs import (check_seed, load_matching, provenance, resolve_device,
                       result_path, run_lock, save_result)

    seed = check_seed(seed)
    steps = pick(profile, {"smoke": SMOKE_STEPS, "quick": FIGURE3_FIT["steps"],
                           "paper": FIGURE3_FIT["steps"]})
    resolve_device(device)
    config = {"chapter": CHAPTER, "setup": FIGURE3_SETUP, "fit": {**FIGURE3_FIT, "steps": steps}}
    path = result_path("figure3", profile, seed, results)
    T, n = FIGURE3_SETUP["horizon"], len(SCHEDULES)
    expected = {"alphas": (2, n, T), "mus": (2, n, T), "losses": (2, n, T + 1),
                "final_losses": (n,), "final_losses_deterministic": (n,),
                "reported_names": (n,), "reported_ours": (n,), "reported_paper": (n,),
                "schedules": (n,), "cases": (2,), "loss_high50": None, "loss_low50": None,
                "max_excess_over_initial": None, "optimized_history": None,
                "h": (FIGURE3_SETUP["n"],), "timings": (n,), "seconds": ()}
    if resume:
        found = load_matching(path, config, expected, same={"profile": profile})
        if found is not None:
            return found[0]
    with run_lock(path):
        start = time.perf_counter()
        arrays = figure3(fit={"steps": steps})
        arrays["seconds"] = np.array(time.perf_counter() - start)
        arrays["reported_names"] = np.array([f"Fig. 3 final loss, {s}" for s in SCHEDULES])
        arrays["reported_ours"] = np.asarray(arrays["final_losses"], dtype=np.float64)
        arrays["reported_paper"] = np.array([PAPER_FINAL_LOSSES[s] for s in SCHEDULES])
        save_result(path, arrays, provenance(profile, "cpu", seed, **config))
    return arrays
