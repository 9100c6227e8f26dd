"""Truncated hypergradients against Persistent Evolution Strategies on the noisy quadratic.

:class:`MetaTask` is a long-horizon meta-objective split into windows; :func:`truncated_estimates`
(the short-horizon, truncated hypergradient) and :func:`pes_estimates` (Vicol, Metz &
Sohl-Dickstein, ICML 2021, Algorithm 2 with antithetic sampling) both estimate its gradient
from unrolls of ``window`` steps, one window at a time (:func:`truncated_window`,
:func:`pes_window`); :func:`meta_optimize` follows either online with the same windows, and
:func:`fixed_point_1d` finds where a one-dimensional estimate vanishes.
"""

import numpy as np
import torch

from .dynamics import second_moment_step
from .problem import DTYPE, check_problem
from ..errors import DivergenceError
from ..engine.schedules import InverseTime
from ..engine.training import check_lr, check_momentum, check_steps


def schedule_from_theta(theta, t0, steps, K):
    """Learning rates for steps ``t0..t0+steps-1`` from meta-parameters ``theta``.

    ``theta[..., 0] = log alpha_0``; with a second entry ``theta[..., 1] = log beta``
    the schedule decays as :class:`~shortbias_lib.engine.schedules.InverseTime` with
    ``alpha_0 = exp(theta[..., 0])`` and ``beta = exp(theta[..., 1])``, otherwise it is constant.
    """
    t = torch.arange(t0, t0 + steps, dtype=DTYPE)
    alpha = torch.exp(theta[..., :1])
    if theta.shape[-1] >= 2:
        alpha = InverseTime(alpha, torch.exp(theta[..., 1:2]), K).lr(t)
    return alpha.expand(*theta.shape[:-1], steps)


class MetaTask:
    """A long-horizon meta-objective on the noisy quadratic, split into windows.

    Inner loop: SGD with momentum ``mu`` (default 0: plain SGD, where the sign of the
    truncation bias is predicted, see the book) for ``horizon`` steps, learning rates from
    :func:`schedule_from_theta`. The meta-objective is the mean, over the
    ``horizon / window`` windows, of the log expected excess loss at each
    window's end: ``F(theta) = 1/J sum_j log L(s_{jW})``. The log keeps late
    windows from being swamped by early ones.
    """

    def __init__(self, arrays, horizon=250, window=10, mu=0.0, K=None):
        self.set_windows(horizon, window, mu, K)
        self.h, self.sigma2, mean0, var0 = check_problem(*arrays, horizon)
        self.a0 = mean0 ** 2 + var0

    def set_windows(self, horizon, window, mu, K):
        """Check and set the split of ``horizon`` steps into windows, the inner momentum ``mu``
        and the schedule's decay time ``K`` (default ``horizon / 4``): every task's."""
        if not isinstance(window, (int, np.integer)) or window < 1 or horizon % window:
            raise ValueError(f"window must be an integer >= 1 dividing horizon={horizon}; "
                             f"got {window!r}")
        check_momentum(mu, "mu")
        self.horizon, self.window, self.mu = horizon, window, mu
        self.windows = horizon // window
        self.K = horizon / 4 if K is None else K

    def initial_state(self, batch=()):
        a = self.a0.expand(*batch, self.a0.shape[-1])
        return (a, torch.zeros_like(a), torch.zeros_like(a))

    def unroll(self, state, theta, j):
        """Run window ``j`` from ``state`` with meta-parameters ``theta`` (batched ``(..., p)``).

        Returns the new state and the window's loss ``log L`` (shape ``(...)``).
        """
        alphas = schedule_from_theta(theta, j * self.window, self.window, self.K)
        a, v, c = state
        for t in range(self.window):
            a, v, c = second_moment_step(a, v, c, self.h, self.sigma2, alphas[..., t, None], self.mu)
        return (a, v, c), torch.log(0.5 * (self.h * a).sum(-1))

    def window_losses(self, theta):
        """Each window's ``log L`` at its end, unrolled from the start with ``theta`` ``(..., p)``:
        a list of ``J`` tensors ``(...)``; differentiable."""
        theta = torch.as_tensor(theta, dtype=DTYPE)
        state = self.initial_state(theta.shape[:-1])
        losses = []
        for j in range(self.windows):
            state, loss = self.unroll(state, theta, j)
            losses.append(loss)
        return losses

    def objective(self, theta):
        """``F(theta)`` for a batch of ``theta`` ``(..., p)``; differentiable."""
        return sum(self.window_losses(theta)) / self.windows

    def gradient(self, theta):
        """Exact ``grad F`` by reverse mode through the whole unroll."""
        theta = torch.as_tensor(theta, dtype=DTYPE).detach().clone().requires_grad_(True)
        self.objective(theta).sum().backward()
        return theta.grad.detach()


def truncated_window(task, state, theta, j):
    """Window ``j``'s truncated hypergradient: the gradient of its own loss with respect to
    ``theta`` ``(..., p)`` with the incoming ``state`` held fixed. Returns the window's end
    state (detached) and the gradient (``theta``'s shape)."""
    th = theta.detach().clone().requires_grad_(True)
    new_state, loss = task.unroll(tuple(s.detach() for s in state), th, j)
    (grad,) = torch.autograd.grad(loss.sum(), th)
    return tuple(s.detach() for s in new_state), grad


def perturbations(lead, pairs, p, sigma, generator=None, antithetic=True):
    """PES's fresh perturbations for one window: ``(*lead, 2 * pairs, p)``, Gaussian with scale
    ``sigma``, the second half the first's negatives (``antithetic``) or drawn independently."""
    if antithetic:
        eps = sigma * torch.randn(*lead, pairs, p, dtype=DTYPE, generator=generator)
        return torch.cat([eps, -eps], -2)
    return sigma * torch.randn(*lead, 2 * pairs, p, dtype=DTYPE, generator=generator)


def pes_window(task, state, xi, theta, j, eps, sigma):
    """Window ``j`` of PES: the particles (``state``, perturbation sums ``xi`` ``(..., N, p)``)
    unrolled at ``theta + eps``. Returns the new state and ``xi`` and the window's estimate
    ``1/(N sigma^2) sum_i xi_i L_j(particle i)`` ``(..., p)``."""
    with torch.no_grad():
        state, loss = task.unroll(state, theta + eps, j)
        xi = xi + eps
        return state, xi, (xi * loss[..., None]).sum(-2) / (eps.shape[-2] * sigma ** 2)


def truncated_estimates(task, theta):
    """Per-window truncated hypergradients at fixed ``theta`` ``(..., p)``: ``(..., J, p)``.

    Window ``j``'s estimate (:func:`truncated_window`) differentiates its own loss with respect
    to ``theta`` with the incoming state held fixed (truncated backprop with truncation
    ``window``, i.e. a short-horizon meta-objective): it drops every effect of
    ``theta`` that reaches a loss through the state of a later window. Their
    mean over ``j`` estimates ``grad F``; the difference is the truncation bias.
    """
    theta = torch.as_tensor(theta, dtype=DTYPE)
    state = task.initial_state()
    out = []
    for j in range(task.windows):
        state, grad = truncated_window(task, state, theta, j)
        out.append(grad / task.windows)
    return torch.stack(out, -2)


def pes_estimates(task, theta, *, pairs=8, sigma=0.01, runs=1, generator=None, antithetic=True):
    """Per-window PES estimates at fixed ``theta`` over one episode: ``(runs, J, p)``.

    Vicol, Metz & Sohl-Dickstein (2021), Algorithm 2: ``2 * pairs`` particles with
    antithetic perturbations ``eps`` (drawn afresh every window) each keep their
    own inner state and the sum ``xi`` of all perturbations they have received;
    window ``j`` contributes ``1/(N sigma^2) sum_i xi_i L_j(particle i)`` (:func:`pes_window`). The
    ``xi`` carry the credit that truncation drops, so the episode's total is an
    unbiased estimate of ``grad`` of the Gaussian-smoothed ``F``. With
    ``antithetic=False`` the ``2 * pairs`` perturbations are independent (the same
    estimator without the pairing, to show what the pairing saves in variance).
    """
    if not isinstance(pairs, (int, np.integer)) or pairs < 1:
        raise ValueError(f"pairs must be an integer >= 1; got {pairs!r}")
    if not sigma > 0:
        raise ValueError(f"sigma (perturbation scale) must be > 0; got {sigma!r}")
    theta = torch.as_tensor(theta, dtype=DTYPE)
    p = theta.shape[-1]
    state = task.initial_state((runs, 2 * pairs))
    xi = torch.zeros(runs, 2 * pairs, p, dtype=DTYPE)
    out = []
    for j in range(task.windows):
        eps = perturbations((runs,), pairs, p, sigma, generator, antithetic)
        state, xi, est = pes_window(task, state, xi, theta, j, eps, sigma)
        out.append(est / task.windows)
    return torch.stack(out, 1)


def meta_optimize(task, theta0, method, *, episodes=20, lr=0.05, pairs=8, sigma=0.01,
                  seed=0):
    """Online meta-optimisation: update ``theta`` with SGD after every window.

    ``method`` is ``"truncated"`` or ``"pes"``. Inner states (and PES's ``xi``)
    persist across windows and are reset at the end of each episode of
    ``horizon`` steps. Returns the trajectory of ``theta`` ``(episodes*J + 1, p)``.
    With plain SGD and a small ``lr`` the iterates settle where the estimates
    average to zero over an episode: the true optimum for PES (its estimates
    are unbiased), a biased point for truncation. A ``theta`` whose rates ``exp(theta)``
    overflow or vanish (too large an ``lr``) raises
    :class:`~shortbias_lib.errors.DivergenceError` naming the meta step.
    """
    if method not in ("truncated", "pes"):
        raise ValueError(f"method must be 'truncated' or 'pes'; got {method!r}")
    check_lr(lr, "lr")
    check_lr(sigma, "sigma")
    check_steps(episodes, "episodes")
    check_steps(pairs, "pairs")
    gen = torch.Generator().manual_seed(seed)
    theta = torch.as_tensor(theta0, dtype=DTYPE).clone()
    p = theta.shape[-1]
    traj = [theta.clone()]
    n = 1 if method == "truncated" else 2 * pairs
    for _ in range(episodes):
        state = task.initial_state((n,))
        xi = torch.zeros(n, p, dtype=DTYPE)
        for j in range(task.windows):
            if method == "truncated":
                state, grad = truncated_window(task, state, theta[None], j)
                grad = grad[0]
            else:
                eps = perturbations((), pairs, p, sigma, gen)
                state, xi, grad = pes_window(task, state, xi, theta, j, eps, sigma)
            theta = theta - lr * grad
            rates = torch.exp(theta)
            if not bool(torch.all(torch.isfinite(rates) & (rates > 0))):
                raise DivergenceError(len(traj), float(rates[~(torch.isfinite(rates) & (rates > 0))][0]),
                                      what="the meta-parameters' rate exp(theta)")
            traj.append(theta.clone())
    return torch.stack(traj)


def fixed_point_1d(fn, lo, hi, iters=30):
    """Root of a scalar decreasing-to-increasing ``fn`` on ``[lo, hi]`` by bisection."""
    flo = fn(lo)
    if flo * fn(hi) > 0:
        raise ValueError(f"no sign change of the gradient on [{lo}, {hi}]")
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fm = fn(mid)
        if fm * flo > 0:
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)
