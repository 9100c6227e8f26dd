"""Converged fits for Section 2.3: the global best fixed schedule, and L-BFGS on the log loss.

* :func:`fixed_final_loss` gives the exact final loss of a fixed schedule by a
  matrix power per dimension, so a grid over ``(alpha, mu)`` is cheap and
  :func:`best_fixed` can search it globally before refining.
* :func:`fit_lbfgs` fits one learning rate and momentum per step by L-BFGS on
  the *log* of the final loss (a relative measure: the loss falls by orders
  of magnitude, which makes Adam's memory of early gradients shrink its later
  steps) and stops by a stated rule on the relative improvement. Several
  schedules (starts, problems) are fitted at once as rows of a batch.

Conventions: see :mod:`shortbias_lib.nqm_problem`.
"""

from typing import NamedTuple

import numpy as np
import torch

from .nqm_adjoint import adjoint
from .nqm_gradient import _np
from .nqm_problem import DTYPE, check_problem, check_schedule

# --------------------------------------------------------------------------
# Fixed schedules: exact final loss and global search
# --------------------------------------------------------------------------


def _mul(p, q):
    """Product of 2x2 matrices stored as 4-tuples of arrays ``(11, 12, 21, 22)``."""
    return (p[0] * q[0] + p[1] * q[2], p[0] * q[1] + p[1] * q[3],
            p[2] * q[0] + p[3] * q[2], p[2] * q[1] + p[3] * q[3])


def _congruence(p, q):
    """``P Q P^T`` for symmetric ``Q`` stored as ``(11, 12, 22)``."""
    x1, x2 = p[0] * q[0] + p[1] * q[1], p[0] * q[1] + p[1] * q[2]
    y1, y2 = p[2] * q[0] + p[3] * q[1], p[2] * q[1] + p[3] * q[2]
    return p[0] * x1 + p[1] * x2, p[2] * x1 + p[3] * x2, p[2] * y1 + p[3] * y2


def fixed_final_loss(h, sigma2, mean0, var0, alpha, mu, horizon):
    """Exact final excess loss of the fixed schedules ``(alpha, mu)`` (NumPy arrays ``(...)``).

    Per dimension ``z = (theta, v)`` follows ``z' = J z + k c (1, 1)`` with
    ``J = [[1-k, mu], [-k, mu]]``, ``k = alpha h``, so after ``T`` steps its second
    moments are ``J^T S_0 J^T' + k^2 sigma2 sum_{j<T} J^j 11' J^j'``. The pair
    ``(J^n, sum_{j<n} ...)`` is built by repeated squaring (about ``2 log2 T``
    products of 2x2 matrices instead of ``T`` steps). ``alpha`` and ``mu``
    broadcast against the problem's leading dimensions; an overflowing
    (divergent) schedule gives ``inf``.
    """
    h, sigma2, mean0, var0 = (_np(x) for x in check_problem(h, sigma2, mean0, var0, horizon))
    k = np.asarray(alpha, dtype=np.float64)[..., None] * h
    m = np.broadcast_to(np.asarray(mu, dtype=np.float64)[..., None], k.shape)
    with np.errstate(all="ignore"):
        base = ((1 - k, m, -k, m), (k * k * sigma2,) * 3)
        one, zero = np.ones_like(k), np.zeros_like(k)
        acc = ((one, zero, zero, one), (zero, zero, zero))
        n = horizon
        while n:
            if n & 1:
                acc = (_mul(acc[0], base[0]),
                       tuple(a + b for a, b in zip(acc[1], _congruence(acc[0], base[1]))))
            n >>= 1
            if n:
                base = (_mul(base[0], base[0]),
                        tuple(a + b for a, b in zip(base[1], _congruence(base[0], base[1]))))
        a_final = acc[0][0] ** 2 * (mean0 ** 2 + var0) + acc[1][0]
        loss = 0.5 * (h * a_final).sum(-1)
    return np.where(np.isfinite(loss), loss, np.inf)


class FixedSchedule(NamedTuple):
    """The best fixed schedule found, per problem: ``alpha``, ``mu``, final loss (arrays ``(...)``)."""

    alpha: np.ndarray
    mu: np.ndarray
    final: np.ndarray


# Search box: u = log10 of the effective learning rate alpha / (1 - mu), along which
# the loss's valley runs, and w = -log10(1 - mu) (mu = 0 at w = 0, 0.9999 at w = 4)
FIXED_SEARCH = dict(u=(-3.0, 3.5, 27), w=(0.0, 4.0, 21), rounds=10, zoom=7, span=1.5)


def best_fixed(h, sigma2, mean0, var0, horizon, search=None):
    """The fixed ``(alpha, mu)`` with the lowest exact final loss: grid, then zooming grids.

    The grid (:data:`FIXED_SEARCH`) is uniform in ``u = log10(alpha / (1 - mu))``
    (effective learning rates 1e-3 to about 3000) and ``w = -log10(1 - mu)``
    (momenta 0 to 0.9999); divergent points score ``inf``. Each refinement
    round centres a ``zoom x zoom`` grid on the best point so far, reaching
    ``span`` cells of the previous grid either side (so the spacing halves
    each round). Problems batch over leading dimensions.
    """
    s = {**FIXED_SEARCH, **(search or {})}
    h, sigma2, mean0, var0 = check_problem(h, sigma2, mean0, var0, horizon)
    lead = torch.broadcast_shapes(h.shape, sigma2.shape, mean0.shape, var0.shape)[:-1]
    ex = tuple(x[..., None, :] for x in (h, sigma2, mean0, var0))
    u = np.linspace(*s["u"])
    w = np.linspace(*s["w"])
    du, dw = u[1] - u[0], w[1] - w[0]
    uu, ww = (x.reshape(-1) for x in np.meshgrid(u, w, indexing="ij"))
    uu, ww = np.broadcast_to(uu, lead + uu.shape), np.broadcast_to(ww, lead + ww.shape)
    offsets = np.linspace(-s["span"], s["span"], s["zoom"])
    for _ in range(s["rounds"] + 1):
        one_minus_mu = 10.0 ** -ww
        losses = fixed_final_loss(*ex, 10.0 ** uu * one_minus_mu, 1 - one_minus_mu, horizon)
        i = losses.argmin(-1)[..., None]
        cu, cw = np.take_along_axis(uu, i, -1), np.take_along_axis(ww, i, -1)
        best = np.take_along_axis(losses, i, -1)[..., 0]
        ou, ow = (x.reshape(-1) for x in np.meshgrid(offsets * du, offsets * dw, indexing="ij"))
        uu, ww = cu + ou, np.clip(cw + ow, 0.0, None)
        du, dw = du * (offsets[1] - offsets[0]), dw * (offsets[1] - offsets[0])
    one_minus_mu = 10.0 ** -cw[..., 0]
    return FixedSchedule(10.0 ** cu[..., 0] * one_minus_mu, 1 - one_minus_mu, best)


# --------------------------------------------------------------------------
# L-BFGS on the log final loss, batched, with a stopping rule
# --------------------------------------------------------------------------

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
        q = g.copy()
        coef = []
        for j in newest:
            a = rho[j] * (S[j] * q).sum(1)
            q -= a[:, None] * Y[j]
            coef.append(a)
        gamma = first_step / np.maximum(np.abs(g).max(1), 1e-300)
        have = np.zeros(B, dtype=bool)
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
        slope = (g * p).sum(1)
        x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
        t = np.ones(B)
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
        failed[pending] = True
        done[pending] = True
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


def _collapsed(x):
    """Entries of ``x`` ``(B, T)`` (log alpha or logit mu) lying :data:`COLLAPSE` below the
    median of their two neighbours on each side (mirrored at the ends), and those medians."""
    pad = np.pad(x, ((0, 0), (2, 2)), mode="reflect" if x.shape[1] > 2 else "edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 5, axis=1)
    med = np.median(win[..., [0, 1, 3, 4]], -1)
    return x < med - COLLAPSE, med


def fit_lbfgs(h, sigma2, mean0, var0, alphas0, mus0, *, bound=True, max_iter=300, tol=1e-6,
              window=10, memory=20, sharpness=SHARPNESS, kicks=KICKS):
    """Fit per-step ``(alpha_t, mu_t)`` minimising the final expected loss, one fit per row.

    L-BFGS (:func:`lbfgs`) on ``log L_T`` over ``(log alpha_t, logit mu_t)``,
    from the starts ``alphas0``, ``mus0`` ``(B, T)``; the problem arrays broadcast
    to ``(B, d)``. Each stage stops when the final loss improved by less than
    the relative ``tol`` over the last ``window`` iterations, or after
    ``max_iter`` iterations (a number or one per row).

    With ``bound=True`` every step is shrunk by the Section 2.3 bound. The exact
    bound (shrink factor ``min(1, r_1, ..., r_d)``, :func:`bounded_scale`) has
    kinks wherever the binding dimension changes, which are dense here (many
    curvatures near the top of the spectrum bind alike), and L-BFGS crawls
    along them. So the fit runs on the smooth soft minimum of
    :func:`~shortbias_lib.nqm_adjoint.adjoint` (``sharpness``), one stage per
    sharpness, each started where the previous one ended: every stage's
    applied schedule respects the exact bound (the soft minimum is never
    larger), and the last stage's stopping rule is the convergence reported.
    ``sharpness=None`` fits through the exact bound in one stage.

    In log alpha a step whose learning rate collapses towards 0 cannot come
    back (its gradient vanishes with alpha), nor in logit mu a momentum. After
    the stages, up to ``kicks`` times, collapsed entries (:data:`COLLAPSE`) are
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
    arrays = [np.ascontiguousarray(np.broadcast_to(_np(x), (B, h.shape[-1])))
              for x in (h, sigma2, mean0, var0)]
    stages = [None] if not bound or sharpness is None else [float(p) for p in np.atleast_1d(sharpness)]
    caps = np.broadcast_to(np.asarray(max_iter), (B,))

    def to_x(a, m):
        m = np.clip(m, 1e-6, 1 - 1e-6)
        return np.concatenate([np.log(a), np.log(m / (1 - m))], 1)

    def schedule(x):
        with np.errstate(over="ignore"):  # a trial step to alpha = inf is rejected by the line search
            return np.exp(x[:, :T]), _sigmoid(x[:, T:])

    def run(x0, sharp, rows, tol=tol):
        def fun(x, sub):
            a, m = schedule(x)
            final, ga, gm, *_ = adjoint(*(arr[rows[sub]] for arr in arrays), a, m, bound=bound,
                                        sharpness=sharp)
            with np.errstate(all="ignore"):
                f = np.where(final > 0, np.log(final), np.inf)
                grad = np.concatenate([ga * a, gm * m * (1 - m)], 1) / final[:, None]
            bad = ~np.isfinite(f) | ~np.isfinite(grad).all(1)
            f[bad] = np.inf
            grad[bad] = 0.0
            return f, grad

        res = lbfgs(fun, x0, max_iter=caps[rows], tol=tol, window=window, memory=memory)
        return res, res.x   # proposals: the next stage shrinks them by its own soft minimum

    x = to_x(_np(alphas0), _np(mus0))
    all_rows = np.arange(B)
    histories, iterations = [], np.zeros(B, dtype=np.int64)
    for i, sharp in enumerate(stages):
        res, x = run(x, sharp, all_rows, tol if i == len(stages) - 1 else EARLY_TOL * tol)
        histories.append(res.history[1:] if histories else res.history)
        iterations += res.iterations
    converged, failed, last_iters = res.converged.copy(), res.line_search_failed.copy(), res.iterations.copy()
    best_f = res.history[-1].copy()
    n_kicks = np.zeros(B, dtype=np.int64)
    for _ in range(kicks):
        # log alpha and logit mu, each against its own neighbours
        (low_a, med_a), (low_m, med_m) = _collapsed(x[:, :T]), _collapsed(x[:, T:])
        low, med = np.concatenate([low_a, low_m], 1), np.concatenate([med_a, med_m], 1)
        rows = np.flatnonzero(low.any(1))
        x_try = np.where(low[rows], med[rows], x[rows])
        f_try = adjoint(*(arr[rows] for arr in arrays), *schedule(x_try), bound=bound,
                        sharpness=stages[-1])[0]
        ok = np.isfinite(f_try) & (f_try > 0)   # a restart that diverges is not tried
        rows, x_try = rows[ok], x_try[ok]
        if not rows.size:
            break
        res_k, x_k = run(x_try, stages[-1], rows)
        iterations[rows] += res_k.iterations
        better = res_k.history[-1] < best_f[rows]
        keep = rows[better]
        x[keep], best_f[keep] = x_k[better], res_k.history[-1][better]
        converged[keep], failed[keep] = res_k.converged[better], res_k.line_search_failed[better]
        last_iters[keep] = res_k.iterations[better]
        n_kicks[keep] += 1
        pad = np.repeat(histories[-1][-1:], res_k.history.shape[0] - 1, 0)
        pad[:, keep] = res_k.history[1:, better]
        histories.append(pad)
        if not better.any():
            break
    _, _, _, a_used, m_used, losses = adjoint(*arrays, *schedule(x), bound=bound,
                                              sharpness=stages[-1])
    tt = lambda z: torch.as_tensor(np.ascontiguousarray(z), dtype=DTYPE)  # noqa: E731
    return ConvergedFit(tt(a_used), tt(m_used), tt(losses), np.exp(np.concatenate(histories)),
                        iterations, converged, failed, last_iters, n_kicks)
