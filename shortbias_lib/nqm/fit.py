"""Converged fits for Section 2.3: L-BFGS on the log final loss (the best fixed schedule, their
usual start, is :mod:`shortbias_lib.nqm.fixed`'s).

:func:`fit_lbfgs` fits one learning rate and momentum per step by L-BFGS on
the *log* of the final loss (a relative measure: the loss falls by orders
of magnitude, which makes Adam's memory of early gradients shrink its later
steps) and stops by a stated rule on the relative improvement. Several
schedules (starts, problems) are fitted at once as rows of a batch.

Conventions: see :mod:`shortbias_lib.nqm.problem`.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..runs import to_numpy
from .adjoint import adjoint
from .problem import DTYPE, check_problem, check_schedule


class LbfgsResult(NamedTuple):
    """Per row: the minimiser, objective history (iterations + 1, rows), iterations run and why it stopped."""

    x: np.ndarray
    history: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray       # True: the stopping rule fired; False: max_iter or line search failed
    line_search_failed: np.ndarray


def lbfgs(fun, x0, *, max_iter=300, tol=1e-6, window=10, memory=20, c1=1e-4, first_step=0.01,
          max_halvings=40):
    """Minimise independent objectives, one per row of ``x0`` ``(B, n)``, by L-BFGS.

    ``fun(x, rows)`` returns ``(f (len(rows),), grad (len(rows), n))`` for the
    rows ``rows``; ``f`` may be ``inf`` (a rejected step). Directions come from
    the two-loop recursion with each row's own curvature pairs; steps from
    Armijo backtracking (``c1``), halving up to ``max_halvings`` times; the
    first step moves no coordinate by more than ``first_step``. ``max_iter``
    may differ per row (an array ``(B,)``). A row stops
    when ``f`` improved by less than ``tol`` over its last ``window`` iterations
    (for ``f = log L``: a relative improvement of ``L`` below ``tol``), or when
    no step decreases ``f`` (converged to rounding, or a kink).
    """
    x = np.array(x0, dtype=np.float64)
    B, n = x.shape
    f, g = fun(x, np.arange(B))
    if not np.isfinite(f).all():
        raise ValueError("every start must have a finite objective; rows "
                         f"{np.flatnonzero(~np.isfinite(f)).tolist()} do not")
    S, Y = np.zeros((memory, B, n)), np.zeros((memory, B, n))
    rho = np.zeros((memory, B))
    history = [f.copy()]
    done = np.zeros(B, dtype=bool)
    converged = np.zeros(B, dtype=bool)
    failed = np.zeros(B, dtype=bool)
    iterations = np.zeros(B, dtype=np.int64)
    caps = np.broadcast_to(np.asarray(max_iter), (B,))
    for it in range(1, int(caps.max()) + 1):
        done |= caps < it
        active = np.flatnonzero(~done)
        if not active.size:
            break
        newest = [(it - 2 - j) % memory for j in range(min(it - 1, memory))]
        p, slope = _direction(g, S, Y, rho, newest, first_step)
        x_new, f_new, g_new, failing = _backtrack(fun, x, f, g, p, slope, active, c1, max_halvings)
        failed[failing] = True
        done[failing] = True
        s_, y_ = x_new - x, g_new - g
        sy = (s_ * y_).sum(1)
        slot = (it - 1) % memory
        valid = sy > 1e-12 * np.sqrt((s_ ** 2).sum(1) * (y_ ** 2).sum(1))
        S[slot], Y[slot] = s_, y_
        rho[slot] = np.where(valid, 1 / np.where(valid, sy, 1.0), 0.0)
        x, f, g = x_new, f_new, g_new
        history.append(f.copy())
        iterations[active] = it
        if it >= window:
            stop = (history[-1 - window] - f < tol) & ~done
            converged |= stop
            done |= stop
    return LbfgsResult(x, np.stack(history), iterations, converged, failed)


def _direction(g, S, Y, rho, newest, first_step):
    """The L-BFGS direction per row (two-loop recursion over the pairs ``newest``, newest first)
    and its slope; a row whose direction is not downhill takes the scaled steepest descent."""
    q = g.copy()
    coef = []
    for j in newest:
        a = rho[j] * (S[j] * q).sum(1)
        q -= a[:, None] * Y[j]
        coef.append(a)
    gamma = first_step / np.maximum(np.abs(g).max(1), 1e-300)
    have = np.zeros(len(g), dtype=bool)
    for j in newest:
        use = (rho[j] > 0) & ~have
        gamma = np.where(use, 1 / np.maximum(rho[j] * (Y[j] ** 2).sum(1), 1e-300), gamma)
        have |= use
    r = gamma[:, None] * q
    for j, a in zip(reversed(newest), reversed(coef)):
        b = rho[j] * (Y[j] * r).sum(1)
        r += S[j] * (a - b)[:, None]
    p = -r
    slope = (g * p).sum(1)
    uphill = ~(slope < 0)
    p[uphill] = -g[uphill] * (first_step / np.maximum(np.abs(g[uphill]).max(1), 1e-300))[:, None]
    return p, (g * p).sum(1)


def _backtrack(fun, x, f, g, p, slope, active, c1, max_halvings):
    """Armijo backtracking along ``p`` for the rows ``active``: the new ``(x, f, g)`` (rows
    without an accepted step keep theirs) and the rows where no step was accepted."""
    x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
    t = np.ones(len(x))
    pending = active
    for _ in range(max_halvings):
        xt = x[pending] + t[pending, None] * p[pending]
        ft, gt = fun(xt, pending)
        ok = np.isfinite(ft) & (ft <= f[pending] + c1 * t[pending] * slope[pending])
        acc = pending[ok]
        x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
        pending = pending[~ok]
        t[pending] *= 0.5
        if not pending.size:
            break
    return x_new, f_new, g_new, pending


class ConvergedFit(NamedTuple):
    """An L-BFGS fit per row: applied schedule, losses (steps 0..T), final-loss history, how it stopped.

    ``iterations`` counts every L-BFGS iteration of every stage; ``converged``
    and ``line_search_failed`` describe the last stage (the one whose stopping
    rule decides convergence), ``final_iterations`` its length; ``kicks`` is how
    many collapsed-step restarts were accepted.
    """

    alphas: torch.Tensor
    mus: torch.Tensor
    losses: torch.Tensor
    history: np.ndarray          # (iterations + 1, rows): final loss per L-BFGS iteration
    iterations: np.ndarray
    converged: np.ndarray
    line_search_failed: np.ndarray
    final_iterations: np.ndarray = None
    kicks: np.ndarray = None


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


# The smoothed bound's continuation (see :func:`fit_lbfgs`): soft minima of sharpness
# p = 30, 300, 3000 (the last shrinks a binding step by at most (d+1)^(-1/p), 0.2% for d = 1000)
SHARPNESS = (30.0, 300.0, 3000.0)
# a step whose log learning rate or logit momentum fell this far below the median of its 4
# neighbours has collapsed: in these coordinates the gradient vanishes with alpha (or mu), so
# L-BFGS cannot bring it back
COLLAPSE = 3.0
KICKS = 3
# the stages before the last stop at this multiple of ``tol`` (10 ends 3(a) at 4.307
# instead of 4.286: the early stages decide which valley the last one polishes)
EARLY_TOL = 1.0


def collapsed_steps(x):
    """Entries of ``x`` ``(B, T)`` (log alpha or logit mu) lying :data:`COLLAPSE` below the
    median of their two neighbours on each side (mirrored at the ends), and those medians."""
    pad = np.pad(x, ((0, 0), (2, 2)), mode="reflect" if x.shape[1] > 2 else "edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 5, axis=1)
    med = np.median(win[..., [0, 1, 3, 4]], -1)
    return x < med - COLLAPSE, med


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_lbfgs` fits. Each stage stops when the final loss improved by less than
    the relative ``tol`` over the last ``window`` iterations, or after ``max_iter`` iterations
    (a number or an array, one per row); ``memory`` is L-BFGS's number of curvature pairs.
    ``sharpness``: the soft bound's stages (``None``: the exact bound, one stage); ``kicks``:
    how many collapsed-step restarts are tried."""

    max_iter: object = 300
    tol: float = 1e-6
    window: int = 10
    memory: int = 20
    sharpness: object = SHARPNESS
    kicks: int = KICKS


def fit_lbfgs(h, sigma2, mean0, var0, alphas0, mus0, *, bound=True, settings=FitSettings()):
    """Fit per-step ``(alpha_t, mu_t)`` minimising the final expected loss, one fit per row.

    L-BFGS (:func:`lbfgs`) on ``log L_T`` over ``(log alpha_t, logit mu_t)``,
    from the starts ``alphas0``, ``mus0`` ``(B, T)``; the problem arrays broadcast
    to ``(B, d)``. Each stage stops by the rule of ``settings`` (:class:`FitSettings`).

    With ``bound=True`` every step is shrunk by the Section 2.3 bound. The exact
    bound (shrink factor ``min(1, r_1, ..., r_d)``, :func:`bounded_scale`) has
    kinks wherever the binding dimension changes, which are dense here (many
    curvatures near the top of the spectrum bind alike), and L-BFGS crawls
    along them. So the fit runs on the smooth soft minimum of
    :func:`~shortbias_lib.nqm.adjoint.adjoint` (``settings.sharpness``), one stage per
    sharpness, each started where the previous one ended: every stage's
    applied schedule respects the exact bound (the soft minimum is never
    larger), and the last stage's stopping rule is the convergence reported.
    ``sharpness=None`` fits through the exact bound in one stage.

    In log alpha a step whose learning rate collapses towards 0 cannot come
    back (its gradient vanishes with alpha), nor in logit mu a momentum. After
    the stages, up to ``settings.kicks`` times, collapsed entries (:data:`COLLAPSE`) are
    reset to their neighbours' median and the last stage is rerun; a row keeps
    the restart only if it ends lower (restarts from several starts: the fit is
    not convex, and which valley it ends in can hinge on rounding).
    """
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0)
    alphas0, mus0 = check_schedule(alphas0, mus0)
    if alphas0.ndim != 2:
        raise ValueError(f"alphas0 must have shape (B, T); got {tuple(alphas0.shape)}")
    B, T = alphas0.shape
    mus0 = mus0.expand(B, T)
    arrays = [np.ascontiguousarray(np.broadcast_to(to_numpy(x, np.float64), (B, h.shape[-1])))
              for x in (h, sigma2, mean0, var0)]
    sharpness = settings.sharpness
    stages = [None] if not bound or sharpness is None else [float(p) for p in np.atleast_1d(sharpness)]
    fit = _LogLossFit(arrays, _to_x(to_numpy(alphas0, np.float64), to_numpy(mus0, np.float64)), bound, settings)
    fit.run_stages(stages)
    fit.restart_collapsed(stages[-1])
    _, _, _, a_used, m_used, losses = adjoint(*arrays, *_schedule(fit.x), bound=bound,
                                              sharpness=stages[-1])
    tt = lambda z: torch.as_tensor(np.ascontiguousarray(z), dtype=DTYPE)  # noqa: E731
    return ConvergedFit(tt(a_used), tt(m_used), tt(losses), np.exp(np.concatenate(fit.histories)),
                        fit.iterations, fit.converged, fit.failed, fit.last_iters, fit.n_kicks)


def _to_x(a, m):
    """The fitted coordinates ``(log alpha_t, logit mu_t)`` ``(B, 2T)`` of a schedule."""
    m = np.clip(m, 1e-6, 1 - 1e-6)
    return np.concatenate([np.log(a), np.log(m / (1 - m))], 1)


def _schedule(x):
    """The schedule ``(alphas, mus)`` ``(B, T)`` proposed by the fitted coordinates ``x``."""
    T = x.shape[1] // 2
    with np.errstate(over="ignore"):  # a trial step to alpha = inf is rejected by the line search
        return np.exp(x[:, :T]), _sigmoid(x[:, T:])


class _LogLossFit:
    """One :func:`fit_lbfgs` call in progress: the problems' arrays ``(B, d)``, the current point
    ``x`` per row, and what its stages and restarts recorded (histories, iterations, how the
    last stage stopped, the best final loss and the restarts kept)."""

    def __init__(self, arrays, x, bound, settings):
        B = len(x)
        self.arrays, self.x, self.bound, self.settings = arrays, x, bound, settings
        self.caps = np.broadcast_to(np.asarray(settings.max_iter), (B,))
        self.histories, self.iterations = [], np.zeros(B, dtype=np.int64)
        self.n_kicks = np.zeros(B, dtype=np.int64)

    def run(self, x0, sharp, rows, tol):
        """L-BFGS on the log final loss of the problems ``rows`` from ``x0`` (soft bound ``sharp``)."""
        def fun(x, sub):
            a, m = _schedule(x)
            final, ga, gm, *_ = adjoint(*(arr[rows[sub]] for arr in self.arrays), a, m, bound=self.bound,
                                        sharpness=sharp)
            with np.errstate(all="ignore"):
                f = np.where(final > 0, np.log(final), np.inf)
                grad = np.concatenate([ga * a, gm * m * (1 - m)], 1) / final[:, None]
            bad = ~np.isfinite(f) | ~np.isfinite(grad).all(1)
            f[bad] = np.inf
            grad[bad] = 0.0
            return f, grad

        return lbfgs(fun, x0, max_iter=self.caps[rows], tol=tol, window=self.settings.window,
                     memory=self.settings.memory)

    def run_stages(self, stages):
        """One L-BFGS run per sharpness, each from where the previous one ended (its proposals: the
        next stage shrinks them by its own soft minimum); the stages before the last stop early."""
        tol = self.settings.tol
        all_rows = np.arange(len(self.x))
        for i, sharp in enumerate(stages):
            res = self.run(self.x, sharp, all_rows, tol if i == len(stages) - 1 else EARLY_TOL * tol)
            self.x = res.x
            self.histories.append(res.history[1:] if self.histories else res.history)
            self.iterations += res.iterations
        self.converged, self.failed = res.converged.copy(), res.line_search_failed.copy()
        self.last_iters = res.iterations.copy()
        self.best_f = res.history[-1].copy()

    def restart_collapsed(self, sharp):
        """Up to ``kicks`` times: reset the collapsed entries of each row and rerun the last stage;
        a row keeps the restart only if it ends lower."""
        x, T = self.x, self.x.shape[1] // 2
        for _ in range(self.settings.kicks):
            # log alpha and logit mu, each against its own neighbours
            (low_a, med_a), (low_m, med_m) = collapsed_steps(x[:, :T]), collapsed_steps(x[:, T:])
            low, med = np.concatenate([low_a, low_m], 1), np.concatenate([med_a, med_m], 1)
            rows = np.flatnonzero(low.any(1))
            x_try = np.where(low[rows], med[rows], x[rows])
            f_try = adjoint(*(arr[rows] for arr in self.arrays), *_schedule(x_try), bound=self.bound,
                            sharpness=sharp)[0]
            ok = np.isfinite(f_try) & (f_try > 0)   # a restart that diverges is not tried
            rows, x_try = rows[ok], x_try[ok]
            if not rows.size:
                break
            res = self.run(x_try, sharp, rows, self.settings.tol)
            self.iterations[rows] += res.iterations
            better = res.history[-1] < self.best_f[rows]
            keep = rows[better]
            x[keep], self.best_f[keep] = res.x[better], res.history[-1][better]
            self.converged[keep], self.failed[keep] = res.converged[better], res.line_search_failed[better]
            self.last_iters[keep] = res.iterations[better]
            self.n_kicks[keep] += 1
            pad = np.repeat(self.histories[-1][-1:], res.history.shape[0] - 1, 0)
            pad[:, keep] = res.history[1:, better]
            self.histories.append(pad)
            if not better.any():
                break
