"""Lanczos, stochastic Lanczos quadrature and gradient noise (shortbias_lib.nqm.spectrum), and the
noisy quadratic built from them (shortbias_lib.nqm.prediction), on small problems with exact answers."""

import numpy as np
import pytest
import torch

from shortbias_lib.nqm import prediction as npred
from shortbias_lib.nqm import spectrum as sp
from shortbias_lib.engine.models import loss_fn, mlp_apply, mlp_init
from shortbias_lib.nqm.dynamics import dynamics

SIZES = (6, 5, 4)


@pytest.fixture(scope="module")
def small_net():
    """A tiny MLP at a random point, on 40 random examples, and its dense Hessian."""
    g = torch.Generator().manual_seed(3)
    params = sp.as64(mlp_init(g, SIZES, 0.5, dtype=torch.float64))
    images = torch.randn(40, SIZES[0], generator=g, dtype=torch.float64)
    labels = torch.randint(0, SIZES[-1], (40,), generator=g)
    flat = sp.flatten(params)

    def loss(w):
        return loss_fn(mlp_apply, sp.unflatten(w, params), images, labels)

    H = torch.autograd.functional.hessian(loss, flat)
    return params, images, labels, H


def matrix_operator(A):
    def matvec(V):
        return A @ V
    matvec.size = A.shape[0]
    return matvec


def test_hvp_operator_matches_dense_hessian(small_net):
    params, images, labels, H = small_net
    matvec = sp.hvp_operator(mlp_apply, params, images, labels, chunk=15)
    V = torch.randn(H.shape[0], 3, dtype=torch.float64)
    assert torch.allclose(matvec(V), H @ V, atol=1e-10)


def test_lanczos_top_eigenvalues_match_dense(small_net):
    params, images, labels, H = small_net
    matvec = sp.hvp_operator(mlp_apply, params, images, labels)
    values, vectors, residuals = sp.top_eigenpairs(matvec, 4, 40)
    dense = torch.linalg.eigvalsh(H).flip(0)[:4]
    assert torch.allclose(values, dense, rtol=1e-8, atol=1e-10)
    assert torch.allclose(vectors.t() @ vectors, torch.eye(4, dtype=torch.float64), atol=1e-8)
    assert residuals.max() < 1e-6
    with pytest.raises(ValueError, match="k <= steps"):
        sp.top_eigenpairs(matvec, 5, 4)


def known_matrix(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    h = torch.cat([torch.tensor([9.0, 7.0, 5.0], dtype=torch.float64),
                   torch.linspace(-0.2, 1.0, n - 3, dtype=torch.float64)])
    return Q @ torch.diag(h) @ Q.t(), h, Q


def test_slq_gauss_rule_is_exact_for_low_moments_and_estimates_traces():
    A, h, _ = known_matrix()
    matvec = matrix_operator(A)
    nodes, weights, ritz_vectors = sp.slq(matvec, 200, 6, seed=4)
    # Each probe's Gauss rule with m nodes integrates polynomials of degree <= 2m - 1 exactly.
    g = torch.Generator().manual_seed(4)
    z = torch.randint(0, 2, (120, 200), generator=g).to(torch.float64) * 2 - 1
    for j in (0, 1, 2, 5):
        exact = (z * (torch.linalg.matrix_power(A, j) @ z)).sum(0) / (z * z).sum(0)
        assert torch.allclose((weights * nodes ** j).sum(1), exact, rtol=1e-8)
    for f in (lambda x: x, lambda x: x ** 2):
        estimate, se = sp.trace_estimate(nodes, weights, 120, f)
        assert abs(estimate - float(f(h).sum())) < 4 * se
    assert torch.allclose(weights.sum(1), torch.ones(200, dtype=torch.float64))
    assert ritz_vectors.shape == (120, 200, 6)


def test_deflated_slq_and_spectral_measure():
    A, h, Q = known_matrix()
    matvec = matrix_operator(A)
    values, U, _ = sp.top_eigenpairs(matvec, 3, 30)
    assert torch.allclose(values, h[:3], atol=1e-8)
    nodes, weights, _ = sp.slq(matvec, 300, 6, deflate=U, seed=5)
    assert nodes.max() < 1.0 + 1e-8   # the deflated directions carry no weight
    estimate, se = sp.trace_estimate(nodes, weights, 117)
    assert abs(estimate - float(h[3:].sum())) < 4 * se + 0.02 * float(h[3:].abs().sum())
    g = torch.randn(120, dtype=torch.float64)
    g_nodes, g_masses = sp.spectral_measure(matvec, g, 8, deflate=U)
    g_perp = g - U @ (U.t() @ g)
    assert np.isclose(float(g_masses.sum()), float(g_perp @ g_perp))
    assert np.isclose(float((g_masses * g_nodes).sum()), float(g_perp @ A @ g_perp))


def test_noise_matches_direct_per_example_gradients(small_net):
    params, images, labels, H = small_net
    directions = torch.linalg.qr(torch.randn(H.shape[0], 3, dtype=torch.float64))[0]
    rows = []
    for x, y in zip(images, labels):
        p = tuple(t.clone().requires_grad_(True) for t in params)
        rows.append(sp.flatten(torch.autograd.grad(loss_fn(mlp_apply, p, x[None], y[None]), p)))
    G = torch.stack(rows)
    proj = sp.per_example_projections(mlp_apply, params, images, labels, directions, chunk=7)
    assert torch.allclose(proj, G @ directions, atol=1e-12)
    var, se = sp.noise_variance(proj, batch_size=10)
    assert torch.allclose(var, torch.var(G @ directions, dim=0) / 10)
    assert (se > 0).all()
    total = sp.total_noise(mlp_apply, params, images, labels, 10, chunk=7)
    assert np.isclose(total, float(torch.var(G, dim=0).sum()) / 10)


def quadratic_measurement(batch_size=10):
    """A known quadratic: 5 separated curvatures plus a flat-topped bulk of 100 at h = 0.01;
    per-example losses 1/2 (w - c_n)^T H (w - c_n), Cov(c) = s^2 I."""
    n, N, s = 105, 4000, 0.3
    g = torch.Generator().manual_seed(7)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    h = torch.cat([torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25], dtype=torch.float64),
                   torch.full((100,), 0.01, dtype=torch.float64)])
    H = Q @ torch.diag(h) @ Q.t()
    c = s * torch.randn(N, n, generator=g, dtype=torch.float64)
    c = (c - c.mean(0)) / c.std(0) * s          # exactly Cov(c) diagonal s^2 per coordinate
    w0 = torch.randn(n, generator=g, dtype=torch.float64)
    grad = H @ w0                                 # the mean of c is 0: w* = 0

    def project(directions):
        return (H @ (w0[:, None] - c.t())).t() @ directions

    total = float((H @ c.t()).var(1).sum()) / batch_size
    measured = npred.measure_operator(matrix_operator(H), grad, 0.0, project, total,
                                      npred.Budget(k=5, top_steps=40, probes=3, slq_steps=4, grad_steps=4),
                                      batch_size=batch_size)
    return measured, h, Q, w0, s, H


def test_nqm_from_a_known_quadratic_recovers_its_parameters():
    m, h, Q, w0, s, H = quadratic_measurement(batch_size=10)
    (h_nqm, sigma2, mean0, var0), info = npred.build_nqm(m, h_floor=1e-3, bins=4)
    assert info["top_kept"] == 5 and len(h_nqm) == 6
    assert np.allclose(h_nqm[:5], h[:5].numpy(), rtol=1e-8)
    assert np.allclose(h_nqm[5], 0.01, rtol=1e-8)
    assert np.allclose(mean0[:5], np.abs((Q.t() @ w0).numpy()[:5]), rtol=1e-6)
    # the bulk bin holds the summed second moment of its 100 directions
    assert np.isclose(mean0[5] ** 2, float(((Q.t() @ w0)[5:] ** 2).sum()), rtol=1e-6)
    assert np.allclose(var0, 0.0)
    # sigma2 of each top direction: s^2 / B (projected variance, rescaled by 1/h^2)
    assert np.allclose(sigma2[:5], s ** 2 / 10, rtol=0.1)
    assert np.isclose(sigma2[5], 100 * s ** 2 / 10, rtol=0.1)
    assert np.isclose(info["bins"]["count"].sum(), 100, rtol=1e-6)
    assert np.isclose(info["noise_covered"], 1.0, rtol=0.1)
    # the same numbers as the direct construction from the matrices
    ref = npred.nqm_from_quadratic(H.numpy(), s ** 2 * (H @ H).numpy(), w0.numpy(), 0 * w0.numpy(), 10)
    order = np.argsort(-ref[0])[:5]
    assert np.allclose(ref[0][order], h_nqm[:5]) and np.allclose(ref[2][order], mean0[:5], rtol=1e-6)
    assert np.allclose(ref[1][order], s ** 2 / 10)


def test_a_subsampled_gradient_has_its_sampling_noise_removed():
    m, *_ = quadratic_measurement(batch_size=10)
    (h, sigma2, exact, _), _ = npred.build_nqm(m, h_floor=1e-3, bins=4)
    m = dict(m, grad_examples=np.asarray(50))
    (_, _, corrected, _), info = npred.build_nqm(m, h_floor=1e-3, bins=4)
    expected = np.clip(exact ** 2 - 10 / 50 * sigma2, 0, None)
    assert np.allclose(corrected ** 2, expected) and info["grad_noise_removed"] > 0


def test_horizon_losses_match_the_section2_dynamics():
    rng = np.random.default_rng(0)
    nqm = (rng.uniform(0.1, 2.0, 5), rng.uniform(0, 1, 5), rng.normal(size=5), np.zeros(5))
    la, lb = np.array([-2.0, -1.0, -0.5]), np.array([-1.0, 0.5, 2.0])
    K, mu, horizons = 20.0, 0.9, (10, 37, 50)
    ours = npred.horizon_losses(nqm, la, lb, K, mu, horizons, check_every=7)
    t = np.arange(50)
    alphas = 10 ** la[:, None] / (1 + t / K) ** (10 ** lb[:, None])
    theirs = dynamics(*nqm, alphas, np.full_like(alphas, mu)).numpy()
    assert np.allclose(ours, theirs[:, list(horizons)], rtol=1e-10)


def test_horizon_losses_mark_divergence_and_predict_picks_grid_minima():
    nqm = (np.array([1.0, 0.1]), np.array([0.1, 0.1]), np.array([1.0, 1.0]), np.zeros(2))
    out = npred.horizon_losses(nqm, np.array([1.5, -1.0]), np.array([-2.0, -2.0]), 10.0, 0.9, (400,))
    assert np.isinf(out[0, 0]) and np.isfinite(out[1, 0])
    p = npred.predict(nqm, (5, 50), K=10.0, n_alpha=5, n_beta=4)
    losses = p["grid_losses"]
    assert np.isclose(p["loss_at_T"][1], losses[:, 1].min())
    assert np.isclose(p["loss_ratio"], losses[np.argmin(losses[:, 0]), 1] / losses[:, 1].min())
