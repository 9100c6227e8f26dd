"""The best fixed schedule of Section 2.3: its exact final loss, and a global search.

:func:`fixed_final_loss` gives the exact final loss of a fixed schedule by a
matrix power per dimension, so a grid over ``(alpha, mu)`` is cheap and
:func:`best_fixed` can search it globally before refining.

Conventions: see :mod:`shortbias_lib.nqm.problem`.
"""

from typing import NamedTuple

import numpy as np
import torch

from .problem import check_problem
from ..runs import to_numpy
from ..engine.training import check_lr, check_momentum


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
    (divergent) schedule gives ``inf``. ``alpha`` must be finite and > 0 and ``mu`` in
    ``[0, 1)`` (``ValueError`` otherwise).
    """
    h, sigma2, mean0, var0 = (to_numpy(x, np.float64) for x in check_problem(h, sigma2, mean0, var0, horizon))
    check_lr(alpha, "alpha")
    check_momentum(mu, "mu")
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
