"""Checks of the converged fits (exact fixed schedules, best fixed search, L-BFGS) against
independent computations: Theorem 1's step-by-step dynamics, dense grids, conjugate gradient."""

import numpy as np
import pytest
import torch

from shortbias_lib import noisy_quadratic as nq

from test_noisy_quadratic import conjugate_gradient_losses, random_problem

torch.set_num_threads(1)


def test_fixed_final_loss_matches_step_by_step_dynamics():
    h, s2, m0, v0 = random_problem(d=7, seed=40)
    alpha = np.array([0.05, 0.3, 1.0, 2.5])
    mu = np.array([0.0, 0.5, 0.9, 0.3])
    for T in (1, 2, 37, 250):
        exact = nq.fixed_final_loss(h, s2, m0, v0, alpha, mu, T)
        step = nq.dynamics(h, s2, m0, v0, *nq.constant_schedule(torch.tensor(alpha), T, torch.tensor(mu)))[..., -1]
        finite = torch.isfinite(step).numpy()
        np.testing.assert_allclose(exact[finite], step.numpy()[finite], rtol=1e-9)
        assert np.isinf(exact[~finite]).all()


@pytest.mark.parametrize("noisy", [True, False])
def test_best_fixed_is_at_least_as_good_as_a_dense_grid(noisy):
    p = nq.make_problem(n=40, kappa=100.0, c0=3.0, horizon=40, noisy=noisy)
    best = nq.best_fixed(*p.arrays, p.horizon)
    a = 10 ** np.linspace(-2.5, 0.6, 120)
    m = np.concatenate([[0.0], 1 - 10 ** -np.linspace(0.05, 3, 119)])
    A, M = (x.reshape(-1) for x in np.meshgrid(a, m, indexing="ij"))
    with torch.no_grad():
        grid = nq.dynamics(*p.arrays, *nq.constant_schedule(torch.tensor(A), p.horizon, torch.tensor(M)))[..., -1]
    grid_min = torch.nan_to_num(grid, nan=np.inf).min().item()
    assert best.final <= grid_min * (1 + 1e-9)
    check = nq.dynamics(*p.arrays, *nq.constant_schedule(float(best.alpha), p.horizon, float(best.mu)))[-1].item()
    # repeated squaring rounds differently from T steps: the deterministic loss ends
    # 1e-7 below its start, so the two agree to about 1e-16 / 1e-7 relative
    assert check == pytest.approx(float(best.final), rel=1e-6)


def test_lbfgs_solves_quadratics_row_by_row():
    g = np.random.default_rng(41)
    mats = []
    for _ in range(3):
        q = np.linalg.qr(g.normal(size=(6, 6)))[0]
        mats.append(q @ np.diag(np.logspace(0, 3, 6)) @ q.T)
    mats = np.stack(mats)
    b = g.normal(size=(3, 6))

    def fun(x, rows):
        ax = np.einsum("rij,rj->ri", mats[rows], x)
        return 0.5 * (x * ax).sum(1) - (b[rows] * x).sum(1), ax - b[rows]

    res = nq.lbfgs(fun, np.zeros((3, 6)), max_iter=500, tol=1e-14, window=5)
    np.testing.assert_allclose(res.x, np.linalg.solve(mats, b[..., None])[..., 0], rtol=1e-6, atol=1e-8)
    assert res.converged.all()
    assert (np.diff(res.history, axis=0) <= 0).all()  # Armijo: never uphill


def test_fit_lbfgs_reaches_conjugate_gradient_on_deterministic_problems():
    """Heavy ball with a per-step (alpha, mu) can express CG, which is optimal: the fit must reach it."""
    g = np.random.default_rng(42)
    d, T = 8, 5
    h = np.exp(g.uniform(np.log(0.01), 0, d))
    m0 = g.normal(0, 1.0, d)
    cg = conjugate_gradient_losses(h, m0, T)[-1]
    start_a, start_m = nq.constant_schedule(torch.tensor([0.5]), T, torch.tensor([0.3]))
    fit = nq.fit_lbfgs(h, np.zeros(d), m0, np.zeros(d), start_a, start_m, bound=False,
                       max_iter=2000, tol=1e-10, window=20)
    final = fit.losses[0, -1].item()
    assert cg * (1 - 1e-9) <= final <= cg * (1 + 1e-3)
    assert fit.history[-1, 0] == pytest.approx(final)


def test_fit_lbfgs_bound_holds_and_gradient_rows_are_independent():
    h, s2, m0, v0 = random_problem(d=6, seed=43)
    a, m = nq.constant_schedule(torch.tensor([0.8, 1.6]), 15, torch.tensor([0.5, 0.2]))
    both = nq.fit_lbfgs(h, s2, m0, v0, a, m, bound=True, max_iter=25, tol=0.0)
    one = nq.fit_lbfgs(h, s2, m0, v0, a[1:], m[1:], bound=True, max_iter=25, tol=0.0)
    np.testing.assert_allclose(both.losses[1].numpy(), one.losses[0].numpy(), rtol=1e-10)
    per_dim = nq.dynamics(h, s2, m0, v0, both.alphas, both.mus, per_dim=True)
    assert (per_dim - per_dim[..., :1, :] <= 1e-9 * per_dim[..., :1, :]).all()
    assert (both.history[-1] <= both.history[0]).all()
