"""Checks of the converged fits (exact fixed schedules, best fixed search, L-BFGS) against
independent computations: Theorem 1's step-by-step dynamics, dense grids, conjugate gradient."""

import numpy as np
import pytest
import torch

from shortbias_lib.nqm.dynamics import dynamics, second_moment_step
from shortbias_lib.nqm.fit import FitSettings, fit_lbfgs, lbfgs
from shortbias_lib.nqm.fixed import best_fixed, fixed_final_loss
from shortbias_lib.nqm.adjoint import adjoint
from shortbias_lib.nqm.problem import constant_schedule, make_problem
from shortbias_lib.nqm import fit as nqm_fit

from test_noisy_quadratic import conjugate_gradient_losses, random_problem

torch.set_num_threads(1)


def test_fixed_final_loss_matches_step_by_step_dynamics():
    h, s2, m0, v0 = random_problem(d=7, seed=40)
    alpha = np.array([0.05, 0.3, 1.0, 2.5])
    mu = np.array([0.0, 0.5, 0.9, 0.3])
    for T in (1, 2, 37, 250):
        exact = fixed_final_loss(h, s2, m0, v0, alpha, mu, T)
        step = dynamics(h, s2, m0, v0, *constant_schedule(torch.tensor(alpha), T, torch.tensor(mu)))[..., -1]
        finite = torch.isfinite(step).numpy()
        np.testing.assert_allclose(exact[finite], step.numpy()[finite], rtol=1e-9)
        assert np.isinf(exact[~finite]).all()


@pytest.mark.parametrize("noisy", [True, False])
def test_best_fixed_is_at_least_as_good_as_a_dense_grid(noisy):
    p = make_problem(n=40, kappa=100.0, c0=3.0, horizon=40, noisy=noisy)
    best = best_fixed(*p.arrays, p.horizon)
    a = 10 ** np.linspace(-2.5, 0.6, 120)
    m = np.concatenate([[0.0], 1 - 10 ** -np.linspace(0.05, 3, 119)])
    A, M = (x.reshape(-1) for x in np.meshgrid(a, m, indexing="ij"))
    with torch.no_grad():
        grid = dynamics(*p.arrays, *constant_schedule(torch.tensor(A), p.horizon, torch.tensor(M)))[..., -1]
    grid_min = torch.nan_to_num(grid, nan=np.inf).min().item()
    assert best.final <= grid_min * (1 + 1e-9)
    check = dynamics(*p.arrays, *constant_schedule(float(best.alpha), p.horizon, float(best.mu)))[-1].item()
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

    res = lbfgs(fun, np.zeros((3, 6)), max_iter=500, tol=1e-14, window=5)
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
    start_a, start_m = constant_schedule(torch.tensor([0.5]), T, torch.tensor([0.3]))
    fit = fit_lbfgs(h, np.zeros(d), m0, np.zeros(d), start_a, start_m, bound=False,
                    settings=FitSettings(max_iter=2000, tol=1e-10, window=20))
    final = fit.losses[0, -1].item()
    assert cg * (1 - 1e-9) <= final <= cg * (1 + 1e-3)
    assert fit.history[-1, 0] == pytest.approx(final)


def test_fit_lbfgs_bound_holds_and_gradient_rows_are_independent():
    h, s2, m0, v0 = random_problem(d=6, seed=43)
    a, m = constant_schedule(torch.tensor([0.8, 1.6]), 15, torch.tensor([0.5, 0.2]))
    settings = FitSettings(max_iter=25, tol=0.0)
    both = fit_lbfgs(h, s2, m0, v0, a, m, bound=True, settings=settings)
    one = fit_lbfgs(h, s2, m0, v0, a[1:], m[1:], bound=True, settings=settings)
    np.testing.assert_allclose(both.losses[1].numpy(), one.losses[0].numpy(), rtol=1e-10)
    per_dim = dynamics(h, s2, m0, v0, both.alphas, both.mus, per_dim=True)
    assert (per_dim - per_dim[..., :1, :] <= 1e-9 * per_dim[..., :1, :]).all()
    assert (both.history[-1] <= both.history[0]).all()


def _soft_dynamics_torch(h, s2, m0, v0, alphas, mus, p):
    """Independent autograd reference for the soft bound: roots of every dimension's quadratic,
    shrink factor (1 + sum_i r_i^-p)^(-1/p), then Theorem 1's second-moment step."""
    h, s2 = torch.as_tensor(h), torch.as_tensor(s2)
    A0 = torch.as_tensor(m0) ** 2 + torch.as_tensor(v0)
    A, V, C = A0.expand(alphas.shape[:-1] + A0.shape), torch.zeros_like(A0), torch.zeros_like(A0)
    for t in range(alphas.shape[-1]):
        al, mu = alphas[..., t:t + 1], mus[..., t:t + 1]
        k = al * h
        b = mu * C - k * A
        a = mu ** 2 * V - 2 * mu * k * C + k ** 2 * (A + s2)
        root = (-b + torch.sqrt(b ** 2 + a * (A0 - A).clamp(min=0))) / a
        s = (1 + (root ** -p).sum(-1, keepdim=True)) ** (-1 / p)
        A, V, C = second_moment_step(A, V, C, h, s2, al * s, mu * s)
    return 0.5 * (h * A).sum(-1)


@pytest.mark.parametrize("p", [5.0, 300.0])
def test_soft_bound_adjoint_matches_autograd_and_finite_differences(p):
    h, s2, m0, v0 = random_problem(d=7, seed=44)
    g = np.random.default_rng(45)
    a, m = g.uniform(0.5, 2.5, (2, 12)), g.uniform(0.1, 0.9, (2, 12))  # large: the bound binds
    f, ga, gm, a_used, m_used, _ = adjoint(h, s2, m0, v0, a, m, bound=True, sharpness=p)
    at, mt = torch.tensor(a, requires_grad=True), torch.tensor(m, requires_grad=True)
    ref = _soft_dynamics_torch(h, s2, m0, v0, at, mt, p)
    ref.sum().backward()
    np.testing.assert_allclose(f, ref.detach().numpy(), rtol=1e-11)
    np.testing.assert_allclose(ga, at.grad.numpy(), rtol=1e-7, atol=1e-9 * np.abs(ga).max())
    np.testing.assert_allclose(gm, mt.grad.numpy(), rtol=1e-7, atol=1e-9 * np.abs(gm).max())
    eps = 1e-6
    for t in (0, 5, 11):
        plus, minus = a.copy(), a.copy()
        plus[:, t] += eps
        minus[:, t] -= eps
        fd = (adjoint(h, s2, m0, v0, plus, m, bound=True, sharpness=p)[0]
           - adjoint(h, s2, m0, v0, minus, m, bound=True, sharpness=p)[0]) / (2 * eps)
        np.testing.assert_allclose(fd, ga[:, t], rtol=1e-5, atol=1e-7 * np.abs(ga).max())
    # the soft minimum never exceeds the exact one: the applied schedule respects the bound
    assert (a_used < a).any()
    per_dim = dynamics(h, s2, m0, v0, a_used, m_used, per_dim=True)
    assert (per_dim - per_dim[..., :1, :] <= 1e-12 * per_dim[..., :1, :]).all()


def test_soft_bound_approaches_the_exact_bound():
    h, s2, m0, v0 = random_problem(d=7, seed=46)
    g = np.random.default_rng(47)
    a, m = g.uniform(0.5, 2.5, (1, 20)), g.uniform(0.1, 0.9, (1, 20))
    exact = adjoint(h, s2, m0, v0, a, m, bound=True)
    gaps = [np.abs(adjoint(h, s2, m0, v0, a, m, bound=True, sharpness=p)[3] / exact[3] - 1).max()
         for p in (30.0, 300.0, 3000.0)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2


def test_fit_lbfgs_restarts_collapsed_steps_only_when_better():
    """A learning rate near 0 cannot come back in log alpha; the restart resets it and keeps
    the result only if it is better (on Figure 3(a) it is: see the chapter)."""
    h, s2, m0, v0 = random_problem(d=6, seed=48)
    a, m = constant_schedule(torch.tensor([0.5]), 20, torch.tensor([0.3]))
    a = a.clone()
    a[0, 7] = 1e-9
    low, med = nqm_fit.collapsed_steps(np.log(a.numpy()))
    assert low[0].nonzero()[0].tolist() == [7] and med[0, 7] == pytest.approx(np.log(0.5))
    low, med = nqm_fit.collapsed_steps(np.log(np.array([[1e-3, 2.0, 3.0, 2.5, 1e-6]])))
    assert low[0].tolist() == [True, False, False, False, True]
    kicked = fit_lbfgs(h, s2, m0, v0, a, m, bound=True, settings=FitSettings(max_iter=200, tol=1e-8))
    plain = fit_lbfgs(h, s2, m0, v0, a, m, bound=True, settings=FitSettings(max_iter=200, tol=1e-8, kicks=0))
    # here the collapsed step is (locally) right: the restart ends higher and is not kept
    assert kicked.kicks[0] == 0 and kicked.iterations[0] > plain.iterations[0]
    assert kicked.losses[0, -1] <= plain.losses[0, -1]
    assert kicked.history[-1, 0] == pytest.approx(kicked.losses[0, -1].item())
