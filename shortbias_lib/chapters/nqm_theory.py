"""The theory chapter's numerical checks, and the facts each of its sections quotes.

The chapter derives Theorems 1-4 and the noise floor with SymPy (:mod:`~shortbias_lib.nqm.symbolic`) and checks
them with numbers that could have disagreed. Each ``*_facts`` function takes one section's
symbolic results and numerical runs, calls its theorem *verified* only if every check holds
(otherwise it raises :class:`TheoremCheckFailed` naming the failed checks, so the chapter
cannot print a verdict its code did not reach), and returns the numbers the prose quotes as a
dict for ``notebook.glue_facts``.
"""

import numpy as np
import sympy as sp
import torch

from ..nqm import symbolic as sym
from ..nqm.dynamics import (Moments, brute_force_greedy, dynamics, greedy_coefficients, greedy_schedule,
                           one_step_loss, theorem1_step, theorem1_trajectory)
from ..nqm.problem import constant_schedule, make_problem
from ..report import markdown_table

F64 = torch.float64


class TheoremCheckFailed(AssertionError):
    """A numerical or symbolic check of a theorem failed: the chapter must not call it verified."""


def verdict(theorem, checks):
    """``"verified"`` when every check (a mapping of what it checks to a bool) holds; otherwise
    raise :class:`TheoremCheckFailed` listing the checks that failed."""
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise TheoremCheckFailed(f"{theorem}: failed: {'; '.join(failed)}")
    return "verified"


# --- Theorem 1 -----------------------------------------------------------------------------

def theorem1_library_gap(derived, n_states=20, seed=0):
    """Largest relative difference between ``nqm_dynamics.theorem1_step`` and the SymPy moment
    updates ``derived`` (``symbolic.theorem1()``'s name -> (derived, paper, equal)) at
    ``n_states`` random states and step settings."""
    rng = np.random.default_rng(seed)
    symbols = (sym.alpha, sym.mu, sym.h, sym.sigma, sym.m_theta, sym.m_v, sym.V_theta, sym.V_v, sym.S)
    formulas = {name: sp.lambdify(symbols, expr, "numpy") for name, (expr, _, _) in derived.items()}
    worst = 0.0
    for _ in range(n_states):
        a, m, h, s = rng.uniform(0.01, 1.5), rng.uniform(0, 0.99), rng.uniform(0.01, 2), rng.uniform(0, 2)
        mt, mv = rng.normal(size=2)
        vt, vv = rng.uniform(0, 2, size=2)
        cov = rng.uniform(-1, 1) * np.sqrt(vt * vv)
        state = Moments(*(torch.tensor([x], dtype=F64) for x in (mt, mv, vt, vv, cov)))
        new = theorem1_step(state, torch.tensor([h], dtype=F64), torch.tensor([s ** 2], dtype=F64), a, m)
        library = {"E[v']": new.mean_v, "E[theta']": new.mean_theta, "V[v']": new.var_v,
                   "V[theta']": new.var_theta, "Cov(theta', v')": new.cov}
        for name, formula in formulas.items():
            ref = formula(a, m, h, s, mt, mv, vt, vv, cov)
            worst = max(worst, abs(library[name].item() - ref) / max(1.0, abs(ref)))
    return worst


def monte_carlo_standard_errors(exact, n_samples):
    """Standard errors of the Monte Carlo moments when ``exact`` (Theorem 1's ``Moments``) is
    the truth: theta and v are Gaussian, so the sample mean has ``sqrt(V/N)``, the sample
    variance ``V sqrt(2/(N-1))`` and the sample covariance ``sqrt((V_theta V_v + Sigma^2)/N)``."""
    n = n_samples
    return {"mean_theta": torch.sqrt(exact.var_theta / n), "mean_v": torch.sqrt(exact.var_v / n),
            "var_theta": exact.var_theta * np.sqrt(2 / (n - 1)), "var_v": exact.var_v * np.sqrt(2 / (n - 1)),
            "cov": torch.sqrt((exact.var_theta * exact.var_v + exact.cov ** 2) / n)}


def monte_carlo_z_scores(exact, loss_exact, mc):
    """Standardised differences (Monte Carlo minus exact, over its standard error) of every
    moment per dimension and of the loss, at every step after the deterministic start."""
    se = monte_carlo_standard_errors(exact, mc.n_samples)
    z = [((getattr(mc, k) - getattr(exact, k)) / se[k].clamp(min=1e-300))[1:].reshape(-1) for k in se]
    z.append(((mc.loss_mean - loss_exact) / mc.loss_sem)[1:])
    return torch.cat(z)


def theorem1_facts(derived, library_gap, exact, loss_exact, mc):
    """Theorem 1's facts: the library against SymPy, Monte Carlo against the exact moments."""
    z = monte_carlo_z_scores(exact, loss_exact, mc).abs()
    coverage = float((z < 1.96).double().mean())
    status = verdict("Theorem 1", {
        "derived equals the paper's Eqs. (10)-(14)": all(equal for _, _, equal in derived.values()),
        "library equals SymPy to 1e-12": library_gap < 1e-12,
        "every |z| < 5": float(z.max()) < 5,
        "over 90% of z inside the 95% band": coverage > 0.9})
    return {"t1_sym_vs_num": float(library_gap), "t1_n_mc": mc.n_samples, "t1_n_z": int(z.numel()),
            "t1_zmax": float(z.max()), "t1_coverage": 100 * coverage, "status_t1": status}


# --- Eq. (15) and Theorem 2 ------------------------------------------------------------------

def theorem2_states(n_random, dims=7):
    """Moment states at which to test Theorem 2: ``n_random`` random problems of ``dims``
    dimensions after 5 steps of SGD with random momentum (so that ``A(v)`` and ``E[theta v]``
    are nonzero), and step 20 of the greedy run on Section 2.3's problem.
    Returns ``(label, h, sigma2, (A(theta), A(v), E[theta v]))`` tuples."""
    states = []
    for k in range(n_random):
        r = np.random.default_rng(100 + k)
        h, s2 = torch.tensor(r.uniform(0.05, 1.0, dims)), torch.tensor(r.uniform(0.0, 2.0, dims))
        m0, v0 = torch.tensor(r.normal(0, 2.0, dims)), torch.tensor(r.uniform(0, 1.0, dims))
        traj = theorem1_trajectory(h, s2, m0, v0, torch.tensor(r.uniform(0.05, 1.2, 5)),
                                   torch.tensor(r.uniform(0.0, 0.9, 5)))
        states.append((f"random {k}", h, s2, Moments(*(x[-1] for x in traj)).second()))
    big = make_problem()
    greedy = greedy_schedule(*big.arrays, 20)
    traj = theorem1_trajectory(*big.arrays, greedy.alphas, greedy.mus)
    states.append(("Sec. 2.3, step 20", big.h, big.sigma2, Moments(*(x[-1] for x in traj)).second()))
    return states


def theorem2_against_grid(states):
    """Theorem 2's ``(alpha*, mu*)`` (``greedy_coefficients``) against a brute-force
    minimisation of Eq. (15) on refined grids, which uses no formula, at each state."""
    rows = []
    for label, h, s2, second in states:
        a_star, m_star = (x.item() for x in greedy_coefficients(*second, h, s2))
        a_grid, m_grid, grid_loss = brute_force_greedy(*second, h, s2, center=(1.0, 0.5), width=(3.0, 1.5))
        rows.append(dict(state=label, dims=h.shape[-1], alpha=a_star, alpha_grid=a_grid, mu=m_star, mu_grid=m_grid,
                         loss=one_step_loss(*second, h, s2, a_star, m_star).item(), loss_grid=grid_loss))
    return rows


def theorem2_table(rows):
    """The rows of :func:`theorem2_against_grid` as a Markdown table."""
    return markdown_table(["state", "dims", "alpha* (Theorem 2)", "alpha (grid)", "mu* (Theorem 2)", "mu (grid)"],
                          [(r["state"], r["dims"], f"{r['alpha']:.8f}", f"{r['alpha_grid']:.8f}",
                            f"{r['mu']:.8f}", f"{r['mu_grid']:.8f}") for r in rows])


def theorem2_facts(eq15, univariate, multivariate, rows):
    """Eq. (15) and Theorem 2's facts: every symbolic comparison, and formula against grid."""
    worst = max(max(abs(r["alpha"] - r["alpha_grid"]), abs(r["mu"] - r["mu_grid"])) for r in rows)
    status = verdict("Theorem 2", {
        "Eq. (15) derived equals the paper's": eq15[2],
        "alpha* and mu* equal A.2.1": univariate["alpha"][2] and univariate["mu"][2],
        "Eq. (15)'s Hessian is positive definite": univariate["positive_definite"],
        "the d-dimensional loss is Eq. (15) summed": multivariate["eq15_sum"],
        "alpha* and mu* equal A.2.2": multivariate["alpha"][2] and multivariate["mu"][2],
        "formula and grid agree to 1e-6": worst < 1e-6,
        "no grid point beats the formula": all(r["loss"] <= r["loss_grid"] + 1e-10 * abs(r["loss_grid"])
                                               for r in rows)})
    return {"t2_worst": float(worst), "status_t2": status}


# --- Theorems 3 and 4 ------------------------------------------------------------------------

def theorem3_facts(t3, proof, two_step_ok, greedy, fit, greedy_2d, fit_2d):
    """Theorem 3's facts: the symbolic results; Adam on whole univariate schedules (``fit``)
    ends at the greedy ones (``greedy``) and never below them; on a two-dimensional problem
    the fit started at greedy (``fit_2d``) ends at under half greedy's final loss."""
    rel = float(((fit.alphas - greedy.alphas).abs() / greedy.alphas).max())
    status = verdict("Theorem 3", {
        "recursion, alpha* and A'_min equal the paper's": t3["recursion"][2] and t3["alpha"][2] and t3["A_min"][2],
        "the induction over every horizon holds": proof["proved"],
        "the two-step dynamic programme gives greedy": two_step_ok,
        "fitted rates within 1e-3 of greedy": rel < 1e-3,
        "no fitted schedule beats greedy": bool((fit.history >= greedy.losses[..., -1:] - 1e-12).all()),
        "in 2-D the fit halves greedy's loss": float(fit_2d.losses[-1]) < 0.5 * float(greedy_2d.losses[-1])})
    return {"t3_rel": rel, "t3_2d_greedy": float(greedy_2d.losses[-1]), "t3_2d_fit": float(fit_2d.losses[-1]),
            "status_t3": status}


def theorem4_facts(t4, a_greedy, a_closed):
    """Theorem 4's facts: the induction, and the greedy run's ``A`` (``a_greedy``) against
    the closed form (``a_closed``) at every step."""
    rel = float(((a_greedy - a_closed).abs() / a_closed).max())
    status = verdict("Theorem 4", {"base case": t4["base"], "induction step": t4["induction"],
                                   "dA_T/dA > 0": t4["positive"], "greedy run equals the closed form": rel < 1e-10})
    return {"t4_rel": rel, "status_t4": status}


# --- The noise floor -------------------------------------------------------------------------

FLOOR_PROBLEMS = ((1.0, 1.0, 0.1, 0.0), (1.0, 1.0, 1.5, 0.0), (0.3, 2.0, 0.5, 0.9), (2.0, 0.5, 0.05, 0.99))
"""``(h, sigma^2, alpha, mu)`` of the noise-floor check: small and large steps, with and without momentum."""


def noise_floor_against_dynamics(floor, problems=FLOOR_PROBLEMS, steps=4000):
    """The SymPy floor ``floor`` (an expression in ``alpha, mu, h, sigma``) against the excess
    loss of the exact dynamics after ``steps`` constant steps from ``theta_0 = 3``, per problem."""
    formula = sp.lambdify((sym.alpha, sym.mu, sym.h, sym.sigma), floor)
    rows = []
    for h, s2, a, m in problems:
        exact = dynamics([h], [s2], [3.0], [0.0], *constant_schedule(a, steps, m))[-1].item()
        rows.append(dict(h=h, sigma2=s2, alpha=a, mu=m, floor=float(formula(a, m, h, np.sqrt(s2))), exact=exact))
    return rows


def noise_floor_table(rows):
    """The rows of :func:`noise_floor_against_dynamics` as a Markdown table."""
    return markdown_table(["h", "sigma^2", "alpha", "mu", "floor (SymPy)", "exact dynamics"],
                          [(f"{r['h']:g}", f"{r['sigma2']:g}", f"{r['alpha']:g}", f"{r['mu']:g}",
                            f"{r['floor']:.10f}", f"{r['exact']:.10f}") for r in rows])


def noise_floor_facts(floor, rows):
    """The noise floor's facts: the plain floor's closed form, and floor against dynamics."""
    worst = max(abs(r["exact"] / r["floor"] - 1) for r in rows)
    verdict("the noise floor", {"the momentum floor at mu = 0 is the plain one": floor["plain_closed_form"],
                                "floor and dynamics agree to 1e-9": worst < 1e-9})
    return {"floor_worst": float(worst), "floor_n": len(rows)}
