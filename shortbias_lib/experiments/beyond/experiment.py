"""Beyond the paper: the bias across horizons, its remedies, and an unbiased fix (the experiment).

The chapters' computations live in three modules; this one runs them and saves the results.

* :mod:`shortbias_lib.nqm.horizon_bias`: the problems, the schedule that is best for a
  horizon ``T`` and what it costs at a longer final horizon, the greedy / optimized map
  over condition number and noise scale with a diagonal preconditioner, the explorer's
  compute function.
* :mod:`shortbias_lib.nqm.pes`: Persistent Evolution Strategies (Vicol, Metz &
  Sohl-Dickstein, ICML 2021) against the truncated (short-horizon) hypergradient.
* :mod:`shortbias_lib.experiments.beyond.mnist`: the same two estimators on the offline MNIST
  decay schedule, small scale.
* :func:`run_beyond` (this module): the experiment (``python -m shortbias_lib beyond``): the noisy-quadratic
  results (:func:`run_beyond_nqm`) and the MNIST comparison, each in its own result file.

The chapters (``book/beyond`` and ``book/beyond_pes``) draw their figures with
:mod:`shortbias_lib.experiments.beyond.figures` and take the numbers and verdicts their prose quotes from
:mod:`shortbias_lib.chapters.beyond`.
"""

import math
import time

import numpy as np
import torch

from ...nqm.dynamics import dynamics, greedy_schedule
from ...nqm.problem import DEFAULT_C0, DEFAULT_KAPPA
from .mnist import run_beyond_mnist
from ...nqm.horizon_bias import (DTYPE, decay_horizon_bias, greedy_ratio_map, horizon_bias, mark_diverged,
                           noisy_problem)
from ...nqm.pes import MetaTask, fixed_point_1d, meta_optimize, pes_estimates, truncated_estimates
from ...profiles import pick
from ...runs import Result, check_seed, provenance, resolve_device, result_path, run_or_resume, save_result


def _sizes(profile):
    return pick(profile, {
        "smoke": dict(n=50, final_horizon=100, horizons=[1, 3, 10, 30, 100], n_alpha=16, mus=[0.0, 0.9],
                      n_decay=8, map_n=16, map_horizon=50, map_kappas=[1, 100], map_noises=[0, 1],
                      map_gammas=[0.0, 0.5], fit_steps=10, pes_n=20, pes_horizon=50, pes_window=10,
                      pes_episodes=3, pes_pairs=4, grid_1d=41, pes_checks=3,
                      pes_runs=10),
        "quick": dict(n=1000, final_horizon=1000,
                      horizons=[1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000], n_alpha=48,
                      mus=[0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99], n_decay=20, map_n=100,
                      map_horizon=250, map_kappas=[1, 10, 100, 1000, 10000],
                      map_noises=[0, 0.001, 0.01, 0.1, 1, 10], map_gammas=[0.0, 0.5, 1.0], fit_steps=100,
                      pes_n=100, pes_horizon=250, pes_window=10, pes_episodes=40, pes_pairs=8,
                      grid_1d=121, pes_checks=7, pes_runs=100),
        "paper": dict(n=1000, final_horizon=1000,
                      horizons=[1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000], n_alpha=96,
                      mus=[0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995], n_decay=40, map_n=1000,
                      map_horizon=250, map_kappas=[1, 10, 100, 1000, 10000, 100000],
                      map_noises=[0, 0.001, 0.01, 0.1, 1, 10], map_gammas=[0.0, 0.25, 0.5, 0.75, 1.0],
                      fit_steps=500, pes_n=1000, pes_horizon=250, pes_window=10, pes_episodes=100,
                      pes_pairs=32, grid_1d=241, pes_checks=13, pes_runs=400),
    })


def run_beyond(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
               resume=True, mnist=True):
    """All results of the "Beyond the paper" chapter.

    The noisy-quadratic results (``beyond_{profile}_seed{seed}.npz``) and, when ``mnist``,
    the small MNIST comparison of :func:`run_beyond_mnist` (its own file, needs the MNIST
    data), each resumed from its file. Returns a :class:`~shortbias_lib.runs.Result`: the
    MNIST arrays are prefixed ``mnist_`` and its provenance is ``meta["mnist"]``. CPU only:
    ``device`` is checked, and ``cpu``, the device used, is recorded.
    """
    seed = check_seed(seed)
    arrays, meta = run_beyond_nqm(profile, device=device, seed=seed, results=results,
                                  resume=resume)
    if mnist:
        m_arrays, m_meta = run_beyond_mnist(profile, device=device, seed=seed,
                                            data_root=data_root, results=results, resume=resume)
        arrays = dict(arrays, **{f"mnist_{k}": v for k, v in m_arrays.items()})
        meta = dict(meta, mnist=m_meta)
    return Result(arrays, meta)


def run_beyond_nqm(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                   resume=True):
    """All noisy-quadratic results of the chapter, saved to one file; its :class:`~shortbias_lib.runs.Result`."""
    seed = check_seed(seed)
    resolve_device(device)  # a bad name is an error; the computation is CPU only and records cpu
    cfg = dict(_sizes(profile), kappa=DEFAULT_KAPPA, c0=DEFAULT_C0, version=3)
    path = result_path("beyond", profile, seed, results)
    return run_or_resume(path, cfg, lambda: _compute_beyond_nqm(path, cfg, profile, seed), resume=resume,
                         expected=_nqm_expected(cfg), same={"profile": profile, "seed": seed})


def _nqm_expected(cfg):
    """Every array of the noisy-quadratic file and its shape, so a file lacking one is a
    one-line error naming it (:func:`~shortbias_lib.runs.check_arrays`), not a chapter's KeyError."""
    n, H = cfg["pes_checks"], (len(cfg["horizons"]),)
    cells = (len(cfg["map_gammas"]), len(cfg["map_kappas"]), len(cfg["map_noises"]))
    expected = {"pes_grid": (cfg["grid_1d"],), "pes_F": (cfg["grid_1d"],),
                "pes_exact_grad": (cfg["grid_1d"],), "pes_trunc_grad": (cfg["grid_1d"],),
                "pes_check_theta": (n,), "pes_check_mean": (n,), "pes_check_se": (n,),
                "pes_check_exact": (n,), "greedy_losses": (cfg["final_horizon"] + 1,),
                "greedy_alphas": (cfg["final_horizon"],), "pes_opt": (), "pes_trunc_fixed": (),
                "pes_final_best_theta": (), "pes_final_best_loss": (), "seconds": (),
                "pes_opt_F": (), "pes_opt_final_loss": (), "pes_trunc_fixed_F": (),
                "pes_trunc_fixed_final_loss": (), "decay_K": (), "decay_mu": (),
                "decay_alpha0": H, "decay_beta": H, "map_seconds": (),
                "map_kappas": cells[1:2], "map_noises": cells[2:], "map_gammas": cells[:1]}
    expected.update({f"pes_traj_{method}": None for method in ("truncated", "pes")})
    for sweep in ("const", "det"):
        expected.update({f"{sweep}_alpha": H, f"{sweep}_mu": H, f"{sweep}_final_horizon": ()})
    for sweep in ("const", "det", "decay"):
        expected.update({f"{sweep}_horizons": H, f"{sweep}_loss_at_final": H,
                         f"{sweep}_loss_at_horizon": H, f"{sweep}_best_final": ()})
    expected.update({f"map_{name}": cells for name in ("floor", "greedy", "optimized", "ratio")})
    return expected


def _compute_beyond_nqm(path, cfg, profile, seed):
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = {}
    arrays = noisy_problem(cfg["n"], cfg["kappa"], 1.0, cfg["c0"])
    T = cfg["final_horizon"]
    # 1. horizon sweep: constant (alpha, mu) and the decay family.
    hb = horizon_bias(arrays, cfg["horizons"], T, torch.logspace(-3, 0.5, cfg["n_alpha"]), cfg["mus"])
    out.update({f"const_{k}": v for k, v in hb.items()})
    db = decay_horizon_bias(arrays, cfg["horizons"], T, torch.logspace(-3, 0.5, cfg["n_decay"]),
                            torch.logspace(-2, 1.5, cfg["n_decay"]), mu=0.9)
    out.update({f"decay_{k}": v for k, v in db.items()})
    with torch.no_grad():
        g = greedy_schedule(*arrays, T)
    out["greedy_losses"] = g.losses.numpy()
    out["greedy_alphas"] = g.alphas.numpy()
    det = noisy_problem(cfg["n"], cfg["kappa"], 0.0, cfg["c0"])
    hb0 = horizon_bias(det, cfg["horizons"], T, torch.logspace(-3, 0.5, cfg["n_alpha"]), cfg["mus"])
    out.update({f"det_{k}": v for k, v in hb0.items()})
    # 2. remedies map.
    mp = greedy_ratio_map(cfg["map_kappas"], cfg["map_noises"], cfg["map_gammas"], n=cfg["map_n"],
                          horizon=cfg["map_horizon"], c0=cfg["c0"], fit_steps=cfg["fit_steps"])
    out.update({f"map_{k}": v for k, v in mp.items()})
    # 3. PES vs truncated on a constant learning rate (1-D) and a decay schedule (2-D).
    parr = noisy_problem(cfg["pes_n"], cfg["kappa"], 1.0, cfg["c0"])
    task = MetaTask(parr, cfg["pes_horizon"], cfg["pes_window"], mu=0.0)
    grid = torch.linspace(-6, 0.5, cfg["grid_1d"], dtype=DTYPE)[:, None]
    with torch.no_grad():
        out["pes_grid"] = grid[:, 0].numpy()
        out["pes_F"] = task.objective(grid).numpy()
    out["pes_exact_grad"] = task.gradient(grid)[:, 0].numpy()
    out["pes_trunc_grad"] = truncated_estimates(task, grid).sum(-2)[:, 0].numpy()
    lo, hi = float(grid[0, 0]), float(grid[-1, 0])
    ok = torch.isfinite(torch.as_tensor(out["pes_F"]))
    hi = float(grid[ok][-1, 0])
    out["pes_opt"] = np.array(fixed_point_1d(lambda x: float(task.gradient([x])[0]), lo, hi))
    out["pes_trunc_fixed"] = np.array(fixed_point_1d(
        lambda x: float(truncated_estimates(task, [x]).sum(-2)[0]), lo, hi))
    theta0 = torch.tensor([math.log(0.01)], dtype=DTYPE)
    for method in ("truncated", "pes"):
        out[f"pes_traj_{method}"] = meta_optimize(
            task, theta0, method, episodes=cfg["pes_episodes"], lr=0.02, pairs=cfg["pes_pairs"],
            sigma=0.05, seed=seed).numpy()
    # Monte Carlo check of PES at a few points, with the settings of the runs above.
    checks = torch.linspace(-4.5, 0.0, cfg["pes_checks"], dtype=DTYPE)[:, None]
    gen = torch.Generator().manual_seed(seed + 1)
    est = torch.stack([pes_estimates(task, th, pairs=cfg["pes_pairs"], sigma=0.05,
                                     runs=cfg["pes_runs"], generator=gen).sum(1)[:, 0]
                       for th in checks])
    out["pes_check_theta"] = checks[:, 0].numpy()
    out["pes_check_mean"] = est.mean(1).numpy()
    out["pes_check_se"] = (est.std(1) / math.sqrt(cfg["pes_runs"])).numpy()
    out["pes_check_exact"] = task.gradient(checks)[:, 0].numpy()
    # what each fixed point costs: F, and the final expected loss at the horizon
    with torch.no_grad():
        for key in ("pes_opt", "pes_trunc_fixed"):
            out[f"{key}_F"] = task.objective(torch.tensor([float(out[key])], dtype=DTYPE)).numpy()
            a = torch.full((cfg["pes_horizon"],), math.exp(float(out[key])), dtype=DTYPE)
            out[f"{key}_final_loss"] = dynamics(*parr, a, torch.zeros_like(a))[-1].numpy()
        # the constant learning rate that is best for the final loss alone (a scan)
        a = torch.exp(grid).expand(-1, cfg["pes_horizon"])
        final = mark_diverged(dynamics(*parr, a, torch.zeros_like(a)))[:, -1]
        out["pes_final_best_theta"] = grid[final.argmin(), 0].numpy()
        out["pes_final_best_loss"] = final.min().numpy()
    out["seconds"] = np.array(time.perf_counter() - start)
    save_result(path, out, provenance(profile, "cpu", seed, **cfg))
