"""The theory chapter's facts: each verdict is reached only when its checks pass, and each
check fails on a counterexample (a wrong formula, a biased simulation, a worse schedule)."""

from types import SimpleNamespace

import pytest
import sympy as sp
import torch

from shortbias_lib.chapters import nqm_theory as facts
from shortbias_lib.nqm import symbolic as sym
from shortbias_lib.nqm.dynamics import dynamics, greedy_schedule, theorem1_trajectory
from shortbias_lib.nqm.montecarlo import monte_carlo

F64 = torch.float64


def test_verdict_names_every_failed_check():
    assert facts.verdict("T", {"a": True, "b": True}) == "verified"
    with pytest.raises(facts.TheoremCheckFailed, match="T: failed: b; c"):
        facts.verdict("T", {"a": True, "b": False, "c": False})


def test_library_gap_is_rounding_for_theorem1_and_large_for_a_wrong_formula():
    t1 = sym.theorem1()
    assert facts.theorem1_library_gap(t1, n_states=5) < 1e-12
    derived, paper, equal = t1["V[v']"]
    wrong = {**t1, "V[v']": (derived + sym.sigma ** 2 / 10, paper, equal)}  # noise counted 1.1 times
    assert facts.theorem1_library_gap(wrong, n_states=5) > 1e-3


def _theorem1_run(n_samples=4000):
    h = torch.tensor([1.0, 0.3], dtype=F64)
    problem = (h, 1 / h, torch.tensor([2.0, -1.0], dtype=F64), torch.full((2,), 0.5, dtype=F64),
               0.4 * 0.97 ** torch.arange(10, dtype=F64), torch.linspace(0.5, 0.9, 10, dtype=F64))
    return theorem1_trajectory(*problem), dynamics(*problem), monte_carlo(*problem, n_samples=n_samples, seed=0)


def test_theorem1_is_verified_by_a_faithful_simulation_and_not_by_a_biased_one():
    t1 = sym.theorem1()
    exact, loss, mc = _theorem1_run()
    out = facts.theorem1_facts(t1, 0.0, exact, loss, mc)
    assert out["status_t1"] == "verified" and out["t1_n_mc"] == 4000
    assert out["t1_n_z"] == 5 * 2 * 10 + 10  # five moments, two dims, ten steps after the start; the loss
    biased = mc._replace(mean_theta=mc.mean_theta + 0.2)
    with pytest.raises(facts.TheoremCheckFailed, match=r"every \|z\| < 5"):
        facts.theorem1_facts(t1, 0.0, exact, loss, biased)
    with pytest.raises(facts.TheoremCheckFailed, match="library equals SymPy"):
        facts.theorem1_facts(t1, 1e-6, exact, loss, mc)


def test_standard_error_of_a_sample_variance():
    exact = SimpleNamespace(var_theta=torch.tensor([2.0]), var_v=torch.tensor([1.0]), cov=torch.tensor([0.0]))
    se = facts.monte_carlo_standard_errors(exact, 201)
    assert se["var_theta"].item() == pytest.approx(2.0 * (2 / 200) ** 0.5)
    assert se["mean_theta"].item() == pytest.approx((2.0 / 201) ** 0.5)
    assert se["cov"].item() == pytest.approx((2.0 / 201) ** 0.5)


def _t2_symbolic():
    return sym.one_step_loss(), sym.theorem2_univariate(), sym.theorem2_multivariate(2)


def test_theorem2_formula_matches_the_grid_and_a_wrong_formula_fails():
    rows = facts.theorem2_against_grid(facts.theorem2_states(1)[:1])
    out = facts.theorem2_facts(*_t2_symbolic(), rows)
    assert out["status_t2"] == "verified" and out["t2_worst"] < 1e-6
    assert "random 0" in facts.theorem2_table(rows)
    off = [{**rows[0], "alpha": rows[0]["alpha"] * 1.01}]
    with pytest.raises(facts.TheoremCheckFailed, match="formula and grid agree"):
        facts.theorem2_facts(*_t2_symbolic(), off)
    beaten = [{**rows[0], "loss": rows[0]["loss_grid"] * 1.001 + 1e-9}]
    with pytest.raises(facts.TheoremCheckFailed, match="no grid point beats"):
        facts.theorem2_facts(*_t2_symbolic(), beaten)


def _schedule(alphas, losses, history=None):
    return SimpleNamespace(alphas=torch.tensor(alphas, dtype=F64), losses=torch.tensor(losses, dtype=F64),
                           history=None if history is None else torch.tensor(history, dtype=F64))


def test_theorem3_verdict_needs_the_fit_at_greedy_and_the_2d_fit_below_it():
    symbolic = (sym.theorem3(), sym.theorem3_every_horizon(), True)
    greedy = _schedule([[0.5, 0.4]], [[1.0, 0.5, 0.3]])
    fit = _schedule([[0.5, 0.4]], [[1.0, 0.5, 0.3]], history=[[0.9, 0.3]])
    greedy_2d, fit_2d = _schedule([0.1], [1.0, 0.8]), _schedule([0.1], [1.0, 0.3])
    out = facts.theorem3_facts(*symbolic, greedy, fit, greedy_2d, fit_2d)
    assert out == {"t3_rel": 0.0, "t3_2d_greedy": 0.8, "t3_2d_fit": 0.3, "status_t3": "verified"}
    with pytest.raises(facts.TheoremCheckFailed, match="no fitted schedule beats greedy"):
        facts.theorem3_facts(*symbolic, greedy, _schedule([[0.5, 0.4]], [[0]], history=[[0.2]]), greedy_2d, fit_2d)
    with pytest.raises(facts.TheoremCheckFailed, match="fitted rates within"):
        facts.theorem3_facts(*symbolic, greedy, _schedule([[0.6, 0.4]], [[0]], history=[[0.3]]), greedy_2d, fit_2d)
    with pytest.raises(facts.TheoremCheckFailed, match="in 2-D"):
        facts.theorem3_facts(*symbolic, greedy, fit, greedy_2d, _schedule([0.1], [1.0, 0.5]))
    with pytest.raises(facts.TheoremCheckFailed, match="two-step"):
        facts.theorem3_facts(sym.theorem3(), sym.theorem3_every_horizon(), False, greedy, fit, greedy_2d, fit_2d)


def test_theorem4_against_a_greedy_run_and_a_wrong_closed_form():
    h, s2 = torch.tensor([[0.5]], dtype=F64), torch.tensor([[2.0]], dtype=F64)
    m0, v0 = torch.tensor([[3.0]], dtype=F64), torch.tensor([[0.5]], dtype=F64)
    a_greedy = 2 * greedy_schedule(h, s2, m0, v0, 30, momentum=False).losses / h
    k = torch.arange(31, dtype=F64)
    closed = (m0 ** 2 + v0) * s2 / (k * (m0 ** 2 + v0) + s2)
    out = facts.theorem4_facts(sym.theorem4(), a_greedy, closed)
    assert out["status_t4"] == "verified" and out["t4_rel"] < 1e-10
    with pytest.raises(facts.TheoremCheckFailed, match="closed form"):
        facts.theorem4_facts(sym.theorem4(), a_greedy, (m0 ** 2 + v0) * s2 / (k * (m0 ** 2 + v0) + 2 * s2))


def test_noise_floor_rows_match_the_dynamics_and_a_wrong_floor_fails():
    nf = sym.noise_floor()
    problems = facts.FLOOR_PROBLEMS[:2]
    rows = facts.noise_floor_against_dynamics(nf["momentum"], problems)
    out = facts.noise_floor_facts(nf, rows)
    assert out["floor_n"] == 2 and out["floor_worst"] < 1e-9
    assert rows[0]["floor"] == pytest.approx(0.1 / (2 * 1.9))  # alpha h^2 sigma^2 / (2 (2 - alpha h))
    with pytest.raises(facts.TheoremCheckFailed, match="floor and dynamics"):
        facts.noise_floor_facts(nf, facts.noise_floor_against_dynamics(nf["momentum"] * 1.01, problems))


def test_equation_typesets_lhs_and_expression():
    assert sym.equation(r"\alpha^*", sp.Rational(1, 2) * sym.h) == r"\alpha^* = \frac{h}{2}"
