"""The final expected loss's gradient, checked (:func:`final_loss_grad`), and the Adam fit of Section 2.3.

The gradient itself is :func:`shortbias_lib.nqm.adjoint.adjoint` (NumPy, unchecked).

Conventions: see :mod:`shortbias_lib.nqm.problem`.
"""

import time
from typing import NamedTuple

import numpy as np
import torch

from ..errors import DivergenceError
from ..runs import to_numpy
from ..engine.meta_optim import Adam
from .adjoint import adjoint
from .problem import DTYPE, broadcast_shape, check_problem, check_schedule


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
    out = adjoint(*(to_numpy(x, np.float64) for x in (h, sigma2, mean0, var0, alphas, mus)), bound=bound)
    losses = out[5]
    bad = ~np.isfinite(losses).reshape(-1, losses.shape[-1])
    if bad.any():
        step = int(bad.any(0).argmax())
        row = int(bad[:, step].argmax())
        alpha = out[3].reshape(-1, out[3].shape[-1])[row, step - 1]
        raise DivergenceError(step, losses.reshape(-1, losses.shape[-1])[row, step],
                              what=f"the expected excess loss (learning rate {alpha:g} before it)")
    return out


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
    ra, rm = _to_raw(to_numpy(alphas0, np.float64), to_numpy(mus0, np.float64), parameterization)
    optimizers = (Adam(lr), Adam(lr))  # one for the rates, one for the momenta
    history = []
    start = time.perf_counter()

    arrays = [to_numpy(x, np.float64) for x in (h, sigma2, mean0, var0)]

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
        ra = optimizers[0].step(ra, ga)
        if momentum:
            rm = optimizers[1].step(rm, gm)
    final, _, _, a_used, m_used, losses = evaluate(ra, rm, steps)
    history.append(final)
    if not momentum:
        m_used = np.zeros_like(a_used)
    tt = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=DTYPE)  # noqa: E731
    return Fit(tt(a_used), tt(m_used), tt(losses), tt(np.stack(history, -1)),
               time.perf_counter() - start)
