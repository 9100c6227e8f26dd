"""The local noisy quadratic of a network: Hessian spectrum and gradient noise at one point.

Everything works on the flat parameter vector ``w`` (length ``n``) of a model given as
``(apply, params)`` (:mod:`shortbias_lib.engine.models`) and a fixed set of examples, in float64:

* :func:`hvp_operator` -- ``V -> H V`` for a block of directions (columns of ``V``), the
  Hessian of the mean training loss on those examples (Pearlmutter's R-operator,
  :func:`shortbias_lib.engine.hvp.mlp_grad_hvp` for the MLP, double backward otherwise).
* :func:`lanczos` -- the Lanczos tridiagonalisation of a symmetric operator started from
  each column of a block, with full reorthogonalisation; :func:`ritz` turns it into Ritz
  values, Gauss quadrature weights and Ritz vectors.
* :func:`top_eigenpairs` -- the top of the spectrum (Ritz pairs and their residual bounds
  ``||H u - lambda u||``).
* :func:`slq` -- stochastic Lanczos quadrature: the spectral density of ``H`` (optionally
  deflated by known eigenvectors) as nodes and weights, one Gauss rule per random probe.
* :func:`spectral_measure` -- the measure ``sum_i (u_i^T g)^2 delta(lambda - lambda_i)`` of a
  fixed vector ``g`` (e.g. the gradient), by Lanczos started from ``g``.
* :func:`per_example_projections` and :func:`noise_variance` -- the minibatch gradient noise
  along given directions, ``Var[d^T g_B] = d^T C d / B`` with ``C`` the per-example gradient
  covariance (sampling with replacement; without it the factor ``(N - B)/(N - 1)`` is about 1).
"""

import math

import torch

from ..engine.hvp import GRAD_HVP, autograd_grad_hvp
from ..engine.models import loss_fn
from .problem import DTYPE



# ---------------------------------------------------------------- flat parameters

def flatten(tensors):
    """One flat float64 vector from a tuple of tensors."""
    return torch.cat([t.reshape(-1).to(DTYPE) for t in tensors])


def unflatten(vector, like, block=False):
    """Split ``vector`` (``(n,)``, or ``(P, n)`` with ``block=True``) into tensors shaped like ``like``."""
    out, start = [], 0
    for t in like:
        size = t.numel()
        piece = vector[..., start:start + size]
        out.append(piece.reshape((vector.shape[0],) + t.shape if block else t.shape))
        start += size
    return tuple(out)


def as64(params):
    """``params`` as detached float64 tensors."""
    return tuple(p.detach().to(DTYPE) for p in params)


# ---------------------------------------------------------------- operators

def _chunks(n, chunk):
    return [(a, min(a + chunk, n)) for a in range(0, n, chunk)]


def hvp_operator(apply, params, images, labels, chunk=2000):
    """``matvec(V)``: ``H V`` for ``V`` of shape ``(n, P)``, ``H`` the Hessian of the mean
    cross-entropy over all of ``images`` (processed ``chunk`` examples at a time)."""
    params = as64(params)
    images, labels = images.to(DTYPE), labels
    grad_hvp = GRAD_HVP.get(apply) or autograd_grad_hvp(apply)
    N = len(labels)

    def matvec(V):
        directions = unflatten(V.t().contiguous(), params, block=True)
        total = torch.zeros(V.shape[1], V.shape[0], dtype=DTYPE)
        for a, b in _chunks(N, chunk):
            _, _, hvps = grad_hvp(params, images[a:b], labels[a:b], directions)
            total += (b - a) / N * torch.cat([h.reshape(V.shape[1], -1) for h in hvps], dim=1)
        return total.t()

    matvec.size = sum(p.numel() for p in params)
    return matvec


def full_gradient(apply, params, images, labels, chunk=2000):
    """The flat gradient of the mean loss over all of ``images``, and that loss."""
    params = as64(params)
    N, grad, loss = len(labels), None, 0.0
    for a, b in _chunks(N, chunk):
        p = tuple(t.clone().requires_grad_(True) for t in params)
        value = loss_fn(apply, p, images[a:b].to(DTYPE), labels[a:b])
        g = flatten(torch.autograd.grad(value, p)) * ((b - a) / N)
        grad = g if grad is None else grad + g
        loss += float(value.detach()) * (b - a) / N
    return grad, loss


# ---------------------------------------------------------------- Lanczos

def _orthogonalize(w, Q, k, against=None):
    """Remove from each column of ``w`` (n, P) its components on ``Q[:, :, :k]`` (twice) and ``against``."""
    for _ in range(2):
        if against is not None:
            w = w - against @ (against.t() @ w)
        if k:
            coef = torch.einsum("nbk,nb->bk", Q[:, :, :k], w)
            w = w - torch.einsum("nbk,bk->nb", Q[:, :, :k], coef)
    return w


def lanczos(matvec, start, steps, deflate=None):
    """Lanczos on the symmetric ``matvec`` from each column of ``start`` (n, P), with full
    reorthogonalisation (and projection off the columns of ``deflate``, which must be
    orthonormal: then the operator is ``(I - D D^T) H (I - D D^T)``).

    Returns ``(alpha (P, m), beta (P, m - 1), Q (n, P, m))``; ``m <= steps`` stops early
    if every probe's Krylov space is exhausted (a column with ``beta = 0`` is frozen).
    """
    n, P = start.shape
    q = _orthogonalize(start.to(DTYPE), None, 0, deflate)
    q = q / q.norm(dim=0, keepdim=True)
    Q = torch.zeros(n, P, steps, dtype=DTYPE)
    alpha, beta = torch.zeros(P, steps, dtype=DTYPE), torch.zeros(P, steps, dtype=DTYPE)
    m = steps
    for j in range(steps):
        Q[:, :, j] = q
        w = matvec(_orthogonalize(q, None, 0, deflate))
        alpha[:, j] = (q * w).sum(0)
        w = _orthogonalize(w, Q, j + 1, deflate)
        beta[:, j] = w.norm(dim=0)
        if j == steps - 1:
            break
        if bool((beta[:, j] <= 1e-10 * alpha[:, :j + 1].abs().amax(1)).all()):
            m = j + 1
            break
        q = w / beta[:, j].clamp(min=1e-300)
    return alpha[:, :m], beta[:, :m - 1], Q[:, :, :m]


def ritz(alpha, beta):
    """Ritz values ``theta (P, m)`` (ascending), Gauss weights ``tau = s_1j^2 (P, m)`` (each
    row sums to 1) and eigenvectors ``S (P, m, m)`` of the tridiagonal matrices."""
    T = torch.diag_embed(alpha) + torch.diag_embed(beta, 1) + torch.diag_embed(beta, -1)
    theta, S = torch.linalg.eigh(T)
    return theta, S[:, 0, :] ** 2, S


def top_eigenpairs(matvec, k, steps, seed=0):
    """The ``k`` largest Ritz pairs from ``steps`` Lanczos steps on a random start.

    Returns ``(values (k,), vectors (n, k), residuals (k,))`` in descending order, with
    ``residuals[i] = ||H u_i - lambda_i u_i||`` (exact, one more product): an eigenvalue of
    ``H`` lies within that distance of each ``lambda_i``.
    """
    if not 1 <= k <= steps:
        raise ValueError(f"need 1 <= k <= steps; got k={k}, steps={steps}")
    generator = torch.Generator().manual_seed(int(seed))
    start = torch.randn(matvec.size, 1, generator=generator, dtype=DTYPE)
    alpha, beta, Q = lanczos(matvec, start, steps)
    theta, _, S = ritz(alpha, beta)
    order = torch.argsort(theta[0], descending=True)[:k]
    values = theta[0, order]
    vectors = Q[:, 0, :] @ S[0][:, order]
    vectors, _ = torch.linalg.qr(vectors)  # already orthonormal up to rounding
    vectors = vectors * torch.sign((vectors * (Q[:, 0, :] @ S[0][:, order])).sum(0))
    residuals = (matvec(vectors) - vectors * values).norm(dim=0)
    return values, vectors, residuals


def slq(matvec, probes, steps, deflate=None, seed=1):
    """Stochastic Lanczos quadrature of ``H`` (deflated by the orthonormal columns of
    ``deflate``, whose directions then carry no weight).

    Rademacher probes ``z`` projected off ``deflate``; each gives the Gauss rule of
    ``z^T f(H) z / ||z||^2``. Returns ``(nodes (P, m), weights (P, m), ritz_vectors
    (n, P, m))``; the weights of a probe sum to 1, so ``dim * mean_p sum_j w_pj f(x_pj)``
    estimates ``tr f(H)`` over the ``dim = n - k`` remaining directions.
    """
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randint(0, 2, (matvec.size, probes), generator=generator).to(DTYPE) * 2 - 1
    alpha, beta, Q = lanczos(matvec, z, steps, deflate)
    theta, tau, S = ritz(alpha, beta)
    vectors = torch.einsum("nbm,bmj->nbj", Q, S)
    return theta, tau, vectors


def trace_estimate(nodes, weights, dim, f=lambda x: x):
    """``(estimate, standard error)`` of ``tr f(H)`` from :func:`slq` nodes and weights."""
    per_probe = dim * (weights * f(nodes)).sum(1)
    se = per_probe.std() / math.sqrt(len(per_probe)) if len(per_probe) > 1 else torch.tensor(math.nan)
    return float(per_probe.mean()), float(se)


def spectral_measure(matvec, g, steps, deflate=None):
    """Nodes and masses of ``sum_i (u_i^T g)^2 delta(lambda - lambda_i)`` (``g`` projected off
    ``deflate``): one Lanczos run from ``g``; the masses sum to ``||g||^2`` (after projection)."""
    g = g.reshape(-1, 1).to(DTYPE)
    if deflate is not None:
        g = g - deflate @ (deflate.t() @ g)
    alpha, beta, _ = lanczos(matvec, g, steps)
    theta, tau, _ = ritz(alpha, beta)
    return theta[0], tau[0] * float(g.norm()) ** 2


# ---------------------------------------------------------------- gradient noise

def per_example_projections(apply, params, images, labels, directions, chunk=250):
    """``(N, r)``: each example's loss gradient projected on the columns of ``directions`` (n, r)."""
    from torch.func import grad, vmap

    params = as64(params)

    def single(p, x, y):
        return loss_fn(apply, p, x[None], y[None])

    per_example = vmap(grad(single), in_dims=(None, 0, 0))
    out = []
    for a, b in _chunks(len(labels), chunk):
        grads = per_example(params, images[a:b].to(DTYPE), labels[a:b])
        flat = torch.cat([g.reshape(b - a, -1) for g in grads], dim=1)
        out.append(flat @ directions.to(DTYPE))
    return torch.cat(out)


def noise_variance(projections, batch_size):
    """Minibatch gradient noise variance along each direction, ``Var_n[d^T g_n] / B``, and
    its standard error ``sqrt((m4 - var^2) / N) / B`` (from the per-example fourth moment)."""
    N = projections.shape[0]
    centred = projections - projections.mean(0)
    var = (centred ** 2).sum(0) / (N - 1)
    m4 = (centred ** 4).mean(0)
    se = torch.sqrt((m4 - var ** 2).clamp(min=0) / N)
    return var / batch_size, se / batch_size


def noise_correlation(projections):
    """Correlation matrix of the per-example gradient components (the off-diagonal part is
    what the diagonal noisy quadratic leaves out)."""
    centred = projections - projections.mean(0)
    cov = centred.t() @ centred
    d = torch.sqrt(torch.diagonal(cov)).clamp(min=1e-300)
    return cov / d[:, None] / d[None, :]


def total_noise(apply, params, images, labels, batch_size, chunk=250):
    """``tr(C) / B``: the total minibatch gradient noise variance (per-example gradients)."""
    from torch.func import grad, vmap

    params = as64(params)

    def single(p, x, y):
        return loss_fn(apply, p, x[None], y[None])

    per_example = vmap(grad(single), in_dims=(None, 0, 0))
    N, sum_g, sum_sq = len(labels), None, 0.0
    for a, b in _chunks(N, chunk):
        grads = per_example(params, images[a:b].to(DTYPE), labels[a:b])
        flat = torch.cat([g.reshape(b - a, -1) for g in grads], dim=1)
        sum_g = flat.sum(0) if sum_g is None else sum_g + flat.sum(0)
        sum_sq += float((flat ** 2).sum())
    mean = sum_g / N
    return (sum_sq - N * float(mean @ mean)) / (N - 1) / batch_size


__all__ = ["flatten", "unflatten", "hvp_operator", "full_gradient", "lanczos", "ritz",
           "top_eigenpairs", "slq", "trace_estimate", "spectral_measure",
           "per_example_projections", "noise_variance", "noise_correlation", "total_noise"]
