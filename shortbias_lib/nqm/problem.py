"""The noisy quadratic of Section 2: the problem, its arrays and schedules, validated.

SGD with momentum (Eqs. 1-2), ``v <- mu v - alpha g``, ``theta <- theta + v``,
on the diagonal noisy quadratic ``L(theta) = 1/2 sum_i h_i (theta_i - c_i)^2``
with ``c_i ~ N(0, sigma2_i)`` drawn afresh every step (Eq. 3).

Conventions used by every ``nqm_*`` module:

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
from dataclasses import dataclass, field

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


def _first_bad(bad):
    """``(index, step)`` of the first True entry of a boolean tensor ``(..., T)``."""
    flat = int(bad.reshape(-1).nonzero()[0, 0])
    return flat // bad.shape[-1], flat % bad.shape[-1]


def check_schedule(alphas, mus=None, *, momentum_below_one=True):
    """Validate a schedule and convert it to float64 tensors ``(..., T)``, T >= 1.

    Learning rates must be finite and > 0, momenta finite and >= 0 (a negative
    one is not SGD with momentum), and below 1 unless ``momentum_below_one=False``:
    the exact dynamics replay any momentum (greedy's exceed 1 on deterministic
    problems, as conjugate gradient's heavy-ball form does), while the fits work in
    ``logit mu`` and their adjoint runs the second moments, which lose a
    deterministic problem's rank-one state to rounding once momenta exceed 1.
    Leading dimensions of ``alphas`` and ``mus`` must broadcast. Each violation is a
    ``ValueError`` naming the parameter, the allowed range and the first offending step.
    """
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
    try:
        torch.broadcast_shapes(alphas.shape, mus.shape)
    except RuntimeError:
        raise ValueError(f"alphas of shape {tuple(alphas.shape)} and mus of shape "
                         f"{tuple(mus.shape)} do not broadcast") from None
    for name, bad, allowed in (
            ("alphas (learning rates)", ~(torch.isfinite(alphas) & (alphas > 0)), "finite and > 0"),
            ("mus (momenta)", ~(torch.isfinite(mus) & (mus >= 0) & ((mus < 1) | (not momentum_below_one))),
             "finite and in [0, 1)" if momentum_below_one else "finite and >= 0")):
        if bad.any():
            values = alphas if name.startswith("alphas") else mus
            i, t = _first_bad(bad)
            raise ValueError(f"{name} must be {allowed}; got {values.reshape(-1, bad.shape[-1])[i, t].item()!r} "
                             f"at step {t}" + (f" of schedule {i}" if bad.ndim > 1 else ""))
    return alphas, mus


def broadcast_shape(arrays, alphas, mus):
    """The common shape ``(..., d)`` of a problem's arrays and a schedule's leading dimensions."""
    try:
        return torch.broadcast_shapes(*(a.shape for a in arrays), alphas.shape[:-1] + (1,),
                                      mus.shape[:-1] + (1,))
    except RuntimeError:
        raise ValueError(f"a schedule of shape {tuple(alphas.shape)} does not broadcast with a "
                         f"problem of shape {tuple(arrays[0].shape)}: schedules are (..., T), "
                         "problems (..., d), and their leading dimensions must broadcast") from None


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

