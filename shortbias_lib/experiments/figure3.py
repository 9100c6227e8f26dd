"""Figure 3 of Section 2: the calibration of ``c0``, the predictions it implies, and the figure.

The noisy quadratic model itself lives in modules by idea; import each name from its home:

* :mod:`~shortbias_lib.nqm.problem`: problems, schedules and their validation (conventions);
* :mod:`~shortbias_lib.nqm.dynamics`: exact dynamics (Theorem 1), the bound, greedy schedules;
* :mod:`~shortbias_lib.nqm.adjoint`: the exact gradient of the final loss (a NumPy adjoint);
* :mod:`~shortbias_lib.nqm.gradient`: that gradient checked, and the Adam fit;
* :mod:`~shortbias_lib.nqm.fixed`: exact fixed schedules and the global best one;
* :mod:`~shortbias_lib.nqm.fit`: converged L-BFGS fits;
* :mod:`~shortbias_lib.nqm.montecarlo`: simulation with sampled minima.

This module holds the calibration of ``c0`` (:func:`calibrate_c0`), the predictions it implies
(:func:`calibrated_fixed`, :func:`calibrated_optimized`) and Figure 3 (:func:`figure3`, saved by :func:`run_figure3`).
"""

import math
import time

import numpy as np
import torch

from ..nqm.dynamics import dynamics, greedy_schedule
from ..nqm.fit import FitSettings, fit_lbfgs
from ..nqm.fixed import best_fixed
from ..nqm.problem import (DEFAULT_C0, DEFAULT_KAPPA, PAPER_DIM, PAPER_HORIZON, constant_schedule,
                          curvature_group_losses, make_problem)

__all__ = ["PAPER_FINAL_LOSSES", "SCHEDULES", "CHAPTER", "STARTS", "FIGURE3_SETUP", "FIGURE3_FIT", "SMOKE_STEPS",
           "KAPPAS", "greedy_final_loss", "calibrate_c0", "calibrated_fixed", "calibrated_optimized", "figure3",
           "run_figure3"]

PAPER_FINAL_LOSSES = {"optimized": 4.25, "greedy": 63.86, "fixed": 42.19}
SCHEDULES = ("optimized", "greedy", "fixed")
CHAPTER = "nqm_experiments"


def greedy_final_loss(problem, momentum=True):
    """Final expected excess loss of the greedy schedule (a float)."""
    return float(greedy_schedule(*problem.arrays, problem.horizon, momentum=momentum).losses[..., -1])


def calibrate_c0(target=PAPER_FINAL_LOSSES["greedy"], *, momentum=True, lo=0.1, hi=1000.0,
                 iters=60, **problem_kwargs):
    """The initial mean c0 at which the greedy schedule's final loss equals ``target``.

    The greedy final loss increases with c0, so bisection (in log c0) finds it.
    ``problem_kwargs`` go to :func:`make_problem` (n, kappa, spectrum, horizon, ...).
    """
    def f(c0):
        return greedy_final_loss(make_problem(c0=c0, **problem_kwargs), momentum) - target
    if f(lo) > 0 or f(hi) < 0:
        raise ValueError(f"target {target} is not reached for c0 in [{lo}, {hi}]")
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return math.sqrt(lo * hi)


FIGURE3_SETUP = dict(n=PAPER_DIM, kappa=DEFAULT_KAPPA, c0=DEFAULT_C0, spectrum="extreme",
                     horizon=PAPER_HORIZON)
def calibrated_fixed(settings, iters=30):
    """For each ``(spectrum, kappa)``: the calibrated ``c0`` and the best fixed final loss it predicts.

    The problem is :data:`FIGURE3_SETUP`'s with that spectrum and condition
    number; ``c0`` is recalibrated (:func:`calibrate_c0`) so that greedy ends
    at the paper's value, then :func:`best_fixed` gives the fixed schedule's
    final loss: how much the prediction depends on the open choices. Settings
    whose target is out of reach give NaN. Returns ``(c0s, finals)`` as NumPy arrays.
    """
    c0s, fixed = _calibrated_setups(settings, iters)
    return c0s, np.array([math.nan if f is None else float(f[2].final) for f in fixed])


def _calibrated_setups(settings, iters):
    """Per ``(spectrum, kappa)``: the calibrated ``c0`` and ``(setup, problem, best fixed)``
    (``None`` where the target is out of reach)."""
    c0s, out = [], []
    for spectrum, kappa in settings:
        setup = {**FIGURE3_SETUP, "kappa": kappa, "spectrum": spectrum}
        del setup["c0"]
        try:
            c0 = calibrate_c0(iters=iters, **setup)
        except ValueError:
            c0s.append(math.nan)
            out.append(None)
            continue
        p = make_problem(c0=c0, **setup)
        c0s.append(c0)
        out.append((setup, p, best_fixed(*p.arrays, p.horizon)))
    return np.array(c0s), out


def calibrated_optimized(kappas, fit=None, fitted=None, iters=30):
    """How the 3(a) predictions move with the condition number: for each of ``kappas``, ``c0``
    calibrated (unrounded), the best fixed final loss and, for the kappas in ``fitted`` (default
    all), the final loss of :func:`figure3`'s noisy bounded fit from that fixed schedule (all
    rows in one batch). Returns NumPy arrays ``(c0s, fixed finals, optimized finals)``, NaN
    where the calibration target is out of reach or no fit was asked for."""
    fit = {**FIGURE3_FIT, **(fit or {})}
    fitted = kappas if fitted is None else fitted
    c0s, found = _calibrated_setups([("extreme", k) for k in kappas], iters)
    fixed = np.array([math.nan if f is None else float(f[2].final) for f in found])
    optimized = np.full(len(kappas), math.nan)
    rows = [i for i, (k, f) in enumerate(zip(kappas, found)) if f is not None and k in fitted]
    if rows:
        T = FIGURE3_SETUP["horizon"]
        probs = [found[i][1] for i in rows]
        starts = [constant_schedule(torch.as_tensor(found[i][2].alpha), T, torch.as_tensor(found[i][2].mu))
                  for i in rows]
        stack = lambda name: torch.stack([getattr(p, name) for p in probs])  # noqa: E731
        opt = fit_lbfgs(stack("h"), stack("sigma2"), stack("mean0"), stack("var0"),
                        torch.stack([a for a, _ in starts]), torch.stack([m for _, m in starts]).clamp(1e-6, 1 - 1e-6),
                        bound=True, settings=FitSettings(max_iter=fit["max_iter"], tol=fit["tol"],
                                                         window=fit["window"]))
        optimized[rows] = opt.losses[:, -1].numpy()
    return c0s, fixed, optimized


# The optimized fit: L-BFGS on the log final loss, stopped when the final loss
# improved by less than `tol` (relative) over `window` iterations, at most `max_iter`;
# the deterministic case's start from the fixed schedule at most `det_fixed_iter`.
FIGURE3_FIT = dict(max_iter=400, tol=1e-5, window=10, det_fixed_iter=100)
# The starts of the optimized fit, per case (the noisy case uses the fixed one only)
STARTS = ("greedy", "fixed")


def figure3(setup=None, fit=None):
    """Greedy (Theorem 2), fixed and optimized schedules, noisy and deterministic (Figure 3).

    ``setup`` overrides :data:`FIGURE3_SETUP` (the problem), ``fit`` overrides
    :data:`FIGURE3_FIT`. Fixed: :func:`best_fixed` (global). Optimized:
    :func:`fit_lbfgs` with the bound, in one batch: the noisy case from the
    fixed schedule, the deterministic case from each of :data:`STARTS` (the
    lower final loss wins). The noisy case is also fitted without the bound,
    from the bounded optimum. Returns a
    dict of NumPy arrays; index 0 of the ``case`` axis is noisy, 1
    deterministic; the ``schedule`` axis follows :data:`SCHEDULES`.
    """
    setup = {**FIGURE3_SETUP, **(setup or {})}
    fit = {**FIGURE3_FIT, **(fit or {})}
    noisy = make_problem(**setup)
    T = noisy.horizon
    h = noisy.h
    sigma2 = torch.stack([noisy.sigma2, torch.zeros_like(noisy.sigma2)])
    mean0, var0 = noisy.mean0, noisy.var0
    timings = {}
    t0 = time.perf_counter()
    greedy = greedy_schedule(h, sigma2, mean0, var0, T)
    timings["greedy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fixed = best_fixed(h, sigma2, mean0, var0, T)
    fixed_a, fixed_m = constant_schedule(torch.as_tensor(fixed.alpha), T, torch.as_tensor(fixed.mu))
    timings["fixed"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # rows: (noisy, fixed), (det, greedy), (det, fixed)
    starts_a = torch.stack([fixed_a[0], greedy.alphas[1], fixed_a[1]])
    starts_m = torch.stack([fixed_m[0], greedy.mus[1], fixed_m[1]]).clamp(1e-6, 1 - 1e-6)
    caps = np.array([fit["max_iter"], fit["max_iter"], min(fit["max_iter"], fit["det_fixed_iter"])])
    opt = fit_lbfgs(h, sigma2[[0, 1, 1]], mean0, var0, starts_a, starts_m, bound=True,
                    settings=FitSettings(max_iter=caps, tol=fit["tol"], window=fit["window"]))
    start_finals = np.array([[np.nan, float(opt.losses[0, -1])], opt.losses[1:, -1].tolist()])
    winner = np.array([1, int(np.argmin(start_finals[1]))])
    rows = torch.tensor([0, 1 + winner[1]])
    free = fit_lbfgs(h, sigma2[0], mean0, var0, opt.alphas[:1], opt.mus[:1].clamp(1e-6, 1 - 1e-6),
                     bound=False, settings=FitSettings(max_iter=fit["max_iter"], tol=fit["tol"],
                                                       window=fit["window"]))
    timings["optimized"] = time.perf_counter() - t0
    alphas = torch.stack([opt.alphas[rows], greedy.alphas, fixed_a], 1)   # (case, schedule, T)
    mus = torch.stack([opt.mus[rows], greedy.mus, fixed_m], 1)
    per_dim = dynamics(h, sigma2[:, None], mean0, var0, alphas, mus, per_dim=True, check=False)
    high, low = curvature_group_losses(per_dim, h, min(50, h.shape[-1]))
    losses = per_dim.sum(-1)
    initial = per_dim[..., :1, :]
    return {
        "schedules": np.array(SCHEDULES),
        "cases": np.array(["noisy", "deterministic"]),
        "starts": np.array(STARTS),
        "alphas": alphas.numpy(), "mus": mus.numpy(), "losses": losses.numpy(),
        "loss_high50": high.numpy(), "loss_low50": low.numpy(),
        "final_losses": losses[0, :, -1].numpy(),
        "final_losses_deterministic": losses[1, :, -1].numpy(),
        "paper_final_losses": np.array([PAPER_FINAL_LOSSES[s] for s in SCHEDULES]),
        "max_excess_over_initial": (per_dim - initial).amax((-1, -2)).numpy(),
        "optimized_history": opt.history[:, rows.numpy()].T,
        "start_finals": start_finals,
        "start_iterations": np.array([[0, opt.iterations[0]], opt.iterations[1:].tolist()]),
        "start_converged": np.array([[False, opt.converged[0]], opt.converged[1:].tolist()]),
        "winner": winner,
        "fixed_alpha": np.asarray(fixed.alpha), "fixed_mu": np.asarray(fixed.mu),
        "unconstrained_final": np.array(float(free.losses[0, -1])),
        "unconstrained_iterations": np.array(int(free.iterations[0])),
        "unconstrained_converged": np.array(bool(free.converged[0])),
        "unconstrained_alphas": free.alphas[0].numpy(), "unconstrained_mus": free.mus[0].numpy(),
        "fit_tol": np.array(fit["tol"]), "fit_window": np.array(fit["window"]),
        "h": h.numpy(),
        "timings": np.array([timings[s] for s in SCHEDULES]),
    }


# condition numbers at which run_figure3 recalibrates c0 and predicts the fixed loss
KAPPAS = (300.0, 1000.0, 2000.0, 1e4, 1e5)
SMOKE_STEPS = 40  # the smoke profile only checks that the chapter runs: a capped fit


def run_figure3(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                resume=True):
    """Experiment ``figure3``: compute and save ``results_dir/figure3_<profile>_seed<seed>.npz``;
    returns its :class:`~shortbias_lib.runs.Result`.

    The noisy quadratic is cheap, so every profile uses the paper's scale
    (1000 dimensions, T = 250) and fits until the stopping rule; ``smoke``
    caps the fit at :data:`SMOKE_STEPS` iterations. The computation is exact
    CPU NumPy and uses no data or randomness: ``device`` is checked and the run
    records ``cpu``, the device it used; the seed only names the file.
    """
    from ..profiles import pick
    from ..runs import check_seed, provenance, resolve_device, result_path, run_or_resume, save_result

    seed = check_seed(seed)
    # fitted: the kappas whose optimized schedule is fitted too (about 16 s CPU each)
    sizes = pick(profile, {"smoke": {"max_iter": SMOKE_STEPS, "kappas": KAPPAS[::2], "fitted": (DEFAULT_KAPPA,)},
                           "quick": {"max_iter": FIGURE3_FIT["max_iter"], "kappas": KAPPAS, "fitted": KAPPAS[::2]},
                           "paper": {"max_iter": FIGURE3_FIT["max_iter"], "kappas": KAPPAS, "fitted": KAPPAS}})
    assert DEFAULT_KAPPA in sizes["fitted"]
    resolve_device(device)  # a bad name is an error; the computation itself is CPU NumPy
    config = {"chapter": CHAPTER, "setup": FIGURE3_SETUP, "fit": {**FIGURE3_FIT, "max_iter": sizes["max_iter"]},
              "fitted_kappas": sizes["fitted"], "version": 4}
    path = result_path("figure3", profile, seed, results)
    T, n = FIGURE3_SETUP["horizon"], len(SCHEDULES)
    expected = {"alphas": (2, n, T), "mus": (2, n, T), "losses": (2, n, T + 1),
                "final_losses": (n,), "final_losses_deterministic": (n,),
                "reported_names": (n,), "reported_ours": (n,), "reported_paper": (n,),
                "reported_kinds": (n,), "schedules": (n,), "cases": (2,), "starts": (2,),
                "loss_high50": None, "loss_low50": None, "max_excess_over_initial": None,
                "optimized_history": None, "start_finals": (2, 2), "start_iterations": (2, 2),
                "start_converged": (2, 2), "winner": (2,), "fixed_alpha": (2,), "fixed_mu": (2,),
                "unconstrained_final": (), "unconstrained_iterations": (),
                "unconstrained_converged": (), "unconstrained_alphas": (T,),
                "unconstrained_mus": (T,), "fit_tol": (), "fit_window": (),
                "kappas": None, "kappa_c0": None, "kappa_fixed": None, "kappa_optimized": None,
                "h": (FIGURE3_SETUP["n"],), "timings": (n,), "seconds": ()}

    def compute():
        start = time.perf_counter()
        arrays = figure3(fit={"max_iter": sizes["max_iter"]})
        arrays["seconds"] = np.array(time.perf_counter() - start)
        arrays["reported_names"] = np.array([f"Fig. 3 final loss, {s}" for s in SCHEDULES])
        arrays["reported_ours"] = np.asarray(arrays["final_losses"], dtype=np.float64)
        arrays["reported_paper"] = np.array([PAPER_FINAL_LOSSES[s] for s in SCHEDULES])
        arrays["kappas"] = np.array(sizes["kappas"])
        arrays["kappa_c0"], arrays["kappa_fixed"], arrays["kappa_optimized"] = calibrated_optimized(
            sizes["kappas"], {"max_iter": sizes["max_iter"]}, fitted=sizes["fitted"])
        # greedy calibrated c0 (see the chapter): it cannot count as a match
        arrays["reported_kinds"] = np.array(["calibrated" if s == "greedy" else "value"
                                            for s in SCHEDULES])
        save_result(path, arrays, provenance(profile, "cpu", seed, **config))

    return run_or_resume(path, config, compute, resume=resume, expected=expected, same={"profile": profile})
