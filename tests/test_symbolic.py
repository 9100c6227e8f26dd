"""The SymPy derivations agree with the paper's forms and with the numerical library."""

import numpy as np
import pytest
import sympy as sp
import torch

from shortbias_lib.nqm.dynamics import (Moments, dynamics, greedy_coefficients, greedy_schedule, one_step_loss,
                                        theorem1_step)
from shortbias_lib.nqm.montecarlo import monte_carlo
from shortbias_lib.nqm.problem import constant_schedule
from shortbias_lib.nqm import symbolic as sy


def test_theorem1_derived_equals_paper():
    for name, (derived, paper, equal) in sy.theorem1().items():
        assert equal, name


def test_theorem1_symbolic_matches_numeric_step():
    vals = dict(zip(["alpha", "mu", "h", "sigma", "m_theta", "m_v", "V_theta", "V_v", "Sigma"],
                    [0.3, 0.7, 0.8, 1.3, 2.0, -0.5, 0.4, 0.2, -0.1]))
    subs = {getattr(sy, k if k != "Sigma" else "S"): v for k, v in vals.items()}
    m = Moments(*(torch.tensor([vals[k]], dtype=torch.float64)
                  for k in ["m_theta", "m_v", "V_theta", "V_v", "Sigma"]))
    new = theorem1_step(m, torch.tensor([vals["h"]], dtype=torch.float64),
                        torch.tensor([vals["sigma"] ** 2], dtype=torch.float64),
                        vals["alpha"], vals["mu"])
    derived = sy.theorem1()
    pairs = {"E[theta']": new.mean_theta, "E[v']": new.mean_v, "V[theta']": new.var_theta,
             "V[v']": new.var_v, "Cov(theta', v')": new.cov}
    for name, value in pairs.items():
        assert float(derived[name][0].subs(subs)) == pytest.approx(value.item(), rel=1e-12)


def test_appendix_a1_print_drops_alpha_on_noise():
    _, _, equal_printed, equal_corrected = sy.appendix_a1_theta_update()
    assert not equal_printed and equal_corrected


def test_eq15_and_theorem2_univariate():
    assert sy.one_step_loss()[2]
    t = sy.theorem2_univariate()
    assert t["alpha"][2] and t["mu"][2]
    # numbers: the symbolic optimum equals the library's greedy step in one dimension
    vals = {sy.A_theta: 2.0, sy.A_v: 0.5, sy.B: -0.4, sy.h: 0.7, sy.sigma: 1.1}
    a_star = float(t["alpha"][0].subs(vals))
    m_star = float(t["mu"][0].subs(vals))
    tt = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    a, m = greedy_coefficients(tt(2.0), tt(0.5), tt(-0.4), tt(0.7), tt(1.1 ** 2))
    assert a.item() == pytest.approx(a_star, rel=1e-12)
    assert m.item() == pytest.approx(m_star, rel=1e-12)


def test_theorem2_multivariate_form():
    t = sy.theorem2_multivariate(2)
    assert t["alpha"][2] and t["mu"][2] and t["eq15_sum"]


def test_multivariate_loss_derived_from_updates_matches_the_library():
    """The derived d = 2 loss at numbers equals the library's one-step loss (Theorem 1's moments)."""
    loss, (hs, sg, at, av, bb) = sy.multivariate_one_step_loss(2)
    g = np.random.default_rng(3)
    h, s, A, V, Bv = (g.uniform(0.1, 1, 2), g.uniform(0.1, 2, 2), g.uniform(0.5, 3, 2),
                      g.uniform(0.1, 1, 2), g.uniform(-0.3, 0.3, 2))
    a, m = 0.7, 0.4
    subs = {**dict(zip(hs, h)), **dict(zip(sg, s)), **dict(zip(at, A)), **dict(zip(av, V)),
            **dict(zip(bb, Bv)), sy.alpha: a, sy.mu: m}
    lib = one_step_loss(*(torch.tensor(x) for x in (A, V, Bv, h, s ** 2)), a, m)
    assert float(loss.subs(subs)) == pytest.approx(lib.item(), rel=1e-12)


def test_eq15_hessian_is_positive_definite():
    t = sy.theorem2_univariate()
    assert t["positive_definite"]
    # numbers: random states obeying Cauchy-Schwarz give positive eigenvalues
    loss, _, _ = sy.one_step_loss()
    hess = sp.hessian(loss, (sy.alpha, sy.mu))
    g = np.random.default_rng(4)
    for _ in range(20):
        A, V = g.uniform(0.01, 3, 2)
        Bv = g.uniform(-1, 1) * np.sqrt(A * V)
        vals = {sy.A_theta: A, sy.A_v: V, sy.B: Bv, sy.h: g.uniform(0.1, 2), sy.sigma: g.uniform(0.01, 2)}
        assert np.linalg.eigvalsh(np.array(hess.subs(vals), dtype=float)).min() > 0


def test_theorem3_every_horizon_proof_and_numbers():
    proof = sy.theorem3_every_horizon()
    assert proof["proved"]
    # numbers: T greedy steps of Eq. (7) from A reach the claimed f_T(A), for several T
    A_sym, s2_sym, K = proof["symbols"]
    for A, s2 in ((3.0, 0.5), (0.2, 2.0)):
        a = A
        for T in range(1, 9):
            alpha_h = a / (a + s2)                      # Eq. (7) times h
            a = (1 - alpha_h) ** 2 * a + alpha_h ** 2 * s2
            claim = float(proof["claim"].subs({A_sym: A, s2_sym: s2, K: T - 1}))
            assert a == pytest.approx(claim, rel=1e-12)


def test_theorem2_multivariate_numbers_d3():
    hs, sg, at, av, bb = sy.multivariate_symbols(3)
    pa, pm = sy.theorem2_paper_form(hs, sg, at, av, bb)
    g = np.random.default_rng(1)
    h, s, A, V, Bv = (g.uniform(0.1, 1, 3), g.uniform(0.1, 2, 3), g.uniform(0.5, 3, 3),
                      g.uniform(0.1, 1, 3), g.uniform(-0.3, 0.3, 3))
    subs = {**dict(zip(hs, h)), **dict(zip(sg, s)), **dict(zip(at, A)), **dict(zip(av, V)),
            **dict(zip(bb, Bv))}
    a, m = greedy_coefficients(*(torch.tensor(x) for x in (A, V, Bv, h, s ** 2)))
    assert a.item() == pytest.approx(float(pa.subs(subs)), rel=1e-10)
    assert m.item() == pytest.approx(float(pm.subs(subs)), rel=1e-10)


def test_theorem3_and_4():
    t3 = sy.theorem3()
    assert all(t3[k][2] for k in ("recursion", "alpha", "A_min"))
    t4 = sy.theorem4()
    assert t4["base"] and t4["induction"] and t4["positive"]
    # numbers: the closed form equals the greedy SGD recursion
    A, s2, k = t4["symbols"]
    g = greedy_schedule([0.8], [1.5], [2.0], [0.3], 12, momentum=False)
    a_final = 2 * g.losses[-1].item() / 0.8
    assert float(t4["closed_form"].subs({A: 4.3, s2: 1.5, k: 12})) == pytest.approx(a_final, rel=1e-12)


def test_expect_rejects_high_degree():
    with pytest.raises(ValueError):
        sy.expect(sy.d_theta ** 3)
    assert sy.expect(sy.xi * sy.d_theta) == 0
    assert sp.simplify(sy.variance(sy.sigma * sy.xi) - sy.sigma ** 2) == 0


def test_theorem3_two_step_dynamic_programme():
    sols, greedy, ok = sy.theorem3_two_step()
    assert ok and len(sols) == 1
    A, s2 = sy.theorem3()["symbols"]
    value = float(sols[0].subs({A: 2.0, s2: 0.5, sy.h: 0.7}))
    assert value == pytest.approx(2.0 / (0.7 * 2.5))


def test_noise_floor_matches_long_runs_of_the_exact_dynamics_and_monte_carlo():
    nf = sy.noise_floor()
    assert nf["plain_closed_form"]
    floor = sp.lambdify((sy.alpha, sy.mu, sy.h, sy.sigma), nf["momentum"])
    for h, s2, a, m in ((1.0, 1.0, 0.3, 0.0), (0.5, 2.0, 0.4, 0.8), (2.0, 0.3, 0.02, 0.95)):
        exact = dynamics([h], [s2], [2.0], [0.0],
                         *constant_schedule(a, 5000, m))[-1].item()
        assert exact == pytest.approx(floor(a, m, h, np.sqrt(s2)), rel=1e-9)
    # Monte Carlo, started at the floor's scale, averaged over the last steps of 4000 runs
    a, m, h, s2 = 0.4, 0.8, 0.5, 2.0
    mc = monte_carlo([h], [s2], [0.0], [0.0], torch.full((300,), a), torch.full((300,), m),
                     n_samples=4000, seed=5)
    tail = mc.loss_mean[200:].mean().item()
    sem = mc.loss_sem[200:].mean().item()
    assert abs(tail - floor(a, m, h, np.sqrt(s2))) < 4 * sem
